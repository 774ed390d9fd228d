namespace MLNetGpt.Quantization;

/// <summary>
/// A weight matrix <c>B[K, N]</c> quantized block-wise along K in the layout of ONNX Runtime's
/// <c>com.microsoft.MatMulNBits</c>: for every output column n, <see cref="BlockCount"/> blocks of
/// <see cref="BlockSize"/> values (K padded with zeros), each stored as a blob of
/// <see cref="BlobSize"/> bytes with its own scale and zero point.
/// </summary>
internal sealed class QuantizedWeight
{
    public required int K { get; init; }
    public required int N { get; init; }
    public required int Bits { get; init; }
    public required int BlockSize { get; init; }

    /// <summary><c>[N, BlockCount, BlobSize]</c>; for 4 bits the even element of a pair is the low nibble.</summary>
    public required byte[] Packed { get; init; }

    /// <summary><c>[N * BlockCount]</c>, already rounded to the type they are stored in.</summary>
    public required float[] Scales { get; init; }

    /// <summary>
    /// <c>[N * ceil(BlockCount * Bits / 8)]</c>: for 4 bits two per byte (even block in the low nibble,
    /// each column starting a new byte), for 8 bits one per byte; null when symmetric, where
    /// MatMulNBits assumes <c>2^(bits-1)</c>.
    /// </summary>
    public byte[]? ZeroPoints { get; init; }

    public int BlockCount => (K + BlockSize - 1) / BlockSize;

    public int BlobSize => BlockSize * Bits / 8;

    public int ZeroPointBytesPerColumn => (BlockCount * Bits + 7) / 8;
}

/// <summary>Block-wise min/max quantization of weight matrices to 4 or 8 bits.</summary>
/// <remarks>
/// Asymmetric blocks map [min(0, lowest), max(0, highest)] onto 0 .. 2^bits - 1 with a zero point,
/// so zero (and K's padding) is exact and every value is within half a step of its code.
/// Symmetric blocks map [-amax, amax] onto codes around 2^(bits-1) with a step of amax / (2^(bits-1) - 1),
/// again within half a step. The step is rounded to the scale's storage type before the codes are chosen.
/// </remarks>
internal static class BlockQuantizer
{
    /// <summary>Quantizes <c>B[k, n]</c>, given as <paramref name="columns"/>: <c>columns[c * k + r] = B[r, c]</c>.</summary>
    /// <remarks><paramref name="halfScales"/>: the scales will be stored as float16 (the MatMul runs in float16).</remarks>
    public static QuantizedWeight Quantize(float[] columns, int k, int n, int bits, int blockSize, bool symmetric, bool halfScales,
        CancellationToken cancellationToken = default)
    {
        if (bits is not (4 or 8)) throw new ArgumentOutOfRangeException(nameof(bits), bits, "Bits must be 4 or 8.");
        if (columns.Length != (long)k * n) throw new ArgumentException($"Expected {(long)k * n} values for [{k}, {n}], got {columns.Length}.", nameof(columns));
        int blocks = (k + blockSize - 1) / blockSize;
        int blob = blockSize * bits / 8;
        int zeroPointBytes = (blocks * bits + 7) / 8;
        var packed = new byte[(long)n * blocks * blob];
        var scales = new float[(long)n * blocks];
        var zeroPoints = symmetric ? null : new byte[(long)n * zeroPointBytes];
        int maxCode = (1 << bits) - 1;
        int middle = 1 << (bits - 1);

        var parallel = new ParallelOptions { CancellationToken = cancellationToken };
        Parallel.For(0, n, parallel, () => new int[blockSize], (column, _, codes) =>
        {
            var values = columns.AsSpan(column * k, k);
            for (int b = 0; b < blocks; b++)
            {
                int start = b * blockSize;
                var block = values.Slice(start, Math.Min(blockSize, k - start));
                float scale;
                int zeroPoint;
                if (symmetric)
                {
                    float amax = 0;
                    foreach (float v in block) amax = MathF.Max(amax, MathF.Abs(v));
                    scale = Round(amax / (middle - 1), halfScales);
                    zeroPoint = middle;
                }
                else
                {
                    float lo = 0, hi = 0;
                    foreach (float v in block)
                    {
                        lo = MathF.Min(lo, v);
                        hi = MathF.Max(hi, v);
                    }
                    scale = Round((hi - lo) / maxCode, halfScales);
                    zeroPoint = scale == 0 ? 0 : Math.Clamp((int)MathF.Round(-lo / scale), 0, maxCode);
                }

                for (int i = 0; i < blockSize; i++)
                {
                    // Past K the block is padded with zeros, whose code is the zero point.
                    int code = zeroPoint;
                    if (i < block.Length && scale != 0) code = Math.Clamp((int)MathF.Round(block[i] / scale) + zeroPoint, 0, maxCode);
                    codes[i] = code;
                }

                long blobStart = ((long)column * blocks + b) * blob;
                if (bits == 8)
                {
                    for (int i = 0; i < blockSize; i++) packed[blobStart + i] = (byte)codes[i];
                }
                else
                {
                    for (int i = 0; i < blob; i++) packed[blobStart + i] = (byte)(codes[2 * i] | (codes[2 * i + 1] << 4));
                }

                scales[(long)column * blocks + b] = scale;
                if (zeroPoints is not null)
                {
                    long row = (long)column * zeroPointBytes;
                    if (bits == 8) zeroPoints[row + b] = (byte)zeroPoint;
                    else zeroPoints[row + b / 2] |= (byte)(b % 2 == 0 ? zeroPoint : zeroPoint << 4);
                }
            }
            return codes;
        }, _ => { });

        return new QuantizedWeight
        {
            K = k,
            N = n,
            Bits = bits,
            BlockSize = blockSize,
            Packed = packed,
            Scales = scales,
            ZeroPoints = zeroPoints,
        };
    }

    private static float Round(float scale, bool toHalf) => toHalf ? (float)(Half)scale : scale;
}
