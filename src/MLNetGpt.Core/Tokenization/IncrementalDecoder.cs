using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Tokenization;

/// <summary>
/// Turns a growing list of token ids into text pieces without ever splitting a multi-byte
/// character: while the decoded text ends in an incomplete UTF-8 sequence (decoded as U+FFFD),
/// the tail is held back until a later token completes it. Decodes as <see cref="TokenDecoding"/>
/// does, with special tokens skipped or kept; the text is not cleaned up (callers clean up what they release).
/// </summary>
internal sealed class IncrementalDecoder
{
    // A character spans at most 4 bytes, so more held-back tokens than that means a genuine U+FFFD.
    private const int MaxHeldTokens = 4;
    private readonly Tokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly List<int> _ids = [];
    private int _heldTokens;

    public IncrementalDecoder(Tokenizer tokenizer, bool skipSpecialTokens = false)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>All text released so far.</summary>
    public string Text { get; private set; } = "";

    /// <summary>Adds a token; returns the newly completed text (possibly empty).</summary>
    public string Append(int id)
    {
        _ids.Add(id);
        string decoded = Decode();
        if (decoded.EndsWith('\uFFFD') && ++_heldTokens <= MaxHeldTokens) return "";
        _heldTokens = 0;
        return Release(decoded);
    }

    /// <summary>Releases whatever is held back (at the end of generation).</summary>
    public string Flush() => _ids.Count == 0 ? "" : Release(Decode());

    private string Decode() => TokenDecoding.Decode(_tokenizer, _ids, _skipSpecialTokens, cleanUpTokenizationSpaces: false);

    private string Release(string decoded)
    {
        // Decoders are prefix-stable once complete characters are released; should one rewrite
        // earlier text anyway, release only what follows the part both versions share.
        string piece = decoded[decoded.AsSpan().CommonPrefixLength(Text)..];
        Text = decoded;
        return piece;
    }
}
