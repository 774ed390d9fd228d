using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetGpt.Generation;
using MLNetGpt.Transforms;

[assembly: LoadableClass(typeof(MLNetGpt.GenerateTokensTransformer), null, typeof(SignatureLoadModel),
    "MLNetGpt Generate Tokens", MLNetGpt.GenerateTokensTransformer.LoaderSignature)]

namespace MLNetGpt;

/// <summary>The options shared by the generating stages (<c>GenerateTokens</c>, <c>GenerateText</c>).</summary>
public abstract class GenerationStageOptions : GptModelStageOptions
{
    private protected GenerationStageOptions() { }

    /// <summary>
    /// Decoding controls. Unset values take the model's <c>generation_config.json</c>; an unset
    /// <see cref="GenerationOptions.Seed"/> takes the MLContext's seed.
    /// </summary>
    public GenerationOptions Generation { get; set; } = new();

    /// <summary>
    /// Give a finished row's batch slot to the next row at once (the default), rather than waiting
    /// for the whole batch. Outputs are identical either way; only speed differs. With it, rows go to the
    /// model's shared generation loop, where concurrent cursors and prediction engines (and other callers
    /// of the same model) share one batch; without it, each cursor runs static batches of its own.
    /// </summary>
    public bool ContinuousBatching { get; set; } = true;

    /// <summary>
    /// A smaller model folder with the same tokenizer that proposes tokens for speculative decoding
    /// (see <see cref="GptModelOptions.DraftModelFolder"/>); outputs are identical with or without it. A saved
    /// pipeline keeps the folder's path, not its files. Default: none.
    /// </summary>
    public string? DraftModelFolder { get; set; }

    /// <summary>Also output why each row stopped (<c>eos</c>, <c>stop_string</c>, <c>length</c> or <c>constraint</c>) in this text column.</summary>
    public string? FinishReasonColumnName { get; set; }

    /// <summary>Also output each generated token's log-probability (Vector&lt;Single&gt;) in this column.</summary>
    public string? LogProbabilitiesColumnName { get; set; }

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
        Variant = Variant,
        DraftModelFolder = DraftModelFolder,
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
/// <remarks>Thread-safety and disposal: see <see cref="GptModelTransformerBase"/>.</remarks>
public sealed class GenerateTokensTransformer : GptModelTransformerBase
{
    internal const string LoaderSignature = "MLNetGptGenerateTokens";

    // Saved-format history (ModelVerWritten):
    //   0x00010001  MLNetGpt 0.1.0: binary settings (LegacyOptionsFormat), model source.
    //   0x00010002  JSON settings (StageSettings; decoding options under "generation" with Hugging
    //               Face's names), model source.
    private const uint VersionBinary = 0x00010001;
    private const uint VersionJson = 0x00010002;

    private DecodingSettings _settings = null!;

    internal GenerateTokensTransformer(IHostEnvironment env, GenerateTokensOptions options) : base(env, nameof(GenerateTokensTransformer))
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.OutputColumnName)) throw new ArgumentException("OutputColumnName is required.", nameof(options));
        TakeModelOptions(options);
        OutputColumnName = options.OutputColumnName;
        InputColumnName = options.InputColumnName ?? options.OutputColumnName;
        FinishReasonColumnName = options.FinishReasonColumnName;
        LogProbabilitiesColumnName = options.LogProbabilitiesColumnName;
        Generation = (options.Generation ?? new GenerationOptions()).Clone();
        ContinuousBatching = options.ContinuousBatching;
        DraftModelFolder = options.DraftModelFolder is null ? null : Path.GetFullPath(options.DraftModelFolder);
        Open(env);
    }

    private GenerateTokensTransformer(IHostEnvironment env, ModelLoadContext ctx) : base(env, nameof(GenerateTokensTransformer))
    {
        ctx.CheckAtModel(GetVersionInfo());
        var r = ctx.Reader;
        if (ctx.Header.ModelVerWritten == VersionBinary)
        {
            // string output, string input, string? finish reason column, string? log-probability column,
            // generation options, int batch size, bool continuous, device?, int? threads
            OutputColumnName = r.ReadString();
            InputColumnName = r.ReadString();
            FinishReasonColumnName = LegacyOptionsFormat.ReadString(r);
            LogProbabilitiesColumnName = LegacyOptionsFormat.ReadString(r);
            Generation = LegacyOptionsFormat.ReadGenerationOptions(r);
            BatchSize = r.ReadInt32();
            ContinuousBatching = r.ReadBoolean();
            DeviceOverride = LegacyOptionsFormat.ReadDevice(r);
            IntraOpThreads = LegacyOptionsFormat.ReadInt(r);
        }
        else
        {
            var s = new StageSettingsReader(r.ReadString(), StageName);
            OutputColumnName = s.RequiredString("output_column");
            InputColumnName = s.RequiredString("input_column");
            FinishReasonColumnName = s.String("finish_reason_column");
            LogProbabilitiesColumnName = s.String("log_probabilities_column");
            Generation = s.Generation("generation");
            ContinuousBatching = s.Bool("continuous_batching", true);
            DraftModelFolder = s.String("draft_model_folder");
            ReadModelSettings(s);
            s.EnsureAllRead();
        }
        Source = ModelSource.Load(ctx, Warn);
        Open(env);
    }

    private void Open(IHostEnvironment env)
    {
        OpenModel(env);
        var options = Generation.Clone();
        options.Seed ??= SeedOf(env);
        if (LogProbabilitiesColumnName is not null) options.ReturnLogProbabilities = true;
        try
        {
            _settings = Handle.Model.Engine.Resolve(options);
        }
        catch
        {
            Dispose();
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

    /// <summary>Whether finished rows' slots are refilled at once.</summary>
    public bool ContinuousBatching { get; }

    /// <summary>The draft model folder for speculative decoding (full path), or null.</summary>
    public string? DraftModelFolder { get; }

    private protected override string? DraftFolder => DraftModelFolder;

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

    internal override RowStreamMapper CreateMapper() => new Mapper(this);

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "GPTGENTK", verWrittenCur: VersionJson, verReadableCur: VersionJson, verWeCanReadBack: VersionBinary,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(GenerateTokensTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        var settings = new StageSettingsWriter()
            .String("output_column", OutputColumnName)
            .String("input_column", InputColumnName)
            .String("finish_reason_column", FinishReasonColumnName)
            .String("log_probabilities_column", LogProbabilitiesColumnName)
            .Generation("generation", Generation)
            .Bool("continuous_batching", ContinuousBatching)
            .String("draft_model_folder", DraftModelFolder);
        WriteModelSettings(settings);
        ctx.Writer.Write(settings.ToString());
        Source.Save(ctx, tokenizerOnly: false, ModelInfo.Files);
    }

    /// <summary>The finish reason as the text the finish-reason column holds.</summary>
    public static string FinishReasonText(FinishReason reason) => reason switch
    {
        FinishReason.Eos => "eos",
        FinishReason.StopString => "stop_string",
        FinishReason.Constraint => "constraint",
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

    /// <summary>
    /// One cursor's (or one prediction's) generation: a borrowed model reference, and either requests to the model's
    /// shared scheduler (continuous batching, the default: concurrent cursors and prediction engines of the stage, and
    /// of any stage or caller of the same model, share one batch) or, without continuous batching, a decode loop of its
    /// own that runs static batches.
    /// </summary>
    private sealed class Mapper : RowStreamMapper
    {
        private readonly GenerateTokensTransformer _owner;
        private readonly ModelLease _lease;
        private readonly DecodeLoop? _loop;
        private readonly SchedulerClient? _client;
        private IRowSource? _source;
        private Action<long, object?[]>? _emit;
        private long _rows, _empty;

        public Mapper(GenerateTokensTransformer owner)
        {
            _owner = owner;
            _lease = owner.Handle.Borrow();
            try
            {
                if (owner.ContinuousBatching)
                    _client = new SchedulerClient(_lease.Model.Engine, owner._settings, owner.BatchSize);
                else
                    _loop = _lease.Model.Engine.CreateLoop(owner._settings, owner.BatchSize, continuous: false, (index, result) => Emit(index, result));
            }
            catch
            {
                _lease.Dispose();
                throw;
            }
        }

        public override bool Step(IRowSource source, Action<long, object?[]> emit, CancellationToken cancellationToken)
        {
            _source = source;
            _emit = emit;
            if (_client is not null) return _client.Step(Admit, (index, result) => Emit(index, result), cancellationToken);
            var outcome = _loop!.Step(Admit, cancellationToken);
            if (outcome == StepOutcome.Idle)
                throw new InvalidOperationException("GenerateTokens: the cursor asked for a row that was never admitted.");
            return outcome != StepOutcome.Done;
        }

        /// <summary>Emits a finished row, counting the rows that generated nothing (the warning when the cursor ends).</summary>
        private void Emit(long index, GenerationResult result)
        {
            _rows++;
            if (result.FinishReason == FinishReason.Eos && result.TokenIds.Count <= (_owner._settings.IncludeEosToken ? 1 : 0)) _empty++;
            _emit!(index, _owner.OutputsOf(result));
        }

        private AdmitKind Admit(out PreparedPrompt prompt)
        {
            prompt = default;
            var result = _source!.TryPull(out var row);
            if (result != PullResult.Row) return result == PullResult.Wait ? AdmitKind.Wait : AdmitKind.End;
            try
            {
                prompt = _lease.Model.Engine.Prompts.FromIds((int[])row!.Values[0]!, checked((int)row.Index), _owner._settings);
            }
            catch (ArgumentException e)
            {
                throw new InvalidOperationException($"{_owner.Describe(row!.Index, _owner.InputColumnName)}: {e.Message}", e);
            }
            return AdmitKind.Prompt;
        }

        public override void Dispose()
        {
            if (_empty > 0)
                _owner.Warn($"GenerateTokens: {_empty} of {_rows} rows generated nothing: the model ended them at once with its end-of-sequence token. " +
                    "Set MinNewTokens to make it write some tokens first (or sample instead of greedy decoding).");
            _client?.Dispose();
            _loop?.Dispose();
            _lease.Dispose();
        }
    }
}
