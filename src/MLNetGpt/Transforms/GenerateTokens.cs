using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetGpt.Generation;
using MLNetGpt.Transforms;

[assembly: LoadableClass(typeof(MLNetGpt.GenerateTokensTransformer), null, typeof(SignatureLoadModel),
    "MLNetGpt Generate Tokens", MLNetGpt.GenerateTokensTransformer.LoaderSignature)]

namespace MLNetGpt;

/// <summary>The options shared by the generating stages (<c>GenerateTokens</c>, <c>GenerateText</c>).</summary>
public abstract class GenerationStageOptions
{
    private int _batchSize = 8;
    private int? _intraOpThreads;

    private protected GenerationStageOptions() { }

    /// <summary>The model folder (Optimum or ONNX Runtime GenAI layout).</summary>
    public required string ModelFolder { get; set; }

    /// <summary>
    /// Decoding controls. Unset values take the model's <c>generation_config.json</c>; an unset
    /// <see cref="GenerationOptions.Seed"/> takes the MLContext's seed.
    /// </summary>
    public GenerationOptions Generation { get; set; } = new();

    /// <summary>Rows generated together (&gt; 0). Default 8.</summary>
    public int BatchSize
    {
        get => _batchSize;
        set => _batchSize = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(BatchSize), value, "BatchSize must be greater than 0.");
    }

    /// <summary>
    /// Give a finished row's batch slot to the next row at once (the default), rather than waiting
    /// for the whole batch. Outputs are identical either way; only speed differs.
    /// </summary>
    public bool ContinuousBatching { get; set; } = true;

    /// <summary>The device; <see langword="null"/> uses the MLContext's <c>GpuDeviceId</c> and <c>FallbackToCpu</c>.</summary>
    public GptDevice? Device { get; set; }

    /// <summary>ONNX Runtime intra-op threads on the CPU; <see langword="null"/> lets ONNX Runtime choose.</summary>
    public int? IntraOpThreads
    {
        get => _intraOpThreads;
        set => _intraOpThreads = value is null || value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(IntraOpThreads), value, "IntraOpThreads must be 1 or more.");
    }

    /// <summary>Also output why each row stopped (<c>eos</c>, <c>stop_string</c> or <c>length</c>) in this text column.</summary>
    public string? FinishReasonColumnName { get; set; }

    /// <summary>Also output each generated token's log-probability (Vector&lt;Single&gt;) in this column.</summary>
    public string? LogProbabilitiesColumnName { get; set; }

    /// <summary>How a saved pipeline keeps the model folder.</summary>
    public ModelStorage Storage { get; set; } = ModelStorage.Reference;

    /// <summary>Options for the GenerateTokens stage with these settings.</summary>
    internal GenerateTokensOptions ForTokens(string output, string input) => new()
    {
        OutputColumnName = output,
        InputColumnName = input,
        ModelFolder = ModelFolder,
        Generation = Generation,
        BatchSize = BatchSize,
        ContinuousBatching = ContinuousBatching,
        Device = Device,
        IntraOpThreads = IntraOpThreads,
        FinishReasonColumnName = FinishReasonColumnName,
        LogProbabilitiesColumnName = LogProbabilitiesColumnName,
        Storage = Storage,
    };
}

/// <summary>Options of <c>GenerateTokens</c>: prompt token ids to generated token ids.</summary>
public sealed class GenerateTokensOptions : GenerationStageOptions
{
    /// <summary>The output column of generated ids (Vector&lt;Int32&gt;, without the prompt or EOS).</summary>
    public required string OutputColumnName { get; set; }

    /// <summary>The input prompt-id column (Vector&lt;Int32&gt;); <see langword="null"/> means <see cref="OutputColumnName"/>.</summary>
    public string? InputColumnName { get; set; }
}

/// <summary>Estimator for <see cref="GenerateTokensTransformer"/>; nothing is trained.</summary>
public sealed class GenerateTokensEstimator : GptEstimatorBase<GenerateTokensTransformer>
{
    private readonly GenerateTokensOptions _options;

    internal GenerateTokensEstimator(IHostEnvironment env, GenerateTokensOptions options) : base(env)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        ModelSource.ForFolder(options.ModelFolder, options.Storage);   // fail early on a missing folder
    }

    private protected override string StageName => "GenerateTokens";

    internal override IEnumerable<(string Name, InputKind Kind)> InputColumns => [(_options.InputColumnName ?? _options.OutputColumnName, InputKind.TokenIds)];

    internal override IEnumerable<(string Name, DataViewType Type)> OutputColumns =>
        GenerateTokensTransformer.Outputs(_options.OutputColumnName, _options.FinishReasonColumnName, _options.LogProbabilitiesColumnName);

    /// <summary>Opens the model (shared with other stages using it).</summary>
    private protected override GenerateTokensTransformer CreateTransformer() => new(Environment, _options);
}

/// <summary>
/// Generates a continuation for the prompt ids of every row with the model's batched key/value-cache
/// loop. Empty prompts start from the BOS token. A seeded result depends only on the seed and the
/// row's prompt, never on the batch size or on neighbouring rows.
/// </summary>
public sealed class GenerateTokensTransformer : GptTransformerBase
{
    internal const string LoaderSignature = "MLNetGptGenerateTokens";
    private readonly ModelSource _source;
    private readonly ModelLease _lease;
    private readonly DecodingSettings _settings;

    internal GenerateTokensTransformer(IHostEnvironment env, GenerateTokensOptions options) : base(env, nameof(GenerateTokensTransformer))
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.OutputColumnName)) throw new ArgumentException("OutputColumnName is required.", nameof(options));
        OutputColumnName = options.OutputColumnName;
        InputColumnName = options.InputColumnName ?? options.OutputColumnName;
        FinishReasonColumnName = options.FinishReasonColumnName;
        LogProbabilitiesColumnName = options.LogProbabilitiesColumnName;
        Generation = (options.Generation ?? new GenerationOptions()).Clone();
        BatchSize = options.BatchSize;
        ContinuousBatching = options.ContinuousBatching;
        DeviceOverride = options.Device;
        IntraOpThreads = options.IntraOpThreads;
        _source = ModelSource.ForFolder(options.ModelFolder, options.Storage);
        (_lease, _settings) = Open(env);
    }

    private GenerateTokensTransformer(IHostEnvironment env, ModelLoadContext ctx) : base(env, nameof(GenerateTokensTransformer))
    {
        ctx.CheckAtModel(GetVersionInfo());
        // *** Binary format ***
        // string output, string input, string? finish reason column, string? log-probability column,
        // generation options, int batch size, bool continuous, device?, int? threads, model source
        var r = ctx.Reader;
        OutputColumnName = r.ReadString();
        InputColumnName = r.ReadString();
        FinishReasonColumnName = OptionsFormat.ReadString(r);
        LogProbabilitiesColumnName = OptionsFormat.ReadString(r);
        Generation = OptionsFormat.ReadGenerationOptions(r);
        BatchSize = r.ReadInt32();
        ContinuousBatching = r.ReadBoolean();
        DeviceOverride = OptionsFormat.ReadDevice(r);
        IntraOpThreads = OptionsFormat.ReadInt(r);
        _source = ModelSource.Load(ctx);
        (_lease, _settings) = Open(env);
    }

    private (ModelLease, DecodingSettings) Open(IHostEnvironment env)
    {
        Device = DeviceOverride ?? DeviceOf(env);
        var lease = ModelCache.Acquire(_source.Folder!, Device, IntraOpThreads, Warn);
        var options = Generation.Clone();
        options.Seed ??= SeedOf(env);
        if (LogProbabilitiesColumnName is not null) options.ReturnLogProbabilities = true;
        try
        {
            return (lease, lease.Model.Resolve(options));
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    /// <summary>The output column of generated ids.</summary>
    public string OutputColumnName { get; }

    /// <summary>The input column of prompt ids.</summary>
    public string InputColumnName { get; }

    /// <summary>The finish-reason column, if any.</summary>
    public string? FinishReasonColumnName { get; }

    /// <summary>The log-probability column, if any.</summary>
    public string? LogProbabilitiesColumnName { get; }

    /// <summary>The decoding controls as given (unset values come from the model and the MLContext).</summary>
    public GenerationOptions Generation { get; }

    /// <summary>Rows generated together.</summary>
    public int BatchSize { get; }

    /// <summary>Whether finished rows' slots are refilled at once.</summary>
    public bool ContinuousBatching { get; }

    /// <summary>The device given in the options (null: the MLContext's).</summary>
    public GptDevice? DeviceOverride { get; }

    /// <summary>The device this transformer asked for.</summary>
    public GptDevice Device { get; private set; } = GptDevice.Cpu;

    /// <summary>Intra-op threads given in the options.</summary>
    public int? IntraOpThreads { get; }

    /// <summary>The opened model: its layout, shapes, tokenizer and the execution provider in use.</summary>
    public GptModelInfo ModelInfo => _lease.Model.Info;

    private protected override string StageName => "GenerateTokens";

    internal override IReadOnlyList<(string Name, InputKind Kind)> InputColumns => [(InputColumnName, InputKind.TokenIds)];

    internal override IReadOnlyList<(string Name, DataViewType Type)> OutputColumns => Outputs(OutputColumnName, FinishReasonColumnName, LogProbabilitiesColumnName);

    internal static IReadOnlyList<(string Name, DataViewType Type)> Outputs(string output, string? finishReason, string? logProbabilities)
    {
        var list = new List<(string, DataViewType)> { (output, new VectorDataViewType(NumberDataViewType.Int32)) };
        if (finishReason is not null) list.Add((finishReason, TextDataViewType.Instance));
        if (logProbabilities is not null) list.Add((logProbabilities, new VectorDataViewType(NumberDataViewType.Single)));
        return list;
    }

    internal override int LookAhead => BatchSize;

    internal GptModel Model => _lease.Model;

    internal override RowStreamMapper CreateMapper() => new Mapper(this);

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "GPTGENTK", verWrittenCur: 0x00010001, verReadableCur: 0x00010001, verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(GenerateTokensTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        var w = ctx.Writer;
        w.Write(OutputColumnName);
        w.Write(InputColumnName);
        OptionsFormat.Write(w, FinishReasonColumnName);
        OptionsFormat.Write(w, LogProbabilitiesColumnName);
        OptionsFormat.Write(w, Generation);
        w.Write(BatchSize);
        w.Write(ContinuousBatching);
        OptionsFormat.Write(w, DeviceOverride);
        OptionsFormat.Write(w, IntraOpThreads);
        _source.Save(ctx, tokenizerOnly: false);
    }


    /// <summary>The finish reason as the text the finish-reason column holds.</summary>
    public static string FinishReasonText(FinishReason reason) => reason switch
    {
        FinishReason.Eos => "eos",
        FinishReason.StopString => "stop_string",
        _ => "length",
    };

    internal object?[] OutputsOf(GenerationResult result)
    {
        var ids = result.TokenIds.ToArray();
        var outputs = new List<object?> { new VBuffer<int>(ids.Length, ids) };
        if (FinishReasonColumnName is not null) outputs.Add(FinishReasonText(result.FinishReason).AsMemory());
        if (LogProbabilitiesColumnName is not null)
        {
            var lp = result.LogProbabilities?.ToArray() ?? [];
            outputs.Add(new VBuffer<float>(lp.Length, lp));
        }
        return outputs.ToArray();
    }

    /// <summary>Releases this stage's share of the model.</summary>
    public override void Dispose() => _lease.Dispose();

    private sealed class Mapper : RowStreamMapper
    {
        private readonly GenerateTokensTransformer _owner;
        private readonly DecodeLoop _loop;
        private IRowSource? _source;
        private Action<long, object?[]>? _emit;

        public Mapper(GenerateTokensTransformer owner)
        {
            _owner = owner;
            _loop = owner.Model.CreateLoop(owner._settings, owner.BatchSize, owner.ContinuousBatching,
                (index, result) => _emit!(index, owner.OutputsOf(result)));
        }

        public override bool Step(IRowSource source, Action<long, object?[]> emit, CancellationToken cancellationToken)
        {
            _source = source;
            _emit = emit;
            var outcome = _loop.Step(Admit, cancellationToken);
            if (outcome == StepOutcome.Idle)
                throw new InvalidOperationException("GenerateTokens: the cursor asked for a row that was never admitted.");
            return outcome != StepOutcome.Done;
        }

        private AdmitKind Admit(out PreparedPrompt prompt)
        {
            prompt = default;
            var result = _source!.TryPull(out var row);
            if (result != PullResult.Row) return result == PullResult.Wait ? AdmitKind.Wait : AdmitKind.End;
            try
            {
                prompt = _owner.Model.Prompts.FromIds((int[])row!.Values[0]!, checked((int)row.Index), _owner._settings);
            }
            catch (ArgumentException e)
            {
                throw new InvalidOperationException($"{_owner.Describe(row!.Index, _owner.InputColumnName)}: {e.Message}", e);
            }
            return AdmitKind.Prompt;
        }

        public override void Dispose() => _loop.Dispose();
    }
}
