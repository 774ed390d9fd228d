using System.Text.Json;

namespace MLNetGpt.Tokenization;

/// <summary>
/// Reads tokenizer.json's <c>model</c>: BPE (vocab, merges as "a b" strings or ["a", "b"] pairs,
/// byte_fallback, ignore_merges, continuing_subword_prefix, end_of_word_suffix, unk_token,
/// fuse_unk) and Unigram (vocab of [piece, score], unk_id, byte_fallback). Ids are checked: a
/// vocabulary's ids must be distinct non-negative integers below twice its size, and the messages name the token.
/// </summary>
internal static class TokenizerModels
{
    public static BpeModel ReadBpe(TokenizerJson json, JsonElement model)
    {
        var vocabulary = ReadVocabulary(json, model);
        var merges = new List<(string, string)>();
        if (TokenizerJson.Optional(model, "merges") is { } element)
        {
            if (element.ValueKind != JsonValueKind.Array)
                throw json.Error($"model.merges must be an array, but is {TokenizerJson.Describe(element)}.");
            int index = 0;
            foreach (var merge in element.EnumerateArray())
            {
                string where = $"model.merges[{index++}]";
                if (merge.ValueKind == JsonValueKind.String && merge.GetString()!.StartsWith("#version", StringComparison.Ordinal)) continue;
                merges.Add(merge.ValueKind switch
                {
                    JsonValueKind.String when merge.GetString()!.Split(' ') is [var l, var r] => (l, r),
                    JsonValueKind.Array when merge.GetArrayLength() == 2 => (json.String(merge[0], where + "[0]"), json.String(merge[1], where + "[1]")),
                    _ => throw json.Error($"{where} must be \"left right\" or [\"left\", \"right\"], but is {TokenizerJson.Describe(merge)}."),
                });
            }
        }
        if (TokenizerJson.Optional(model, "dropout") is { } dropout && !(dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() == 0))
            throw json.Error($"model.dropout is {TokenizerJson.Describe(dropout)}; BPE dropout makes encoding random (expected null or 0).");
        return BuildBpe(json, vocabulary, merges,
            json.OptionalString(model, "unk_token", "model"),
            json.OptionalBool(model, "fuse_unk", "model", fallback: false),
            json.OptionalBool(model, "byte_fallback", "model", fallback: false),
            json.OptionalBool(model, "ignore_merges", "model", fallback: false),
            json.OptionalString(model, "continuing_subword_prefix", "model"),
            json.OptionalString(model, "end_of_word_suffix", "model"));
    }

    public static BpeModel BuildBpe(TokenizerJson json, Dictionary<string, int> vocabulary, IReadOnlyList<(string Left, string Right)> merges, string? unknown,
        bool fuseUnknown, bool byteFallback, bool ignoreMerges, string? prefix, string? suffix)
    {
        int? unknownId = null;
        if (unknown is not null)
            unknownId = vocabulary.TryGetValue(unknown, out int id) ? id : throw json.Error($"model.unk_token is \"{unknown}\", which is not in model.vocab.");
        int prefixLength = prefix?.Length ?? 0;
        var ranked = new List<(int, int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            string where = $"model.merges[{rank}]";
            if (right.Length < prefixLength)
                throw json.Error($"{where} (\"{left}\" + \"{right}\"): \"{right}\" is shorter than the continuing_subword_prefix \"{prefix}\".");
            // tokenizers names the merged token left + right without the right side's prefix.
            string merged = left + right[prefixLength..];
            int Id(string token) => vocabulary.TryGetValue(token, out int id) ? id
                : throw json.Error($"{where} (\"{left}\" + \"{right}\") names \"{token}\", which is not in model.vocab.");
            ranked.Add((Id(left), Id(right), Id(merged)));
        }
        return new BpeModel(vocabulary, IdLimit(vocabulary), ranked, unknownId, fuseUnknown, byteFallback, ignoreMerges, prefix, suffix);
    }

    public static UnigramModel ReadUnigram(TokenizerJson json, JsonElement model)
    {
        var pieces = new List<(string, double)>();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        int index = 0;
        foreach (var entry in json.Array(model, "vocab", "model"))
        {
            string where = $"model.vocab[{index}]";
            if (entry.ValueKind != JsonValueKind.Array || entry.GetArrayLength() != 2)
                throw json.Error($"{where} must be [piece, score], but is {TokenizerJson.Describe(entry)}.");
            string piece = json.String(entry[0], where + "[0]");
            double score = json.Number(entry[1], where + "[1]");
            if (ids.TryGetValue(piece, out int first))
                throw json.Error($"{where} repeats the piece \"{piece}\" of model.vocab[{first}]; a piece has one id.");
            ids[piece] = index;
            pieces.Add((piece, score));
            index++;
        }
        int? unknownId = null;
        if (TokenizerJson.Optional(model, "unk_id") is { } unk)
        {
            int id = json.Id(unk, "model.unk_id");
            unknownId = id < pieces.Count ? id : throw json.Error($"model.unk_id is {id}, outside model.vocab's ids 0..{pieces.Count - 1}.");
        }
        return new UnigramModel(pieces.ToArray(), ids, unknownId, json.OptionalBool(model, "byte_fallback", "model", fallback: false));
    }

    /// <summary>model.vocab of a BPE: token to id, ids distinct and from 0 to its size - 1.</summary>
    public static Dictionary<string, int> ReadVocabulary(TokenizerJson json, JsonElement model)
    {
        var element = json.Required(model, "vocab", "model");
        if (element.ValueKind != JsonValueKind.Object)
            throw json.Error($"model.vocab must be an object of token -> id, but is {TokenizerJson.Describe(element)}.");
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt64(out long id))
                throw json.Error($"model.vocab[\"{entry.Name}\"] must be an integer id, but is {TokenizerJson.Describe(entry.Value)}.");
            if (id < 0) throw json.Error($"model.vocab[\"{entry.Name}\"] has the negative id {id}.");
            if (!vocabulary.TryAdd(entry.Name, id > int.MaxValue ? int.MaxValue : (int)id))
                throw json.Error($"model.vocab lists \"{entry.Name}\" twice.");
        }
        CheckIds(json, vocabulary, "model.vocab");
        return vocabulary;
    }

    /// <summary>
    /// Refuses ids two tokens share and ids far outside the vocabulary, naming the tokens. Ids may
    /// leave gaps (tiktoken-derived files skip some), but may not reach twice the vocabulary's size:
    /// tables indexed by id stay proportionate to the file.
    /// </summary>
    public static void CheckIds(TokenizerJson json, Dictionary<string, int> vocabulary, string where)
    {
        long limit = 2L * vocabulary.Count + 1024;
        var owner = new Dictionary<int, string>(vocabulary.Count);
        foreach (var (token, id) in vocabulary)
        {
            string at = where.Length == 0 ? $"[\"{token}\"]" : $"{where}[\"{token}\"]";
            if (id >= limit)
                throw json.Error($"{at} has the id {(id == int.MaxValue ? "2^31 or more" : id.ToString())}, outside the vocabulary: " +
                    $"{vocabulary.Count} tokens may use ids up to {limit - 1}.");
            if (!owner.TryAdd(id, token))
                throw json.Error($"{at} has the id {id}, which \"{owner[id]}\" has too.");
        }
    }

    /// <summary>One more than the largest id.</summary>
    public static int IdLimit(Dictionary<string, int> vocabulary) => vocabulary.Count == 0 ? 0 : vocabulary.Values.Max() + 1;
}
