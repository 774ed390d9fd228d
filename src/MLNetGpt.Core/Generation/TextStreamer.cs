using Microsoft.ML.Tokenizers;
using MLNetGpt.Tokenization;

namespace MLNetGpt.Generation;

/// <summary>
/// The text of one generated sequence as it grows: finds stop strings even when they span tokens,
/// and releases text pieces for streaming that can no longer turn out to be the start of a stop
/// string (and never end inside a multi-byte character). Stop strings are found in the decoded text
/// before clean-up; released pieces and the final text are cleaned up when asked
/// (<see cref="TokenDecoding.CleanUpTokenizationSpaces"/>), holding back the few characters a
/// later token could still change.
/// </summary>
internal sealed class TextStreamer
{
    private readonly IncrementalDecoder _decoder;
    private readonly string[] _stops;
    private readonly bool _cleanUp;
    private int _emitted;

    public TextStreamer(Tokenizer tokenizer, string[] stopStrings, bool skipSpecialTokens = true, bool cleanUpTokenizationSpaces = false)
    {
        _decoder = new IncrementalDecoder(tokenizer, skipSpecialTokens);
        _stops = stopStrings;
        _cleanUp = cleanUpTokenizationSpaces;
    }

    /// <summary>Where the first stop string starts in <see cref="Text"/>, or -1.</summary>
    public int StopAt { get; private set; } = -1;

    /// <summary>The text decoded so far, before clean-up (it may end before the last token's incomplete character).</summary>
    public string Text => _decoder.Text;

    /// <summary>Adds a token; returns whether a stop string is now complete.</summary>
    public bool Append(int token)
    {
        int before = _decoder.Text.Length;
        _decoder.Append(token);
        if (_stops.Length == 0) return false;
        int at = FindStop(_decoder.Text, before, _stops);
        if (at < 0) return false;
        StopAt = at;
        return true;
    }

    /// <summary>The text that may be released now (possibly empty); <paramref name="final"/> releases everything left.</summary>
    public string TakePiece(bool final)
    {
        if (final && StopAt < 0) _decoder.Flush();
        string text = _decoder.Text;
        int limit = StopAt >= 0 ? StopAt : final ? text.Length : text.Length - HeldForStops(text, _stops);
        if (_cleanUp && StopAt < 0 && !final) limit = Math.Min(limit, TokenDecoding.StableCleanUpLength(text));
        string released = Output(text[..Math.Max(0, limit)]);
        if (released.Length <= _emitted) return "";
        string piece = released[_emitted..];
        _emitted = released.Length;
        return piece;
    }

    /// <summary>The whole output text, cut at the stop string when one ended it.</summary>
    public string FinalText()
    {
        if (StopAt >= 0) return Output(_decoder.Text[..StopAt]);
        _decoder.Flush();
        return Output(_decoder.Text);
    }

    private string Output(string raw) => _cleanUp ? TokenDecoding.CleanUpTokenizationSpaces(raw) : raw;

    private static int FindStop(string text, int previousLength, string[] stops)
    {
        int best = -1;
        foreach (var stop in stops)
        {
            int from = Math.Max(0, previousLength - stop.Length + 1);
            int at = text.IndexOf(stop, from, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best;
    }

    /// <summary>How many trailing characters could be the start of a stop string.</summary>
    private static int HeldForStops(string text, string[] stops)
    {
        int held = 0;
        foreach (var stop in stops)
            for (int k = Math.Min(stop.Length - 1, text.Length); k > held; k--)
                if (text.AsSpan(text.Length - k).SequenceEqual(stop.AsSpan(0, k)))
                {
                    held = k;
                    break;
                }
        return held;
    }
}
