using MLNetGpt.Models.Onnx;
using MLNetGpt.Models.Onnx.Protos;

namespace MLNetGpt.Training;

/// <summary>Reads a model's weights as float32 arrays on the pinned heap (MatMulNBits weights dequantized).</summary>
internal static class SourceWeights
{
    /// <summary>A float32 array ONNX Runtime can read in place for as long as it lives.</summary>
    public static float[] Pinned(int length) => GC.AllocateArray<float>(length, pinned: true);

    public static float[] Read(OnnxModelFile file, StoredWeight weight)
    {
        var values = Pinned(weight.Length);
        if (weight.Quantized is { } q)
        {
            Dequantize(file, q, values);
            return values;
        }
        var tensor = Find(file, weight.Name);
        float[] read = file.ReadFloats(tensor);
        if (read.Length != values.Length)
            throw new GptModelException($"'{file.SourcePath}': weight '{weight.Name}' holds {read.Length} values, not {values.Length}.");
        read.CopyTo(values, 0);
        return values;
    }

    public static TensorProto Find(OnnxModelFile file, string name) =>
        file.FindInitializer(name) ?? throw new GptModelException($"'{file.SourcePath}' has no initializer '{name}'.");

    /// <summary>W[n, k] = (code − zero point) · scale, as MatMulNBits multiplies by it (one row per output column n).</summary>
    public static void Dequantize(OnnxModelFile file, QuantizedWeightInfo q, float[] rowsByOutput)
    {
        var packed = file.ReadData(Find(file, q.PackedName)).Span;
        float[] scales = file.ReadFloats(Find(file, q.ScalesName));
        byte[]? zeroPoints = q.ZeroPointsName is null ? null : file.ReadData(Find(file, q.ZeroPointsName)).ToArray();
        int blocks = (q.K + q.BlockSize - 1) / q.BlockSize;
        int blob = q.BlockSize * q.Bits / 8;
        int zeroPointStride = (blocks * q.Bits + 7) / 8;
        if (packed.Length != (long)q.N * blocks * blob || scales.Length != q.N * blocks)
            throw new GptModelException($"'{file.SourcePath}': MatMulNBits weight '{q.PackedName}' holds {packed.Length} bytes and {scales.Length} scales, " +
                $"not {(long)q.N * blocks * blob} and {q.N * blocks} for K {q.K}, N {q.N}, block {q.BlockSize}, {q.Bits} bits.");
        int defaultZero = 1 << (q.Bits - 1);
        for (int n = 0; n < q.N; n++)
        {
            for (int b = 0; b < blocks; b++)
            {
                float scale = scales[n * blocks + b];
                int zero = defaultZero;
                if (zeroPoints is not null)
                {
                    byte z = zeroPoints[n * zeroPointStride + b * q.Bits / 8];
                    zero = q.Bits == 8 ? z : (b % 2 == 0 ? z & 0xF : z >> 4);
                }
                int start = b * q.BlockSize, end = Math.Min(q.K, start + q.BlockSize);
                int offset = (n * blocks + b) * blob;
                for (int k = start; k < end; k++)
                {
                    int i = k - start;
                    int code = q.Bits == 8 ? packed[offset + i] : (packed[offset + i / 2] >> (i % 2 * 4)) & 0xF;
                    rowsByOutput[(long)n * q.K + k] = (code - zero) * scale;
                }
            }
        }
    }
}
