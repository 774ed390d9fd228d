using System.Globalization;
using MLNetGpt.Models;
using MLNetGpt.Models.Onnx;
using MLNetGpt.Models.Onnx.Protos;
using DataType = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataType;

namespace MLNetGpt.Training;

/// <summary>
/// Recognises a decoder in a model folder's ONNX graph by its weights (initializers: names, shapes, element
/// types) and the nodes that read them: the token embedding Gather, the norms (LayerNormalization,
/// SimplifiedLayerNormalization / SkipSimplifiedLayerNormalization, or RMSNorm written out as
/// Pow/ReduceMean/Add/Sqrt/Div/Mul), and every projection (MatMul or Gemm on a weight, possibly behind Cast and
/// Transpose, or MatMulNBits) in the order the graph computes them. Anything that is not a GPT-2 or Llama
/// decoder of that form is refused with a message naming what was expected and what was found.
/// </summary>
internal sealed class DecoderLayoutReader
{
    /// <summary>Most Cast/Identity/Transpose nodes followed between a weight and the node that reads it.</summary>
    private const int MaxWeightPath = 6;

    /// <summary>Most nodes followed when looking for where a projection's output goes (reshapes, rotary, attention).</summary>
    private const int MaxSearchDepth = 12;

    private readonly OnnxModelFile _file;
    private readonly string _fileLabel;
    private readonly List<NodeProto> _nodes;
    private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<NodeProto>> _consumers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TensorProto> _initializers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TensorProto> _constants = new(StringComparer.Ordinal);
    private readonly HashSet<string> _graphInputs = new(StringComparer.Ordinal);

    private DecoderLayoutReader(OnnxModelFile file, string fileLabel)
    {
        _file = file;
        _fileLabel = fileLabel;
        var graph = file.Graph;
        foreach (var t in graph.Initializer) _initializers[t.Name] = t;
        foreach (var i in file.Inputs) _graphInputs.Add(i.Name);
        // A merged decoder (Optimum's decoder_model_merged) computes inside the branches of one If node.
        var compute = graph;
        var ifNode = graph.Node.FirstOrDefault(n => n.OpType == "If");
        if (ifNode is not null && graph.Node.Count(n => n.OpType != "Constant") == 1)
        {
            compute = ifNode.Attribute.FirstOrDefault(a => a.Name == "else_branch")?.G
                ?? throw Refuse("a decoder graph", $"an If node '{ifNode.Name}' without an else branch");
            foreach (var t in compute.Initializer) _initializers[t.Name] = t;
        }
        _nodes = graph == compute ? graph.Node.ToList() : graph.Node.Where(n => n != ifNode).Concat(compute.Node).ToList();
        foreach (var node in _nodes)
        {
            foreach (var output in node.Output)
                if (output.Length > 0) _producers[output] = node;
            foreach (var input in node.Input)
            {
                if (input.Length == 0) continue;
                if (!_consumers.TryGetValue(input, out var list)) _consumers[input] = list = [];
                list.Add(node);
            }
            if (node.OpType == "Constant" && node.Output.Count == 1 && node.Attribute.FirstOrDefault(a => a.Name == "value")?.T is { } value)
                _constants[node.Output[0]] = value;
        }
    }

    /// <summary>Reads the decoder of <paramref name="folder"/> (for an onnx-community folder, the precision <paramref name="variant"/>).</summary>
    /// <exception cref="GptModelException">The folder cannot be opened, or its graph is not a decoder the training graph knows.</exception>
    public static DecoderLayout Read(string folder, string? variant)
    {
        var modelFolder = ModelFolder.Open(folder, variant);
        string path = Path.Combine(modelFolder.Folder, modelFolder.MainFile);
        var file = OnnxModelFile.Load(path);
        var reader = new DecoderLayoutReader(file, modelFolder.MainFile);
        return reader.Recognise(modelFolder);
    }

    private GptModelException Refuse(string expected, string found) =>
        new($"'{_fileLabel}' cannot be trained: expected {expected}; found {found}.");

    // ---- weights ----

    /// <summary>The initializer behind <paramref name="value"/> (through Cast, Identity and 2-D Transpose nodes), with how it is stored.</summary>
    private (TensorProto Tensor, bool Transposed, WeightStorage Storage)? ResolveWeight(string value)
    {
        bool transposed = false;
        int? castTo = null;
        for (int depth = 0; depth <= MaxWeightPath; depth++)
        {
            if (_initializers.TryGetValue(value, out var tensor))
            {
                if (_graphInputs.Contains(value)) return null;   // replaceable at run time: not a weight
                var storage = tensor.DataType switch
                {
                    (int)DataType.Float => WeightStorage.Float32,
                    (int)DataType.Float16 => WeightStorage.Float16,
                    _ => (WeightStorage?)null,
                };
                if (storage is null)
                {
                    // Integer tensors are indices and shapes, not weights; other float types are weights this code cannot train.
                    if (tensor.DataType is not ((int)DataType.Bfloat16 or (int)DataType.Double)) return null;
                    throw Refuse("float32 or float16 weights", $"'{tensor.Name}' of type {OnnxTensors.TypeName(tensor.DataType)}");
                }
                if (castTo is int to && to != (int)DataType.Float)
                    throw Refuse("weights computed in float32", $"'{tensor.Name}' cast to {OnnxTensors.TypeName(to)}");
                if (storage == WeightStorage.Float16 && castTo is null)
                    throw Refuse("float16 weights behind a Cast to float32", $"'{tensor.Name}' read as float16 (a float16 graph)");
                return (tensor, transposed, storage.Value);
            }
            if (!_producers.TryGetValue(value, out var node) || node.Input.Count == 0) return null;
            switch (node.OpType)
            {
                case "Cast":
                    castTo ??= (int)(node.Attribute.FirstOrDefault(a => a.Name == "to")?.I ?? 0);
                    break;
                case "Identity":
                    break;
                case "Transpose":
                    var perm = node.Attribute.FirstOrDefault(a => a.Name == "perm");
                    if (perm is not null && !(perm.Ints.Count == 2 && perm.Ints[0] == 1 && perm.Ints[1] == 0)) return null;
                    transposed = !transposed;
                    break;
                default:
                    return null;
            }
            value = node.Input[0];
        }
        return null;
    }

    private StoredWeight Stored(TensorProto tensor, WeightStorage storage) => new()
    {
        Name = tensor.Name,
        Shape = tensor.Dims.Select(d => checked((int)d)).ToArray(),
        Storage = storage,
    };

    /// <summary>A 1-D weight (bias, norm scale) of <paramref name="length"/> values behind <paramref name="value"/>, or null.</summary>
    private StoredWeight? Vector(string value, int? length = null)
    {
        if (ResolveWeight(value) is not var (tensor, _, storage)) return null;
        if (tensor.Dims.Count != 1 || (length is int n && tensor.Dims[0] != n)) return null;
        return Stored(tensor, storage);
    }

    private static long IntAttribute(NodeProto node, string name, long fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.I : fallback;

    private static float FloatAttribute(NodeProto node, string name, float fallback) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.F : fallback;

    // ---- what the graph computes, in order ----

    private sealed record Projection(NodeProto Node, LinearWeight Linear, string Output, string WeightInitializer);

    private sealed record Norm(NodeProto Node, StoredWeight Scale, StoredWeight? Bias, float Epsilon, bool Rms);

    private Projection? AsProjection(NodeProto node)
    {
        switch (node.OpType)
        {
            case "MatMul" when node.Input.Count == 2:
            {
                if (ResolveWeight(node.Input[1]) is not var (tensor, transposed, storage) || tensor.Dims.Count != 2) return null;
                if (ResolveWeight(node.Input[0]) is not null) return null;
                var linear = new LinearWeight { Weight = Stored(tensor, storage), OutByIn = transposed, Bias = null };
                var (output, bias) = FollowBias(node.Output[0], linear.Out);
                return new Projection(node, new LinearWeight { Weight = linear.Weight, OutByIn = transposed, Bias = bias }, output, tensor.Name);
            }
            case "Gemm":
            {
                if (ResolveWeight(node.Input[1]) is not var (tensor, transposed, storage) || tensor.Dims.Count != 2) return null;
                if (IntAttribute(node, "transA", 0) != 0 || FloatAttribute(node, "alpha", 1f) != 1f || FloatAttribute(node, "beta", 1f) != 1f)
                    throw Refuse("Gemm projections with transA 0, alpha 1 and beta 1", $"Gemm '{node.Name}' with other attributes");
                bool outByIn = transposed ^ (IntAttribute(node, "transB", 0) != 0);
                int outputs = outByIn ? (int)tensor.Dims[0] : (int)tensor.Dims[1];
                StoredWeight? bias = null;
                if (node.Input.Count > 2 && node.Input[2].Length > 0)
                    bias = Vector(node.Input[2], outputs) ?? throw Refuse($"Gemm '{node.Name}' to add a bias of {outputs} values", $"'{node.Input[2]}'");
                var weight = Stored(tensor, storage);
                var (output, extra) = bias is null ? FollowBias(node.Output[0], outputs) : (node.Output[0], null);
                return new Projection(node, new LinearWeight { Weight = weight, OutByIn = outByIn, Bias = bias ?? extra }, output, tensor.Name);
            }
            case "MatMulNBits" when node.Domain == MLNetGpt.Quantization.MatMulRewriter.MicrosoftDomain:
            {
                if (node.Input.Count > 4 && node.Input.Skip(4).Any(i => i.Length > 0))
                    throw Refuse("MatMulNBits with B, scales and zero points only", $"'{node.Name}' with a group index or bias input");
                if (!_initializers.TryGetValue(node.Input[1], out var packed) || !_initializers.TryGetValue(node.Input[2], out var scales))
                    throw Refuse("MatMulNBits weights stored as initializers", $"'{node.Name}' reading computed weights");
                string? zeroPoints = node.Input.Count > 3 && node.Input[3].Length > 0 ? node.Input[3] : null;
                if (zeroPoints is not null && (!_initializers.TryGetValue(zeroPoints, out var zp) || zp.DataType != (int)DataType.Uint8))
                    throw Refuse("MatMulNBits zero points packed as uint8", $"'{zeroPoints}' of '{node.Name}'");
                int k = (int)IntAttribute(node, "K", 0), n = (int)IntAttribute(node, "N", 0);
                int bits = (int)IntAttribute(node, "bits", 4), block = (int)IntAttribute(node, "block_size", 0);
                if (bits is not (4 or 8) || block < 16 || k <= 0 || n <= 0)
                    throw Refuse("MatMulNBits with 4 or 8 bits, K, N and a block size", $"'{node.Name}' with bits {bits}, K {k}, N {n}, block_size {block}");
                if (scales.DataType is not ((int)DataType.Float or (int)DataType.Float16))
                    throw Refuse("float32 or float16 MatMulNBits scales", $"'{scales.Name}' of type {OnnxTensors.TypeName(scales.DataType)}");
                var weight = new StoredWeight
                {
                    Name = packed.Name,
                    Shape = [n, k],
                    Storage = WeightStorage.Quantized,
                    Quantized = new QuantizedWeightInfo(packed.Name, scales.Name, zeroPoints, k, n, bits, block, scales.DataType == (int)DataType.Float16),
                };
                var (output, bias) = FollowBias(node.Output[0], n);
                return new Projection(node, new LinearWeight { Weight = weight, OutByIn = true, Bias = bias }, output, packed.Name);
            }
            default:
                return null;
        }
    }

    /// <summary>A projection's output, moved past an Add of a bias vector when its only reader is one.</summary>
    private (string Output, StoredWeight? Bias) FollowBias(string output, int width)
    {
        if (_consumers.TryGetValue(output, out var readers) && readers.Count == 1 && readers[0].OpType == "Add")
        {
            var add = readers[0];
            string other = add.Input[0] == output ? add.Input[1] : add.Input[0];
            if (Vector(other, width) is { } bias) return (add.Output[0], bias);
        }
        return (output, null);
    }

    private Norm? AsNorm(NodeProto node)
    {
        switch (node.OpType)
        {
            case "LayerNormalization":
            {
                if (IntAttribute(node, "axis", -1) != -1) throw Refuse("LayerNormalization over the last axis", $"'{node.Name}' with axis {IntAttribute(node, "axis", -1)}");
                var scale = Vector(node.Input[1]);
                if (scale is null) return null;
                var bias = node.Input.Count > 2 && node.Input[2].Length > 0 ? Vector(node.Input[2], scale.Shape[0]) : null;
                return new Norm(node, scale, bias, FloatAttribute(node, "epsilon", 1e-5f), Rms: false);
            }
            case "SimplifiedLayerNormalization":
            case "SkipSimplifiedLayerNormalization":
            {
                int index = node.OpType == "SimplifiedLayerNormalization" ? 1 : 2;
                var scale = node.Input.Count > index ? Vector(node.Input[index]) : null;
                if (scale is null) return null;
                if (node.OpType == "SkipSimplifiedLayerNormalization" && node.Input.Count > 3 && node.Input[3].Length > 0)
                    throw Refuse("SkipSimplifiedLayerNormalization without a bias input", $"'{node.Name}' with one");
                return new Norm(node, scale, null, FloatAttribute(node, "epsilon", 1e-5f), Rms: true);
            }
            case "Mul" when node.Input.Count == 2:
            {
                // RMSNorm written out: x * (1 / sqrt(mean(x^2) + eps)) * weight.
                for (int side = 0; side < 2; side++)
                {
                    if (Vector(node.Input[side]) is not { } scale) continue;
                    if (!_producers.TryGetValue(node.Input[1 - side], out var normalized) || normalized.OpType != "Mul") return null;
                    foreach (var input in normalized.Input)
                        if (RmsEpsilon(input) is float eps) return new Norm(node, scale, null, eps, Rms: true);
                    return null;
                }
                return null;
            }
            default:
                return null;
        }
    }

    /// <summary>For a value computed as 1 / sqrt(ReduceMean(x^2) + eps) (or Reciprocal, or Pow -0.5), eps; otherwise null.</summary>
    private float? RmsEpsilon(string value)
    {
        if (!_producers.TryGetValue(value, out var node)) return null;
        string? sqrtInput = null;
        if (node.OpType == "Div" && _producers.TryGetValue(node.Input[1], out var sqrt) && sqrt.OpType == "Sqrt") sqrtInput = sqrt.Input[0];
        else if (node.OpType == "Reciprocal" && _producers.TryGetValue(node.Input[0], out var sqrt2) && sqrt2.OpType == "Sqrt") sqrtInput = sqrt2.Input[0];
        if (sqrtInput is null || !_producers.TryGetValue(sqrtInput, out var add) || add.OpType != "Add") return null;
        for (int side = 0; side < 2; side++)
        {
            if (!_producers.TryGetValue(add.Input[1 - side], out var mean) || mean.OpType != "ReduceMean") continue;
            if (ScalarConstant(add.Input[side]) is float eps) return eps;
        }
        return null;
    }

    private float? ScalarConstant(string value)
    {
        var tensor = _constants.GetValueOrDefault(value) ?? _initializers.GetValueOrDefault(value);
        if (tensor is null || OnnxTensors.ElementCount(tensor) != 1) return null;
        if (tensor.DataType is not ((int)DataType.Float or (int)DataType.Double or (int)DataType.Float16)) return null;
        return _file.ReadFloats(tensor)[0];
    }

    private int[]? IntTable(string value)
    {
        var tensor = _constants.GetValueOrDefault(value) ?? _initializers.GetValueOrDefault(value);
        if (tensor is null || tensor.Dims.Count != 1) return null;
        var raw = _file.ReadData(tensor).Span;
        return tensor.DataType switch
        {
            (int)DataType.Int32 => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(raw).ToArray(),
            (int)DataType.Int64 => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(raw).ToArray().Select(v => checked((int)v)).ToArray(),
            _ => null,
        };
    }

    /// <summary>Follows Cast/Identity nodes back from <paramref name="value"/>.</summary>
    private string SkipCasts(string value)
    {
        for (int i = 0; i < MaxWeightPath && _producers.TryGetValue(value, out var node) && node.OpType is "Cast" or "Identity"; i++)
            value = node.Input[0];
        return value;
    }

    /// <summary>Whether some path of at most <see cref="MaxSearchDepth"/> nodes leads from <paramref name="value"/> to a node <paramref name="match"/> accepts.</summary>
    private bool Reaches(string value, Func<NodeProto, string, bool> match, Func<NodeProto, bool> through)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var frontier = new Queue<(string Value, int Depth)>();
        frontier.Enqueue((value, 0));
        while (frontier.Count > 0)
        {
            var (current, depth) = frontier.Dequeue();
            if (!seen.Add(current) || !_consumers.TryGetValue(current, out var readers)) continue;
            foreach (var reader in readers)
            {
                if (match(reader, current)) return true;
                if (depth < MaxSearchDepth && through(reader))
                    foreach (var output in reader.Output)
                        if (output.Length > 0) frontier.Enqueue((output, depth + 1));
            }
        }
        return false;
    }

    /// <summary>Whether the value goes (through reshapes) into a MatMul as the operand multiplied by attention probabilities.</summary>
    private bool FeedsAttentionValues(string value) => Reaches(value,
        (node, input) => node.OpType == "MatMul" && node.Input[1] == input && _producers.TryGetValue(node.Input[0], out var p) && p.OpType == "Softmax",
        node => node.OpType is "Reshape" or "Transpose" or "Unsqueeze" or "Expand" or "Concat" or "Identity");

    /// <summary>Whether the value is rotated (rotate-half: a Slice followed by Neg) on its way to attention.</summary>
    private bool IsRotated(string value) => Reaches(value,
        (node, _) => node.OpType == "Neg",
        node => node.OpType is "Reshape" or "Transpose" or "Slice" or "Unsqueeze" or "Identity");

    private bool FeedsSigmoid(string value) => _consumers.TryGetValue(value, out var readers) && readers.Any(r => r.OpType == "Sigmoid");

    // ---- recognition ----

    private DecoderLayout Recognise(ModelFolder folder)
    {
        string inputIds = folder.Names?.InputIds ?? "input_ids";
        if (!_graphInputs.Contains(inputIds))
            throw Refuse($"a graph input '{inputIds}'", $"inputs {string.Join(", ", _graphInputs.Select(i => $"'{i}'"))}");

        // Embeddings: Gathers of a 2-D weight by token ids (possibly remapped through a constant table) or positions.
        StoredWeight? tokens = null, positions = null;
        string? inputTable = null;
        foreach (var node in _nodes.Where(n => n.OpType == "Gather" && n.Input.Count == 2))
        {
            if (IntAttribute(node, "axis", 0) != 0 || ResolveWeight(node.Input[0]) is not var (tensor, transposed, storage) || tensor.Dims.Count != 2 || transposed) continue;
            string ids = SkipCasts(node.Input[1]);
            if (ids == inputIds)
            {
                tokens ??= Stored(tensor, storage);
            }
            else if (_producers.TryGetValue(ids, out var lookup) && lookup.OpType == "Gather" && SkipCasts(lookup.Input[1]) == inputIds && IntTable(lookup.Input[0]) is not null)
            {
                tokens ??= Stored(tensor, storage);
                inputTable ??= lookup.Input[0];
            }
            else if (_graphInputs.Contains(ids) && ids.Contains("position", StringComparison.OrdinalIgnoreCase))
            {
                positions ??= Stored(tensor, storage);
            }
        }
        if (tokens is null)
            throw Refuse($"a token embedding: a Gather of a 2-D float weight by '{inputIds}'", "none");
        int hidden = tokens.Shape[1];

        var norms = new List<Norm>();
        var projections = new List<Projection>();
        NodeProto? attention = null;
        bool lowPrecision = false;
        foreach (var node in _nodes)
        {
            if (AsNorm(node) is { } norm && norm.Scale.Shape[0] == hidden) norms.Add(norm);
            else if (AsProjection(node) is { } projection)
            {
                projections.Add(projection);
                if (node.OpType == "MatMulNBits" && IntAttribute(node, "accuracy_level", 0) > 0) lowPrecision = true;
            }
            else if (node.OpType == "GroupQueryAttention") attention ??= node;
            else if (node.Domain is { Length: > 0 } domain && node.OpType is "Attention" or "MultiHeadAttention" or "RotaryEmbedding" or "SkipLayerNormalization" or "EmbedLayerNormalization" or "FastGelu" or "BiasGelu" or "Gelu" or "QuickGelu")
                throw Refuse("standard ONNX operators, MatMulNBits, GroupQueryAttention and (Skip)SimplifiedLayerNormalization",
                    $"the fused operator {domain}.{node.OpType} ('{node.Name}'), which the training graph cannot differentiate");
            else if (node.OpType is "Erf" or "Gelu")
                throw Refuse("a GELU written with Tanh (GPT-2's gelu_new)", $"'{node.Name}' ({node.OpType}: the exact GELU)");
        }

        bool layerNorms = norms.Count > 0 && norms.All(n => !n.Rms);
        bool rmsNorms = norms.Count > 0 && norms.All(n => n.Rms);
        DecoderFamily family;
        if (layerNorms && positions is not null) family = DecoderFamily.Gpt2;
        else if (rmsNorms && positions is null) family = DecoderFamily.Llama;
        else
            throw Refuse("GPT-2 (LayerNormalization and a learned position table) or Llama (RMSNorm and rotary positions)",
                $"{norms.Count(n => !n.Rms)} LayerNorms, {norms.Count(n => n.Rms)} RMSNorms of width {hidden} and {(positions is null ? "no" : "a")} position table");
        if (norms.Count < 3 || norms.Count % 2 == 0)
            throw Refuse("two norms per block and a final norm", $"{norms.Count} norms of width {hidden}");
        int layers = (norms.Count - 1) / 2;
        float eps = norms[0].Epsilon;
        if (norms.Any(n => n.Epsilon != eps))
            throw Refuse("one norm epsilon", $"epsilons {string.Join(", ", norms.Select(n => n.Epsilon).Distinct().Select(e => e.ToString("R", CultureInfo.InvariantCulture)))}");
        if (family == DecoderFamily.Gpt2 && norms.Any(n => n.Bias is null))
            throw Refuse("LayerNorms with a bias", $"'{norms.First(n => n.Bias is null).Node.Name}' without one");

        int heads = folder.HeadCount ?? (attention is not null ? (int)IntAttribute(attention, "num_heads", 0) : 0);
        if (heads <= 0 || hidden % heads != 0)
            throw Refuse($"a head count that divides the width {hidden} ({folder.Source(ShapeKey.Heads)})", heads <= 0 ? "none" : heads.ToString(CultureInfo.InvariantCulture));
        int kvHeads = folder.KeyValueHeadCount ?? heads;
        if (attention is not null) kvHeads = (int)IntAttribute(attention, "kv_num_heads", kvHeads);
        int headSize = hidden / heads;
        if (family == DecoderFamily.Gpt2 && kvHeads != heads)
            throw Refuse("GPT-2 attention with as many key/value heads as query heads", $"{kvHeads} key/value heads for {heads}");
        if (heads % kvHeads != 0)
            throw Refuse($"key/value heads that divide the {heads} query heads", kvHeads.ToString(CultureInfo.InvariantCulture));

        // Projections in graph order: per block q/k/v (fused or not), o, then the MLP; the output head last.
        var blocks = new List<DecoderBlock>();
        int next = 0;
        string Shapes() => string.Join(", ", projections.Select(p => $"'{p.WeightInitializer}' {p.Linear.In}->{p.Linear.Out}"));
        Projection Take(string role, int inputs, int? outputs)
        {
            if (next >= projections.Count)
                throw Refuse($"a {role} projection ({inputs} -> {outputs?.ToString(CultureInfo.InvariantCulture) ?? "?"}) in block {blocks.Count}", $"only {projections.Count} projections: {Shapes()}");
            var p = projections[next++];
            if (p.Linear.In != inputs || (outputs is int o && p.Linear.Out != o))
                throw Refuse($"the {role} projection of block {blocks.Count} to map {inputs} -> {outputs?.ToString(CultureInfo.InvariantCulture) ?? "?"}",
                    $"'{p.WeightInitializer}' mapping {p.Linear.In} -> {p.Linear.Out}");
            if (family == DecoderFamily.Llama && p.Linear.Bias is not null)
                throw Refuse("Llama projections without biases", $"'{p.WeightInitializer}' with bias '{p.Linear.Bias.Name}'");
            if (family == DecoderFamily.Gpt2 && p.Linear.Bias is null)
                throw Refuse("GPT-2 projections with biases", $"'{p.WeightInitializer}' without one");
            return p;
        }

        int qWidth = heads * headSize, kvWidth = kvHeads * headSize;
        for (int layer = 0; layer < layers; layer++)
        {
            LinearWeight? qkv = null, q = null, k = null, v = null;
            if (next < projections.Count && projections[next].Linear.Out == qWidth + 2 * kvWidth)
            {
                qkv = Take("fused query/key/value", hidden, qWidth + 2 * kvWidth).Linear;
            }
            else
            {
                var pq = Take("query", hidden, qWidth);
                var pk = Take("key", hidden, kvWidth);
                var pv = Take("value", hidden, kvWidth);
                if (!FeedsAttentionValues(pv.Output) || FeedsAttentionValues(pk.Output))
                    throw Refuse($"the third projection of block {layer} ('{pv.WeightInitializer}') to be the one attention weights multiply",
                        "a graph where it is not (query, key and value projections in another order)");
                if (family == DecoderFamily.Llama && attention is null && (!IsRotated(pq.Output) || !IsRotated(pk.Output) || IsRotated(pv.Output)))
                    throw Refuse($"rotary positions (rotate-half) on the query and key of block {layer}", "other arithmetic around them");
                (q, k, v) = (pq.Linear, pk.Linear, pv.Linear);
            }
            var o = Take("attention output", qWidth, hidden).Linear;
            LinearWeight up, down;
            LinearWeight? gate = null;
            if (family == DecoderFamily.Gpt2)
            {
                up = Take("MLP input (c_fc)", hidden, null).Linear;
                down = Take("MLP output", up.Out, hidden).Linear;
            }
            else
            {
                var first = Take("MLP gate/up", hidden, null);
                var second = Take("MLP up/gate", hidden, first.Linear.Out);
                bool firstIsGate = FeedsSigmoid(first.Output), secondIsGate = FeedsSigmoid(second.Output);
                if (firstIsGate == secondIsGate)
                    throw Refuse($"a SwiGLU MLP in block {layer}: one of '{first.WeightInitializer}' and '{second.WeightInitializer}' read by a Sigmoid",
                        firstIsGate ? "both" : "neither");
                (gate, up) = firstIsGate ? (first.Linear, second.Linear) : (second.Linear, first.Linear);
                down = Take("MLP down", up.Out, hidden).Linear;
            }
            blocks.Add(new DecoderBlock
            {
                AttentionNorm = new NormWeights(norms[2 * layer].Scale, norms[2 * layer].Bias),
                QueryKeyValue = qkv,
                Query = q,
                Key = k,
                Value = v,
                Output = o,
                MlpNorm = new NormWeights(norms[2 * layer + 1].Scale, norms[2 * layer + 1].Bias),
                Up = up,
                Gate = gate,
                Down = down,
            });
        }
        if (next != projections.Count - 1)
            throw Refuse($"{layers} blocks and one output projection", $"{projections.Count} projections: {Shapes()}");
        var head = projections[next];
        if (head.Linear.In != hidden)
            throw Refuse($"an output projection from width {hidden}", $"'{head.WeightInitializer}' mapping {head.Linear.In} -> {head.Linear.Out}");
        bool tied = head.WeightInitializer == tokens.Name;
        if (tied && !head.Linear.OutByIn)
            throw Refuse("a tied output layer that multiplies by the embedding's transpose", $"'{head.WeightInitializer}' used untransposed");
        int innerVocabulary = tokens.Shape[0];
        if (head.Linear.Out != innerVocabulary)
            throw Refuse($"an output layer over the {innerVocabulary} embedding rows", $"'{head.WeightInitializer}' with {head.Linear.Out} outputs");

        var remap = ReadRemap(head, inputTable, innerVocabulary);
        int vocabulary = remap?.TokenMap.Length ?? innerVocabulary;
        if (head.Linear.Bias is not null && remap is not null)
            throw Refuse("one output bias", $"'{head.Linear.Bias.Name}' and a constant bias");

        // Rotary positions and attention settings.
        StoredWeight? cos = null, sin = null;
        double theta = 10000.0;
        int maxPositions;
        var config = JsonConfig.LoadIfExists(Path.Combine(folder.Folder, ModelFolder.ConfigFile));
        if (family == DecoderFamily.Llama)
        {
            if (config?.Find("rope_scaling") is { ValueKind: not System.Text.Json.JsonValueKind.Null } scaling)
                throw Refuse("rotary positions without rope_scaling", $"config.json rope_scaling {scaling.GetRawText()}");
            if (config?.Find("partial_rotary_factor") is { } partial && partial.GetDouble() != 1.0)
                throw Refuse("rotary positions over the whole head", $"config.json partial_rotary_factor {partial.GetRawText()}");
            if (config?.Find("rope_theta") is { ValueKind: System.Text.Json.JsonValueKind.Number } t) theta = t.GetDouble();
            if (attention is not null)
            {
                if (IntAttribute(attention, "do_rotary", 0) != 1 || IntAttribute(attention, "rotary_interleaved", 0) != 0)
                    throw Refuse("GroupQueryAttention with do_rotary 1 and rotary_interleaved 0", $"'{attention.Name}' with do_rotary {IntAttribute(attention, "do_rotary", 0)}, rotary_interleaved {IntAttribute(attention, "rotary_interleaved", 0)}");
                float scale = FloatAttribute(attention, "scale", 0f);
                if (scale != 0f && Math.Abs(scale - 1.0 / Math.Sqrt(headSize)) > 1e-6)
                    throw Refuse($"attention scaled by 1/sqrt({headSize})", $"'{attention.Name}' with scale {scale.ToString("R", CultureInfo.InvariantCulture)}");
                if (FloatAttribute(attention, "softcap", 0f) != 0f || IntAttribute(attention, "local_window_size", -1) != -1)
                    throw Refuse("GroupQueryAttention without softcap or a local window", $"'{attention.Name}' with one");
                if (attention.Input.Count > 8 && ResolveWeight(attention.Input[7]) is var (c, _, cs) && ResolveWeight(attention.Input[8]) is var (s, _, ss))
                {
                    cos = Stored(c, cs);
                    sin = Stored(s, ss);
                    if (cos.Shape.Length != 2 || cos.Shape[1] != headSize / 2)
                        throw Refuse($"a rotary cos cache of shape [positions, {headSize / 2}]", cos.ToString());
                }
                else
                {
                    throw Refuse("GroupQueryAttention with cos_cache and sin_cache initializers", $"'{attention.Name}' without them");
                }
            }
            maxPositions = cos?.Shape[0] ?? folder.ContextLength ?? 0;
        }
        else
        {
            maxPositions = positions!.Shape[0];
            if (positions.Shape[1] != hidden) throw Refuse($"a position table of width {hidden}", positions.ToString());
        }
        if (maxPositions <= 0) throw Refuse("a context length (config.json max_position_embeddings)", "none");

        return new DecoderLayout
        {
            Folder = folder.Folder,
            ModelFile = folder.MainFile,
            ModelFiles = folder.ModelFiles,
            Family = family,
            Hidden = hidden,
            Heads = heads,
            KeyValueHeads = kvHeads,
            HeadSize = headSize,
            Vocabulary = vocabulary,
            InnerVocabulary = innerVocabulary,
            MaxPositions = maxPositions,
            NormEpsilon = eps,
            RopeTheta = theta,
            RotaryCos = cos,
            RotarySin = sin,
            TokenEmbedding = tokens,
            PositionEmbedding = positions,
            Blocks = blocks,
            FinalNorm = new NormWeights(norms[^1].Scale, norms[^1].Bias),
            LmHead = tied ? null : head.Linear,
            Remap = remap,
            LowPrecisionMatMuls = lowPrecision,
        };
    }

    /// <summary>The kit's remapped vocabulary: the input-side table, and logits = Gather(inner logits [+ bias], table, axis 2).</summary>
    private VocabularyRemap? ReadRemap(Projection head, string? inputTable, int innerVocabulary)
    {
        string current = head.Output;
        string? biasValue = null;
        float[]? bias = null;
        if (_consumers.TryGetValue(current, out var readers) && readers.Count == 1 && readers[0].OpType == "Add")
        {
            var add = readers[0];
            string other = add.Input[0] == current ? add.Input[1] : add.Input[0];
            var tensor = _constants.GetValueOrDefault(other) ?? _initializers.GetValueOrDefault(other);
            if (tensor is not null && tensor.Dims.Count == 1 && tensor.Dims[0] == innerVocabulary && tensor.DataType == (int)DataType.Float)
            {
                biasValue = other;
                bias = _file.ReadFloats(tensor);
                current = add.Output[0];
            }
        }
        string? outputTable = null;
        if (_consumers.TryGetValue(current, out readers) && readers.Count == 1 && readers[0].OpType == "Gather" && readers[0].Input[0] == current)
        {
            var gather = readers[0];
            if (IntAttribute(gather, "axis", 0) is 2 or -1) outputTable = gather.Input[1];
        }
        if (inputTable is null && outputTable is null)
        {
            if (bias is not null) throw Refuse("an output layer without a constant bias (or with the kit's vocabulary remap)", $"constant bias '{biasValue}'");
            return null;
        }
        if (inputTable is null || outputTable is null)
            throw Refuse("a vocabulary remap on both the input ids and the logits", inputTable is null ? "one on the logits only" : "one on the input ids only");
        var map = IntTable(inputTable)!;
        var outMap = IntTable(outputTable) ?? throw Refuse("the logits gathered by a constant id table", $"'{outputTable}'");
        if (!map.AsSpan().SequenceEqual(outMap))
            throw Refuse("the same remap table for the input ids and the logits", $"'{inputTable}' and '{outputTable}' differ");
        if (map.Any(i => i < 0 || i >= innerVocabulary))
            throw Refuse($"remap entries in [0, {innerVocabulary})", $"'{inputTable}' with entries outside");
        int unk = map.GroupBy(i => i).OrderByDescending(g => g.Count()).First().Key;
        return new VocabularyRemap
        {
            TokenMap = map,
            OutputBias = bias ?? new float[innerVocabulary],
            InputTableValue = inputTable,
            OutputTableValue = outputTable,
            BiasValue = biasValue,
            UnkRow = unk,
        };
    }
}
