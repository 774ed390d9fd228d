using System.Runtime.InteropServices;
using MLNetGpt.Models.Onnx;
using MLNetGpt.Models.Onnx.Protos;

namespace MLNetGpt.Models;

/// <summary>
/// A graph's map from the tokenizer's ids onto a smaller inner vocabulary, as the model kit writes it for the default
/// model (tools/gptkit.py): a constant integer vector with one entry per interface id, gathered by <c>input_ids</c>,
/// whose entries are the inner ids; the ids never seen when the model was trained all share the last inner id,
/// <c>unk</c>. Knowing the map, the trainer can say how much of a text the model cannot tell apart and choose the ids a
/// vocabulary extension gives rows of their own.
/// </summary>
internal sealed class VocabularyMap
{
    private readonly int[] _inner;

    private VocabularyMap(int[] inner, int? unk)
    {
        _inner = inner;
        Unk = unk;
    }

    /// <summary>The interface ids (the length of the map).</summary>
    public int InterfaceSize => _inner.Length;

    /// <summary>The inner id that several interface ids share, or null when every id has a row of its own.</summary>
    public int? Unk { get; }

    /// <summary>Interface ids with a row of their own.</summary>
    public int KeptCount => Unk is int unk ? _inner.Count(v => v != unk) : _inner.Length;

    /// <summary>The inner row <paramref name="id"/> reads (<paramref name="id"/> itself outside the map).</summary>
    public int InnerId(int id) => id >= 0 && id < _inner.Length ? _inner[id] : id;

    /// <summary>Whether <paramref name="id"/> has an inner row of its own (ids outside the map have none).</summary>
    public bool IsKept(int id) => id >= 0 && id < _inner.Length && (Unk is not int unk || _inner[id] != unk);

    /// <summary>Reads the map of the ONNX file at <paramref name="path"/>; null when the graph has none.</summary>
    public static VocabularyMap? Read(string path)
    {
        var file = OnnxModelFile.Load(path);
        return Find(file);
    }

    /// <summary>The map of a loaded model; null when its graph gathers <c>input_ids</c> from no constant integer vector.</summary>
    public static VocabularyMap? Find(OnnxModelFile file)
    {
        var graph = file.Graph;
        string? ids = graph.Input.Select(i => i.Name).FirstOrDefault(n => n == "input_ids");
        if (ids is null) return null;
        var constants = new Dictionary<string, TensorProto>(StringComparer.Ordinal);
        foreach (var initializer in graph.Initializer) constants[initializer.Name] = initializer;
        foreach (var node in graph.Node)
        {
            if (node.OpType == "Constant" && node.Output.Count == 1 && node.Attribute.FirstOrDefault(a => a.Name == "value")?.T is { } value)
                constants[node.Output[0]] = value;
        }
        foreach (var node in graph.Node)
        {
            if (node.OpType != "Gather" || node.Domain is not ("" or "ai.onnx") || node.Input.Count != 2 || node.Input[1] != ids) continue;
            if (!constants.TryGetValue(node.Input[0], out var table) || table.Dims.Count != 1) continue;
            int[]? inner = table.DataType switch
            {
                (int)TensorProto.Types.DataType.Int32 => MemoryMarshal.Cast<byte, int>(file.ReadData(table).Span).ToArray(),
                (int)TensorProto.Types.DataType.Int64 => MemoryMarshal.Cast<byte, long>(file.ReadData(table).Span).ToArray().Select(v => checked((int)v)).ToArray(),
                _ => null,
            };
            if (inner is null || inner.Length == 0) continue;
            int max = inner.Max();
            return new VocabularyMap(inner, inner.Count(v => v == max) > 1 ? max : null);
        }
        return null;
    }

    /// <summary>The share of <paramref name="documents"/>' tokens that have no row of their own (0 for no tokens).</summary>
    public double UnkRate(IEnumerable<int[]> documents)
    {
        long all = 0, unknown = 0;
        foreach (var document in documents)
        {
            all += document.Length;
            foreach (int id in document)
                if (!IsKept(id)) unknown++;
        }
        return all == 0 ? 0 : (double)unknown / all;
    }

    /// <summary>
    /// The ids a vocabulary extension adds: the tokens of <paramref name="documents"/> without a row of their own, seen at
    /// least <paramref name="minimumCount"/> times, most frequent first (ties: the lower id first), at most
    /// <paramref name="limit"/>.
    /// </summary>
    public int[] ChooseExtension(IEnumerable<int[]> documents, int limit, int minimumCount = 2)
    {
        var counts = new Dictionary<int, int>();
        foreach (var document in documents)
            foreach (int id in document)
                if (!IsKept(id) && id >= 0 && id < _inner.Length)
                    counts[id] = counts.GetValueOrDefault(id) + 1;
        return counts.Where(kv => kv.Value >= minimumCount)
            .OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key)
            .Take(limit).Select(kv => kv.Key).ToArray();
    }
}
