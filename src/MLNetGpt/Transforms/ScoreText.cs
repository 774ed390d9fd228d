using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetGpt.Generation;
using MLNetGpt.Transforms;

[assembly: LoadableClass(typeof(MLNetGpt.ScoreTextTransformer), null, typeof(SignatureLoadModel),
    "MLNetGpt Score Text", MLNetGpt.ScoreTextTransformer.LoaderSignature)]

namespace MLNetGpt;

/// <summary>Which ONNX Runtime session <c>ScoreText</c> runs the forward pass in.</summary>
public enum ScoringEngine
{
    /// <summary>MLNetGpt's own session: left-padded batches of <see cref="GptModelStageOptions.BatchSize"/> rows per run (the default).</summary>
    Batched,

    /// <summary>
    /// ML.NET's <c>ApplyOnnxModel</c> (OnnxTransformer): one row per run, float32 models only. It
    /// gives the same numbers; the batched engine is faster on most hardware.
    /// </summary>
    OnnxTransformer,
}

/// <summary>Options of <c>ScoreText</c>: per-row log-likelihood and perplexity of a text under the model.</summary>
public sealed class ScoreTextOptions : GptModelStageOptions
{
    /// <summary>The output perplexity column (Single): exp(mean negative log-likelihood per token).</summary>
    public required string OutputColumnName { get; set; }

    /// <summary>The text to score.</summary>
    public required string TextColumnName { get; set; }

    /// <summary>An optional prompt column: the text is scored as its continuation (prompt tokens are not scored).</summary>
    public string? PromptColumnName { get; set; }

    /// <summary>The output log-likelihood column (Double, natural log); <see langword="null"/> omits it.</summary>
    public string? LogLikelihoodColumnName { get; set; } = "LogLikelihood";

    /// <summary>The output column of scored token counts (Int32); <see langword="null"/> omits it.</summary>
    public string? TokenCountColumnName { get; set; } = "TokenCount";

    /// <summary>Where the forward pass runs; see <see cref="ScoringEngine"/>.</summary>
    public ScoringEngine Engine { get; set; } = ScoringEngine.Batched;
}

/// <summary>Estimator for <see cref="ScoreTextTransformer"/>; nothing is trained.</summary>
public sealed class ScoreTextEstimator : GptEstimatorBase<ScoreTextTransformer>
{
    private readonly ScoreTextOptions _options;

    internal ScoreTextEstimator(IHostEnvironment env, ScoreTextOptions options) : base(env)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        ModelSource.ForFolder(options.ModelFolder, options.Storage);
    }

    private protected override string StageName => "ScoreText";

    internal override IEnumerable<(string Name, InputKind Kind)> InputColumns =>
        _options.PromptColumnName is null ? [(_options.TextColumnName, InputKind.Text)] : [(_options.TextColumnName, InputKind.Text), (_options.PromptColumnName, InputKind.Text)];

    internal override IEnumerable<(string Name, DataViewType Type)> OutputColumns =>
        ScoreTextTransformer.Outputs(_options.OutputColumnName, _options.LogLikelihoodColumnName, _options.TokenCountColumnName);

    /// <summary>Opens the model (shared with other stages using it).</summary>
    private protected override ScoreTextTransformer CreateTransformer() => new(Environment, _options);
}

/// <summary>
/// Scores each row's text: log-likelihood (natural log), scored token count and perplexity. Without a
/// prompt the text is scored after the model's BOS token, so every token counts; an empty text scores
/// no token (log-likelihood 0, perplexity NaN).
/// </summary>
/// <remarks>Thread-safety and disposal: see <see cref="GptModelTransformerBase"/>.</remarks>
public sealed class ScoreTextTransformer : GptModelTransformerBase
{
    internal const string LoaderSignature = "MLNetGptScoreText";

    // Saved-format history (ModelVerWritten):
    //   0x00010001  MLNetGpt 0.1.0: binary settings (LegacyOptionsFormat), model source.
    //   0x00010002  JSON settings (StageSettings), model source.
    private const uint VersionBinary = 0x00010001;
    private const uint VersionJson = 0x00010002;

    private SharedResource<OnnxTransformerScorer>? _onnxScorer;

    internal ScoreTextTransformer(IHostEnvironment env, ScoreTextOptions options) : base(env, nameof(ScoreTextTransformer))
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.OutputColumnName)) throw new ArgumentException("OutputColumnName is required.", nameof(options));
        if (string.IsNullOrEmpty(options.TextColumnName)) throw new ArgumentException("TextColumnName is required.", nameof(options));
        TakeModelOptions(options);
        OutputColumnName = options.OutputColumnName;
        TextColumnName = options.TextColumnName;
        PromptColumnName = options.PromptColumnName;
        LogLikelihoodColumnName = options.LogLikelihoodColumnName;
        TokenCountColumnName = options.TokenCountColumnName;
        Engine = options.Engine;
        Open(env);
    }

    private ScoreTextTransformer(IHostEnvironment env, ModelLoadContext ctx) : base(env, nameof(ScoreTextTransformer))
    {
        ctx.CheckAtModel(GetVersionInfo());
        var r = ctx.Reader;
        if (ctx.Header.ModelVerWritten == VersionBinary)
        {
            // string output, string text, string? prompt, string? log-likelihood, string? token count, int batch, device?, int engine, int? threads
            OutputColumnName = r.ReadString();
            TextColumnName = r.ReadString();
            PromptColumnName = LegacyOptionsFormat.ReadString(r);
            LogLikelihoodColumnName = LegacyOptionsFormat.ReadString(r);
            TokenCountColumnName = LegacyOptionsFormat.ReadString(r);
            BatchSize = r.ReadInt32();
            DeviceOverride = LegacyOptionsFormat.ReadDevice(r);
            Engine = (ScoringEngine)r.ReadInt32();
            IntraOpThreads = LegacyOptionsFormat.ReadInt(r);
        }
        else
        {
            var s = new StageSettingsReader(r.ReadString(), StageName);
            OutputColumnName = s.RequiredString("output_column");
            TextColumnName = s.RequiredString("text_column");
            PromptColumnName = s.String("prompt_column");
            LogLikelihoodColumnName = s.String("log_likelihood_column");
            TokenCountColumnName = s.String("token_count_column");
            Engine = s.String("engine") switch
            {
                null or "batched" => ScoringEngine.Batched,
                "onnx_transformer" => ScoringEngine.OnnxTransformer,
                var other => throw new FormatException($"ScoreText in the saved pipeline: 'engine' must be \"batched\" or \"onnx_transformer\", but is \"{other}\"."),
            };
            ReadModelSettings(s);
            s.EnsureAllRead();
        }
        Source = ModelSource.Load(ctx, Warn);
        Open(env);
    }

    private void Open(IHostEnvironment env)
    {
        OpenModel(env);
        if (Engine != ScoringEngine.OnnxTransformer) return;
        try
        {
            _onnxScorer = new SharedResource<OnnxTransformerScorer>(() => new OnnxTransformerScorer(Handle.Model, Device));
            _onnxScorer.Hold();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Where the forward pass runs.</summary>
    public ScoringEngine Engine { get; }

    /// <summary>Whether ML.NET's OnnxTransformer (and its session) is open now (tests).</summary>
    internal bool OnnxScorerIsOpen => _onnxScorer?.IsOpen ?? false;

    /// <summary>The perplexity column.</summary>
    public string OutputColumnName { get; }

    /// <summary>The scored text column.</summary>
    public string TextColumnName { get; }

    /// <summary>The prompt column, if any.</summary>
    public string? PromptColumnName { get; }

    /// <summary>The log-likelihood column, if any.</summary>
    public string? LogLikelihoodColumnName { get; }

    /// <summary>The token-count column, if any.</summary>
    public string? TokenCountColumnName { get; }

    private protected override string StageName => "ScoreText";

    internal override IReadOnlyList<(string Name, InputKind Kind)> InputColumns =>
        PromptColumnName is null ? [(TextColumnName, InputKind.Text)] : [(TextColumnName, InputKind.Text), (PromptColumnName, InputKind.Text)];

    internal override IReadOnlyList<(string Name, DataViewType Type)> OutputColumns => Outputs(OutputColumnName, LogLikelihoodColumnName, TokenCountColumnName);

    internal static IReadOnlyList<(string Name, DataViewType Type)> Outputs(string perplexity, string? logLikelihood, string? tokenCount)
    {
        var list = new List<(string, DataViewType)> { (perplexity, NumberDataViewType.Single) };
        if (logLikelihood is not null) list.Add((logLikelihood, NumberDataViewType.Double));
        if (tokenCount is not null) list.Add((tokenCount, NumberDataViewType.Int32));
        return list;
    }

    internal override int LookAhead => BatchSize;

    internal override RowStreamMapper CreateMapper() => new Mapper(this);

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "GPTSCORE", verWrittenCur: VersionJson, verReadableCur: VersionJson, verWeCanReadBack: VersionBinary,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(ScoreTextTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        var settings = new StageSettingsWriter()
            .String("output_column", OutputColumnName)
            .String("text_column", TextColumnName)
            .String("prompt_column", PromptColumnName)
            .String("log_likelihood_column", LogLikelihoodColumnName)
            .String("token_count_column", TokenCountColumnName)
            .String("engine", Engine == ScoringEngine.OnnxTransformer ? "onnx_transformer" : "batched");
        WriteModelSettings(settings);
        ctx.Writer.Write(settings.ToString());
        Source.Save(ctx, tokenizerOnly: false, ModelInfo.Files);
    }

    /// <summary>Gives up this stage's references to the model (and to ML.NET's OnnxTransformer, for that engine).</summary>
    public override void Dispose()
    {
        _onnxScorer?.Dispose();
        base.Dispose();
    }

    /// <summary>One cursor's (or one prediction's) scoring: a borrowed model reference, batch by batch.</summary>
    private sealed class Mapper : BatchRowMapper
    {
        private readonly ScoreTextTransformer _owner;
        private readonly ModelLease _lease;

        public Mapper(ScoreTextTransformer owner) : base(owner.BatchSize)
        {
            _owner = owner;
            _lease = owner.Handle.Borrow();
        }

        protected override object?[][] MapBatch(IReadOnlyList<RowInput> rows, CancellationToken cancellationToken)
        {
            var model = _lease.Model;
            var requests = new List<ScoreRequest>(rows.Count);
            foreach (var row in rows)
            {
                try
                {
                    requests.Add(model.Engine.Prompts.ForScore((string)row.Values[0]!, row.Values.Length > 1 ? (string?)row.Values[1] : null, checked((int)row.Index)));
                }
                catch (ArgumentException e)
                {
                    throw new InvalidOperationException($"{_owner.Describe(row.Index, _owner.TextColumnName)}: {e.Message}", e);
                }
            }
            ScoreResult[] scores;
            if (_owner._onnxScorer is { } shared)
            {
                using var scorer = shared.Borrow();
                scores = scorer.Value.Score(requests);
            }
            else
            {
                scores = model.Engine.ScoreRequests(requests, cancellationToken);
            }
            var outputs = new object?[rows.Count][];
            for (int i = 0; i < rows.Count; i++)
            {
                var values = new List<object?> { (float)scores[i].Perplexity };
                if (_owner.LogLikelihoodColumnName is not null) values.Add(scores[i].LogLikelihood);
                if (_owner.TokenCountColumnName is not null) values.Add(scores[i].TokenCount);
                outputs[i] = values.ToArray();
            }
            return outputs;
        }

        public override void Dispose() => _lease.Dispose();
    }
}
