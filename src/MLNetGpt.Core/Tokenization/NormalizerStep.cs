using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MLNetGpt.Tokenization;

/// <summary>
/// One step of a tokenizer.json <c>normalizer</c>, with Hugging Face tokenizers' semantics: the
/// Unicode forms (NFC, NFD, NFKC, NFKD), <c>Lowercase</c> (Rust's per-character full mapping),
/// <c>Replace</c> (a literal or a regular expression), <c>Prepend</c> (only to non-empty text),
/// <c>Strip</c> (Unicode White_Space), <c>StripAccents</c> (drops every mark) and <c>Sequence</c>.
/// </summary>
/// <remarks>
/// Besides the text, a step keeps <c>originChars</c>: how many leading UTF-16 units of the text stand
/// for the first character of the original input (tokenizers' alignment to offset 0), which is what
/// a Metaspace pre-tokenizer with <c>prepend_scheme: "first"</c> asks about. Each step moves that
/// count as tokenizers moves its alignments (a replacement takes the alignment of the last character
/// it replaces; a prefix takes the first character's; a removed character takes its own away). The
/// Unicode forms keep it for the first character only.
/// </remarks>
internal abstract class NormalizerStep
{
    public static readonly IReadOnlyList<string> Supported = ["NFC", "NFD", "NFKC", "NFKD", "Lowercase", "Replace", "Prepend", "Strip", "StripAccents", "Sequence"];

    /// <summary>The normalized text; <paramref name="originChars"/> is updated as described on the class.</summary>
    public abstract string Apply(string text, ref int originChars);

    /// <summary>The steps of <c>normalizer</c> in order (none when it is null).</summary>
    public static IReadOnlyList<NormalizerStep> Read(TokenizerJson json, JsonElement root)
    {
        var steps = new List<NormalizerStep>();
        if (TokenizerJson.Optional(root, "normalizer") is { } normalizer) Add(json, normalizer, "normalizer", steps);
        return steps;
    }

    /// <summary>Runs <paramref name="steps"/> in order.</summary>
    public static string Run(IReadOnlyList<NormalizerStep> steps, string text, ref int originChars)
    {
        foreach (var step in steps) text = step.Apply(text, ref originChars);
        return text;
    }

    private static void Add(TokenizerJson json, JsonElement step, string where, List<NormalizerStep> steps)
    {
        switch (json.StepType(step, where, "normalizer", Supported))
        {
            case "Sequence":
                int i = 0;
                foreach (var inner in json.Array(step, "normalizers", where)) Add(json, inner, $"{where}.normalizers[{i++}]", steps);
                break;
            case "NFC":
                steps.Add(new UnicodeForm(NormalizationForm.FormC));
                break;
            case "NFD":
                steps.Add(new UnicodeForm(NormalizationForm.FormD));
                break;
            case "NFKC":
                steps.Add(new UnicodeForm(NormalizationForm.FormKC));
                break;
            case "NFKD":
                steps.Add(new UnicodeForm(NormalizationForm.FormKD));
                break;
            case "Lowercase":
                steps.Add(new Lowercase());
                break;
            case "Prepend":
                steps.Add(new Prepend(json.RequiredString(step, "prepend", where)));
                break;
            case "Strip":
                steps.Add(new Strip(json.RequiredBool(step, "strip_left", where), json.RequiredBool(step, "strip_right", where)));
                break;
            case "StripAccents":
                steps.Add(new StripAccents());
                break;
            default:
                steps.Add(new Replace(json.Pattern(step, where), json.RequiredString(step, "content", where)));
                break;
        }
    }

    private static int FirstScalarLength(string text) => text.Length == 0 ? 0 : UnicodeClasses.ScalarAt(text, 0).Length;

    private sealed class UnicodeForm(NormalizationForm form) : NormalizerStep
    {
        public override string Apply(string text, ref int originChars)
        {
            if (text.IsNormalized(form)) return text;
            string result = text.Normalize(form);
            // The first character of a normalized form comes from the first input character.
            originChars = originChars > 0 ? FirstScalarLength(result) : 0;
            return result;
        }
    }

    private sealed class Lowercase : NormalizerStep
    {
        public override string Apply(string text, ref int originChars)
        {
            var builder = new StringBuilder(text.Length);
            int newOrigin = 0;
            for (int i = 0; i < text.Length;)
            {
                var (value, length) = UnicodeClasses.ScalarAt(text, i);
                int before = builder.Length;
                AppendLower(builder, value);
                if (i < originChars) newOrigin += builder.Length - before;
                i += length;
            }
            originChars = newOrigin;
            string result = builder.ToString();
            return result == text ? text : result;
        }

        /// <summary>Rust's <c>char::to_lowercase</c>: the simple mapping, except U+0130's full one.</summary>
        private static void AppendLower(StringBuilder builder, int value)
        {
            if (value == 0x130)
            {
                builder.Append("i\u0307");
                return;
            }
            var rune = Rune.ToLowerInvariant(new Rune(value));
            Span<char> buffer = stackalloc char[2];
            builder.Append(buffer[..rune.EncodeToUtf16(buffer)]);
        }
    }

    private sealed class Prepend(string prefix) : NormalizerStep
    {
        public override string Apply(string text, ref int originChars)
        {
            if (text.Length == 0) return text;
            if (originChars > 0) originChars += prefix.Length;
            return prefix + text;
        }
    }

    private sealed class Strip(bool left, bool right) : NormalizerStep
    {
        public override string Apply(string text, ref int originChars)
        {
            int start = 0, end = text.Length;
            if (left)
                while (start < end && UnicodeClasses.IsWhiteSpace(UnicodeClasses.ScalarAt(text, start).Value)) start += UnicodeClasses.ScalarAt(text, start).Length;
            if (right)
                while (end > start && UnicodeClasses.IsWhiteSpace(text[end - 1])) end--;     // White_Space is all in the BMP
            if (start == 0 && end == text.Length) return text;
            originChars = Math.Clamp(originChars - start, 0, end - start);
            return text[start..end];
        }
    }

    private sealed class StripAccents : NormalizerStep
    {
        public override string Apply(string text, ref int originChars)
        {
            var builder = new StringBuilder(text.Length);
            int newOrigin = 0;
            for (int i = 0; i < text.Length;)
            {
                var (value, length) = UnicodeClasses.ScalarAt(text, i);
                if (!UnicodeClasses.IsCombiningMark(value))
                {
                    builder.Append(text, i, length);
                    if (i < originChars) newOrigin += length;
                }
                i += length;
            }
            if (builder.Length == text.Length) return text;
            originChars = newOrigin;
            return builder.ToString();
        }
    }

    private sealed class Replace(TokenizerPattern pattern, string content) : NormalizerStep
    {
        public override string Apply(string text, ref int originChars)
        {
            var matches = new List<(int Start, int End)>();
            pattern.Collect(text, matches);
            if (matches.Count == 0) return text;
            var builder = new StringBuilder(text.Length + matches.Count * content.Length);
            var origin = new OriginCounter(originChars);
            int position = 0;
            foreach (var (start, end) in matches)
            {
                builder.Append(text, position, start - position);
                origin.Keep(position, start);
                builder.Append(content);
                // Inserted text takes the alignment of the last character the match covers (the start's, for an empty match at 0).
                origin.Insert(content.Length, end == 0 || end - 1 < originChars);
                position = end;
            }
            builder.Append(text, position, text.Length - position);
            origin.Keep(position, text.Length);
            originChars = origin.Count;
            return builder.ToString();
        }
    }

    /// <summary>Counts the leading output characters that still stand for the input's first character.</summary>
    private struct OriginCounter(int originChars)
    {
        private bool _open = originChars > 0;

        public int Count { get; private set; }

        /// <summary>Input characters [from, to) copied unchanged.</summary>
        public void Keep(int from, int to)
        {
            if (!_open || to <= from) return;
            int flaggedEnd = Math.Min(to, originChars);
            if (flaggedEnd > from) Count += flaggedEnd - from;
            if (flaggedEnd < to) _open = false;
        }

        /// <summary>New characters, aligned to the origin or not.</summary>
        public void Insert(int length, bool flagged)
        {
            if (!_open || length == 0) return;
            if (flagged) Count += length;
            else _open = false;
        }
    }
}

/// <summary>A tokenizer.json pattern: <c>{"String": "..."}</c> (matched literally) or <c>{"Regex": "..."}</c> (Oniguruma syntax).</summary>
internal sealed class TokenizerPattern
{
    private readonly string? _literal;
    private readonly Regex? _regex;

    private TokenizerPattern(string? literal, Regex? regex)
    {
        _literal = literal;
        _regex = regex;
    }

    public static TokenizerPattern Literal(string text) => text.Length == 0
        ? new TokenizerPattern(null, new Regex("", RegexOptions.CultureInvariant))     // matches the empty string everywhere, as tokenizers' escaped regex does
        : new TokenizerPattern(text, null);

    public static TokenizerPattern FromRegex(Regex regex) => new(null, regex);

    /// <summary>
    /// The matches, left to right and not overlapping, as Oniguruma's iterator in tokenizers gives
    /// them: an empty match right where the previous match ended is skipped.
    /// </summary>
    public IEnumerable<(int Start, int End)> Matches(string text)
    {
        var list = new List<(int, int)>();
        Collect(text, list);
        return list;
    }

    /// <summary>Appends the matches of <see cref="Matches"/> to <paramref name="matches"/>.</summary>
    public void Collect(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
    {
        if (_literal is not null)
        {
            for (int from = 0; from <= text.Length;)
            {
                int found = text[from..].IndexOf(_literal, StringComparison.Ordinal);
                if (found < 0) break;
                matches.Add((from + found, from + found + _literal.Length));
                from += found + _literal.Length;
            }
            return;
        }
        int lastEnd = -1;
        try
        {
            foreach (var match in _regex!.EnumerateMatches(text))
            {
                if (match.Length == 0 && match.Index == lastEnd) continue;
                // Oniguruma steps over code points: no empty match between the two halves of a surrogate pair.
                if (match.Length == 0 && match.Index > 0 && match.Index < text.Length && char.IsLowSurrogate(text[match.Index]) && char.IsHighSurrogate(text[match.Index - 1])) continue;
                matches.Add((match.Index, match.Index + match.Length));
                lastEnd = match.Index + match.Length;
            }
        }
        catch (RegexMatchTimeoutException e)
        {
            throw new InvalidOperationException($"The tokenizer's regular expression {_regex} ran past its time limit on a text of {text.Length} characters.", e);
        }
    }
}
