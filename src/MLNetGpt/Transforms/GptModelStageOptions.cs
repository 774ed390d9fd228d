namespace MLNetGpt;

/// <summary>
/// The options every model-backed stage takes (<c>GenerateTokens</c>, <c>GenerateText</c>,
/// <c>ScoreText</c>, and stages built on them): the model folder, rows per run, device, CPU threads
/// and how a saved pipeline keeps the model.
/// </summary>
public abstract class GptModelStageOptions
{
    private int _batchSize = 8;
    private int? _intraOpThreads;

    private protected GptModelStageOptions() { }

    /// <summary>The model folder (any layout <see cref="GptModel.Open"/> accepts).</summary>
    public required string ModelFolder { get; set; }

    /// <summary>Rows processed together (&gt; 0). Default 8.</summary>
    public int BatchSize
    {
        get => _batchSize;
        set => _batchSize = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(BatchSize), value, "BatchSize must be greater than 0.");
    }

    /// <summary>The device; <see langword="null"/> uses the MLContext's <c>GpuDeviceId</c> and <c>FallbackToCpu</c>.</summary>
    public GptDevice? Device { get; set; }

    /// <summary>ONNX Runtime intra-op threads on the CPU; <see langword="null"/> lets ONNX Runtime choose.</summary>
    public int? IntraOpThreads
    {
        get => _intraOpThreads;
        set => _intraOpThreads = value is null || value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(IntraOpThreads), value, "IntraOpThreads must be 1 or more.");
    }

    /// <summary>For an onnx-community folder, the precision to open (see <see cref="GptModelOptions.Variant"/>); null picks one for the device.</summary>
    public string? Variant { get; set; }

    /// <summary>How a saved pipeline keeps the model folder.</summary>
    public ModelStorage Storage { get; set; } = ModelStorage.Reference;
}
