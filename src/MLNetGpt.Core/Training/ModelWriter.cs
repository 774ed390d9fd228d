using System.Runtime.InteropServices;
using Google.Protobuf;
using MLNetGpt.Models;
using MLNetGpt.Models.Onnx;
using MLNetGpt.Models.Onnx.Protos;
using MLNetGpt.Quantization;
using DataType = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataType;
using DataLocation = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataLocation;

namespace MLNetGpt.Training;

/// <summary>
/// Writes a trained model folder: each ONNX file of the source layout with only its weights' data replaced
/// (float16 where the source stores float16, re-quantized with the project's block quantizer where it stores
/// MatMulNBits; LoRA factors merged into their weights; a vocabulary extension appended to the embedding and its
/// remap tables), and the files a model reads copied (ModelOutputFolder).
/// </summary>
internal static class ModelWriter
{
    public static void Write(TrainingGraph graph, string outputFolder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(outputFolder);
        var layout = graph.Layout;
        string input = Path.GetFullPath(layout.Folder);
        string output = Path.GetFullPath(outputFolder);
        var weights = CurrentWeights(graph);
        ModelOutputFolder.Write(input, "model folder", output, () =>
        {
            var written = new HashSet<string>(StringComparer.Ordinal);
            foreach (var relative in layout.ModelFiles)
            {
                var model = OnnxModelFile.Load(Path.Combine(input, relative));
                foreach (var (weight, values, rows) in weights) Replace(model, weight, values, rows, relative);
                if (graph.VocabularyExtension.Count > 0) WriteRemap(model, graph, relative);
                string target = Path.Combine(output, relative);
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                model.Save(target);
                written.Add(Normalize(relative));
            }
            // The configuration, tokenizer, chat-template files and model card, through the folder's file policy.
            return ModelOutputFolder.CopyCompanions(ModelFiles.For(input), output, written);
        });
    }

    /// <summary>The weights whose values changed, with their new values and row counts (an extended embedding has more rows).</summary>
    private static List<(StoredWeight Weight, float[] Values, int Rows)> CurrentWeights(TrainingGraph graph)
    {
        var layout = graph.Layout;
        var values = graph.Values;
        var changed = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var p in graph.Parameters)
            if (layout.AllWeights().Any(w => w.Name == p.Name)) changed[p.Name] = p.Value;
        foreach (var factor in graph.LoraFactors)
        {
            string name = factor.Base.Weight.Name;
            if (!changed.TryGetValue(name, out var merged)) changed[name] = merged = (float[])values[name].Clone();
            Merge(merged, factor, values[factor.AName], values[factor.BName]);
        }

        var result = new List<(StoredWeight, float[], int)>();
        int n = graph.VocabularyExtension.Count;
        foreach (var weight in layout.AllWeights())
        {
            bool isTable = weight.Name == layout.TokenEmbedding.Name;
            bool isHead = layout.LmHead is { } head && weight.Name == head.Weight.Name;
            float[]? current = changed.GetValueOrDefault(weight.Name);
            if (n > 0 && (isTable || isHead))
            {
                var extension = values[isTable ? TrainingGraphEmitter.ExtensionWeight : TrainingGraphEmitter.ExtensionHead];
                current = [.. current ?? values[weight.Name], .. extension];
                result.Add((weight, current, weight.Shape[0] + n));
            }
            else if (current is not null)
            {
                result.Add((weight, current, weight.Shape[0]));
            }
        }
        return result;
    }

    /// <summary>W += scale·(A·B), in W's orientation, over the slice of outputs the factor adapts.</summary>
    private static void Merge(float[] weight, LoraFactor f, float[] a, float[] b)
    {
        int inputs = f.Base.In, outputs = f.Base.Out, rank = f.Rank;
        var row = new double[f.Width];
        for (int i = 0; i < inputs; i++)
        {
            Array.Clear(row);
            for (int r = 0; r < rank; r++)
            {
                double air = a[i * rank + r];
                if (air == 0) continue;
                for (int o = 0; o < f.Width; o++) row[o] += air * b[r * f.Width + o];
            }
            for (int o = 0; o < f.Width; o++)
            {
                long index = f.Base.OutByIn ? (long)(f.OutOffset + o) * inputs + i : (long)i * outputs + f.OutOffset + o;
                weight[index] = (float)(weight[index] + f.Scale * row[o]);
            }
        }
    }

    private static TensorProto Find(OnnxModelFile model, string name, string file) =>
        OnnxGraphs.All(model.Graph).SelectMany(g => g.Initializer).FirstOrDefault(t => t.Name == name)
        ?? throw new GptModelException($"'{file}' has no initializer '{name}' to write the trained weight into.");

    private static void Replace(OnnxModelFile model, StoredWeight weight, float[] values, int rows, string file)
    {
        var dims = weight.Shape.Select(d => (long)d).ToArray();
        dims[0] = rows;
        switch (weight.Storage)
        {
            case WeightStorage.Float32:
                SetData(Find(model, weight.Name, file), DataType.Float, MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), dims);
                break;
            case WeightStorage.Float16:
            {
                var halves = new Half[values.Length];
                for (int i = 0; i < halves.Length; i++) halves[i] = (Half)values[i];
                SetData(Find(model, weight.Name, file), DataType.Float16, MemoryMarshal.AsBytes(halves.AsSpan()).ToArray(), dims);
                break;
            }
            case WeightStorage.Quantized:
            {
                var q = weight.Quantized!;
                var quantized = BlockQuantizer.Quantize(values, q.K, q.N, q.Bits, q.BlockSize, symmetric: q.ZeroPointsName is null, halfScales: q.HalfScales);
                var packed = Find(model, q.PackedName, file);
                SetData(packed, DataType.Uint8, quantized.Packed, packed.Dims.ToArray());
                var scales = Find(model, q.ScalesName, file);
                byte[] scaleBytes = q.HalfScales
                    ? MemoryMarshal.AsBytes(quantized.Scales.Select(s => (Half)s).ToArray().AsSpan()).ToArray()
                    : MemoryMarshal.AsBytes(quantized.Scales.AsSpan()).ToArray();
                SetData(scales, q.HalfScales ? DataType.Float16 : DataType.Float, scaleBytes, scales.Dims.ToArray());
                if (q.ZeroPointsName is { } zp)
                {
                    var zeroPoints = Find(model, zp, file);
                    SetData(zeroPoints, DataType.Uint8, quantized.ZeroPoints!, zeroPoints.Dims.ToArray());
                }
                break;
            }
        }
    }

    /// <summary>Replaces a tensor's data (kept inline; the writer moves large tensors to external data as usual).</summary>
    private static void SetData(TensorProto tensor, DataType type, byte[] raw, long[] dims)
    {
        tensor.DataType = (int)type;
        tensor.Dims.Clear();
        tensor.Dims.AddRange(dims);
        tensor.FloatData.Clear();
        tensor.Int32Data.Clear();
        tensor.Int64Data.Clear();
        tensor.DoubleData.Clear();
        tensor.Uint64Data.Clear();
        tensor.ExternalData.Clear();
        tensor.ClearDataLocation();
        tensor.RawData = UnsafeByteOperations.UnsafeWrap(raw);
    }

    /// <summary>
    /// Rewrites the remap tables (every int tensor holding the source's id → row table) and the output bias (every
    /// float tensor holding the source's inner bias) of one file, wherever they are: initializers or Constant nodes, in
    /// any branch. Matching by content finds them in every file of a layout, whose generated value names differ.
    /// </summary>
    private static void WriteRemap(OnnxModelFile model, TrainingGraph graph, string file)
    {
        var remap = graph.Layout.Remap!;
        int[] map = graph.TokenMap!;
        float[] bias = [.. remap.OutputBias, .. graph.Values[TrainingGraphEmitter.ExtensionBias]];
        int tables = 0, biases = 0;
        foreach (var tensor in OnnxGraphs.AllTensors(model.Model))
        {
            if (tensor.Dims.Count != 1) continue;
            if (tensor.Dims[0] == remap.TokenMap.Length && tensor.DataType is (int)DataType.Int32 or (int)DataType.Int64)
            {
                var raw = model.ReadData(tensor).Span;
                bool same = tensor.DataType == (int)DataType.Int32
                    ? MemoryMarshal.Cast<byte, int>(raw).SequenceEqual(remap.TokenMap)
                    : MemoryMarshal.Cast<byte, long>(raw).ToArray().Select(v => (int)v).SequenceEqual(remap.TokenMap);
                if (!same) continue;
                byte[] data = tensor.DataType == (int)DataType.Int32
                    ? MemoryMarshal.AsBytes(map.AsSpan()).ToArray()
                    : MemoryMarshal.AsBytes(map.Select(v => (long)v).ToArray().AsSpan()).ToArray();
                SetData(tensor, (DataType)tensor.DataType, data, [map.Length]);
                tables++;
            }
            else if (tensor.Dims[0] == remap.OutputBias.Length && tensor.DataType == (int)DataType.Float
                && model.ReadFloats(tensor).AsSpan().SequenceEqual(remap.OutputBias))
            {
                SetData(tensor, DataType.Float, MemoryMarshal.AsBytes(bias.AsSpan()).ToArray(), [bias.Length]);
                biases++;
            }
        }
        if (tables == 0 || biases == 0)
            throw new GptModelException($"'{file}' does not hold the vocabulary remap table and output bias the model was read with; the extension cannot be written.");
        // Shapes recorded for intermediate values name the old number of rows.
        foreach (var g in OnnxGraphs.All(model.Graph)) g.ValueInfo.Clear();
    }

    private static string Normalize(string relative) => relative.Replace('\\', '/');
}
