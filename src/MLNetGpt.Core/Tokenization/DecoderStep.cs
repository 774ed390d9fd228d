using System.Text;
using System.Text.Json;

namespace MLNetGpt.Tokenization;

/// <summary>
/// One step of a tokenizer.json <c>decoder</c>, applied to the token strings in order as tokenizers
/// does: <c>Replace</c> (per token), <c>ByteFallback</c> (a run of <c>&lt;0xXX&gt;</c> pieces becomes its
/// UTF-8 text, or one U+FFFD per byte when the run is not valid UTF-8), <c>Fuse</c> (joins all tokens),
/// <c>Strip</c> (per token, up to <c>start</c> leading and <c>stop</c> trailing <c>content</c> characters)
/// and <c>Metaspace</c> (the replacement character becomes a space, dropped in the first token unless
/// the prepend scheme is "never").
/// </summary>
internal abstract class DecoderStep
{
    private static readonly string[] Supported = ["Sequence", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace"];
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public abstract List<string> Apply(List<string> tokens);

    /// <summary>The steps of <c>decoder</c>; null when there is none (tokens are then joined with spaces, as tokenizers does).</summary>
    public static IReadOnlyList<DecoderStep>? Read(TokenizerJson json, JsonElement root)
    {
        if (TokenizerJson.Optional(root, "decoder") is not { } decoder) return null;
        var steps = new List<DecoderStep>();
        Add(json, decoder, "decoder", steps);
        return steps;
    }

    private static void Add(TokenizerJson json, JsonElement step, string where, List<DecoderStep> steps)
    {
        switch (json.StepType(step, where, "decoder", Supported))
        {
            case "Sequence":
                var list = json.Required(step, "decoders", where);
                if (list.ValueKind != JsonValueKind.Array) throw json.Error($"{where}.decoders must be an array, but is {TokenizerJson.Describe(list)}.");
                int i = 0;
                foreach (var inner in list.EnumerateArray()) Add(json, inner, $"{where}.decoders[{i++}]", steps);
                break;
            case "Replace":
                steps.Add(new Replace(json.LiteralPattern(step, where), json.RequiredString(step, "content", where)));
                break;
            case "ByteFallback":
                steps.Add(new ByteFallback());
                break;
            case "Fuse":
                steps.Add(new Fuse());
                break;
            case "Strip":
                steps.Add(new Strip(json.Character(step, "content", where), json.OptionalInt(step, "start", where, 0), json.OptionalInt(step, "stop", where, 0)));
                break;
            default:
                var (replacement, prepend, _) = PreTokenizerStep.ReadMetaspace(json, step, where);
                steps.Add(new Metaspace(replacement, prepend != MetaspacePrepend.Never));
                break;
        }
    }

    private sealed class Replace(string pattern, string content) : DecoderStep
    {
        public override List<string> Apply(List<string> tokens) =>
            pattern.Length == 0 ? tokens : tokens.Select(t => t.Replace(pattern, content, StringComparison.Ordinal)).ToList();
    }

    private sealed class ByteFallback : DecoderStep
    {
        public override List<string> Apply(List<string> tokens)
        {
            var result = new List<string>(tokens.Count);
            var run = new List<byte>();
            foreach (string token in tokens)
            {
                if (TryParseByte(token, out byte value))
                {
                    run.Add(value);
                    continue;
                }
                Flush(run, result);
                result.Add(token);
            }
            Flush(run, result);
            return result;
        }

        private static bool TryParseByte(string token, out byte value)
        {
            value = 0;
            return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out value);
        }

        private static void Flush(List<byte> run, List<string> result)
        {
            if (run.Count == 0) return;
            try
            {
                result.Add(StrictUtf8.GetString(run.ToArray()));
            }
            catch (DecoderFallbackException)
            {
                // tokenizers replaces every byte of an invalid run, not just the invalid ones; a run that
                // ends inside a character therefore ends in U+FFFD, which is what streaming holds back on.
                for (int i = 0; i < run.Count; i++) result.Add("\uFFFD");
            }
            run.Clear();
        }
    }

    private sealed class Fuse : DecoderStep
    {
        public override List<string> Apply(List<string> tokens) => [string.Concat(tokens)];
    }

    private sealed class Strip(char content, int start, int stop) : DecoderStep
    {
        public override List<string> Apply(List<string> tokens) => tokens.Select(StripOne).ToList();

        private string StripOne(string token)
        {
            int from = 0, to = token.Length;
            while (from < start && from < token.Length && token[from] == content) from++;
            while (token.Length - to < stop && to > from && token[to - 1] == content) to--;
            return token[from..to];
        }
    }

    private sealed class Metaspace(char replacement, bool dropLeading) : DecoderStep
    {
        public override List<string> Apply(List<string> tokens) =>
            tokens.Select((token, i) => i == 0 && dropLeading ? token.Replace(replacement.ToString(), "", StringComparison.Ordinal) : token.Replace(replacement, ' ')).ToList();
    }
}
