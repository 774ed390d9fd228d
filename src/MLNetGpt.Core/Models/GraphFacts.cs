using MLNetGpt.Models.Onnx;
using MLNetGpt.Models.Onnx.Protos;

namespace MLNetGpt.Models;

/// <summary>
/// What the ONNX graph itself says beyond its inputs and outputs (read with <see cref="OnnxModelFile"/>,
/// without loading the weights): whether attention is ONNX Runtime's GroupQueryAttention (whose
/// cache rows are right-padded and indexed by <c>seqlens_k</c>), its head counts, and how many
/// positions the position table or rotary cache holds.
/// </summary>
internal sealed class GraphFacts
{
    public static readonly GraphFacts None = new();

    /// <summary>The graph uses com.microsoft GroupQueryAttention.</summary>
    public bool GroupQueryAttention { get; private init; }

    /// <summary>GroupQueryAttention's <c>num_heads</c> attribute (query heads), when the graph has one.</summary>
    public int? AttentionHeads { get; private init; }

    /// <summary>Rows of the table position ids index (learned position embeddings), when the graph has one.</summary>
    public int? PositionTableRows { get; private init; }

    /// <summary>Rows of the rotary cos cache (GroupQueryAttention or RotaryEmbedding), when the graph has one.</summary>
    public int? RotaryCacheRows { get; private init; }

    /// <summary>The initializer behind <see cref="PositionTableRows"/> or <see cref="RotaryCacheRows"/>, for messages.</summary>
    public string? PositionSource { get; private init; }

    /// <summary>The most positions the graph can address, when it reveals it.</summary>
    public int? MaxPositions => PositionTableRows is int table ? RotaryCacheRows is int rotary ? Math.Min(table, rotary) : table : RotaryCacheRows;

    /// <summary>Reads the facts of one decoder file; a file the reader cannot parse gives no facts (ONNX Runtime reports real damage).</summary>
    public static GraphFacts Read(string path)
    {
        OnnxModelFile file;
        try
        {
            file = OnnxModelFile.Load(path);
        }
        catch (Exception e) when (e is IOException or Google.Protobuf.InvalidProtocolBufferException or InvalidOperationException or FormatException)
        {
            return None;
        }
        var graph = file.Graph;
        var initializers = file.Initializers.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var producers = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
            foreach (var output in node.Output)
                producers[output] = node;
        var inputs = file.Inputs.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);

        // An initializer, possibly behind a Cast (weights stored as float16) or an Identity.
        OnnxInitializer? Constant(string name)
        {
            for (int depth = 0; depth < 4; depth++)
            {
                if (initializers.TryGetValue(name, out var init)) return init;
                if (!producers.TryGetValue(name, out var node) || node.OpType is not ("Cast" or "Identity") || node.Input.Count == 0) return null;
                name = node.Input[0];
            }
            return null;
        }

        // Whether a value derives from a graph input named like positions or the attention mask. Memoised: a graph
        // whose nodes take many inputs would otherwise be walked once per path (fan-out to the eighth power).
        var known = new Dictionary<(string, int), bool>();
        bool FromPositions(string name, int depth)
        {
            if (inputs.Contains(name)) return name.Contains("position", StringComparison.OrdinalIgnoreCase) || name.Contains("mask", StringComparison.OrdinalIgnoreCase);
            if (depth == 0 || !producers.TryGetValue(name, out var node)) return false;
            if (known.TryGetValue((name, depth), out bool result)) return result;
            result = node.Input.Where(i => i.Length > 0 && !initializers.ContainsKey(i)).Any(i => FromPositions(i, depth - 1));
            known[(name, depth)] = result;
            return result;
        }

        bool gqa = false;
        int? heads = null, table = null, rotary = null;
        string? source = null;
        foreach (var node in graph.Node)
        {
            if (node.Domain == "com.microsoft" && node.OpType == "GroupQueryAttention")
            {
                gqa = true;
                heads ??= (int?)node.Attribute.FirstOrDefault(a => a.Name == "num_heads")?.I;
                if (node.Input.Count > 7 && node.Input[7].Length > 0 && Constant(node.Input[7]) is { Dims.Length: 2 } cos)
                {
                    rotary = Min(rotary, (int)cos.Dims[0]);
                    source ??= cos.Name;
                }
            }
            else if (node.Domain == "com.microsoft" && node.OpType == "RotaryEmbedding" && node.Input.Count > 2 && Constant(node.Input[2]) is { Dims.Length: 2 } cos)
            {
                rotary = Min(rotary, (int)cos.Dims[0]);
                source ??= cos.Name;
            }
            else if (node.OpType == "Gather" && node.Domain is "" or "ai.onnx" && node.Input.Count == 2
                && Constant(node.Input[0]) is { Dims.Length: 2 } embedding && FromPositions(node.Input[1], 8))
            {
                table = Min(table, (int)embedding.Dims[0]);
                source = embedding.Name;
            }
        }
        return new GraphFacts { GroupQueryAttention = gqa, AttentionHeads = heads, PositionTableRows = table, RotaryCacheRows = rotary, PositionSource = source };
    }

    private static int Min(int? current, int value) => current is int c ? Math.Min(c, value) : value;
}
