namespace MLNetGpt;

/// <summary>
/// Options of <c>GenerateText</c>: prompt text to generated text, as the chain TokenizeText →
/// GenerateTokens → DecodeTokens (each stage also usable alone). The intermediate token columns
/// stay in the output, named by <see cref="PromptTokensColumnName"/> and <see cref="TokensColumnName"/>.
/// </summary>
public sealed class GenerateTextOptions
{
    private int _batchSize = 8;
    private int? _intraOpThreads;

    /// <summary>The output text column (the continuation, without the prompt).</summary>
    public required string OutputColumnName { get; set; }

    /// <summary>The prompt text column; <see langword="null"/> means <see cref="OutputColumnName"/>.</summary>
    public string? InputColumnName { get; set; }

    /// <summary>The model folder (Optimum or ONNX Runtime GenAI layout).</summary>
    public required string ModelFolder { get; set; }

    /// <summary>Decoding controls; see <see cref="GenerateTokensOptions.Generation"/>.</summary>
    public GenerationOptions Generation { get; set; } = new();

    /// <summary>Rows generated together (&gt; 0). Default 8.</summary>
    public int BatchSize
    {
        get => _batchSize;
        set => _batchSize = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(BatchSize), value, "BatchSize must be greater than 0.");
    }

    /// <summary>Refill finished rows' batch slots at once (default true).</summary>
    public bool ContinuousBatching { get; set; } = true;

    /// <summary>The device; <see langword="null"/> uses the MLContext's settings.</summary>
    public GptDevice? Device { get; set; }

    /// <summary>ONNX Runtime intra-op threads on the CPU.</summary>
    public int? IntraOpThreads
    {
        get => _intraOpThreads;
        set => _intraOpThreads = value is null || value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(IntraOpThreads), value, "IntraOpThreads must be 1 or more.");
    }

    /// <summary>Also output why each row stopped (<c>eos</c>, <c>stop_string</c>, <c>length</c>).</summary>
    public string? FinishReasonColumnName { get; set; }

    /// <summary>Also output each generated token's log-probability.</summary>
    public string? LogProbabilitiesColumnName { get; set; }

    /// <summary>The prompt token-id column; default <c>{OutputColumnName}_PromptTokens</c>.</summary>
    public string? PromptTokensColumnName { get; set; }

    /// <summary>The generated token-id column; default <c>{OutputColumnName}_Tokens</c>.</summary>
    public string? TokensColumnName { get; set; }

    /// <summary>How a saved pipeline keeps the model folder.</summary>
    public ModelStorage Storage { get; set; } = ModelStorage.Reference;
}
