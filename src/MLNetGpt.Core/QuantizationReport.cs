namespace MLNetGpt;

/// <summary>What <see cref="GptQuantizer.Quantize"/> did to a model folder.</summary>
public sealed class QuantizationReport
{
    internal QuantizationReport(QuantizationOptions options, int matMulsRewritten, IReadOnlyList<SkippedMatMul> skipped,
        IReadOnlyList<string> quantizedFiles, long bytesBefore, long bytesAfter, IReadOnlyList<string> filesWritten)
    {
        Bits = options.Bits;
        BlockSize = options.BlockSize;
        Symmetric = options.Symmetric;
        AccuracyLevel = options.AccuracyLevel;
        MatMulsRewritten = matMulsRewritten;
        Skipped = skipped;
        QuantizedFiles = quantizedFiles;
        BytesBefore = bytesBefore;
        BytesAfter = bytesAfter;
        FilesWritten = filesWritten;
    }

    /// <summary>Bits per weight that were used.</summary>
    public int Bits { get; }

    /// <summary>Block size that was used.</summary>
    public int BlockSize { get; }

    /// <summary>Whether the blocks are symmetric (no zero points).</summary>
    public bool Symmetric { get; }

    /// <summary>The <c>accuracy_level</c> written into every MatMulNBits node.</summary>
    public int AccuracyLevel { get; }

    /// <summary>MatMul nodes rewritten into MatMulNBits, over all ONNX files (and subgraphs) of the folder.</summary>
    public int MatMulsRewritten { get; }

    /// <summary>MatMul nodes left as they were, each with the reason (typically: B is an activation, not a weight).</summary>
    public IReadOnlyList<SkippedMatMul> Skipped { get; }

    /// <summary>The ONNX files that were quantized, relative to the folder.</summary>
    public IReadOnlyList<string> QuantizedFiles { get; }

    /// <summary>Bytes of the quantized ONNX files (with their external data) before quantization.</summary>
    public long BytesBefore { get; }

    /// <summary>Bytes of the same ONNX files (with their external data) after quantization.</summary>
    public long BytesAfter { get; }

    /// <summary>Every file written to the output folder, relative to it: the quantized models, their external data, the copied files and the model card.</summary>
    public IReadOnlyList<string> FilesWritten { get; }

    /// <summary>A MatMul the quantizer left as it was.</summary>
    /// <param name="File">The ONNX file, relative to the model folder.</param>
    /// <param name="Node">The node's name.</param>
    /// <param name="Reason">Why it was not quantized.</param>
    public sealed record SkippedMatMul(string File, string Node, string Reason);
}
