using Microsoft.ML;
using Microsoft.ML.Runtime;
using MLNetGpt.Transforms;

namespace MLNetGpt;

/// <summary>
/// The stages that run a model (<c>GenerateTokens</c>, <c>ScoreText</c>, ...): the model folder and
/// how it is saved, the device and threads, and the transformer's hold on the shared model.
/// </summary>
/// <remarks>
/// <para>
/// Thread-safe: many threads may call <c>Transform</c> and read its cursors, or use their own
/// PredictionEngines of one fitted stage at once. The transformer owns a reference to its model;
/// every cursor and every prediction borrows one of its own while it runs.
/// </para>
/// <para>
/// <see cref="Dispose"/> gives up the transformer's reference (the ONNX Runtime sessions are freed
/// when no stage, cursor or prediction uses them any more). A disposed stage still works: its next
/// use opens the model again. This matters because ML.NET's PredictionEngine disposes the
/// transformer it was created from when the engine is disposed, even while other engines of the
/// same transformer are running.
/// </para>
/// </remarks>
public abstract class GptModelTransformerBase : GptTransformerBase
{
    private ModelHandle? _handle;

    private protected GptModelTransformerBase(IHostEnvironment env, string registrationName) : base(env, registrationName) { }

    /// <summary>The model folder (full path) and how a saved pipeline keeps it.</summary>
    private protected ModelSource Source { get; set; } = null!;

    /// <summary>The device given in the options (null: the MLContext's).</summary>
    public GptDevice? DeviceOverride { get; private protected set; }

    /// <summary>The device this transformer asked for.</summary>
    public GptDevice Device { get; private set; } = GptDevice.Cpu;

    /// <summary>Intra-op threads given in the options.</summary>
    public int? IntraOpThreads { get; private protected set; }

    /// <summary>The onnx-community precision given in the options, or null.</summary>
    public string? Variant { get; private protected set; }

    /// <summary>Rows processed together.</summary>
    public int BatchSize { get; private protected set; }

    /// <summary>The opened model: its layout, shapes, tokenizer and the execution provider in use.</summary>
    public GptModelInfo ModelInfo => Handle.Model.Info;

    private protected ModelHandle Handle => _handle ?? throw new InvalidOperationException($"{StageName}: the model was not opened.");

    /// <summary>The opened model itself (tests: its shared scheduler).</summary>
    internal GptModel Model => Handle.Model;

    /// <summary>The draft model folder the stage's model opens with (generating stages; null for the others).</summary>
    private protected virtual string? DraftFolder => null;

    /// <summary>Opens (or shares) the model on the device the options or the MLContext ask for.</summary>
    private protected void OpenModel(IHostEnvironment env)
    {
        Device = DeviceOverride ?? DeviceOf(env);
        _handle = new ModelHandle(Source.Folder!, Device, IntraOpThreads, Variant, DraftFolder, Warn);
    }

    /// <summary>Takes the settings every model stage has from <paramref name="options"/>.</summary>
    private protected void TakeModelOptions(GptModelStageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Source = ModelSource.ForFolder(options.ModelFolder, options.Storage);
        BatchSize = options.BatchSize;
        DeviceOverride = options.Device;
        IntraOpThreads = options.IntraOpThreads;
        Variant = options.Variant;
    }

    /// <summary>Writes the settings every model stage has.</summary>
    private protected void WriteModelSettings(StageSettingsWriter w) =>
        w.Int("batch_size", BatchSize).Device(DeviceOverride).Int("intra_op_threads", IntraOpThreads).String("variant", Variant);

    /// <summary>Reads the settings every model stage has.</summary>
    private protected void ReadModelSettings(StageSettingsReader r)
    {
        BatchSize = r.Int("batch_size") ?? 8;
        if (BatchSize < 1) throw new FormatException($"{StageName} in the saved pipeline: 'batch_size' must be 1 or more, but is {BatchSize}.");
        DeviceOverride = r.Device();
        IntraOpThreads = r.Int("intra_op_threads");
        Variant = r.String("variant");
    }

    /// <summary>Gives up this stage's reference to the model (see the remarks: the stage stays usable).</summary>
    public override void Dispose() => _handle?.Dispose();
}
