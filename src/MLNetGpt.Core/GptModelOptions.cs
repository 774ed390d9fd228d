using Microsoft.ML.Tokenizers;

namespace MLNetGpt;

/// <summary>How to open a model folder: device, threads, tokenizer, logging, the shared generation loop's bounds and a draft model.</summary>
/// <remarks>Read once by <see cref="GptModel.Open(string, GptModelOptions?)"/>; later changes do not affect an open model.</remarks>
public sealed class GptModelOptions
{
    private int? _gpuDeviceId;
    private int? _intraOpThreads;
    private ChatTemplateLimits _chatTemplateLimits = new();
    private int _maxBatchSize = 64;
    private int _maxQueuedRequests = 1024;
    private int _maxPrefillTokensPerStep = 512;
    private int? _maxTokensPerRequest;

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

    /// <summary>
    /// The most rows the model's shared generation loop runs at once (&gt;= 1): every <c>Generate</c>,
    /// <c>GenerateStreamingAsync</c> and <see cref="GptChatClient"/> call, and the ML.NET stages' cursors, join one
    /// batch (see docs/serving.md). A batch call's own batch size is the most of its prompts in that batch at once.
    /// Default 64.
    /// </summary>
    public int MaxBatchSize
    {
        get => _maxBatchSize;
        set => _maxBatchSize = value >= 1 ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxBatchSize), value, "The maximum batch size must be 1 or more.");
    }

    /// <summary>
    /// The most requests that may wait for a batch slot (&gt;= 1). A request beyond it throws
    /// <see cref="GptModelException"/> (a server answers "too many requests"), or waits for room when
    /// <see cref="WaitWhenQueueFull"/> is set. Batch calls always wait. Default 1024.
    /// </summary>
    public int MaxQueuedRequests
    {
        get => _maxQueuedRequests;
        set => _maxQueuedRequests = value >= 1 ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxQueuedRequests), value, "The maximum number of queued requests must be 1 or more.");
    }

    /// <summary>When the queue is full (<see cref="MaxQueuedRequests"/>), wait for room (in arrival order) instead of throwing. Default false.</summary>
    public bool WaitWhenQueueFull { get; set; }

    /// <summary>
    /// The most prompt tokens the shared loop prefills in one step (&gt;= 1). Waiting requests are admitted in arrival
    /// order until the next would exceed it; a longer prompt is prefilled in chunks of this size, and prefill and
    /// decode steps alternate while rows are decoding, so a long prompt delays the running rows by one chunk at a time.
    /// Default 512.
    /// </summary>
    public int MaxPrefillTokensPerStep
    {
        get => _maxPrefillTokensPerStep;
        set => _maxPrefillTokensPerStep = value >= 1 ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxPrefillTokensPerStep), value, "The prefill budget per step must be 1 or more tokens.");
    }

    /// <summary>
    /// The most tokens (prompt and output) one request may hold (&gt;= 2), below the model's context window: a longer
    /// prompt is cut or refused as <see cref="GenerationOptions.PromptOverflow"/> says, and generation stops there with
    /// <see cref="FinishReason.Length"/>. <see langword="null"/> (the default): the context window.
    /// </summary>
    public int? MaxTokensPerRequest
    {
        get => _maxTokensPerRequest;
        set => _maxTokensPerRequest = value is null || value >= 2 ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxTokensPerRequest), value, "The most tokens per request must be 2 or more.");
    }

    /// <summary>
    /// A smaller model folder with the same tokenizer that proposes tokens for speculative decoding (Hugging Face's
    /// <c>assistant_model</c>), verified by this model in one forward pass per step: results are the same with or
    /// without it (greedy and seeded), only speed differs. It is opened with these options on the CPU and used for
    /// batches of up to 4 rows, proposing as many tokens per step as its measured acceptance and cost make worthwhile.
    /// Ignored, with a note in the log, on CUDA. <see langword="null"/> (the default): none.
    /// </summary>
    public string? DraftModelFolder { get; set; }

    /// <summary>Receives warnings and notes (execution-provider fallback, prompt truncation). Default: <see cref="System.Diagnostics.Trace"/>.</summary>
    public Action<string>? Log { get; set; }

    internal void Write(string message)
    {
        if (Log is { } log) log(message);
        else System.Diagnostics.Trace.WriteLine(message, "MLNetGpt");
    }
}
