namespace MLNetGpt;

/// <summary>
/// How <see cref="GptQuantizer"/> quantizes the weights of a model's MatMuls (ONNX Runtime's
/// <c>com.microsoft.MatMulNBits</c> layout, block-wise along the input dimension).
/// </summary>
/// <remarks>Each setter validates its value and throws <see cref="ArgumentOutOfRangeException"/> naming the option.</remarks>
public sealed class QuantizationOptions
{
    private int _bits = 4;
    private int _blockSize = 32;
    private int _accuracyLevel = 4;

    /// <summary>
    /// Bits per weight: 4 (the smallest and fastest; default) or 8 (closer to the original).
    /// On the default model, 4 bits cost +0.5% held-out perplexity and 8 bits +0.04%.
    /// </summary>
    public int Bits
    {
        get => _bits;
        set => _bits = value is 4 or 8 ? value
            : throw new ArgumentOutOfRangeException(nameof(Bits), value, $"Bits must be 4 or 8, not {value}.");
    }

    /// <summary>
    /// Weights per block along the input dimension, each block with its own scale (and zero point):
    /// a power of two of at least 16; default 32. Smaller blocks are more accurate and larger.
    /// </summary>
    public int BlockSize
    {
        get => _blockSize;
        set => _blockSize = value >= 16 && (value & (value - 1)) == 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(BlockSize), value, $"BlockSize must be a power of two of at least 16 (16, 32, 64, ...), not {value}.");
    }

    /// <summary>
    /// Whether blocks are symmetric around zero, without zero points (slightly smaller files,
    /// slightly less accurate). Default false: each block stores its own zero point.
    /// </summary>
    public bool Symmetric { get; set; }

    /// <summary>
    /// MatMulNBits' <c>accuracy_level</c>, 0 to 4: the least precise type ONNX Runtime may compute
    /// with. 0 (unset) and 1 mean float32, 2 float16, 3 bfloat16, and 4 (default) lets it quantize
    /// the activations to int8 per block and use integer dot products.
    /// </summary>
    /// <remarks>
    /// The default is 4 because of measurements on the default model (x64, ONNX Runtime 1.31 CPU):
    /// at level 4 it costs +0.03 percentage points of held-out perplexity against level 0, and it is
    /// ONNX Runtime's only fast CPU kernel for 8 bits: int8 weights ran at 2.1x the float32 tokens/s at
    /// level 4 but 0.1x at level 0, where every call dequantizes the whole weight first. 4-bit weights
    /// ran at 1.9x at either level. On x64 CPUs levels 0 to 3 all compute in float32.
    /// </remarks>
    public int AccuracyLevel
    {
        get => _accuracyLevel;
        set => _accuracyLevel = value is >= 0 and <= 4 ? value
            : throw new ArgumentOutOfRangeException(nameof(AccuracyLevel), value, $"AccuracyLevel must be 0, 1, 2, 3 or 4, not {value}.");
    }
}
