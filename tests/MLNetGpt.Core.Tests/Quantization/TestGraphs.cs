using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Models.Onnx.Protos;
using DataType = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataType;
using AttributeType = MLNetGpt.Models.Onnx.Protos.AttributeProto.Types.AttributeType;

namespace MLNetGpt.Tests.Quantization;

/// <summary>Small ONNX graphs built with the protobuf classes, and a way to run them in ONNX Runtime.</summary>
internal static class TestGraphs
{
    public static ModelProto Model(GraphProto graph, params (string Domain, long Version)[] extraOpsets)
    {
        var model = new ModelProto { IrVersion = 8, ProducerName = "MLNetGpt.Tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        foreach (var (domain, version) in extraOpsets) model.OpsetImport.Add(new OperatorSetIdProto { Domain = domain, Version = version });
        return model;
    }

    public static ValueInfoProto Tensor(string name, DataType type, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string param ? new TensorShapeProto.Types.Dimension { DimParam = param }
                : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture) });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    public static NodeProto Node(string op, string name, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        return node;
    }

    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeType.Int, I = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    /// <summary>Runs a model on float inputs and returns every output as floats.</summary>
    public static Dictionary<string, float[]> Run(byte[] model, params (string Name, float[] Values, long[] Shape)[] inputs) =>
        Run(model, inputs, []);

    public static Dictionary<string, float[]> Run(byte[] model, (string Name, float[] Values, long[] Shape)[] inputs,
        (string Name, long[] Values, long[] Shape)[] integerInputs)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var session = new InferenceSession(model, options);
        var values = new List<OrtValue>();
        try
        {
            var names = new List<string>();
            foreach (var (name, data, shape) in inputs)
            {
                names.Add(name);
                values.Add(OrtValue.CreateTensorValueFromMemory(data, shape));
            }
            foreach (var (name, data, shape) in integerInputs)
            {
                names.Add(name);
                values.Add(OrtValue.CreateTensorValueFromMemory(data, shape));
            }
            var outputNames = session.OutputNames.ToList();
            using var run = new RunOptions();
            using var results = session.Run(run, names, values, outputNames);
            return outputNames.Zip(results).ToDictionary(p => p.First, p => p.Second.GetTensorDataAsSpan<float>().ToArray());
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    public static byte[] Bytes(ModelProto model) => model.ToByteArray();

    /// <summary>Values of mixed sizes and signs: some blocks all positive, one all zero, so every branch of the block quantizer runs.</summary>
    public static float[] Weights(int count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            int region = i / 16 % 5;
            double v = random.NextDouble() * 2 - 1;
            values[i] = region switch
            {
                0 => (float)(v * 0.05),
                1 => (float)(Math.Abs(v) * 0.3 + 0.01),     // all positive: the zero point sits at the bottom
                2 => (float)(v * 2.5),
                3 => i / 16 % 7 == 3 ? 0f : (float)(-Math.Abs(v) * 0.2),   // all negative, sometimes all zero
                _ => (float)(v * 0.8),
            };
        }
        return values;
    }
}
