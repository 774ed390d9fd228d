namespace MLNetGpt.Tests.Quantization;

/// <summary>
/// A plain reading of MatMulNBits' inputs, written from ONNX Runtime's operator documentation
/// (docs/ContribOperators.md) and independent of the quantizer: B is uint8 [N, k_blocks, blob_size]
/// with the quantized values of each column packed along K (for 4 bits the first value of a byte in
/// its low 4 bits), scales are [N * k_blocks], zero points are packed like B per column (for 4 bits
/// ceil(k_blocks / 2) bytes a column) and default to 2^(bits - 1) when absent; a weight is
/// (quantized - zero point) * scale.
/// </summary>
internal static class MatMulNBitsReference
{
    /// <summary>The dequantized weight W[K, N] (<c>w[k * n + j]</c>).</summary>
    public static double[] Dequantize(byte[] b, float[] scales, byte[]? zeroPoints, int k, int n, int bits, int blockSize)
    {
        int blocks = (k + blockSize - 1) / blockSize;
        int blobSize = blockSize * bits / 8;
        int zeroPointStride = (blocks * bits + 7) / 8;
        var w = new double[k * n];
        for (int column = 0; column < n; column++)
        {
            for (int row = 0; row < k; row++)
            {
                int block = row / blockSize, within = row % blockSize;
                int bitOffset = within * bits;
                byte packed = b[column * blocks * blobSize + block * blobSize + bitOffset / 8];
                int code = bits == 8 ? packed : (packed >> (bitOffset % 8)) & 0xF;
                int zero = 1 << (bits - 1);
                if (zeroPoints is not null)
                {
                    int zpBit = block * bits;
                    byte z = zeroPoints[column * zeroPointStride + zpBit / 8];
                    zero = bits == 8 ? z : (z >> (zpBit % 8)) & 0xF;
                }
                w[row * n + column] = (code - zero) * (double)scales[column * blocks + block];
            }
        }
        return w;
    }

    /// <summary>A[M, K] x W[K, N] in double.</summary>
    public static double[] MatMul(float[] a, double[] w, int m, int k, int n)
    {
        var y = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int r = 0; r < k; r++) sum += a[i * k + r] * w[r * n + j];
                y[i * n + j] = sum;
            }
        return y;
    }

    /// <summary>Sum over K of |A[i, r] * W[r, j]|: the size against which a rounding error of the product is measured.</summary>
    public static double[] AbsoluteProducts(float[] a, double[] w, int m, int k, int n)
    {
        var y = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int r = 0; r < k; r++) sum += Math.Abs(a[i * k + r] * w[r * n + j]);
                y[i * n + j] = sum;
            }
        return y;
    }
}
