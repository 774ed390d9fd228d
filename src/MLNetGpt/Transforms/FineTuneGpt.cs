using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetGpt.Training;
using MLNetGpt.Transforms;

[assembly: LoadableClass(typeof(MLNetGpt.FineTuneGptTransformer), null, typeof(SignatureLoadModel),
    "MLNetGpt Fine-Tune GPT", MLNetGpt.FineTuneGptTransformer.LoaderSignature)]

namespace MLNetGpt;

/// <summary>
/// Options of <c>FineTuneGpt</c>: what to learn from (a text column, or a prompt column and a completion column), where
/// the tuned model goes, how to train (<see cref="FineTune"/>), and the columns the fitted stage adds when it scores
/// the text column with the tuned model (as <c>ScoreText</c> does). <see cref="GptModelStageOptions.ModelFolder"/> is the
/// model to tune; <see cref="GptModelStageOptions.BatchSize"/>, device, threads and storage apply to the fitted stage's
/// scoring.
/// </summary>
public sealed class FineTuneGptOptions : GptModelStageOptions
{
    /// <summary>The perplexity column the fitted stage adds (Single). Default <c>Perplexity</c>.</summary>
    public string OutputColumnName { get; set; } = "Perplexity";

    /// <summary>
    /// The text to learn (String). With <see cref="PromptColumnName"/>, it is the completion of each row's prompt and only
    /// its tokens count in the loss (supervised fine-tuning); otherwise every text is learnt whole.
    /// </summary>
    public required string TextColumnName { get; set; }

    /// <summary>An optional prompt column (String): the rows become prompt/completion pairs (see <see cref="TextColumnName"/>).</summary>
    public string? PromptColumnName { get; set; }

    /// <summary>The log-likelihood column the fitted stage adds (Double); null omits it. Default <c>LogLikelihood</c>.</summary>
    public string? LogLikelihoodColumnName { get; set; } = "LogLikelihood";

    /// <summary>The scored-token-count column the fitted stage adds (Int32); null omits it. Default <c>TokenCount</c>.</summary>
    public string? TokenCountColumnName { get; set; } = "TokenCount";

    /// <summary>Where the tuned model folder is written: new or empty, outside the model folder.</summary>
    public required string OutputFolder { get; set; }

    /// <summary>
    /// Held-out rows with the same columns, evaluated before, during (<see cref="FineTuneOptions.EvaluateEveryNSteps"/>) and
    /// after training; the report's validation losses come from it. Null: no validation.
    /// </summary>
    public IDataView? ValidationSet { get; set; }

    /// <summary>How to train: method, steps, batches, optimizer, evaluation, checkpoints. Its <see cref="FineTuneOptions.Device"/>
    /// and <see cref="FineTuneOptions.Threads"/> default to this stage's <see cref="GptModelStageOptions.Device"/> (else the
    /// MLContext's) and <see cref="GptModelStageOptions.IntraOpThreads"/>; its log goes to the MLContext's log.</summary>
    public FineTuneOptions FineTune { get; set; } = new();

    /// <summary>Receives a report after every optimizer step of <c>Fit</c>. Not saved with the pipeline.</summary>
    public IProgress<FineTuneProgress>? Progress { get; set; }
}

/// <summary>
/// The estimator that learns: <see cref="Fit"/> fine-tunes the model on the input's text column (see
/// <see cref="GptFineTuner"/> for how texts become training sequences), writes the tuned model folder, and returns a
/// <see cref="FineTuneGptTransformer"/> that scores the text column with it.
/// </summary>
/// <remarks>
/// <c>Fit</c> reads the training rows (and the validation set) once, into memory, then trains; it can be cancelled with
/// <c>mlContext.CancelExecution()</c> (checked between micro-batches; with a checkpoint folder the run can be resumed by
/// fitting again with <see cref="FineTuneOptions.Resume"/>). Its log lines go to the MLContext's <c>Log</c> event.
/// </remarks>
public sealed class FineTuneGptEstimator : IEstimator<FineTuneGptTransformer>
{
    private const string StageName = "FineTuneGpt";
    private readonly IHost _host;
    private readonly FineTuneGptOptions _options;

    internal FineTuneGptEstimator(IHostEnvironment env, FineTuneGptOptions options)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.TextColumnName)) throw new ArgumentException("TextColumnName is required.", nameof(options));
        if (string.IsNullOrEmpty(options.OutputColumnName)) throw new ArgumentException("OutputColumnName is required.", nameof(options));
        if (string.IsNullOrWhiteSpace(options.OutputFolder)) throw new ArgumentException("OutputFolder is required: the folder the tuned model is written to.", nameof(options));
        ArgumentNullException.ThrowIfNull(options.FineTune, nameof(options.FineTune));
        ModelSource.ForFolder(options.ModelFolder, options.Storage);
        _host = env.Register(nameof(FineTuneGptEstimator));
        _options = options;
    }

    private IEnumerable<(string Name, InputKind Kind)> InputColumns =>
        _options.PromptColumnName is null ? [(_options.TextColumnName, InputKind.Text)] : [(_options.TextColumnName, InputKind.Text), (_options.PromptColumnName, InputKind.Text)];

    /// <summary>Fine-tunes on <paramref name="input"/>, writes the tuned model, and returns the stage that scores with it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or not text (the message names it and the expected type).</exception>
    /// <exception cref="OperationCanceledException">The MLContext's execution was cancelled.</exception>
    public FineTuneGptTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        foreach (var (name, kind) in InputColumns) SchemaChecks.Check(input.Schema, StageName, name, kind);
        if (_options.ValidationSet is { } validationSet)
            foreach (var (name, kind) in InputColumns)
            {
                try
                {
                    SchemaChecks.Check(validationSet.Schema, StageName, name, kind);
                }
                catch (ArgumentOutOfRangeException e)
                {
                    throw new ArgumentOutOfRangeException(nameof(FineTuneGptOptions.ValidationSet), "The validation set: " + e.Message.Split(" (Parameter", 2)[0]);
                }
            }

        var training = Read(input);
        var validation = _options.ValidationSet is { } v ? Read(v) : null;
        var options = _options.FineTune.Clone();
        options.Device ??= _options.Device ?? DeviceOf(_host);
        options.Threads ??= _options.IntraOpThreads;
        FineTuneReport report;
        using (var channel = _host.Start(StageName))
        {
            options.Log = line => channel.Info(line);
            report = FineTuner.Run(_options.ModelFolder, _options.OutputFolder, training, validation, options, _options.Progress, CancellationToken.None, CheckAlive);
        }
        return new FineTuneGptTransformer(_host, _options, report);
    }

    /// <summary>The input schema plus the scoring columns; throws when an input column is missing or not text.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        foreach (var (name, kind) in InputColumns) SchemaChecks.Check(inputSchema, StageName, name, kind);
        var columns = inputSchema.ToDictionary(c => c.Name);
        foreach (var (name, type) in ScoreTextTransformer.Outputs(_options.OutputColumnName, _options.LogLikelihoodColumnName, _options.TokenCountColumnName))
            columns[name] = SchemaChecks.OutputShape(name, type);
        return new SchemaShape(columns.Values);
    }

    /// <summary>The rows of the text (and prompt) column, in order; a missing value reads as empty text.</summary>
    private FineTuneData Read(IDataView data)
    {
        var text = data.Schema[_options.TextColumnName];
        var prompt = _options.PromptColumnName is { } p ? data.Schema[p] : (DataViewSchema.Column?)null;
        using var cursor = data.GetRowCursor(prompt is { } pc ? [text, pc] : [text]);
        var getText = cursor.GetGetter<ReadOnlyMemory<char>>(text);
        var getPrompt = prompt is { } column ? cursor.GetGetter<ReadOnlyMemory<char>>(column) : null;
        var texts = new List<string>();
        var pairs = new List<(string, string)>();
        ReadOnlyMemory<char> value = default, promptValue = default;
        while (cursor.MoveNext())
        {
            CheckAlive();
            getText(ref value);
            if (getPrompt is null)
            {
                texts.Add(value.ToString());
                continue;
            }
            getPrompt(ref promptValue);
            pairs.Add((promptValue.ToString(), value.ToString()));
        }
        return getPrompt is null ? FineTuneData.FromTexts(texts, "the training rows") : FineTuneData.FromPairs(pairs, "the training rows");
    }

    /// <summary>ML.NET's cancellation (<c>CancelExecution</c>) as the trainer's: an <see cref="OperationCanceledException"/>.</summary>
    private void CheckAlive()
    {
        try
        {
            _host.CheckAlive();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new OperationCanceledException(e.Message, e);
        }
    }

    private static GptDevice DeviceOf(IHostEnvironment env) =>
        env is IHostEnvironmentInternal settings && settings.GpuDeviceId is int id ? GptDevice.Cuda(id, settings.FallbackToCpu) : GptDevice.Cpu;
}

/// <summary>
/// What <c>FineTuneGpt</c>'s <c>Fit</c> returns: the tuned model's folder (<see cref="ModelFolder"/>, for
/// <c>GenerateText</c>, <c>ClassifyText</c> or <see cref="GptModel.Open"/>), the <see cref="Report"/> of the run, and a
/// stage that scores the text column with the tuned model, adding <c>ScoreText</c>'s columns (perplexity, log-likelihood,
/// token count; with a prompt column, the text is scored as the prompt's continuation). Saved and loaded with
/// <c>mlContext.Model</c> like every MLNetGpt stage (the tuned folder by reference, or embedded).
/// </summary>
/// <remarks>Thread-safety and disposal: as <see cref="GptModelTransformerBase"/>.</remarks>
public sealed class FineTuneGptTransformer : GptTransformerBase
{
    internal const string LoaderSignature = "MLNetGptFineTuneGpt";

    // Saved-format history (ModelVerWritten):
    //   0x00010001  JSON settings (StageSettings) with the report, then the tuned model's source.
    private const uint VersionJson = 0x00010001;

    private readonly ScoreTextTransformer _scorer;

    internal FineTuneGptTransformer(IHostEnvironment env, FineTuneGptOptions options, FineTuneReport report) : base(env, nameof(FineTuneGptTransformer))
    {
        Report = report;
        _scorer = new ScoreTextTransformer(env, new ScoreTextOptions
        {
            OutputColumnName = options.OutputColumnName,
            TextColumnName = options.TextColumnName,
            PromptColumnName = options.PromptColumnName,
            LogLikelihoodColumnName = options.LogLikelihoodColumnName,
            TokenCountColumnName = options.TokenCountColumnName,
            ModelFolder = report.OutputFolder,
            BatchSize = options.BatchSize,
            Device = options.Device,
            IntraOpThreads = options.IntraOpThreads,
            Variant = options.Variant,
            Storage = options.Storage,
        });
        Storage = options.Storage;
    }

    private FineTuneGptTransformer(IHostEnvironment env, ModelLoadContext ctx) : base(env, nameof(FineTuneGptTransformer))
    {
        ctx.CheckAtModel(GetVersionInfo());
        var s = new StageSettingsReader(ctx.Reader.ReadString(), "FineTuneGpt");
        string output = s.RequiredString("output_column"), text = s.RequiredString("text_column");
        string? prompt = s.String("prompt_column"), logLikelihood = s.String("log_likelihood_column"), tokenCount = s.String("token_count_column");
        int batch = s.Int("batch_size") ?? 8;
        if (batch < 1) throw new FormatException($"FineTuneGpt in the saved pipeline: 'batch_size' must be 1 or more, but is {batch}.");
        var device = s.Device();
        int? threads = s.Int("intra_op_threads");
        string? variant = s.String("variant");
        try
        {
            Report = FineTuneReport.FromJson(s.RequiredString("report"));
        }
        catch (FormatException e)
        {
            throw new FormatException($"FineTuneGpt in the saved pipeline: 'report' cannot be read: {e.Message}", e);
        }
        s.EnsureAllRead();
        var source = ModelSource.Load(ctx);
        Storage = source.Storage;
        _scorer = new ScoreTextTransformer(env, new ScoreTextOptions
        {
            OutputColumnName = output, TextColumnName = text, PromptColumnName = prompt,
            LogLikelihoodColumnName = logLikelihood, TokenCountColumnName = tokenCount,
            ModelFolder = source.Folder!, BatchSize = batch, Device = device, IntraOpThreads = threads, Variant = variant, Storage = source.Storage,
        });
    }

    /// <summary>What the fine-tune did: losses, evaluations, throughput, unk rate, the folders.</summary>
    public FineTuneReport Report { get; }

    /// <summary>The tuned model folder this stage scores with (after loading an embedded pipeline: the extracted copy).</summary>
    public string ModelFolder => _scorer.ModelInfo.Folder;

    /// <summary>The opened tuned model: its layout, shapes, tokenizer and execution provider.</summary>
    public GptModelInfo ModelInfo => _scorer.ModelInfo;

    /// <summary>The perplexity column.</summary>
    public string OutputColumnName => _scorer.OutputColumnName;

    /// <summary>The scored text column.</summary>
    public string TextColumnName => _scorer.TextColumnName;

    /// <summary>The prompt column, if any.</summary>
    public string? PromptColumnName => _scorer.PromptColumnName;

    /// <summary>How a saved pipeline keeps the tuned model folder.</summary>
    public ModelStorage Storage { get; }

    private protected override string StageName => "FineTuneGpt";

    internal override IReadOnlyList<(string Name, InputKind Kind)> InputColumns => _scorer.InputColumns;

    internal override IReadOnlyList<(string Name, DataViewType Type)> OutputColumns => _scorer.OutputColumns;

    internal override int LookAhead => _scorer.LookAhead;

    internal override RowStreamMapper CreateMapper() => _scorer.CreateMapper();

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "GPTFTUNE", verWrittenCur: VersionJson, verReadableCur: VersionJson, verWeCanReadBack: VersionJson,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(FineTuneGptTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        var settings = new StageSettingsWriter()
            .String("output_column", _scorer.OutputColumnName)
            .String("text_column", _scorer.TextColumnName)
            .String("prompt_column", _scorer.PromptColumnName)
            .String("log_likelihood_column", _scorer.LogLikelihoodColumnName)
            .String("token_count_column", _scorer.TokenCountColumnName)
            .Int("batch_size", _scorer.BatchSize)
            .Device(_scorer.DeviceOverride)
            .Int("intra_op_threads", _scorer.IntraOpThreads)
            .String("variant", _scorer.Variant)
            .String("report", Report.ToJson());
        ctx.Writer.Write(settings.ToString());
        ModelSource.ForFolder(_scorer.ModelInfo.Folder, Storage).Save(ctx, tokenizerOnly: false, _scorer.ModelInfo.Files);
    }

    /// <summary>Gives up this stage's reference to the tuned model (the stage stays usable, as every model stage).</summary>
    public override void Dispose() => _scorer.Dispose();
}
