using System.Text.Json;

namespace MLNetGpt.Tokenization;

/// <summary>
/// What encoding with special tokens adds around the text's ids: a template of special-token ids
/// and the text (Hugging Face's <c>TemplateProcessing</c> single template; <c>RobertaProcessing</c>
/// and <c>BertProcessing</c> are <c>cls $A sep</c>; <c>ByteLevel</c> adds nothing; a <c>Sequence</c>
/// nests them in order). Without special tokens only the text's pieces remain.
/// </summary>
internal sealed class SpecialTokenTemplate
{
    public static readonly IReadOnlyList<string> Supported = ["TemplateProcessing", "ByteLevel", "RobertaProcessing", "BertProcessing", "Sequence"];

    /// <summary>A template that adds nothing.</summary>
    public static readonly SpecialTokenTemplate None = new([new Piece(null)], "nothing");

    private readonly IReadOnlyList<Piece> _pieces;

    /// <summary>One piece: the text (Ids null) or special-token ids.</summary>
    public readonly record struct Piece(int[]? Ids);

    public SpecialTokenTemplate(IReadOnlyList<Piece> pieces, string source)
    {
        _pieces = pieces;
        Source = source;
    }

    /// <summary>Where the template came from, for messages and <c>info</c>.</summary>
    public string Source { get; }

    /// <summary>The special-token ids before the text.</summary>
    public IReadOnlyList<int> Prefix => _pieces.TakeWhile(p => p.Ids is not null).SelectMany(p => p.Ids!).ToArray();

    /// <summary>The special-token ids after the text.</summary>
    public IReadOnlyList<int> Suffix => _pieces.Reverse().TakeWhile(p => p.Ids is not null).Reverse().SelectMany(p => p.Ids!).ToArray();

    /// <summary>Whether the template adds any token.</summary>
    public bool AddsTokens => _pieces.Any(p => p.Ids is { Length: > 0 });

    /// <summary>A template of one optional token before and one after the text (transformers' add_bos_token / add_eos_token).</summary>
    public static SpecialTokenTemplate Around(int? before, int? after, string source)
    {
        var pieces = new List<Piece>();
        if (before is int b) pieces.Add(new Piece([b]));
        pieces.Add(new Piece(null));
        if (after is int a) pieces.Add(new Piece([a]));
        return new SpecialTokenTemplate(pieces, source);
    }

    /// <summary>The text's ids with the template applied; without special tokens, the text pieces only.</summary>
    public int[] Apply(IReadOnlyList<int> text, bool addSpecialTokens)
    {
        var result = new List<int>(text.Count + 4);
        foreach (var piece in _pieces)
        {
            if (piece.Ids is null) result.AddRange(text);
            else if (addSpecialTokens) result.AddRange(piece.Ids);
        }
        return result.ToArray();
    }

    /// <summary>Reads <c>post_processor</c>; null when there is none. Every id it adds must be below <paramref name="idLimit"/>.</summary>
    public static SpecialTokenTemplate? Read(TokenizerJson json, JsonElement root, int idLimit)
    {
        if (TokenizerJson.Optional(root, "post_processor") is not { } processor) return null;
        var pieces = Read(json, processor, "post_processor", idLimit);
        // tokenizers would repeat the text as often as $A appears; no model's file does that, and saved stages keep a prefix and a suffix.
        if (pieces.Count(p => p.Ids is null) != 1)
            throw json.Error($"post_processor adds the text {pieces.Count(p => p.Ids is null)} times; a single template must hold $A exactly once.");
        return new SpecialTokenTemplate(pieces, "tokenizer.json post_processor");
    }

    private static List<Piece> Read(TokenizerJson json, JsonElement step, string where, int idLimit)
    {
        switch (json.StepType(step, where, "post-processor", Supported))
        {
            case "ByteLevel":
                return [new Piece(null)];
            case "RobertaProcessing" or "BertProcessing":
                return [new Piece([Pair(json, step, "cls", where, idLimit)]), new Piece(null), new Piece([Pair(json, step, "sep", where, idLimit)])];
            case "Sequence":
                {
                    // Each processor wraps what the ones before it made.
                    List<Piece> composed = [new Piece(null)];
                    int i = 0;
                    foreach (var inner in json.Array(step, "processors", where))
                    {
                        var outer = Read(json, inner, $"{where}.processors[{i++}]", idLimit);
                        composed = outer.SelectMany(p => p.Ids is null ? composed : [p]).ToList();
                    }
                    return composed;
                }
            default:
                return Template(json, step, where, idLimit);
        }
    }

    private static int Pair(TokenizerJson json, JsonElement step, string key, string where, int idLimit)
    {
        var pair = json.Required(step, key, where);
        if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2)
            throw json.Error($"{where}.{key} must be [token, id], but is {TokenizerJson.Describe(pair)}.");
        string token = json.String(pair[0], $"{where}.{key}[0]");
        return CheckId(json, pair[1], $"{where}.{key}[1]", token, idLimit);
    }

    private static int CheckId(TokenizerJson json, JsonElement value, string where, string token, int idLimit)
    {
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out long id) || id < 0 || id >= idLimit)
            throw json.Error($"{where} gives \"{token}\" the id {TokenizerJson.Describe(value)}, outside the tokenizer's ids 0..{idLimit - 1}.");
        return (int)id;
    }

    private static List<Piece> Template(TokenizerJson json, JsonElement step, string where, int idLimit)
    {
        var special = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (TokenizerJson.Optional(step, "special_tokens") is { } tokens)
        {
            if (tokens.ValueKind != JsonValueKind.Object)
                throw json.Error($"{where}.special_tokens must be an object, but is {TokenizerJson.Describe(tokens)}.");
            foreach (var entry in tokens.EnumerateObject())
            {
                string at = $"{where}.special_tokens[\"{entry.Name}\"]";
                var ids = new List<int>();
                int k = 0;
                foreach (var id in json.Array(entry.Value, "ids", at)) ids.Add(CheckId(json, id, $"{at}.ids[{k++}]", entry.Name, idLimit));
                special[json.RequiredString(entry.Value, "id", at)] = ids.ToArray();
            }
        }
        var pieces = new List<Piece>();
        int i = 0;
        foreach (var piece in json.Array(step, "single", where))
        {
            string at = $"{where}.single[{i++}]";
            var (isSequence, name) = ReadPiece(json, piece, at);
            if (isSequence)
            {
                if (name != "A") throw json.Error($"{at} names the sequence ${name}; the single template can only hold $A.");
                pieces.Add(new Piece(null));
            }
            else
            {
                pieces.Add(new Piece(special.TryGetValue(name, out var ids) ? ids
                    : throw json.Error($"{at} names the special token \"{name}\", which {where}.special_tokens does not define.")));
            }
        }
        // The pair template is read for its errors only: MLNetGpt encodes single texts.
        int p = 0;
        if (TokenizerJson.Optional(step, "pair") is { ValueKind: JsonValueKind.Array } pair)
            foreach (var piece in pair.EnumerateArray()) ReadPiece(json, piece, $"{where}.pair[{p++}]");
        return pieces;
    }

    /// <summary>A template piece: <c>{"Sequence": {"id": "A"}}</c> or <c>{"SpecialToken": {"id": "..."}}</c> (tokenizers reads no other form from a file).</summary>
    private static (bool IsSequence, string Name) ReadPiece(TokenizerJson json, JsonElement piece, string where)
    {
        if (TokenizerJson.Optional(piece, "Sequence") is { } sequence)
        {
            string id = json.RequiredString(sequence, "id", $"{where}.Sequence");
            return id is "A" or "B" ? (true, id) : throw json.Error($"{where}.Sequence.id is \"{id}\"; expected \"A\" or \"B\".");
        }
        if (TokenizerJson.Optional(piece, "SpecialToken") is { } token) return (false, json.RequiredString(token, "id", $"{where}.SpecialToken"));
        throw json.Error($"{where} must be {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}, but is {TokenizerJson.Describe(piece)}.");
    }
}
