using System.Globalization;
using Google.Protobuf;
using MLNetGpt.Models.Onnx;
using MLNetGpt.Models.Onnx.Protos;
using DataType = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataType;
using AttributeType = MLNetGpt.Models.Onnx.Protos.AttributeProto.Types.AttributeType;

namespace MLNetGpt.Quantization;

/// <summary>What rewriting one ONNX file did.</summary>
internal sealed class FileRewrite
{
    public int MatMulCount { get; set; }
    public int Rewritten { get; set; }

    /// <summary>Skipped MatMuls whose B is an activation (computed or a graph input), the usual and expected kind.</summary>
    public int Activations { get; set; }

    public List<QuantizationReport.SkippedMatMul> Skipped { get; } = [];
}

/// <summary>
/// Rewrites every MatMul whose B input is a constant 2-D weight into <c>com.microsoft.MatMulNBits</c>.
/// </summary>
/// <remarks>
/// B may be an initializer directly, or reach the MatMul through Transpose (perm [1, 0]) and Cast
/// nodes in any order (the fp16-stored weights of the default model, torch's pre-transposed Linear
/// weights). The rewritten MatMul gets its own quantized copy of the weight; the Transpose/Cast
/// nodes and the original initializer are removed only when nothing else reads them, so an
/// embedding table that a Gather shares with a tied lm_head stays as it was. Nothing else in the
/// graph changes. Subgraphs (the branches of a merged decoder) are rewritten too, and a weight
/// that several MatMuls read through the same chain is quantized once.
/// </remarks>
internal sealed class MatMulRewriter
{
    public const string MicrosoftDomain = "com.microsoft";

    /// <summary>The most Transpose/Cast nodes followed between a weight and its MatMul.</summary>
    private const int MaxPathLength = 8;

    private readonly OnnxModelFile _model;
    private readonly QuantizationOptions _options;
    private readonly HashSet<string> _names;
    private readonly Dictionary<(TensorProto Root, bool Transposed, int Type), string[]> _quantized = [];
    private readonly List<(GraphProto Graph, NodeProto Node)> _chainNodes = [];
    private readonly List<(GraphProto Graph, TensorProto Tensor)> _roots = [];

    private MatMulRewriter(OnnxModelFile model, QuantizationOptions options)
    {
        _model = model;
        _options = options;
        _names = AllNames(model.Graph);
    }

    /// <summary>Rewrites <paramref name="model"/> in place; <paramref name="file"/> names it in the report (relative to the model folder).</summary>
    public static FileRewrite Rewrite(OnnxModelFile model, QuantizationOptions options, string file, IProgress<string>? progress,
        CancellationToken cancellationToken)
    {
        var rewriter = new MatMulRewriter(model, options);
        var result = new FileRewrite();
        var matMuls = new List<(Scope Scope, int Index)>();
        Collect(new Scope(model.Graph, null), matMuls);
        result.MatMulCount = matMuls.Count;
        foreach (var (scope, index) in matMuls)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var node = scope.Graph.Node[index];
            string? reason = rewriter.TryRewrite(scope, index, out bool activation, cancellationToken);
            if (reason is null)
            {
                result.Rewritten++;
                progress?.Report(string.Create(CultureInfo.InvariantCulture,
                    $"{file}: quantized {node.Name} ({result.Rewritten} of {matMuls.Count} MatMuls so far)"));
            }
            else
            {
                result.Skipped.Add(new QuantizationReport.SkippedMatMul(file, NodeLabel(node), reason));
                if (activation) result.Activations++;
                progress?.Report($"{file}: left {NodeLabel(node)} as it was: {reason}");
            }
        }
        if (result.Rewritten > 0)
        {
            rewriter.RemoveUnread();
            if (!model.Model.OpsetImport.Any(o => o.Domain == MicrosoftDomain))
                model.Model.OpsetImport.Add(new OperatorSetIdProto { Domain = MicrosoftDomain, Version = 1 });
        }
        return result;
    }

    private static void Collect(Scope scope, List<(Scope, int)> matMuls)
    {
        for (int i = 0; i < scope.Graph.Node.Count; i++)
        {
            var node = scope.Graph.Node[i];
            if (node.OpType == "MatMul" && IsDefaultDomain(node.Domain)) matMuls.Add((scope, i));
            foreach (var sub in OnnxGraphs.Subgraphs(node)) Collect(new Scope(sub, scope), matMuls);
        }
    }

    /// <summary>Rewrites one MatMul; returns why not (<paramref name="activation"/>: because B is not a weight at all), or null when it was rewritten.</summary>
    private string? TryRewrite(Scope scope, int index, out bool activation, CancellationToken cancellationToken)
    {
        activation = false;
        var matMul = scope.Graph.Node[index];
        if (matMul.Input.Count != 2 || matMul.Output.Count != 1) return $"it has {matMul.Input.Count} inputs and {matMul.Output.Count} outputs, not 2 and 1";

        // Walk up from B through Transpose and Cast nodes to the initializer. Whether a Transpose
        // fits matters only once the path is known to start at a constant.
        string name = matMul.Input[1];
        var chain = new List<(GraphProto Graph, NodeProto Node)>();
        var casts = new List<int>();   // the Cast target types, nearest the MatMul first
        bool transposed = false;
        string? unsupported = null;
        TensorProto? root = null;
        Scope? rootScope = null;
        while (root is null)
        {
            switch (scope.Resolve(name))
            {
                case (Scope owner, NodeProto producer, _):
                    bool passThrough = producer.OpType is "Transpose" or "Cast" && IsDefaultDomain(producer.Domain) && producer.Input.Count == 1;
                    if (!passThrough || chain.Count >= MaxPathLength)
                    {
                        activation = true;
                        return $"B is computed by {producer.OpType} '{producer.Name}', not a constant weight";
                    }
                    if (producer.OpType == "Transpose")
                    {
                        var perm = producer.Attribute.FirstOrDefault(a => a.Name == "perm");
                        if (perm is not null && !(perm.Ints.Count == 2 && perm.Ints[0] == 1 && perm.Ints[1] == 0))
                            unsupported ??= $"B comes from Transpose '{producer.Name}' with perm [{string.Join(", ", perm.Ints)}], not [1, 0]";
                        transposed = !transposed;
                    }
                    else
                    {
                        var to = producer.Attribute.FirstOrDefault(a => a.Name == "to");
                        if (to is null) return $"Cast '{producer.Name}' on B's path has no 'to' attribute";
                        casts.Add((int)to.I);
                    }
                    chain.Add((owner.Graph, producer));
                    name = producer.Input[0];
                    break;
                case (Scope owner, null, TensorProto initializer):
                    if (owner.Inputs.Contains(name))
                        return $"B's initializer '{name}' is also a graph input, so it may be replaced at run time";
                    root = initializer;
                    rootScope = owner;
                    break;
                case (Scope, null, null):
                    activation = true;
                    return $"B is the graph input '{name}', not a constant weight";
                default:
                    return $"B ('{name}') is neither an initializer nor produced by a node";
            }
        }
        if (unsupported is not null) return unsupported;

        if (root.Dims.Count != 2)
            return $"the weight '{root.Name}' has shape [{string.Join(", ", root.Dims)}], not a 2-D matrix";
        int sourceType = root.DataType;
        if (sourceType is not ((int)DataType.Float or (int)DataType.Float16 or (int)DataType.Bfloat16 or (int)DataType.Double))
            return $"the weight '{root.Name}' holds {OnnxTensors.TypeName(sourceType)} values, not floating-point ones";
        foreach (int to in casts)
            if (to is not ((int)DataType.Float or (int)DataType.Float16 or (int)DataType.Bfloat16 or (int)DataType.Double))
                return $"B is cast to {OnnxTensors.TypeName(to)} on its way from '{root.Name}'";
        int type = casts.Count > 0 ? casts[0] : sourceType;
        if (type is not ((int)DataType.Float or (int)DataType.Float16))
            return $"the MatMul runs in {OnnxTensors.TypeName(type)}; MatMulNBits on the CPU takes float32 or float16";
        long rows = root.Dims[0], columns = root.Dims[1];
        long k = transposed ? columns : rows, n = transposed ? rows : columns;
        if (k * n == 0 || k > int.MaxValue || n > int.MaxValue || k * n > Array.MaxLength)
            return $"the weight '{root.Name}' has shape [{rows}, {columns}], which MatMulNBits cannot hold";

        var key = (root, transposed, type);
        if (!_quantized.TryGetValue(key, out var inputs))
        {
            float[] values = _model.ReadFloats(root);
            // Casts on the path round the values exactly as the graph would, farthest from the MatMul first.
            for (int c = casts.Count - 1; c >= 0; c--) RoundTo(values, casts[c]);
            foreach (float v in values)
                if (!float.IsFinite(v)) return $"the weight '{root.Name}' holds a value that is not finite ({v.ToString(CultureInfo.InvariantCulture)})";
            float[] byColumn = transposed ? values : Transpose(values, (int)k, (int)n);
            var q = BlockQuantizer.Quantize(byColumn, (int)k, (int)n, _options.Bits, _options.BlockSize, _options.Symmetric,
                halfScales: type == (int)DataType.Float16, cancellationToken);
            inputs = AddInitializers(rootScope!.Graph, root.Name, q, type);
            _quantized[key] = inputs;
            _roots.Add((rootScope.Graph, root));
        }

        var rewritten = matMul.Clone();   // keeps its name, doc string and any field this code does not know
        rewritten.OpType = "MatMulNBits";
        rewritten.Domain = MicrosoftDomain;
        rewritten.Input.Clear();
        rewritten.Input.Add(matMul.Input[0]);
        rewritten.Input.AddRange(inputs);
        rewritten.Attribute.Clear();
        rewritten.Attribute.Add(IntAttribute("K", k));
        rewritten.Attribute.Add(IntAttribute("N", n));
        rewritten.Attribute.Add(IntAttribute("bits", _options.Bits));
        rewritten.Attribute.Add(IntAttribute("block_size", _options.BlockSize));
        rewritten.Attribute.Add(IntAttribute("accuracy_level", _options.AccuracyLevel));
        scope.Graph.Node[index] = rewritten;
        _chainNodes.AddRange(chain);
        return null;
    }

    private string[] AddInitializers(GraphProto graph, string weight, QuantizedWeight q, int type)
    {
        string stem = $"{weight}_Q{q.Bits}";
        string b = UniqueName(stem), scales = UniqueName(stem + "_scales");
        graph.Initializer.Add(OnnxTensors.FromBytes(b, q.Packed, q.N, q.BlockCount, q.BlobSize));
        graph.Initializer.Add(type == (int)DataType.Float16
            ? OnnxTensors.FromHalves(scales, q.Scales.Select(s => (Half)s).ToArray(), q.Scales.Length)
            : OnnxTensors.FromFloats(scales, q.Scales, q.Scales.Length));
        if (q.ZeroPoints is null) return [b, scales];
        string zeroPoints = UniqueName(stem + "_zero_points");
        graph.Initializer.Add(OnnxTensors.FromBytes(zeroPoints, q.ZeroPoints, q.ZeroPoints.Length));
        return [b, scales, zeroPoints];
    }

    /// <summary>Removes the Transpose/Cast nodes and weights the rewrite left unread, and their value_info entries.</summary>
    private void RemoveUnread()
    {
        bool removed = true;
        var gone = new HashSet<string>(StringComparer.Ordinal);
        while (removed)
        {
            removed = false;
            var read = OnnxGraphs.NamesRead(_model.Graph);
            foreach (var (graph, node) in _chainNodes)
            {
                int index = IndexOf(graph.Node, node);
                if (index < 0 || node.Output.Any(read.Contains)) continue;
                graph.Node.RemoveAt(index);
                gone.UnionWith(node.Output);
                removed = true;
            }
        }
        var stillRead = OnnxGraphs.NamesRead(_model.Graph);
        foreach (var (graph, tensor) in _roots)
        {
            int index = IndexOf(graph.Initializer, tensor);
            if (index >= 0 && !stillRead.Contains(tensor.Name)) graph.Initializer.RemoveAt(index);
        }
        foreach (var graph in OnnxGraphs.All(_model.Graph))
            for (int i = graph.ValueInfo.Count - 1; i >= 0; i--)
                if (gone.Contains(graph.ValueInfo[i].Name)) graph.ValueInfo.RemoveAt(i);
    }

    /// <summary>The position of this very message (generated messages compare by value).</summary>
    private static int IndexOf<T>(IList<T> items, T item) where T : class
    {
        for (int i = 0; i < items.Count; i++)
            if (ReferenceEquals(items[i], item)) return i;
        return -1;
    }

    private string UniqueName(string stem)
    {
        string name = stem;
        for (int i = 1; !_names.Add(name); i++) name = string.Create(CultureInfo.InvariantCulture, $"{stem}_{i}");
        return name;
    }

    private static HashSet<string> AllNames(GraphProto graph)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var g in OnnxGraphs.All(graph))
        {
            foreach (var t in g.Initializer) names.Add(t.Name);
            foreach (var v in g.Input) names.Add(v.Name);
            foreach (var v in g.Output) names.Add(v.Name);
            foreach (var node in g.Node)
            {
                names.UnionWith(node.Output);
                names.UnionWith(node.Input);
            }
        }
        return names;
    }

    private static void RoundTo(float[] values, int type)
    {
        if (type == (int)DataType.Float16)
            for (int i = 0; i < values.Length; i++) values[i] = (float)(Half)values[i];
        else if (type == (int)DataType.Bfloat16)
            for (int i = 0; i < values.Length; i++) values[i] = RoundToBfloat16(values[i]);
    }

    private static float RoundToBfloat16(float value)
    {
        if (float.IsNaN(value)) return value;
        uint bits = BitConverter.SingleToUInt32Bits(value);
        bits += 0x7FFF + ((bits >> 16) & 1);   // round to nearest, ties to even
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000);
    }

    private static float[] Transpose(float[] values, int rows, int columns)
    {
        var result = new float[values.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                result[(long)c * rows + r] = values[(long)r * columns + c];
        return result;
    }

    private static AttributeProto IntAttribute(string name, long value) => new() { Name = name, Type = AttributeType.Int, I = value };

    private static bool IsDefaultDomain(string? domain) => string.IsNullOrEmpty(domain) || domain == "ai.onnx";

    private static string NodeLabel(NodeProto node) => string.IsNullOrEmpty(node.Name) ? $"MatMul -> {node.Output.FirstOrDefault()}" : node.Name;

    /// <summary>One graph's names, with the graphs around it for the values a subgraph reads from outside.</summary>
    private sealed class Scope
    {
        private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
        private readonly Dictionary<string, TensorProto> _initializers = new(StringComparer.Ordinal);

        public Scope(GraphProto graph, Scope? parent)
        {
            Graph = graph;
            Parent = parent;
            foreach (var node in graph.Node)
                foreach (var output in node.Output)
                    if (output.Length > 0) _producers[output] = node;
            foreach (var t in graph.Initializer) _initializers[t.Name] = t;
            Inputs = graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        }

        public GraphProto Graph { get; }
        public Scope? Parent { get; }
        public HashSet<string> Inputs { get; }

        /// <summary>The node or initializer that defines <paramref name="name"/>, searching outwards.</summary>
        public (Scope? Owner, NodeProto? Producer, TensorProto? Initializer) Resolve(string name)
        {
            for (var s = this; s is not null; s = s.Parent)
            {
                if (s._producers.TryGetValue(name, out var node)) return (s, node, null);
                if (s._initializers.TryGetValue(name, out var t)) return (s, null, t);
                if (s.Inputs.Contains(name)) return (s, null, null);
            }
            return (null, null, null);
        }
    }
}
