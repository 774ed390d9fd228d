using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace MLNetGpt.Tokenization;

/// <summary>
/// A piece of text on its way to the model. <see cref="OriginChars"/>: how many leading UTF-16 units
/// stand for the first character of the original input (see <see cref="NormalizerStep"/>).
/// <see cref="Start"/> or <see cref="Map"/> place the piece in the normalized text, for offsets:
/// character boundary k lies at <c>Start + k</c>, or at <c>Map[k]</c> when the piece no longer
/// spells the normalized text one for one (byte-level characters, an added prefix).
/// </summary>
internal readonly record struct PreToken(string Text, int OriginChars, int Start = 0, int[]? Map = null)
{
    /// <summary>Whether the piece begins where the original input begins.</summary>
    public bool AtOrigin => OriginChars > 0;

    /// <summary>Where character boundary <paramref name="k"/> lies in the normalized text.</summary>
    public int Offset(int k) => Map is null ? Start + k : Map[k];

    public PreToken Slice(int from, int to) => new(
        from == 0 && to == Text.Length ? Text : Text[from..to],
        Math.Clamp(OriginChars - from, 0, to - from),
        Map is null ? Start + from : 0,
        Map is null ? null : Map[from..(to + 1)]);
}

/// <summary>How a Split-like pre-tokenizer treats the matches it cuts at (tokenizers' SplitDelimiterBehavior).</summary>
internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>
/// One step of a tokenizer.json <c>pre_tokenizer</c> with Hugging Face tokenizers' semantics:
/// <c>ByteLevel</c> (add_prefix_space, use_regex with GPT-2's pattern; trim_offsets only moves
/// offsets), <c>Split</c> (a literal or regex pattern, every behavior, invert), <c>Metaspace</c>
/// (replacement, prepend_scheme, split), <c>Whitespace</c>, <c>WhitespaceSplit</c>, <c>Digits</c>,
/// <c>Punctuation</c> and <c>Sequence</c>. Each step works on every piece separately, and pieces
/// that end up empty are dropped, as tokenizers does.
/// </summary>
internal abstract class PreTokenizerStep
{
    public static readonly IReadOnlyList<string> Supported = ["ByteLevel", "Split", "Metaspace", "Whitespace", "WhitespaceSplit", "Digits", "Punctuation", "Sequence"];

    /// <summary>GPT-2's pattern, which the ByteLevel pre-tokenizer splits with when use_regex is set.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly Lazy<TokenizerPattern> Gpt2Regex = new(() => TokenizerPattern.FromRegex(OnigRegex.Create(Gpt2Pattern)));

    /// <summary>Replaces <paramref name="pieces"/> with what this step makes of them; <paramref name="trackOffsets"/> keeps <see cref="PreToken.Map"/> right.</summary>
    public abstract void Apply(List<PreToken> pieces, bool trackOffsets);

    /// <summary>Whether this step (or one inside it) is a ByteLevel pre-tokenizer.</summary>
    public virtual bool IsByteLevel => false;

    /// <summary>
    /// Whether <paramref name="steps"/> are the byte-level layout nearly every byte-level file uses:
    /// a regex cut into isolated pieces (a Split, or ByteLevel's own GPT-2 pattern), then each piece's
    /// bytes as byte-level characters, nothing prepended. Encoding then runs one tight loop over the matches.
    /// </summary>
    public static bool IsByteLevelSplit(IReadOnlyList<PreTokenizerStep> steps, out TokenizerPattern pattern)
    {
        pattern = null!;
        switch (steps)
        {
            case [ByteLevel { AddPrefixSpace: false, UseRegex: true }]:
                pattern = Gpt2Regex.Value;
                return true;
            case [Split { Behavior: SplitBehavior.Isolated, Invert: false } split, ByteLevel { AddPrefixSpace: false, UseRegex: false }]:
                pattern = split.Pattern;
                return true;
            default:
                return false;
        }
    }

    public static IReadOnlyList<PreTokenizerStep> Read(TokenizerJson json, JsonElement root)
    {
        var steps = new List<PreTokenizerStep>();
        if (TokenizerJson.Optional(root, "pre_tokenizer") is { } pre) Add(json, pre, "pre_tokenizer", steps);
        return steps;
    }

    /// <summary>tokenizers' Metaspace settings: <c>prepend_scheme</c> (default "always"), or the older <c>add_prefix_space</c>.</summary>
    public static (char Replacement, MetaspacePrepend Prepend, bool Split) ReadMetaspace(TokenizerJson json, JsonElement step, string where)
    {
        char replacement = json.Character(step, "replacement", where);
        var prepend = json.OptionalString(step, "prepend_scheme", where) switch
        {
            null or "always" => MetaspacePrepend.Always,
            "first" => MetaspacePrepend.First,
            "never" => MetaspacePrepend.Never,
            var other => throw json.Error($"{where}.prepend_scheme is \"{other}\"; expected \"always\", \"first\" or \"never\"."),
        };
        if (!json.OptionalBool(step, "add_prefix_space", where, fallback: true))
        {
            // tokenizers refuses add_prefix_space: false beside a scheme that prepends.
            if (prepend != MetaspacePrepend.Never && TokenizerJson.Optional(step, "prepend_scheme") is not null)
                throw json.Error($"{where}.add_prefix_space is false, which contradicts prepend_scheme \"{json.OptionalString(step, "prepend_scheme", where)}\".");
            prepend = MetaspacePrepend.Never;
        }
        return (replacement, prepend, json.OptionalBool(step, "split", where, fallback: true));
    }

    public static SplitBehavior ReadBehavior(TokenizerJson json, JsonElement step, string where, SplitBehavior? fallback = null)
    {
        if (fallback is { } value && TokenizerJson.Optional(step, "behavior") is null) return value;
        string behavior = json.RequiredString(step, "behavior", where);
        return Enum.TryParse<SplitBehavior>(behavior, out var parsed) && Enum.IsDefined(parsed) && behavior == parsed.ToString()
            ? parsed
            : throw json.Error($"{where}.behavior is \"{behavior}\"; expected one of {string.Join(", ", Enum.GetNames<SplitBehavior>())}.");
    }

    private static void Add(TokenizerJson json, JsonElement step, string where, List<PreTokenizerStep> steps)
    {
        switch (json.StepType(step, where, "pre-tokenizer", Supported))
        {
            case "Sequence":
                int i = 0;
                foreach (var inner in json.Array(step, "pretokenizers", where)) Add(json, inner, $"{where}.pretokenizers[{i++}]", steps);
                break;
            case "ByteLevel":
                steps.Add(new ByteLevel(json.OptionalBool(step, "add_prefix_space", where, fallback: true), json.OptionalBool(step, "use_regex", where, fallback: true)));
                break;
            case "Metaspace":
                var (replacement, prepend, split) = ReadMetaspace(json, step, where);
                steps.Add(new Metaspace(replacement, prepend, split));
                break;
            case "Whitespace":
                steps.Add(new Whitespace());
                break;
            case "WhitespaceSplit":
                steps.Add(new CharacterSplit(UnicodeClasses.IsWhiteSpace, SplitBehavior.Removed));
                break;
            case "Digits":
                bool individual = json.OptionalBool(step, "individual_digits", where, fallback: false);
                steps.Add(new CharacterSplit(UnicodeClasses.IsNumeric, individual ? SplitBehavior.Isolated : SplitBehavior.Contiguous));
                break;
            case "Punctuation":
                steps.Add(new CharacterSplit(UnicodeClasses.IsPunctuation, ReadBehavior(json, step, where, SplitBehavior.Isolated)));
                break;
            default:
                var behavior = ReadBehavior(json, step, where);
                steps.Add(new Split(json.Pattern(step, where), behavior, json.RequiredBool(step, "invert", where)));
                break;
        }
    }

    /// <summary>
    /// Cuts <paramref name="piece"/> at the given spans (which cover it, in order, flagged as matches
    /// or not) the way <paramref name="behavior"/> says, and appends the non-empty results.
    /// </summary>
    public static void SplitPiece(PreToken piece, List<(int Start, int End, bool Match)> spans, SplitBehavior behavior, List<PreToken> output)
    {
        // (start, end, remove) per tokenizers' NormalizedString::split.
        var splits = new List<(int Start, int End, bool Remove)>(spans.Count);
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var (s, e, _) in spans) splits.Add((s, e, false));
                break;
            case SplitBehavior.Removed:
                foreach (var (s, e, m) in spans) splits.Add((s, e, m));
                break;
            case SplitBehavior.Contiguous:
                {
                    bool previous = false;
                    foreach (var (s, e, m) in spans)
                    {
                        if (m == previous && splits.Count > 0) splits[^1] = (splits[^1].Start, e, false);
                        else splits.Add((s, e, false));
                        previous = m;
                    }
                    break;
                }
            case SplitBehavior.MergedWithPrevious:
                {
                    bool previous = false;
                    foreach (var (s, e, m) in spans)
                    {
                        if (m && !previous && splits.Count > 0) splits[^1] = (splits[^1].Start, e, false);
                        else splits.Add((s, e, false));
                        previous = m;
                    }
                    break;
                }
            default:
                {
                    // MergedWithNext, walked from the end as tokenizers does.
                    bool previous = false;
                    for (int k = spans.Count - 1; k >= 0; k--)
                    {
                        var (s, e, m) = spans[k];
                        if (m && !previous && splits.Count > 0) splits[^1] = (s, splits[^1].End, false);
                        else splits.Add((s, e, false));
                        previous = m;
                    }
                    splits.Reverse();
                    break;
                }
        }
        foreach (var (s, e, remove) in splits)
            if (!remove && e > s) output.Add(piece.Slice(s, e));
    }

    /// <summary>Spans covering a text of <paramref name="length"/> characters: the matches and the text between them (tokenizers' find_matches).</summary>
    public static void Cover(List<(int Start, int End)> matches, int length, List<(int Start, int End, bool Match)> spans, bool invert)
    {
        spans.Clear();
        if (length == 0)
        {
            spans.Add((0, 0, invert));
            return;
        }
        int previous = 0;
        foreach (var (s, e) in matches)
        {
            if (previous != s) spans.Add((previous, s, invert));
            spans.Add((s, e, !invert));
            previous = e;
        }
        if (previous != length) spans.Add((previous, length, invert));
    }

    /// <summary>Prepends <paramref name="prefix"/>; the new characters take the first character's origin and offset.</summary>
    private static PreToken Prepend(PreToken piece, string prefix, bool trackOffsets)
    {
        int[]? map = null;
        if (trackOffsets)
        {
            map = new int[piece.Text.Length + prefix.Length + 1];
            for (int k = 0; k < prefix.Length; k++) map[k] = piece.Offset(0);
            for (int k = 0; k <= piece.Text.Length; k++) map[prefix.Length + k] = piece.Offset(k);
        }
        return new PreToken(prefix + piece.Text, piece.OriginChars > 0 ? piece.OriginChars + prefix.Length : 0, piece.Start, map);
    }

    private sealed class ByteLevel(bool addPrefixSpace, bool useRegex) : PreTokenizerStep
    {
        public override bool IsByteLevel => true;

        public bool AddPrefixSpace => addPrefixSpace;

        public bool UseRegex => useRegex;

        public override void Apply(List<PreToken> pieces, bool trackOffsets)
        {
            var result = new List<PreToken>(pieces.Count * 2);
            var matches = new List<(int, int)>();
            var spans = new List<(int, int, bool)>();
            foreach (var original in pieces)
            {
                var piece = original;
                if (addPrefixSpace && !piece.Text.StartsWith(' ')) piece = Prepend(piece, " ", trackOffsets);
                if (!useRegex)
                {
                    result.Add(piece);
                    continue;
                }
                matches.Clear();
                Gpt2Regex.Value.Collect(piece.Text, matches);
                Cover(matches, piece.Text.Length, spans, invert: false);
                SplitPiece(piece, spans, SplitBehavior.Isolated, result);
            }
            pieces.Clear();
            foreach (var piece in result) pieces.Add(ToBytes(piece, trackOffsets));
        }

        /// <summary>The piece's UTF-8 bytes, each spelled as its byte-level character.</summary>
        public static PreToken ToBytes(PreToken piece, bool trackOffsets)
        {
            string text = piece.Text;
            int byteCount = Encoding.UTF8.GetByteCount(text);
            var chars = new char[byteCount];
            int[]? map = trackOffsets ? new int[byteCount + 1] : null;
            int origin = 0, written = 0;
            Span<byte> utf8 = stackalloc byte[4];
            for (int i = 0; i < text.Length;)
            {
                var (value, length) = UnicodeClasses.ScalarAt(text, i);
                int n = new Rune(value).EncodeToUtf8(utf8);
                for (int b = 0; b < n; b++)
                {
                    if (map is not null) map[written] = piece.Offset(i);
                    chars[written++] = ByteLevelAlphabet.CharOf(utf8[b]);
                }
                if (i < piece.OriginChars) origin += n;
                i += length;
            }
            if (map is not null) map[written] = piece.Offset(text.Length);
            return new PreToken(new string(chars), origin, piece.Start, map);
        }
    }

    private sealed class Metaspace(char replacement, MetaspacePrepend prepend, bool split) : PreTokenizerStep
    {
        private readonly string _replacement = replacement.ToString();

        public override void Apply(List<PreToken> pieces, bool trackOffsets)
        {
            var result = new List<PreToken>(pieces.Count * 2);
            var spans = new List<(int, int, bool)>();
            foreach (var original in pieces)
            {
                var piece = original.Text.Contains(' ') ? original with { Text = original.Text.Replace(' ', replacement) } : original;
                bool add = prepend == MetaspacePrepend.Always || (prepend == MetaspacePrepend.First && piece.AtOrigin);
                if (add && !piece.Text.StartsWith(replacement)) piece = Prepend(piece, _replacement, trackOffsets);
                if (!split)
                {
                    result.Add(piece);
                    continue;
                }
                spans.Clear();
                string text = piece.Text;
                int previous = 0;
                for (int k = 0; k < text.Length; k++)
                {
                    if (text[k] != replacement) continue;
                    if (previous < k) spans.Add((previous, k, false));
                    spans.Add((k, k + 1, true));
                    previous = k + 1;
                }
                if (previous < text.Length || text.Length == 0) spans.Add((previous, text.Length, false));
                SplitPiece(piece, spans, SplitBehavior.MergedWithNext, result);
            }
            pieces.Clear();
            pieces.AddRange(result);
        }
    }

    private sealed class Split(TokenizerPattern pattern, SplitBehavior behavior, bool invert) : PreTokenizerStep
    {
        public TokenizerPattern Pattern => pattern;

        public SplitBehavior Behavior => behavior;

        public bool Invert => invert;

        public override void Apply(List<PreToken> pieces, bool trackOffsets)
        {
            var result = new List<PreToken>(pieces.Count * 4);
            var matches = new List<(int, int)>();
            var spans = new List<(int, int, bool)>();
            foreach (var piece in pieces)
            {
                matches.Clear();
                pattern.Collect(piece.Text, matches);
                Cover(matches, piece.Text.Length, spans, invert);
                SplitPiece(piece, spans, behavior, result);
            }
            pieces.Clear();
            pieces.AddRange(result);
        }
    }

    /// <summary>Cuts at every character a predicate accepts (each such character is one match).</summary>
    private sealed class CharacterSplit(Func<int, bool> isMatch, SplitBehavior behavior) : PreTokenizerStep
    {
        public override void Apply(List<PreToken> pieces, bool trackOffsets)
        {
            var result = new List<PreToken>(pieces.Count * 2);
            var spans = new List<(int, int, bool)>();
            foreach (var piece in pieces)
            {
                spans.Clear();
                string text = piece.Text;
                int previous = 0;
                for (int i = 0; i < text.Length;)
                {
                    var (value, length) = UnicodeClasses.ScalarAt(text, i);
                    if (isMatch(value))
                    {
                        if (previous < i) spans.Add((previous, i, false));
                        spans.Add((i, i + length, true));
                        previous = i + length;
                    }
                    i += length;
                }
                if (previous < text.Length) spans.Add((previous, text.Length, false));
                if (text.Length == 0) spans.Add((0, 0, false));
                SplitPiece(piece, spans, behavior, result);
            }
            pieces.Clear();
            pieces.AddRange(result);
        }
    }

    /// <summary>tokenizers' Whitespace: keeps the runs of <c>\w+</c> and of <c>[^\w\s]+</c> (the regex crate's Unicode classes), drops the rest.</summary>
    private sealed class Whitespace : PreTokenizerStep
    {
        public override void Apply(List<PreToken> pieces, bool trackOffsets)
        {
            var result = new List<PreToken>(pieces.Count * 2);
            foreach (var piece in pieces)
            {
                string text = piece.Text;
                int runStart = -1, runKind = 0;     // 1: word characters, 2: other non-space characters
                for (int i = 0; i <= text.Length;)
                {
                    int kind = 0, length = 1;
                    if (i < text.Length)
                    {
                        var (value, n) = UnicodeClasses.ScalarAt(text, i);
                        length = n;
                        kind = UnicodeClasses.IsWordCharacter(value) ? 1 : UnicodeClasses.IsWhiteSpace(value) ? 0 : 2;
                    }
                    if (kind != runKind)
                    {
                        if (runKind != 0) result.Add(piece.Slice(runStart, i));
                        runStart = i;
                        runKind = kind;
                    }
                    i += length;
                }
            }
            pieces.Clear();
            pieces.AddRange(result);
        }
    }
}

/// <summary>When the Metaspace pre-tokenizer adds the replacement character in front of a piece.</summary>
internal enum MetaspacePrepend { Always, First, Never }

/// <summary>GPT-2's reversible mapping of the 256 byte values onto printable characters (tokenizers' bytes_char).</summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] Chars = Build();
    private static readonly Dictionary<char, byte> Bytes = Enumerable.Range(0, 256).ToDictionary(b => Chars[b], b => (byte)b);

    public static char CharOf(byte value) => Chars[value];

    public static bool TryGetByte(char c, out byte value) => Bytes.TryGetValue(c, out value);

    private static char[] Build()
    {
        var map = new char[256];
        int shifted = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + shifted++);
        }
        return map;
    }
}
