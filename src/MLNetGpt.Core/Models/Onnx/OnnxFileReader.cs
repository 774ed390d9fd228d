using Google.Protobuf;
using MLNetGpt.Models.Onnx.Protos;

namespace MLNetGpt.Models.Onnx;

/// <summary>Where the raw bytes of a tensor sit in the file it was read from.</summary>
internal readonly record struct FileRange(long Offset, long Length);

/// <summary>
/// Reads an ONNX file into a <see cref="ModelProto"/> without reading the raw data of the main
/// graph's initializers: the model, the graph and each initializer are scanned field by field,
/// every other field is parsed as usual (unknown fields included), and each initializer's
/// <c>raw_data</c> is stepped over by seeking, leaving its position in the file. So opening a
/// model of any size costs about the size of its graph, not of its weights.
/// </summary>
internal static class OnnxFileReader
{
    private const int ModelGraphField = 7;
    private const int GraphInitializerField = 5;
    private const int TensorRawDataField = 9;

    public static (ModelProto Model, Dictionary<TensorProto, FileRange> RawData) Read(Stream stream, string fileName)
    {
        var scanner = new WireScanner(stream, fileName);
        var rawData = new Dictionary<TensorProto, FileRange>(ReferenceEqualityComparer.Instance);
        var rest = new MemoryStream();
        GraphProto? graph = null;
        long end = scanner.Length;
        while (scanner.TryReadTag(end, out int field, out int wireType))
        {
            if (field == ModelGraphField && wireType == WireScanner.LengthDelimited)
            {
                if (graph is not null) throw scanner.Corrupt("two graph fields (a model holds one graph)");
                long graphEnd = scanner.ReadLengthAndEnd(end);
                graph = ReadGraph(scanner, graphEnd, rawData);
            }
            else
            {
                scanner.CopyField(field, wireType, end, rest);
            }
        }
        if (graph is null) throw scanner.Corrupt("no graph");
        var model = Parse(ModelProto.Parser, rest, scanner);
        model.Graph = graph;
        return (model, rawData);
    }

    private static GraphProto ReadGraph(WireScanner scanner, long end, Dictionary<TensorProto, FileRange> rawData)
    {
        var rest = new MemoryStream();
        var initializers = new List<TensorProto>();
        while (scanner.TryReadTag(end, out int field, out int wireType))
        {
            if (field == GraphInitializerField && wireType == WireScanner.LengthDelimited)
            {
                long tensorEnd = scanner.ReadLengthAndEnd(end);
                initializers.Add(ReadTensor(scanner, tensorEnd, rawData));
            }
            else
            {
                scanner.CopyField(field, wireType, end, rest);
            }
        }
        var graph = Parse(GraphProto.Parser, rest, scanner);
        graph.Initializer.AddRange(initializers);
        return graph;
    }

    private static TensorProto ReadTensor(WireScanner scanner, long end, Dictionary<TensorProto, FileRange> rawData)
    {
        var rest = new MemoryStream();
        FileRange? raw = null;
        while (scanner.TryReadTag(end, out int field, out int wireType))
        {
            if (field == TensorRawDataField && wireType == WireScanner.LengthDelimited)
            {
                long payloadEnd = scanner.ReadLengthAndEnd(end);
                raw = new FileRange(scanner.Position, payloadEnd - scanner.Position);   // a repeated field: the last one counts
                scanner.Seek(payloadEnd);
            }
            else
            {
                scanner.CopyField(field, wireType, end, rest);
            }
        }
        var tensor = Parse(TensorProto.Parser, rest, scanner);
        if (raw is { } range) rawData[tensor] = range;
        return tensor;
    }

    private static T Parse<T>(MessageParser<T> parser, MemoryStream bytes, WireScanner scanner) where T : IMessage<T>
    {
        try
        {
            return parser.ParseFrom(new ReadOnlySpan<byte>(bytes.GetBuffer(), 0, (int)bytes.Length));
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new GptModelException($"'{scanner.FileName}' is not a valid ONNX model file: {e.Message}", e);
        }
    }
}
