using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Tokenization;

/// <summary>
/// A Hugging Face tokenizer.json as Hugging Face's Rust <c>tokenizers</c> library runs it: added
/// tokens found first (<see cref="AddedVocabulary"/>), then per piece the <c>normalizer</c>
/// (<see cref="NormalizerStep"/>), the <c>pre_tokenizer</c> (<see cref="PreTokenizerStep"/>) and the
/// <c>model</c> (<see cref="BpeModel"/> or <see cref="UnigramModel"/>); the <c>post_processor</c>
/// (<see cref="SpecialTokenTemplate"/>) adds special tokens when asked; decoding maps ids back to
/// token strings and runs the <c>decoder</c> (<see cref="DecoderStep"/>). A component the loader does
/// not know is refused with the file, the JSON path and the type.
/// </summary>
/// <remarks>
/// <para>As a Microsoft.ML.Tokenizers <see cref="Tokenizer"/>: <c>EncodeToIds(text)</c> encodes
/// without special tokens (transformers' <c>add_special_tokens=False</c>); <see cref="EncodeToIds(string, bool)"/>
/// takes the choice. <c>Decode(ids)</c> keeps special tokens (transformers' default);
/// <see cref="Decode(IEnumerable{int}, bool)"/> takes the choice. Offsets of encoded tokens are
/// ranges of the normalized text (the input after the normalizer, with the added tokens as written).</para>
/// <para><c>truncation</c> and <c>padding</c> in the file are not applied, as transformers switches
/// them off unless a call asks. Lone surrogates in the input are read as U+FFFD. Encoding and
/// decoding are thread-safe.</para>
/// </remarks>
internal sealed class HuggingFaceTokenizer : Tokenizer
{
    private readonly IReadOnlyList<NormalizerStep> _normalizer;
    private readonly IReadOnlyList<PreTokenizerStep> _preTokenizer;
    private readonly TokenizerModel _model;
    private readonly AddedVocabulary _added;
    private readonly IReadOnlyList<DecoderStep>? _decoder;
    private readonly TokenizerPattern? _byteLevelSplit;

    private HuggingFaceTokenizer(IReadOnlyList<NormalizerStep> normalizer, IReadOnlyList<PreTokenizerStep> preTokenizer, TokenizerModel model,
        AddedVocabulary added, IReadOnlyList<DecoderStep>? decoder, SpecialTokenTemplate? postProcessor, string kind)
    {
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _model = model;
        _added = added;
        _decoder = decoder;
        PostProcessor = postProcessor;
        Kind = kind;
        IdCount = Math.Max(model.IdLimit, added.MaxId + 1);
        if (model is BpeModel && PreTokenizerStep.IsByteLevelSplit(preTokenizer, out var pattern)) _byteLevelSplit = pattern;
    }

    /// <summary>A short description of the tokenizer's kind, such as "byte-level BPE".</summary>
    public string Kind { get; }

    /// <summary>One more than the largest id the tokenizer can produce or decode.</summary>
    public int IdCount { get; }

    /// <summary>The file's <c>post_processor</c> as a template, or null when it has none.</summary>
    public SpecialTokenTemplate? PostProcessor { get; }

    /// <summary>The added tokens (special and not).</summary>
    public AddedVocabulary AddedTokens => _added;

    /// <summary>The decoder steps, or null when the file has no decoder.</summary>
    public IReadOnlyList<DecoderStep>? Decoder => _decoder;

    /// <summary>Whether the pre-tokenizer maps text to GPT-2's byte-level characters.</summary>
    public bool IsByteLevel => _preTokenizer.Any(step => step.IsByteLevel) || _decoder?.OfType<DecoderStep.ByteLevel>().Any() == true;

    /// <summary>The token string of an id (added tokens first), or null when the id is unknown.</summary>
    public string? IdToToken(int id) => _added.TryGetToken(id, out var token) ? token.Content : _model.IdToToken(id);

    /// <summary>The id of a token string (added tokens first), or null.</summary>
    public int? TokenToId(string token)
    {
        foreach (var added in _added.Tokens)
            if (added.Content == token) return added.Id;
        return _model.TokenToId(token);
    }

    /// <summary>Whether <paramref name="id"/> is a special added token (decoding with skip_special_tokens drops it).</summary>
    public bool IsSpecial(int id) => IdToToken(id) is { } token && _added.IsSpecialContent(token);

    /// <summary>Loads a tokenizer.json.</summary>
    /// <exception cref="GptModelException">The file is not valid JSON, or a part of it is missing, malformed or of a kind not supported; the message names the file and the JSON path.</exception>
    public static HuggingFaceTokenizer FromFile(string path)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new GptModelException($"{path} is not valid JSON: {e.Message}", e);
        }
        using (document) return FromJson(new TokenizerJson(path), document.RootElement);
    }

    /// <summary>Builds the tokenizer from a parsed tokenizer.json.</summary>
    public static HuggingFaceTokenizer FromJson(TokenizerJson json, JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw json.Error($"the file must hold a JSON object, but holds {TokenizerJson.Describe(root)}.");
        if (json.OptionalString(root, "version", "") is { } version && version != "1.0")
            throw json.Error($"version is \"{version}\"; Hugging Face tokenizers reads version \"1.0\".");
        var modelElement = json.Required(root, "model", "");
        var normalizer = NormalizerStep.Read(json, root);
        var preTokenizer = PreTokenizerStep.Read(json, root);
        var decoder = DecoderStep.Read(json, root);
        // tokenizers reads a model without "type" by its fields; MLNetGpt asks for the type.
        string type = TokenizerJson.Optional(modelElement, "type") is null
            ? (TokenizerJson.Optional(modelElement, "merges") is not null ? "BPE" : json.RequiredString(modelElement, "type", "model"))
            : json.StepType(modelElement, "model", "model", ["BPE", "Unigram"]);
        TokenizerModel model = type == "BPE" ? TokenizerModels.ReadBpe(json, modelElement) : TokenizerModels.ReadUnigram(json, modelElement);
        var added = AddedVocabulary.Read(json, root, model.TokenToId, model.VocabularyCount, content =>
        {
            int origin = content.Length == 0 ? 0 : UnicodeClasses.ScalarAt(content, 0).Length;
            return NormalizerStep.Run(normalizer, content, ref origin);
        });
        var postProcessor = SpecialTokenTemplate.Read(json, root, Math.Max(model.IdLimit, added.MaxId + 1));
        bool byteLevel = preTokenizer.Any(step => step.IsByteLevel) || decoder?.OfType<DecoderStep.ByteLevel>().Any() == true;
        string kind = type == "Unigram" ? "Unigram" : byteLevel ? "byte-level BPE" : "SentencePiece-style BPE";
        return new HuggingFaceTokenizer(normalizer, preTokenizer, model, added, decoder, postProcessor, kind);
    }

    /// <summary>
    /// GPT-2's vocab.json + merges.txt as transformers' fast GPT-2 tokenizer builds them: byte-level
    /// BPE with GPT-2's pattern, no prefix space, and the vocabulary's <c>&lt;|...|&gt;</c> tokens as special tokens.
    /// </summary>
    public static HuggingFaceTokenizer FromVocabAndMerges(Dictionary<string, int> vocabulary, IReadOnlyList<(string Left, string Right)> merges, string where)
    {
        var json = new TokenizerJson(where);
        var model = TokenizerModels.BuildBpe(json, vocabulary, merges, unknown: null, fuseUnknown: false, byteFallback: false, ignoreMerges: false, prefix: null, suffix: null);
        var special = vocabulary.Where(kv => kv.Key.StartsWith("<|", StringComparison.Ordinal) && kv.Key.EndsWith("|>", StringComparison.Ordinal))
            .Select(kv => new AddedToken(kv.Key, kv.Value, Special: true, SingleWord: false, LeftStrip: false, RightStrip: false, Normalized: false));
        using var config = JsonDocument.Parse("""{"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},"decoder":{"type":"ByteLevel"}}""");
        return new HuggingFaceTokenizer([], PreTokenizerStep.Read(json, config.RootElement), model, AddedVocabulary.FromTokens(special),
            DecoderStep.Read(json, config.RootElement), SpecialTokenTemplate.None, "byte-level BPE");
    }

    /// <summary>Encodes <paramref name="text"/>; with <paramref name="addSpecialTokens"/> the post-processor adds its special tokens.</summary>
    public int[] EncodeToIds(string text, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        Encode(text, ids, null, null, considerNormalization: true, considerPreTokenization: true);
        return (PostProcessor ?? SpecialTokenTemplate.None).Apply(ids, addSpecialTokens);
    }

    /// <inheritdoc/>
    protected override EncodeResults<int> EncodeToIds(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        if (settings.MaxTokenCount != int.MaxValue) return base.EncodeToIds(text, textSpan, settings);
        var ids = new List<int>();
        string input = text ?? textSpan.ToString();
        Encode(input, ids, null, null, settings.ConsiderNormalization, settings.ConsiderPreTokenization);
        return new EncodeResults<int> { Tokens = ids, NormalizedText = null, CharsConsumed = input.Length };
    }

    /// <inheritdoc/>
    protected override EncodeResults<EncodedToken> EncodeToTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings)
    {
        string input = text ?? textSpan.ToString();
        var tokens = new List<EncodedToken>();
        var normalized = new StringBuilder(input.Length + 8);
        Encode(input, null, tokens, normalized, settings.ConsiderNormalization, settings.ConsiderPreTokenization);
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

    private void Encode(string input, List<int>? ids, List<EncodedToken>? tokens, StringBuilder? normalized, bool considerNormalization, bool considerPreTokenization)
    {
        string text = UnicodeClasses.WithoutLoneSurrogates(input);
        var raw = new List<(int Start, int End, int Id)>();
        _added.Split(text, normalizedTokens: false, raw);
        var inner = new List<(int Start, int End, int Id)>();
        var pieces = new List<PreToken>();
        var modelTokens = tokens is null ? null : new List<(int Id, int Start, int End)>();
        foreach (var (start, end, id) in raw)
        {
            if (id >= 0)
            {
                Emit(id, text, start, end, ids, tokens, normalized);
                continue;
            }
            string segment = start == 0 && end == text.Length ? text : text[start..end];
            int origin = start == 0 && segment.Length > 0 ? UnicodeClasses.ScalarAt(segment, 0).Length : 0;
            if (considerNormalization) segment = NormalizerStep.Run(_normalizer, segment, ref origin);
            if (segment.Length == 0) continue;
            int baseOffset = normalized?.Length ?? 0;
            normalized?.Append(segment);
            inner.Clear();
            _added.Split(segment, normalizedTokens: true, inner);
            foreach (var (s, e, innerId) in inner)
            {
                if (innerId >= 0)
                {
                    if (ids is not null) ids.Add(innerId);
                    else tokens!.Add(new EncodedToken(innerId, IdToToken(innerId) ?? "", new Range(baseOffset + s, baseOffset + e)));
                    continue;
                }
                if (ids is not null && considerPreTokenization && _byteLevelSplit is not null)
                {
                    EncodeByteLevelSplit(segment.AsSpan(s, e - s), ids);
                    continue;
                }
                pieces.Clear();
                var piece = new PreToken(s == 0 && e == segment.Length ? segment : segment[s..e], Math.Clamp(origin - s, 0, e - s), baseOffset + s);
                pieces.Add(piece);
                if (considerPreTokenization)
                    foreach (var step in _preTokenizer) step.Apply(pieces, trackOffsets: tokens is not null);
                foreach (var p in pieces)
                {
                    if (ids is not null)
                    {
                        _model.Encode(p.Text, ids);
                        continue;
                    }
                    modelTokens!.Clear();
                    _model.Encode(p.Text, modelTokens);
                    foreach (var (tokenId, ts, te) in modelTokens)
                        tokens!.Add(new EncodedToken(tokenId, _model.IdToToken(tokenId) ?? "", new Range(p.Offset(ts), p.Offset(te))));
                }
            }
        }
    }

    [ThreadStatic] private static List<(int Start, int End)>? t_matches;

    /// <summary>The common byte-level layout in one loop: every regex match and every gap between matches is a piece.</summary>
    private void EncodeByteLevelSplit(ReadOnlySpan<char> text, List<int> ids)
    {
        var matches = t_matches ??= [];
        matches.Clear();
        _byteLevelSplit!.Collect(text, matches);
        var model = (BpeModel)_model;
        int previous = 0;
        foreach (var (start, end) in matches)
        {
            if (start > previous) model.EncodeByteLevel(text[previous..start], ids);
            if (end > start) model.EncodeByteLevel(text[start..end], ids);
            previous = end;
        }
        if (previous < text.Length) model.EncodeByteLevel(text[previous..], ids);
    }

    private void Emit(int id, string text, int start, int end, List<int>? ids, List<EncodedToken>? tokens, StringBuilder? normalized)
    {
        if (ids is not null)
        {
            ids.Add(id);
            return;
        }
        int offset = normalized!.Length;
        normalized.Append(text, start, end - start);
        tokens!.Add(new EncodedToken(id, IdToToken(id) ?? "", new Range(offset, offset + end - start)));
    }

    /// <summary>Decodes ids as transformers' <c>decode(ids)</c> does by default: special tokens kept.</summary>
    public override string Decode(IEnumerable<int> ids) => Decode(ids, skipSpecialTokens: false);

    /// <summary>
    /// Decodes ids: each id becomes its token string (ids the tokenizer does not know are left out,
    /// as tokenizers does), special tokens are dropped when <paramref name="skipSpecialTokens"/> is
    /// set, and the decoder turns the strings into text (joined with spaces when there is no decoder).
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>();
        foreach (int id in ids)
        {
            if (IdToToken(id) is not { } token) continue;
            if (skipSpecialTokens && _added.IsSpecialContent(token)) continue;
            tokens.Add(token);
        }
        return DecoderStep.Run(_decoder, tokens);
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
}
