using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Tokenization;

/// <summary>
/// A Hugging Face tokenizer.json with a BPE model that is not byte-level: the SentencePiece-style BPE
/// of Llama 2, Mistral, TinyLlama, Phi-3 and Gemma (a <c>Metaspace</c> pre-tokenizer or a
/// <c>Prepend</c>/<c>Replace</c> normalizer, <c>byte_fallback</c>, and a Replace/ByteFallback/Fuse/Strip
/// decoder). Encoding follows tokenizers: added tokens are matched in the text first, the normalizer
/// and pre-tokenizer run on the text between them, and each resulting piece goes through <see cref="BpeModel"/>.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers 3.0.0 has no type for this: <c>SentencePieceTokenizer.CreateFromTokenizerJson</c>
/// reads Unigram models only, <c>BpeTokenizer</c> has no byte fallback, and <c>LlamaTokenizer</c> needs the
/// SentencePiece protobuf (and scores its merges like SentencePiece, which cannot express the Metaspace
/// pre-tokenizer's "prefix only when missing" rule). The post-processor (a BOS template) is not applied
/// here: the engine adds BOS as tokenizer_config.json's <c>add_bos_token</c> asks. Encoding and decoding
/// are thread-safe.
/// </remarks>
internal sealed class SentencePieceBpeTokenizer : Tokenizer
{
    private readonly BpeModel _model;
    private readonly IReadOnlyList<NormalizerStep> _normalizer;
    private readonly IReadOnlyList<PreTokenizerStep> _preTokenizer;
    private readonly IReadOnlyList<DecoderStep>? _decoder;
    private readonly (string Content, int Id)[] _addedTokens;     // longest first, so the longest match wins
    private readonly string?[] _tokens;
    private readonly bool[] _special;

    private SentencePieceBpeTokenizer(BpeModel model, IReadOnlyList<NormalizerStep> normalizer, IReadOnlyList<PreTokenizerStep> preTokenizer,
        IReadOnlyList<DecoderStep>? decoder, List<(string Content, int Id, bool Special)> added, Dictionary<string, int> vocabulary)
    {
        _model = model;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _decoder = decoder;
        _addedTokens = added.Where(a => a.Content.Length > 0).OrderByDescending(a => a.Content.Length).Select(a => (a.Content, a.Id)).ToArray();
        int size = Math.Max(vocabulary.Count == 0 ? 0 : vocabulary.Values.Max() + 1, added.Count == 0 ? 0 : added.Max(a => a.Id) + 1);
        _tokens = new string?[size];
        _special = new bool[size];
        foreach (var (token, id) in vocabulary) _tokens[id] = token;
        foreach (var (content, id, special) in added)
        {
            _tokens[id] = content;
            _special[id] = special;
        }
    }

    /// <summary>The number of ids this tokenizer can produce or decode.</summary>
    public int VocabularySize => _tokens.Length;

    /// <summary>Builds the tokenizer from a parsed tokenizer.json whose <c>model.type</c> is BPE.</summary>
    /// <exception cref="GptModelException">A part of the file is missing, malformed or of a kind not supported; the message names the file and the JSON path.</exception>
    public static SentencePieceBpeTokenizer FromTokenizerJson(string path, JsonElement root)
    {
        var json = new TokenizerJson(path);
        var model = json.Required(root, "model", "(root)");
        var vocabulary = ReadVocabulary(json, model);
        var merges = ReadMerges(json, model, vocabulary);
        string? unknown = json.OptionalString(model, "unk_token", "model");
        int? unknownId = null;
        if (unknown is not null)
            unknownId = vocabulary.TryGetValue(unknown, out int id) ? id : throw json.Error($"model.unk_token is \"{unknown}\", which is not in model.vocab.");
        foreach (string affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (json.OptionalString(model, affix, "model") is { Length: > 0 } value)
                throw json.Error($"model.{affix} is \"{value}\"; a SentencePiece-style BPE has none (expected null).");
        if (TokenizerJson.Optional(model, "dropout") is { } dropout && !(dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() == 0))
            throw json.Error($"model.dropout is {TokenizerJson.Describe(dropout)}; BPE dropout makes encoding random (expected null or 0).");
        var bpe = new BpeModel(vocabulary, merges, unknownId,
            fuseUnknown: json.OptionalBool(model, "fuse_unk", "model", fallback: false),
            byteFallback: json.OptionalBool(model, "byte_fallback", "model", fallback: false),
            ignoreMerges: json.OptionalBool(model, "ignore_merges", "model", fallback: false));
        return new SentencePieceBpeTokenizer(bpe, NormalizerStep.Read(json, root), PreTokenizerStep.Read(json, root),
            DecoderStep.Read(json, root), ReadAddedTokens(json, root), vocabulary);
    }

    /// <inheritdoc/>
    protected override EncodeResults<EncodedToken> EncodeToTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        string input = text ?? textSpan.ToString();
        var tokens = new List<EncodedToken>();
        var normalized = new StringBuilder(input.Length + 8);
        var ids = new List<(int Id, int Start, int Length)>();
        foreach (var (segment, addedId, atStart) in SplitOnAddedTokens(input))
        {
            if (tokens.Count >= settings.MaxTokenCount) break;
            if (addedId >= 0)
            {
                tokens.Add(new EncodedToken(addedId, segment, new Range(normalized.Length, normalized.Length + segment.Length)));
                normalized.Append(segment);
                continue;
            }
            string current = segment;
            if (settings.ConsiderNormalization)
                foreach (var step in _normalizer) current = step.Apply(current);
            var pieces = new List<PreToken> { new(current, atStart) };
            if (settings.ConsiderPreTokenization)
                foreach (var step in _preTokenizer) step.Apply(pieces);
            foreach (var piece in pieces)
            {
                int offset = normalized.Length;
                normalized.Append(piece.Text);
                ids.Clear();
                _model.Encode(piece.Text, ids);
                foreach (var (id, start, length) in ids)
                    tokens.Add(new EncodedToken(id, _tokens[id] ?? "", new Range(offset + start, offset + start + length)));
            }
        }
        string normalizedText = normalized.ToString();
        bool truncated = tokens.Count > settings.MaxTokenCount;
        if (truncated) tokens.RemoveRange(settings.MaxTokenCount, tokens.Count - settings.MaxTokenCount);
        return new EncodeResults<EncodedToken>
        {
            Tokens = tokens,
            NormalizedText = normalizedText == input ? null : normalizedText,
            CharsConsumed = truncated ? (tokens.Count == 0 ? 0 : tokens[^1].Offset.End.Value) : normalizedText.Length,
        };
    }

    /// <summary>Decodes ids to text without the special tokens (BOS, EOS, unknown), as SentencePiece does.</summary>
    public override string Decode(IEnumerable<int> ids) => Decode(ids, considerSpecialTokens: false);

    /// <summary>Decodes ids to text; <paramref name="considerSpecialTokens"/> keeps the special tokens' text.</summary>
    /// <remarks>Ids beyond the vocabulary (models often pad their output layer) decode to nothing, as in tokenizers.</remarks>
    public string Decode(IEnumerable<int> ids, bool considerSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>();
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_tokens.Length || _tokens[id] is not { } token) continue;
            if (_special[id] && !considerSpecialTokens) continue;
            tokens.Add(token);
        }
        if (_decoder is null) return string.Join(' ', tokens);
        foreach (var step in _decoder) tokens = step.Apply(tokens);
        return string.Concat(tokens);
    }

    /// <inheritdoc/>
    public override OperationStatus Decode(IEnumerable<int> ids, Span<char> destination, out int idsConsumed, out int charsWritten)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var list = ids as IReadOnlyList<int> ?? ids.ToList();
        string text = Decode(list);
        idsConsumed = list.Count;
        if (text.Length > destination.Length)
        {
            // Decoders can rewrite earlier text (a byte run completing a character), so the prefix that
            // fits is found by decoding growing prefixes rather than by cutting the full text.
            idsConsumed = 0;
            text = "";
            for (int count = 1; count <= list.Count; count++)
            {
                string prefix = Decode(list.Take(count));
                if (prefix.Length > destination.Length) break;
                (idsConsumed, text) = (count, prefix);
            }
        }
        text.AsSpan().CopyTo(destination);
        charsWritten = text.Length;
        return idsConsumed == list.Count ? OperationStatus.Done : OperationStatus.DestinationTooSmall;
    }

    private IEnumerable<(string Text, int AddedId, bool AtStart)> SplitOnAddedTokens(string text)
    {
        int segmentStart = 0;
        for (int i = 0; i < text.Length;)
        {
            int matched = -1;
            foreach (var (content, id) in _addedTokens)
            {
                if (string.CompareOrdinal(text, i, content, 0, content.Length) == 0)
                {
                    matched = id;
                    if (i > segmentStart) yield return (text[segmentStart..i], -1, segmentStart == 0);
                    yield return (content, id, i == 0);
                    i += content.Length;
                    segmentStart = i;
                    break;
                }
            }
            if (matched < 0) i++;
        }
        if (segmentStart < text.Length) yield return (text[segmentStart..], -1, segmentStart == 0);
    }

    private static Dictionary<string, int> ReadVocabulary(TokenizerJson json, JsonElement model)
    {
        var element = json.Required(model, "vocab", "model");
        if (element.ValueKind != JsonValueKind.Object)
            throw json.Error($"model.vocab must be an object of token -> id, but is {TokenizerJson.Describe(element)}.");
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw json.Error($"model.vocab[\"{entry.Name}\"] must be a non-negative integer id, but is {TokenizerJson.Describe(entry.Value)}.");
            vocabulary[entry.Name] = id;
        }
        return vocabulary;
    }

    private static List<(int Left, int Right, int Merged)> ReadMerges(TokenizerJson json, JsonElement model, Dictionary<string, int> vocabulary)
    {
        var merges = new List<(int, int, int)>();
        if (TokenizerJson.Optional(model, "merges") is not { } element) return merges;
        if (element.ValueKind != JsonValueKind.Array)
            throw json.Error($"model.merges must be an array, but is {TokenizerJson.Describe(element)}.");
        int index = 0;
        foreach (var merge in element.EnumerateArray())
        {
            string where = $"model.merges[{index++}]";
            (string left, string right) = merge.ValueKind switch
            {
                JsonValueKind.String when merge.GetString()!.Split(' ') is [var l, var r] => (l, r),
                JsonValueKind.Array when merge.GetArrayLength() == 2 => (json.String(merge[0], where + "[0]"), json.String(merge[1], where + "[1]")),
                _ => throw json.Error($"{where} must be \"left right\" or [\"left\", \"right\"], but is {TokenizerJson.Describe(merge)}."),
            };
            int Id(string token) => vocabulary.TryGetValue(token, out int id) ? id
                : throw json.Error($"{where} (\"{left}\" + \"{right}\") names \"{token}\", which is not in model.vocab.");
            merges.Add((Id(left), Id(right), Id(left + right)));
        }
        return merges;
    }

    private static List<(string Content, int Id, bool Special)> ReadAddedTokens(TokenizerJson json, JsonElement root)
    {
        var added = new List<(string, int, bool)>();
        if (TokenizerJson.Optional(root, "added_tokens") is not { } element) return added;
        if (element.ValueKind != JsonValueKind.Array)
            throw json.Error($"added_tokens must be an array, but is {TokenizerJson.Describe(element)}.");
        int index = 0;
        foreach (var token in element.EnumerateArray())
        {
            string where = $"added_tokens[{index++}]";
            var idElement = json.Required(token, "id", where);
            if (idElement.ValueKind != JsonValueKind.Number || !idElement.TryGetInt32(out int id) || id < 0)
                throw json.Error($"{where}.id must be a non-negative integer, but is {TokenizerJson.Describe(idElement)}.");
            added.Add((json.RequiredString(token, "content", where), id, json.OptionalBool(token, "special", where, fallback: false)));
        }
        return added;
    }
}
