using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetGpt.Models;

/// <summary>Which side of a cache row holds the padding when rows of different lengths share a batch.</summary>
internal enum PaddingSide
{
    /// <summary>Rows are right-aligned (Hugging Face, Optimum): any mask pattern works, positions are fed.</summary>
    Left,

    /// <summary>
    /// Rows start at column 0 (ONNX Runtime's GroupQueryAttention: a row's length is
    /// <c>seqlens_k + 1</c>, derived from the mask's sum, and new keys go at that index).
    /// </summary>
    Right,
}

/// <summary>A non-state graph input: its name and the integer type it takes.</summary>
internal sealed record TypedInput(string Name, TensorElementType ElementType);

/// <summary>
/// The inputs, outputs and states of a decoder graph, read from the session's metadata (names,
/// element types and shapes are never assumed), checked against the folder's configuration.
/// </summary>
internal sealed partial class DecoderGraph
{
    /// <summary>The decoder file with past inputs, and the pair layout's prefill file.</summary>
    public required string File { get; init; }
    public string? PrefillFile { get; init; }

    public required TypedInput InputIds { get; init; }
    public required TypedInput AttentionMask { get; init; }
    public TypedInput? PositionIds { get; init; }
    public string? UseCacheBranch { get; init; }

    /// <summary>
    /// The optional <c>num_logits_to_keep</c> input (int64 scalar, 0 = all positions) of the session
    /// with past inputs, and whether the pair layout's prefill session has it too.
    /// </summary>
    public string? LogitsToKeep { get; init; }
    public bool PrefillHasLogitsToKeep { get; init; }

    /// <summary>Every past input with the present output that feeds it, in the graph's input order.</summary>
    public required IReadOnlyList<StateTensor> States { get; init; }

    public required string Logits { get; init; }
    public required TensorElementType LogitsType { get; init; }
    public required int VocabularySize { get; init; }

    /// <summary>Decoder layers, counted from the state names (or the key/value pairs).</summary>
    public required int LayerCount { get; init; }

    /// <summary>Key/value heads and head size of the attention caches (0 when the graph has none).</summary>
    public required int KeyValueHeadCount { get; init; }
    public required int HeadSize { get; init; }

    /// <summary>Element type of the attention caches (of the first state when there is none).</summary>
    public required TensorElementType CacheType { get; init; }

    public PaddingSide Padding { get; init; }

    /// <summary>
    /// Whether prompts must be prefilled one at a time: recurrent states would absorb padding tokens,
    /// and GroupQueryAttention continues a prompt only for a batch of one.
    /// </summary>
    public bool PrefillRowByRow => Padding == PaddingSide.Right || States.Any(s => s.Kind == StateKind.Recurrent);

    /// <summary>What the graph file itself revealed (attention kind, heads, position table).</summary>
    public GraphFacts Facts { get; init; } = GraphFacts.None;

    [GeneratedRegex(@"\d+")]
    private static partial Regex Number();

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
        var names = folder.Names ?? new GraphNames();
        var facts = GraphFacts.Read(Path.Combine(folder.Folder, decodeFile));

        string Require(IReadOnlyDictionary<string, NodeMetadata> map, string name, string kind) =>
            map.ContainsKey(name) ? name
            : throw new GptModelException($"{file} has no {kind} '{name}' (its {kind}s: {Describe(map.Keys)}).");

        TypedInput Integer(string name)
        {
            var type = inputs[name].ElementDataType;
            return type is TensorElementType.Int64 or TensorElementType.Int32 ? new TypedInput(name, type)
                : throw new GptModelException($"{file}: input '{name}' takes {type}; only int64 and int32 can be fed for ids, masks and positions.");
        }

        var inputIds = Integer(Require(inputs, names.InputIds, "input"));
        var attentionMask = Integer(Require(inputs, names.AttentionMask, "input"));
        TypedInput? positionIds = inputs.ContainsKey(names.PositionIds) ? Integer(names.PositionIds) : null;
        string? useCacheBranch = inputs.ContainsKey("use_cache_branch") ? "use_cache_branch" : null;
        string? logitsToKeep = FindLogitsToKeep(decode);
        string logits = Require(outputs, names.Logits, "output");

        var known = new HashSet<string> { inputIds.Name, attentionMask.Name };
        if (positionIds is not null) known.Add(positionIds.Name);
        if (useCacheBranch is not null) known.Add(useCacheBranch);
        if (logitsToKeep is not null) known.Add(logitsToKeep);

        var states = new List<StateTensor>();
        var unfed = new List<string>();
        foreach (var (name, meta) in inputs)
        {
            if (known.Contains(name)) continue;
            string? present = PresentFor(name, names, outputs);
            if (present is null)
            {
                unfed.Add($"{name} ({meta.ElementDataType} [{string.Join(", ", meta.Dimensions)}])");
                continue;
            }
            states.Add(Classify(file, name, meta, present, outputs[present], folder));
        }
        if (unfed.Count > 0)
            throw new GptModelException($"{file} has input(s) this library cannot feed: {Describe(unfed)}. It feeds input ids, attention mask, " +
                "position ids, use_cache_branch, num_logits_to_keep, and states: past inputs (past_key_values.N.key/value, past_N, past_conv.N, ...) " +
                "each with a matching present output.");
        if (states.Count == 0)
            throw new GptModelException($"{file} has no key/value cache inputs (past_key_values.N.key/value); " +
                "export the model with its cache (Optimum task text-generation-with-past).");

        var attention = states.FirstOrDefault(s => s.Kind != StateKind.Recurrent);
        int kvHeads = attention?.Heads ?? 0;
        int headSize = attention?.Inner ?? 0;
        var layerNumbers = states.Select(s => Number().Match(s.Input)).Where(m => m.Success).Select(m => m.Value).Distinct().Count();
        int pairs = states.Count(s => s.Kind == StateKind.KeyValue) / 2 + states.Count(s => s.Kind is StateKind.CombinedKeyValue or StateKind.Recurrent);
        int layerCount = layerNumbers > 0 ? layerNumbers : pairs;

        // Where the graph fixes a shape it wins over the configuration; a contradiction is worth a warning.
        void Contradiction(ShapeKey key, int configured, int actual, string what) =>
            warn($"{folder.Source(key)} says {configured}, but {file} has {actual} {what}; using {actual}.");
        if (folder.LayerCount is int configured && configured != layerCount)
            Contradiction(ShapeKey.Layers, configured, layerCount, "layers (counted from its state inputs)");
        if (attention is not null)
        {
            if (folder.KeyValueHeadCount is int configuredKv && configuredKv != kvHeads)
                Contradiction(ShapeKey.KeyValueHeads, configuredKv, kvHeads, "key/value heads in its cache inputs");
            if (folder.HeadSize is int configuredSize && configuredSize != headSize)
                Contradiction(ShapeKey.HeadSize, configuredSize, headSize, "as the head size of its cache inputs");
            if (facts.AttentionHeads is int graphHeads && folder.HeadCount is int configuredHeads && configuredHeads != graphHeads)
                Contradiction(ShapeKey.Heads, configuredHeads, graphHeads, "query heads in its GroupQueryAttention nodes");
            int? heads = facts.AttentionHeads ?? folder.HeadCount;
            if (heads is int h && (h < kvHeads || h % kvHeads != 0))
                throw new GptModelException($"{folder.Source(ShapeKey.Heads)} says {h} attention heads, which is not a multiple of the {kvHeads} key/value heads of {file}'s cache inputs.");
        }

        var logitsMeta = outputs[logits];
        int vocabulary = logitsMeta.Dimensions.Length == 3 && logitsMeta.Dimensions[2] > 0 ? logitsMeta.Dimensions[2]
            : folder.VocabularySize ?? throw new GptModelException($"{file}: the vocabulary size is not fixed in the graph and the configuration has no vocab_size.");
        if (logitsMeta.Dimensions.Length == 3 && logitsMeta.Dimensions[2] > 0 && folder.VocabularySize is int configuredVocabulary && configuredVocabulary != vocabulary)
            Contradiction(ShapeKey.Vocabulary, configuredVocabulary, vocabulary, "logits per position");
        if (logitsMeta.ElementDataType is not (TensorElementType.Float or TensorElementType.Float16 or TensorElementType.BFloat16))
            throw new GptModelException($"{file}: output '{logits}' holds {logitsMeta.ElementDataType}; only float32, float16 and bfloat16 logits are supported.");

        if (prefill is not null)
        {
            foreach (var name in new[] { inputIds.Name, attentionMask.Name })
                if (!prefill.InputMetadata.ContainsKey(name))
                    throw new GptModelException($"{folder.MainFile} has no input '{name}' (its inputs: {Describe(prefill.InputMetadata.Keys)}).");
            foreach (var name in states.Select(s => s.Output).Append(logits))
                if (!prefill.OutputMetadata.ContainsKey(name))
                    throw new GptModelException($"{folder.MainFile} has no output '{name}' (its outputs: {Describe(prefill.OutputMetadata.Keys)}).");
        }

        return new DecoderGraph
        {
            File = decodeFile,
            PrefillFile = prefill is null ? null : folder.MainFile,
            InputIds = inputIds,
            AttentionMask = attentionMask,
            PositionIds = positionIds,
            UseCacheBranch = useCacheBranch,
            LogitsToKeep = logitsToKeep,
            PrefillHasLogitsToKeep = prefill is null ? logitsToKeep is not null : FindLogitsToKeep(prefill) == logitsToKeep && logitsToKeep is not null,
            States = states,
            Logits = logits,
            LogitsType = logitsMeta.ElementDataType,
            VocabularySize = vocabulary,
            LayerCount = layerCount,
            KeyValueHeadCount = kvHeads,
            HeadSize = headSize,
            CacheType = (attention ?? states[0]).ElementType,
            Padding = facts.GroupQueryAttention ? PaddingSide.Right : PaddingSide.Left,
            Facts = facts,
        };
    }

    /// <summary>The present output that feeds past input <paramref name="input"/>, by the configuration's patterns or the usual names.</summary>
    private static string? PresentFor(string input, GraphNames names, IReadOnlyDictionary<string, NodeMetadata> outputs)
    {
        foreach (var (past, present) in names.StatePatterns)
        {
            var regex = new Regex("^" + Regex.Escape(past).Replace("%d", @"(\d+)") + "$");
            var m = regex.Match(input);
            if (m.Success && outputs.ContainsKey(present.Replace("%d", m.Groups[1].Value))) return present.Replace("%d", m.Groups[1].Value);
        }
        foreach (var candidate in new[]
        {
            input.Replace("past_key_values", "present"), input.Replace("past_key_values", "present_key_values"),
            input.Replace("past", "present"), "present" + input[(input.StartsWith("past", StringComparison.Ordinal) ? 4 : input.Length)..],
        })
        {
            if (candidate != input && outputs.ContainsKey(candidate)) return candidate;
        }
        return null;
    }

    private static StateTensor Classify(string file, string name, NodeMetadata meta, string present, NodeMetadata output, ModelFolder folder)
    {
        var dims = meta.Dimensions.Select(d => (long)d).ToArray();
        var type = meta.ElementDataType;
        if (type is not (TensorElementType.Float or TensorElementType.Float16 or TensorElementType.BFloat16))
            throw new GptModelException($"{file}: state input '{name}' holds {type}; only float32, float16 and bfloat16 states are supported.");
        if (output.ElementDataType != type)
            throw new GptModelException($"{file}: state input '{name}' holds {type} but its output '{present}' holds {output.ElementDataType}.");
        string shape = $"[{string.Join(", ", meta.Dimensions)}]";
        long Fixed(long value, int? configured, string what) => value > 0 ? value
            : configured ?? throw new GptModelException($"{file}: the {what} of '{name}' {shape} is not fixed in the graph and the configuration does not give it.");
        if (dims.Length == 4 && dims[2] < 0)
        {
            dims[1] = Fixed(dims[1], folder.KeyValueHeadCount, "key/value head count");
            dims[3] = Fixed(dims[3], folder.HeadSize, "head size");
            return new StateTensor(name, present, StateKind.KeyValue, type, dims);
        }
        if (dims.Length == 5 && dims[0] == 2 && dims[3] < 0)
        {
            dims[2] = Fixed(dims[2], folder.KeyValueHeadCount, "key/value head count");
            dims[4] = Fixed(dims[4], folder.HeadSize, "head size");
            return new StateTensor(name, present, StateKind.CombinedKeyValue, type, dims);
        }
        if (dims.Length >= 2 && dims.Skip(1).All(d => d > 0))
            return new StateTensor(name, present, StateKind.Recurrent, type, dims);
        throw new GptModelException($"{file}: state input '{name}' has shape {shape}; expected a key/value cache [batch, heads, sequence, head size], " +
            "a combined cache [2, batch, heads, sequence, head size], or a fixed-size state [batch, ...].");
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
}
