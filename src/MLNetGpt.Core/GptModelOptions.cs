using Microsoft.ML.Tokenizers;

namespace MLNetGpt;

/// <summary>How to open a model folder: device, threads, tokenizer and logging.</summary>
/// <remarks>Read once by <see cref="GptModel.Open(string, GptModelOptions?)"/>; later changes do not affect an open model.</remarks>
public sealed class GptModelOptions
{
    private int? _gpuDeviceId;
    private int? _intraOpThreads;
    private ChatTemplateLimits _chatTemplateLimits = new();

    /// <summary>
    /// The CUDA device to run on, or <see langword="null"/> for the CPU (the default), as
    /// <c>MLContext.GpuDeviceId</c>. CUDA needs an NVIDIA driver, CUDA 13.x and cuDNN 9.
    /// </summary>
    public int? GpuDeviceId
    {
        get => _gpuDeviceId;
        set => _gpuDeviceId = value is null || value >= 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(GpuDeviceId), value, "The GPU device id must be 0 or more.");
    }

    /// <summary>
    /// When CUDA was asked for but cannot start, run on the CPU and log why (the default,
    /// as <c>MLContext.FallbackToCpu</c>) instead of throwing <see cref="GptModelException"/>.
    /// </summary>
    public bool FallbackToCpu { get; set; } = true;

    /// <summary>
    /// For an onnx-community folder (decoders under <c>onnx/</c>): the precision to open, by the file's
    /// suffix: <c>fp32</c> (<c>model.onnx</c>), <c>fp16</c>, <c>q4</c>, <c>q4f16</c>, <c>int8</c>, <c>uint8</c>,
    /// <c>quantized</c> (or <c>q8</c>), <c>bnb4</c>. <see langword="null"/> (the default) picks fp32 on the CPU,
    /// else the first of q4, int8, uint8, quantized, q4f16, fp16, bnb4 that exists; on CUDA fp16, then
    /// q4f16, fp32, q4 and the rest. Other layouts ignore it.
    /// </summary>
    public string? Variant { get; set; }

    /// <summary>Threads ONNX Runtime may use inside one operator on the CPU; <see langword="null"/> lets ONNX Runtime choose.</summary>
    public int? IntraOpThreads
    {
        get => _intraOpThreads;
        set => _intraOpThreads = value is null || value > 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(IntraOpThreads), value, "Intra-op threads must be 1 or more.");
    }

    /// <summary>
    /// ONNX Runtime session configuration entries added to every session of the model, e.g.
    /// <c>session.intra_op.allow_spinning = 0</c> or <c>session.dynamic_block_base = 4</c>
    /// (keys as in ONNX Runtime's <c>onnxruntime_session_options_config_keys.h</c>). Empty by default.
    /// ONNX Runtime reads the entries it knows and ignores others without an error.
    /// </summary>
    public IDictionary<string, string> SessionConfig { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// A tokenizer to use instead of the one the folder describes, e.g. one made with
    /// <c>TiktokenTokenizer.CreateForModel("gpt2")</c>.
    /// </summary>
    public Tokenizer? Tokenizer { get; set; }

    /// <summary>
    /// A named encoding to use when the folder has no tokenizer files: <c>gpt2</c>, <c>r50k_base</c>,
    /// <c>cl100k_base</c> or <c>o200k_base</c>.
    /// </summary>
    public string? TokenizerEncoding { get; set; }

    /// <summary>
    /// The budget of every chat-template render of the model (steps, prompt length, value sizes, allocation, template
    /// length): a template from a downloaded folder cannot hang or exhaust the process. The defaults suit every known
    /// chat template by a wide margin; raise one when an error names it. Copied when the model opens. Not null.
    /// </summary>
    public ChatTemplateLimits ChatTemplateLimits
    {
        get => _chatTemplateLimits;
        set => _chatTemplateLimits = value ?? throw new ArgumentNullException(nameof(ChatTemplateLimits), "GptModelOptions.ChatTemplateLimits cannot be null; use new ChatTemplateLimits() for the defaults.");
    }

    /// <summary>Receives warnings and notes (execution-provider fallback, prompt truncation). Default: <see cref="System.Diagnostics.Trace"/>.</summary>
    public Action<string>? Log { get; set; }

    internal void Write(string message)
    {
        if (Log is { } log) log(message);
        else System.Diagnostics.Trace.WriteLine(message, "MLNetGpt");
    }
}
