namespace MLNetGpt.Training;

/// <summary>The decoder architectures the training graph knows.</summary>
internal enum DecoderFamily
{
    /// <summary>LayerNorm, learned positions, GELU (tanh) MLP, biases.</summary>
    Gpt2,

    /// <summary>RMSNorm, rotary positions (rotate-half), grouped-query attention, SwiGLU MLP, no biases.</summary>
    Llama,
}

/// <summary>How a weight is kept in the source file.</summary>
internal enum WeightStorage
{
    Float32,

    /// <summary>float16 initializer behind a Cast to float32.</summary>
    Float16,

    /// <summary>com.microsoft MatMulNBits: blockwise 4 or 8 bits with scales (and optional zero points).</summary>
    Quantized,
}

/// <summary>The MatMulNBits inputs and attributes of a quantized weight.</summary>
internal sealed record QuantizedWeightInfo(string PackedName, string ScalesName, string? ZeroPointsName, int K, int N, int Bits, int BlockSize,
    bool HalfScales);

/// <summary>One weight tensor of the source model, as the training graph sees it (float32 values).</summary>
internal sealed class StoredWeight
{
    /// <summary>The source initializer (for a quantized weight: the packed B).</summary>
    public required string Name { get; init; }

    /// <summary>The float32 shape: as stored, or [N, K] (one row per output) for a quantized weight.</summary>
    public required int[] Shape { get; init; }

    public required WeightStorage Storage { get; init; }

    public QuantizedWeightInfo? Quantized { get; init; }

    public int Length => Shape.Aggregate(1, (a, b) => checked(a * b));

    public override string ToString() => $"'{Name}' [{string.Join(", ", Shape)}]";
}

/// <summary>A projection x·W (+ b) with W stored as [in, out], or as [out, in] (<see cref="OutByIn"/>, torch's Linear).</summary>
internal sealed class LinearWeight
{
    public required StoredWeight Weight { get; init; }

    /// <summary>The matrix is stored one row per output ([out, in]); the graph multiplies by its transpose.</summary>
    public required bool OutByIn { get; init; }

    public StoredWeight? Bias { get; init; }

    public int In => OutByIn ? Weight.Shape[1] : Weight.Shape[0];

    public int Out => OutByIn ? Weight.Shape[0] : Weight.Shape[1];
}

/// <summary>A LayerNorm (scale and bias) or RMSNorm (scale only).</summary>
internal sealed record NormWeights(StoredWeight Scale, StoredWeight? Bias);

/// <summary>One transformer block.</summary>
internal sealed class DecoderBlock
{
    public required NormWeights AttentionNorm { get; init; }

    /// <summary>Fused query/key/value projection (out = q | k | v), or null when <see cref="Query"/>, <see cref="Key"/>, <see cref="Value"/> are separate.</summary>
    public LinearWeight? QueryKeyValue { get; init; }

    public LinearWeight? Query { get; init; }
    public LinearWeight? Key { get; init; }
    public LinearWeight? Value { get; init; }
    public required LinearWeight Output { get; init; }
    public required NormWeights MlpNorm { get; init; }

    /// <summary>GPT-2's c_fc, Llama's up_proj.</summary>
    public required LinearWeight Up { get; init; }

    /// <summary>Llama's gate_proj (null for GPT-2).</summary>
    public LinearWeight? Gate { get; init; }

    /// <summary>GPT-2's MLP c_proj, Llama's down_proj.</summary>
    public required LinearWeight Down { get; init; }
}

/// <summary>
/// A vocabulary remapped inside the graph (the project's kit): interface ids pass through a constant table to
/// inner rows (ids without a row of their own share an unk row), and the output layer's inner logits plus a
/// constant bias are gathered back to one column per interface id.
/// </summary>
internal sealed class VocabularyRemap
{
    /// <summary>Interface id → inner row.</summary>
    public required int[] TokenMap { get; init; }

    /// <summary>The inner logits' constant bias (zeros when the graph adds none).</summary>
    public required float[] OutputBias { get; init; }

    /// <summary>The graph value holding the input-side table (a Constant node's output or an initializer).</summary>
    public required string InputTableValue { get; init; }

    /// <summary>The graph value holding the output-side table.</summary>
    public required string OutputTableValue { get; init; }

    /// <summary>The graph value holding the bias, or null when there is none.</summary>
    public string? BiasValue { get; init; }

    /// <summary>The inner row most interface ids share (the unk row).</summary>
    public int UnkRow { get; init; }
}

/// <summary>A decoder recognised in a model folder: its shape and where each weight is.</summary>
internal sealed class DecoderLayout
{
    public required string Folder { get; init; }

    /// <summary>The ONNX file read (relative to <see cref="Folder"/>).</summary>
    public required string ModelFile { get; init; }

    /// <summary>Every ONNX file of the folder's layout that carries these weights (written back).</summary>
    public required IReadOnlyList<string> ModelFiles { get; init; }

    public required DecoderFamily Family { get; init; }
    public required int Hidden { get; init; }
    public required int Heads { get; init; }
    public required int KeyValueHeads { get; init; }
    public required int HeadSize { get; init; }

    /// <summary>Ids the model takes (the interface vocabulary).</summary>
    public required int Vocabulary { get; init; }

    /// <summary>Rows of the token embedding (the inner vocabulary; equal to <see cref="Vocabulary"/> without a remap).</summary>
    public required int InnerVocabulary { get; init; }

    public required int MaxPositions { get; init; }
    public required float NormEpsilon { get; init; }
    public double RopeTheta { get; init; } = 10000.0;

    /// <summary>The graph's own rotary tables [positions, head_size / 2] (the GenAI builder's cos_cache / sin_cache), when it has them.</summary>
    public StoredWeight? RotaryCos { get; init; }
    public StoredWeight? RotarySin { get; init; }

    public required StoredWeight TokenEmbedding { get; init; }
    public StoredWeight? PositionEmbedding { get; init; }
    public required IReadOnlyList<DecoderBlock> Blocks { get; init; }
    public required NormWeights FinalNorm { get; init; }

    /// <summary>The output projection; null when it is the token embedding (tied).</summary>
    public LinearWeight? LmHead { get; init; }

    public VocabularyRemap? Remap { get; init; }

    /// <summary>Whether the graph quantizes any MatMul with accuracy_level above 0 (int8 activations: logits differ slightly from float).</summary>
    public bool LowPrecisionMatMuls { get; init; }

    public int Layers => Blocks.Count;

    public string Describe() =>
        $"{(Family == DecoderFamily.Gpt2 ? "GPT-2" : "Llama")} layout, {Layers} layers, width {Hidden}, {Heads} heads" +
        (KeyValueHeads != Heads ? $" ({KeyValueHeads} key/value heads)" : "") +
        $", {InnerVocabulary} embedding rows{(Remap is null ? "" : $" behind a {Vocabulary}-id remap")}, {MaxPositions} positions";

    /// <summary>Every weight the forward pass reads, each once.</summary>
    public IEnumerable<StoredWeight> AllWeights()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        IEnumerable<StoredWeight?> All()
        {
            yield return TokenEmbedding;
            yield return PositionEmbedding;
            foreach (var b in Blocks)
            {
                yield return b.AttentionNorm.Scale;
                yield return b.AttentionNorm.Bias;
                foreach (var l in new[] { b.QueryKeyValue, b.Query, b.Key, b.Value, b.Output, b.Up, b.Gate, b.Down })
                {
                    yield return l?.Weight;
                    yield return l?.Bias;
                }
                yield return b.MlpNorm.Scale;
                yield return b.MlpNorm.Bias;
            }
            yield return FinalNorm.Scale;
            yield return FinalNorm.Bias;
            yield return LmHead?.Weight;
            yield return LmHead?.Bias;
        }
        foreach (var w in All())
            if (w is not null && seen.Add(w.Name)) yield return w;
    }
}
