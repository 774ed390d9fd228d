using System.Text.Json;

namespace MLNetGpt.Tokenization;

/// <summary>A piece of text on its way to the BPE model; <see cref="AtStart"/>: it begins the original text.</summary>
internal readonly record struct PreToken(string Text, bool AtStart);

/// <summary>
/// One step of a tokenizer.json <c>pre_tokenizer</c> with tokenizers' semantics: <c>Metaspace</c>
/// (spaces become the replacement character, which is prepended per <c>prepend_scheme</c>: always,
/// only at the start of the text ("first"), or never; with <c>split</c> the text is cut before each
/// replacement character) and <c>Split</c> on a literal pattern. Empty pieces are dropped, as tokenizers does.
/// </summary>
internal abstract class PreTokenizerStep
{
    private static readonly string[] Supported = ["Sequence", "Metaspace", "Split"];
    private static readonly string[] Behaviors = ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"];

    public abstract void Apply(List<PreToken> pieces);

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
        if (!json.OptionalBool(step, "add_prefix_space", where, fallback: true)) prepend = MetaspacePrepend.Never;
        return (replacement, prepend, json.OptionalBool(step, "split", where, fallback: true));
    }

    private static void Add(TokenizerJson json, JsonElement step, string where, List<PreTokenizerStep> steps)
    {
        switch (json.StepType(step, where, "pre-tokenizer", Supported))
        {
            case "Sequence":
                var list = json.Required(step, "pretokenizers", where);
                if (list.ValueKind != JsonValueKind.Array) throw json.Error($"{where}.pretokenizers must be an array, but is {TokenizerJson.Describe(list)}.");
                int i = 0;
                foreach (var inner in list.EnumerateArray()) Add(json, inner, $"{where}.pretokenizers[{i++}]", steps);
                break;
            case "Metaspace":
                var (replacement, prepend, split) = ReadMetaspace(json, step, where);
                steps.Add(new Metaspace(replacement, prepend, split));
                break;
            default:
                string behavior = json.RequiredString(step, "behavior", where);
                if (!Behaviors.Contains(behavior))
                    throw json.Error($"{where}.behavior is \"{behavior}\"; expected one of {string.Join(", ", Behaviors)}.");
                if (json.OptionalBool(step, "invert", where, fallback: false))
                    throw json.Error($"{where}.invert is true; only a Split that cuts at its pattern (invert false) is supported.");
                steps.Add(new Split(json.LiteralPattern(step, where), behavior));
                break;
        }
    }

    private sealed class Metaspace(char replacement, MetaspacePrepend prepend, bool split) : PreTokenizerStep
    {
        public override void Apply(List<PreToken> pieces)
        {
            var result = new List<PreToken>(pieces.Count);
            foreach (var piece in pieces)
            {
                string text = piece.Text.Replace(' ', replacement);
                bool add = prepend == MetaspacePrepend.Always || (prepend == MetaspacePrepend.First && piece.AtStart);
                if (add && (text.Length == 0 || text[0] != replacement)) text = replacement + text;
                if (!split)
                {
                    result.Add(piece with { Text = text });
                    continue;
                }
                int start = 0;
                for (int i = 1; i <= text.Length; i++)
                {
                    if (i < text.Length && text[i] != replacement) continue;
                    result.Add(new PreToken(text[start..i], piece.AtStart && start == 0));
                    start = i;
                }
            }
            pieces.Clear();
            pieces.AddRange(result.Where(p => p.Text.Length > 0));
        }
    }

    private sealed class Split(string pattern, string behavior) : PreTokenizerStep
    {
        public override void Apply(List<PreToken> pieces)
        {
            var result = new List<PreToken>(pieces.Count);
            foreach (var piece in pieces)
            {
                var parts = new List<(string Text, bool Delimiter)>();
                string text = piece.Text;
                int position = 0;
                for (int found; pattern.Length > 0 && (found = text.IndexOf(pattern, position, StringComparison.Ordinal)) >= 0; position = found + pattern.Length)
                {
                    if (found > position) parts.Add((text[position..found], false));
                    parts.Add((pattern, true));
                }
                if (position < text.Length) parts.Add((text[position..], false));
                int offset = 0;
                foreach (string part in Combine(parts))
                {
                    result.Add(new PreToken(part, piece.AtStart && offset == 0));
                    offset += part.Length;
                }
            }
            pieces.Clear();
            pieces.AddRange(result.Where(p => p.Text.Length > 0));
        }

        private IEnumerable<string> Combine(List<(string Text, bool Delimiter)> parts)
        {
            switch (behavior)
            {
                case "Removed":
                    return parts.Where(p => !p.Delimiter).Select(p => p.Text);
                case "Isolated":
                    return parts.Select(p => p.Text);
                case "Contiguous":
                    return Group(parts, (previous, current) => previous.Delimiter && current.Delimiter);
                case "MergedWithPrevious":
                    // A delimiter closes the piece before it; a second delimiter in a row stands alone.
                    return Group(parts, (previous, current) => current.Delimiter && !previous.Delimiter);
                default:
                    // MergedWithNext: a delimiter opens the piece after it, unless that is a delimiter too.
                    return Group(parts, (previous, current) => previous.Delimiter && !current.Delimiter);
            }
        }

        // Joins each part to the group before it when `joins(previous part, part)` holds.
        private static IEnumerable<string> Group(List<(string Text, bool Delimiter)> parts, Func<(string Text, bool Delimiter), (string Text, bool Delimiter), bool> joins)
        {
            var groups = new List<string>();
            for (int i = 0; i < parts.Count; i++)
            {
                if (i > 0 && joins(parts[i - 1], parts[i])) groups[^1] += parts[i].Text;
                else groups.Add(parts[i].Text);
            }
            return groups;
        }
    }
}

/// <summary>When the Metaspace pre-tokenizer adds the replacement character in front of a piece.</summary>
internal enum MetaspacePrepend { Always, First, Never }
