using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetGpt.Models;

/// <summary>
/// The input and output names and the cache shape of a decoder graph, read from the session's
/// metadata (not hard-coded), checked against the folder's configuration.
/// </summary>
internal sealed partial class DecoderGraph
{
    public required string InputIds { get; init; }
    public required string AttentionMask { get; init; }
    public string? PositionIds { get; init; }
    public string? UseCacheBranch { get; init; }

    /// <summary>
    /// The optional <c>num_logits_to_keep</c> input (int64 scalar, 0 = all positions) of the session
    /// with past inputs, and whether the pair layout's prefill session has it too.
    /// </summary>
    public string? LogitsToKeep { get; init; }
    public bool PrefillHasLogitsToKeep { get; init; }
    public required string[] PastNames { get; init; }      // key0, value0, key1, value1, ...
    public required string Logits { get; init; }
    public required string[] PresentNames { get; init; }   // key0, value0, ...
    public required int LayerCount { get; init; }
    public required int KeyValueHeadCount { get; init; }
    public required int HeadSize { get; init; }
    public required int VocabularySize { get; init; }
    public required TensorElementType CacheType { get; init; }
    public required TensorElementType LogitsType { get; init; }

    [GeneratedRegex(@"^past(?:_key_values)?[._](\d+)[._](key|value)$")]
    private static partial Regex PastPattern();

    [GeneratedRegex(@"^present(?:_key_values)?[._](\d+)[._](key|value)$")]
    private static partial Regex PresentPattern();

    /// <summary>
    /// Reads the graph of <paramref name="decode"/> (the session that takes past inputs) and, for the
    /// pair layout, checks <paramref name="prefill"/>, which has none.
    /// </summary>
    public static DecoderGraph Read(ModelFolder folder, InferenceSession decode, string decodeFile, InferenceSession? prefill, Action<string> warn)
    {
        var inputs = decode.InputMetadata;
        var outputs = decode.OutputMetadata;
        string Describe(IEnumerable<string> names) => string.Join(", ", names);
        string file = decodeFile;

        string[] pastNames, presentNames;
        var n = folder.Names;
        if (n is not null)
        {
            int layers = folder.LayerCount ?? CountLayers(inputs.Keys, PastPattern());
            pastNames = Enumerable.Range(0, layers).SelectMany(i => new[] { GraphNames.Format(n.PastKeyPattern, i), GraphNames.Format(n.PastValuePattern, i) }).ToArray();
            presentNames = Enumerable.Range(0, layers).SelectMany(i => new[] { GraphNames.Format(n.PresentKeyPattern, i), GraphNames.Format(n.PresentValuePattern, i) }).ToArray();
        }
        else
        {
            pastNames = CacheNames(inputs.Keys, PastPattern(), file, "input", "past_key_values.N.key/value");
            presentNames = CacheNames(outputs.Keys, PresentPattern(), file, "output", "present.N.key/value");
        }

        string Require(IReadOnlyDictionary<string, NodeMetadata> map, string name, string kind) =>
            map.ContainsKey(name) ? name
            : throw new GptModelException($"{file} has no {kind} '{name}' (its {kind}s: {Describe(map.Keys)}).");

        string inputIds = Require(inputs, n?.InputIds ?? "input_ids", "input");
        string attentionMask = Require(inputs, n?.AttentionMask ?? "attention_mask", "input");
        string? positionIds = inputs.ContainsKey(n?.PositionIds ?? "position_ids") ? n?.PositionIds ?? "position_ids" : null;
        string? useCacheBranch = inputs.ContainsKey("use_cache_branch") ? "use_cache_branch" : null;
        string? logitsToKeep = FindLogitsToKeep(decode);
        string logits = Require(outputs, n?.Logits ?? "logits", "output");
        foreach (var name in pastNames) Require(inputs, name, "input");
        foreach (var name in presentNames) Require(outputs, name, "output");
        if (pastNames.Length == 0)
            throw new GptModelException($"{file} has no key/value cache inputs (past_key_values.N.key/value); " +
                "export the model with its cache (Optimum task text-generation-with-past).");

        var known = new HashSet<string>(pastNames) { inputIds, attentionMask };
        if (positionIds is not null) known.Add(positionIds);
        if (useCacheBranch is not null) known.Add(useCacheBranch);
        if (logitsToKeep is not null) known.Add(logitsToKeep);
        var unknown = inputs.Keys.Where(k => !known.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw new GptModelException($"{file} has input(s) this library cannot feed: {Describe(unknown)} " +
                "(supported: input_ids, attention_mask, position_ids, use_cache_branch, past key/value).");

        int layerCount = pastNames.Length / 2;
        // Where the graph fixes a shape it wins over the configuration; a contradiction is worth a warning.
        void Contradiction(ShapeKey key, int configured, int actual, string what) =>
            warn($"{folder.Source(key)} says {configured}, but {file} has {actual} {what}; using {actual}.");
        if (folder.LayerCount is int configured && configured != layerCount)
            Contradiction(ShapeKey.Layers, configured, layerCount, "layers (pairs of cache inputs)");

        var past = inputs[pastNames[0]];
        if (past.Dimensions.Length != 4)
            throw new GptModelException($"{file}: cache input '{pastNames[0]}' has {past.Dimensions.Length} dimensions; expected 4 [batch, heads, sequence, head size].");
        int kvHeads = past.Dimensions[1] > 0 ? past.Dimensions[1]
            : folder.KeyValueHeadCount ?? throw new GptModelException($"{file}: the number of key/value heads is not fixed in the graph and the configuration does not give num_key_value_heads or n_head.");
        int headSize = past.Dimensions[3] > 0 ? past.Dimensions[3]
            : folder.HeadSize ?? throw new GptModelException($"{file}: the head size is not fixed in the graph and the configuration does not give head_dim, or n_embd and n_head.");
        if (past.Dimensions[1] > 0 && folder.KeyValueHeadCount is int configuredKv && configuredKv != kvHeads)
            Contradiction(ShapeKey.KeyValueHeads, configuredKv, kvHeads, "key/value heads in its cache inputs");
        if (past.Dimensions[3] > 0 && folder.HeadSize is int configuredSize && configuredSize != headSize)
            Contradiction(ShapeKey.HeadSize, configuredSize, headSize, "as the head size of its cache inputs");
        if (folder.HeadCount is int heads && (heads < kvHeads || heads % kvHeads != 0))
            throw new GptModelException($"{folder.Source(ShapeKey.Heads)} says {heads} attention heads, which is not a multiple of the {kvHeads} key/value heads of {file}'s cache inputs.");
        var cacheType = past.ElementDataType;
        if (cacheType is not (TensorElementType.Float or TensorElementType.Float16))
            throw new GptModelException($"{file}: cache input '{pastNames[0]}' holds {cacheType}; only float32 and float16 caches are supported.");

        var logitsMeta = outputs[logits];
        int vocabulary = logitsMeta.Dimensions.Length == 3 && logitsMeta.Dimensions[2] > 0 ? logitsMeta.Dimensions[2]
            : folder.VocabularySize ?? throw new GptModelException($"{file}: the vocabulary size is not fixed in the graph and the configuration has no vocab_size.");
        if (logitsMeta.Dimensions.Length == 3 && logitsMeta.Dimensions[2] > 0 && folder.VocabularySize is int configuredVocabulary && configuredVocabulary != vocabulary)
            Contradiction(ShapeKey.Vocabulary, configuredVocabulary, vocabulary, "logits per position");
        if (logitsMeta.ElementDataType is not (TensorElementType.Float or TensorElementType.Float16))
            throw new GptModelException($"{file}: output '{logits}' holds {logitsMeta.ElementDataType}; only float32 and float16 logits are supported.");

        if (prefill is not null)
        {
            foreach (var name in new[] { inputIds, attentionMask })
                if (!prefill.InputMetadata.ContainsKey(name))
                    throw new GptModelException($"{folder.MainFile} has no input '{name}' (its inputs: {Describe(prefill.InputMetadata.Keys)}).");
            foreach (var name in presentNames.Append(logits))
                if (!prefill.OutputMetadata.ContainsKey(name))
                    throw new GptModelException($"{folder.MainFile} has no output '{name}' (its outputs: {Describe(prefill.OutputMetadata.Keys)}).");
        }

        return new DecoderGraph
        {
            InputIds = inputIds,
            AttentionMask = attentionMask,
            PositionIds = positionIds,
            UseCacheBranch = useCacheBranch,
            LogitsToKeep = logitsToKeep,
            PrefillHasLogitsToKeep = prefill is null ? logitsToKeep is not null : FindLogitsToKeep(prefill) == logitsToKeep && logitsToKeep is not null,
            PastNames = pastNames,
            PresentNames = presentNames,
            Logits = logits,
            LayerCount = layerCount,
            KeyValueHeadCount = kvHeads,
            HeadSize = headSize,
            VocabularySize = vocabulary,
            CacheType = cacheType,
            LogitsType = logitsMeta.ElementDataType,
        };
    }

    /// <summary>Hugging Face's <c>num_logits_to_keep</c> (or <c>logits_to_keep</c>): a graph input, often backed by a default initializer.</summary>
    private static string? FindLogitsToKeep(InferenceSession session)
    {
        foreach (var name in new[] { "num_logits_to_keep", "logits_to_keep" })
        {
            if (session.InputMetadata.TryGetValue(name, out var input) && input.ElementDataType == TensorElementType.Int64) return name;
            if (session.OverridableInitializerMetadata.TryGetValue(name, out var initializer) && initializer.ElementDataType == TensorElementType.Int64) return name;
        }
        return null;
    }

    private static int CountLayers(IEnumerable<string> names, Regex pattern) =>
        names.Select(name => pattern.Match(name)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(-1).Max() + 1;

    private static string[] CacheNames(IEnumerable<string> names, Regex pattern, string file, string kind, string expected)
    {
        var byLayer = new SortedDictionary<int, (string? Key, string? Value)>();
        foreach (var name in names)
        {
            var m = pattern.Match(name);
            if (!m.Success) continue;
            int layer = int.Parse(m.Groups[1].Value);
            byLayer.TryGetValue(layer, out var pair);
            byLayer[layer] = m.Groups[2].Value == "key" ? (name, pair.Value) : (pair.Key, name);
        }
        var result = new List<string>();
        for (int layer = 0; layer < byLayer.Count; layer++)
        {
            if (!byLayer.TryGetValue(layer, out var pair) || pair.Key is null || pair.Value is null)
                throw new GptModelException($"{file}: the cache {kind}s ({expected}) are incomplete at layer {layer}.");
            result.Add(pair.Key);
            result.Add(pair.Value);
        }
        return result.ToArray();
    }
}
