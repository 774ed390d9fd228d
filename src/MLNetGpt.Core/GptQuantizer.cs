using MLNetGpt.Quantization;

namespace MLNetGpt;

/// <summary>
/// Quantizes the weights of a model folder to 4 or 8 bits for ONNX Runtime: every MatMul whose
/// second input is a constant weight becomes a <c>com.microsoft.MatMulNBits</c> node, which reads
/// a quarter (4 bits) or half (8 bits) of the bytes per token of a float16/float32 weight.
/// </summary>
/// <remarks>
/// The output is a model folder like the input: every ONNX file its layout uses is quantized (Optimum
/// <c>model.onnx</c>, <c>decoder_model_merged.onnx</c>, the <c>decoder_model.onnx</c> +
/// <c>decoder_with_past_model.onnx</c> pair, the file <c>genai_config.json</c> names, and
/// <c>onnx/*.onnx</c>), the other files a model reads (configurations, tokenizer files, chat templates;
/// see <see cref="GptModelInfo.Files"/>) are copied and nothing else of the folder, and the model card
/// (<c>README.md</c>) gains a section saying what was done. Every file is read through the folder's
/// file policy: a link leading out of the folder is refused, naming it and its target (docs/security.md).
/// Open the output with <see cref="GptModel.Open"/> as any other folder.
/// Static and thread-safe; quantizing a model of a few million weights takes well under a second.
/// </remarks>
/// <example>
/// <code>
/// var report = GptQuantizer.Quantize("models/mlnetgpt-kjv", "models/mlnetgpt-kjv-int4", new QuantizationOptions { Bits = 4 });
/// Console.WriteLine($"{report.MatMulsRewritten} MatMuls, {report.BytesBefore} -> {report.BytesAfter} bytes");
/// </code>
/// </example>
public static class GptQuantizer
{
    /// <summary>Quantizes the model folder <paramref name="inputFolder"/> into <paramref name="outputFolder"/>, which must be new or empty.</summary>
    /// <param name="inputFolder">A model folder (Optimum, ONNX Runtime GenAI or onnx-community layout).</param>
    /// <param name="outputFolder">Where the quantized folder is written; created if absent, refused if it holds anything.</param>
    /// <param name="options">Bits, block size, symmetry and accuracy level.</param>
    /// <param name="progress">Receives one line per step (file started, MatMul quantized, file written).</param>
    /// <param name="cancellationToken">Stops between MatMuls; what was written is removed.</param>
    /// <exception cref="GptModelException">The input folder does not exist, holds no ONNX model, or a model cannot be read.</exception>
    /// <exception cref="IOException">The output folder is not empty, or is the input folder or inside it.</exception>
    public static QuantizationReport Quantize(string inputFolder, string outputFolder, QuantizationOptions options,
        IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(inputFolder);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputFolder);
        ArgumentNullException.ThrowIfNull(options);
        return FolderQuantizer.Quantize(inputFolder, outputFolder, options, progress, cancellationToken);
    }
}
