using System.Runtime.InteropServices;
using Google.Protobuf;
using MLNetGpt.Models.Onnx.Protos;
using DataType = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataType;
using AttributeType = MLNetGpt.Models.Onnx.Protos.AttributeProto.Types.AttributeType;

namespace MLNetGpt.Training;

/// <summary>
/// Writes an ONNX graph node by node: fresh value names, shared constants, inputs and outputs with
/// symbolic dimensions, and a final pass that drops nodes nothing reads.
/// </summary>
internal sealed class OnnxGraphBuilder
{
    public const int Opset = 17;

    private readonly Dictionary<string, string> _constants = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _counters = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public OnnxGraphBuilder(string name) => Graph = new GraphProto { Name = name };

    public GraphProto Graph { get; }

    /// <summary>A value name not used before, made from <paramref name="hint"/>.</summary>
    public string Fresh(string hint)
    {
        _counters.TryGetValue(hint, out int n);
        string name;
        do
        {
            name = n == 0 ? hint : $"{hint}_{n}";
            n++;
        }
        while (!_names.Add(name));
        _counters[hint] = n;
        return name;
    }

    /// <summary>Reserves a fixed name (a graph input or output); throws when it is taken.</summary>
    public string Reserve(string name) =>
        _names.Add(name) ? name : throw new InvalidOperationException($"The value name '{name}' is used twice.");

    /// <summary>Adds a node with one output named from <paramref name="hint"/>; returns that name.</summary>
    public string Node(string op, string hint, IEnumerable<string> inputs, params AttributeProto[] attributes) =>
        NodeWithOutputs(op, hint, inputs, [Fresh(hint)], attributes)[0];

    /// <summary>Adds a node whose outputs have the given names.</summary>
    public string[] NodeWithOutputs(string op, string hint, IEnumerable<string> inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = "n_" + outputs.FirstOrDefault(o => o.Length > 0) ?? hint };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return outputs;
    }

    /// <summary>Adds a node with <paramref name="count"/> fresh outputs.</summary>
    public string[] NodeN(string op, string hint, IEnumerable<string> inputs, int count, params AttributeProto[] attributes) =>
        NodeWithOutputs(op, hint, inputs, Enumerable.Range(0, count).Select(i => Fresh($"{hint}_out{i}")).ToArray(), attributes);

    /// <summary>A float32 scalar constant (shared).</summary>
    public string Scalar(float value) => Constant($"f:{BitConverter.SingleToInt32Bits(value):X8}", () =>
        Tensor("c_f", DataType.Float, MemoryMarshal.AsBytes(new[] { value }.AsSpan()).ToArray()));

    /// <summary>An int64 vector constant (shared).</summary>
    public string Int64s(params long[] values) => Constant("i:" + string.Join(",", values), () =>
        Tensor("c_i", DataType.Int64, MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), values.Length));

    /// <summary>An int64 scalar constant (shared).</summary>
    public string Int64Scalar(long value) => Constant($"s:{value}", () =>
        Tensor("c_s", DataType.Int64, MemoryMarshal.AsBytes(new[] { value }.AsSpan()).ToArray()));

    /// <summary>A float32 tensor constant (not shared).</summary>
    public string Floats(string hint, float[] values, params long[] dims)
    {
        var name = Fresh(hint);
        var tensor = new TensorProto { Name = name, DataType = (int)DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        tensor.Dims.AddRange(dims);
        Graph.Initializer.Add(tensor);
        return name;
    }

    private string Constant(string key, Func<TensorProto> make)
    {
        if (_constants.TryGetValue(key, out var existing)) return existing;
        var tensor = make();
        tensor.Name = Fresh(tensor.Name);
        Graph.Initializer.Add(tensor);
        _constants[key] = tensor.Name;
        return tensor.Name;
    }

    private static TensorProto Tensor(string name, DataType type, byte[] raw, params long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(raw) };
        t.Dims.AddRange(dims);
        return t;
    }

    /// <summary>Declares a graph input; a dimension is an int (fixed) or a string (symbolic).</summary>
    public string Input(string name, DataType type, params object[] dims)
    {
        Reserve(name);
        Graph.Input.Add(ValueInfo(name, type, dims));
        return name;
    }

    /// <summary>Declares a graph output produced under <paramref name="name"/>.</summary>
    public void Output(string name, DataType type, params object[] dims) => Graph.Output.Add(ValueInfo(name, type, dims));

    private static ValueInfoProto ValueInfo(string name, DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d switch
            {
                int i => new TensorShapeProto.Types.Dimension { DimValue = i },
                long l => new TensorShapeProto.Types.Dimension { DimValue = l },
                string s => new TensorShapeProto.Types.Dimension { DimParam = s },
                _ => throw new ArgumentException($"A dimension is an int or a string, not {d}."),
            });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    /// <summary>Renames the output <paramref name="from"/> of the node that produces it (a value nothing reads yet).</summary>
    public void RenameOutput(string from, string to)
    {
        for (int i = Graph.Node.Count - 1; i >= 0; i--)
        {
            var node = Graph.Node[i];
            int index = node.Output.IndexOf(from);
            if (index < 0) continue;
            node.Output[index] = to;
            foreach (var other in Graph.Node)
                for (int j = 0; j < other.Input.Count; j++)
                    if (other.Input[j] == from) other.Input[j] = to;
            return;
        }
        throw new InvalidOperationException($"No node produces '{from}'.");
    }

    /// <summary>Removes nodes none of whose outputs reach a graph output, and initializers nothing reads.</summary>
    public void RemoveUnused()
    {
        var needed = Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        var kept = new List<NodeProto>();
        for (int i = Graph.Node.Count - 1; i >= 0; i--)
        {
            var node = Graph.Node[i];
            if (!node.Output.Any(needed.Contains)) continue;
            kept.Add(node);
            foreach (var input in node.Input)
                if (input.Length > 0) needed.Add(input);
        }
        kept.Reverse();
        Graph.Node.Clear();
        Graph.Node.AddRange(kept);
        var unusedInitializers = Graph.Initializer.Where(t => !needed.Contains(t.Name)).ToList();
        foreach (var t in unusedInitializers) Graph.Initializer.Remove(t);
    }

    /// <summary>The model: this graph at ONNX opset 17, IR version 8.</summary>
    public ModelProto ToModel()
    {
        var model = new ModelProto { IrVersion = 8, ProducerName = "MLNetGpt.Training", Graph = Graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        return model;
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeType.Float, F = value };

    public static AttributeProto String(string name, string value) => new() { Name = name, Type = AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}
