using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MLNetGpt.Tokenization;

/// <summary>
/// One step of a tokenizer.json <c>decoder</c>, applied to the token strings in order as tokenizers
/// does: <c>ByteLevel</c> (each token's characters back to bytes, a token whose characters are not
/// all byte-level characters as its own UTF-8; then all tokens become one string, invalid UTF-8
/// replaced), <c>Metaspace</c> (the replacement character becomes a space, dropped in the first
/// token unless the prepend scheme is "never"), <c>Replace</c> (per token, literal or regex),
/// <c>ByteFallback</c> (a run of <c>&lt;0xXX&gt;</c> pieces becomes its UTF-8 text, or one U+FFFD per byte
/// when the run is not valid UTF-8), <c>Fuse</c> (joins all tokens), <c>Strip</c> (per token, up to
/// <c>start</c> leading and <c>stop</c> trailing <c>content</c> characters), <c>BPEDecoder</c> (the
/// end-of-word suffix becomes a space, except in the last token) and <c>Sequence</c>.
/// </summary>
internal abstract class DecoderStep
{
    public static readonly IReadOnlyList<string> Supported = ["ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip", "BPEDecoder", "Sequence"];
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

    /// <summary>Runs the steps over the tokens and joins what is left.</summary>
    public static string Run(IReadOnlyList<DecoderStep>? steps, List<string> tokens)
    {
        if (steps is null) return string.Join(' ', tokens);
        foreach (var step in steps) tokens = step.Apply(tokens);
        return string.Concat(tokens);
    }

    private static void Add(TokenizerJson json, JsonElement step, string where, List<DecoderStep> steps)
    {
        switch (json.StepType(step, where, "decoder", Supported))
        {
            case "Sequence":
                int i = 0;
                foreach (var inner in json.Array(step, "decoders", where)) Add(json, inner, $"{where}.decoders[{i++}]", steps);
                break;
            case "ByteLevel":
                steps.Add(new ByteLevel());
                break;
            case "Replace":
                steps.Add(new Replace(json.Pattern(step, where), json.RequiredString(step, "content", where)));
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
            case "BPEDecoder":
                steps.Add(new Suffix(json.OptionalString(step, "suffix", where) ?? "</w>"));
                break;
            default:
                var (replacement, prepend, _) = PreTokenizerStep.ReadMetaspace(json, step, where);
                steps.Add(new Metaspace(replacement, prepend != MetaspacePrepend.Never));
                break;
        }
    }

    public sealed class ByteLevel : DecoderStep
    {
        public override List<string> Apply(List<string> tokens)
        {
            var bytes = new List<byte>();
            foreach (string token in tokens)
            {
                int mark = bytes.Count;
                bool all = true;
                foreach (char c in token)
                {
                    if (!ByteLevelAlphabet.TryGetByte(c, out byte b))
                    {
                        all = false;
                        break;
                    }
                    bytes.Add(b);
                }
                if (all) continue;
                bytes.RemoveRange(mark, bytes.Count - mark);
                bytes.AddRange(Encoding.UTF8.GetBytes(token));
            }
            // Invalid sequences become U+FFFD, one per maximal invalid subpart, like Rust's from_utf8_lossy.
            return [Encoding.UTF8.GetString(bytes.ToArray())];
        }
    }

    public sealed class Replace(TokenizerPattern pattern, string content) : DecoderStep
    {
        public TokenizerPattern Pattern => pattern;

        public string Content => content;

        public override List<string> Apply(List<string> tokens)
        {
            var result = new List<string>(tokens.Count);
            var matches = new List<(int Start, int End)>();
            foreach (string token in tokens)
            {
                matches.Clear();
                pattern.Collect(token, matches);
                if (matches.Count == 0)
                {
                    result.Add(token);
                    continue;
                }
                var builder = new StringBuilder(token.Length);
                int position = 0;
                foreach (var (start, end) in matches)
                {
                    builder.Append(token, position, start - position).Append(content);
                    position = end;
                }
                result.Add(builder.Append(token, position, token.Length - position).ToString());
            }
            return result;
        }
    }

    public sealed class ByteFallback : DecoderStep
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

        /// <summary>A six-byte <c>&lt;0xHH&gt;</c> piece, read as Rust's <c>u8::from_str_radix</c> reads the two characters (a leading '+' included).</summary>
        public static bool TryParseByte(string token, out byte value)
        {
            value = 0;
            if (token.Length != 6 || !token.StartsWith("<0x", StringComparison.Ordinal) || token[5] != '>') return false;
            var digits = token.AsSpan(3, 2);
            if (digits[0] == '+') digits = digits[1..];
            return digits.Length > 0 && digits.IndexOfAnyExcept("0123456789abcdefABCDEF") < 0
                && byte.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
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

    public sealed class Fuse : DecoderStep
    {
        public override List<string> Apply(List<string> tokens) => [string.Concat(tokens)];
    }

    public sealed class Strip(char content, int start, int stop) : DecoderStep
    {
        public char Content => content;

        public int Start => start;

        public override List<string> Apply(List<string> tokens) => tokens.Select(StripOne).ToList();

        private string StripOne(string token)
        {
            int from = 0, to = token.Length;
            while (from < start && from < token.Length && token[from] == content) from++;
            while (token.Length - to < stop && to > from && token[to - 1] == content) to--;
            return token[from..to];
        }
    }

    public sealed class Suffix(string suffix) : DecoderStep
    {
        public override List<string> Apply(List<string> tokens) =>
            tokens.Select((token, i) => suffix.Length == 0 ? token : token.Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal)).ToList();
    }

    public sealed class Metaspace(char replacement, bool dropLeading) : DecoderStep
    {
        public char Replacement => replacement;

        public bool DropsLeading => dropLeading;

        public override List<string> Apply(List<string> tokens) =>
            tokens.Select((token, i) => i == 0 && dropLeading ? token.Replace(replacement.ToString(), "", StringComparison.Ordinal) : token.Replace(replacement, ' ')).ToList();
    }
}
