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
    /// <summary>MLNetGpt's own session: left-padded batches of <see cref="ScoreTextOptions.BatchSize"/> rows per run (the default).</summary>
    Batched,

    /// <summary>
    /// ML.NET's <c>ApplyOnnxModel</c> (OnnxTransformer): one row per run, float32 models only. It
    /// gives the same numbers; the batched engine is faster on most hardware.
    /// </summary>
    OnnxTransformer,
}

/// <summary>Options of <c>ScoreText</c>: per-row log-likelihood and perplexity of a text under the model.</summary>
public sealed class ScoreTextOptions
{
    private int _batchSize = 8;
    private int? _intraOpThreads;

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

    /// <summary>The model folder.</summary>
    public required string ModelFolder { get; set; }

    /// <summary>Rows scored per forward pass (&gt; 0). Default 8.</summary>
    public int BatchSize
    {
        get => _batchSize;
        set => _batchSize = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(BatchSize), value, "BatchSize must be greater than 0.");
    }

    /// <summary>The device; <see langword="null"/> uses the MLContext's settings.</summary>
    public GptDevice? Device { get; set; }

    /// <summary>ONNX Runtime intra-op threads on the CPU (batched engine); <see langword="null"/> lets ONNX Runtime choose.</summary>
    public int? IntraOpThreads
    {
        get => _intraOpThreads;
        set => _intraOpThreads = value is null || value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(IntraOpThreads), value, "IntraOpThreads must be 1 or more.");
    }

    /// <summary>Where the forward pass runs; see <see cref="ScoringEngine"/>.</summary>
    public ScoringEngine Engine { get; set; } = ScoringEngine.Batched;

    /// <summary>How a saved pipeline keeps the model folder.</summary>
    public ModelStorage Storage { get; set; } = ModelStorage.Reference;
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
public sealed class ScoreTextTransformer : GptTransformerBase
{
    internal const string LoaderSignature = "MLNetGptScoreText";
    private readonly ModelSource _source;
    private readonly ModelLease _lease;
    private readonly OnnxTransformerScorer? _onnxScorer;

    internal ScoreTextTransformer(IHostEnvironment env, ScoreTextOptions options) : base(env, nameof(ScoreTextTransformer))
    {
        if (string.IsNullOrEmpty(options.OutputColumnName)) throw new ArgumentException("OutputColumnName is required.", nameof(options));
        if (string.IsNullOrEmpty(options.TextColumnName)) throw new ArgumentException("TextColumnName is required.", nameof(options));
        OutputColumnName = options.OutputColumnName;
        TextColumnName = options.TextColumnName;
        PromptColumnName = options.PromptColumnName;
        LogLikelihoodColumnName = options.LogLikelihoodColumnName;
        TokenCountColumnName = options.TokenCountColumnName;
        BatchSize = options.BatchSize;
        DeviceOverride = options.Device;
        IntraOpThreads = options.IntraOpThreads;
        Engine = options.Engine;
        _source = ModelSource.ForFolder(options.ModelFolder, options.Storage);
        (_lease, _onnxScorer) = Open(env);
    }

    private (ModelLease, OnnxTransformerScorer?) Open(IHostEnvironment env)
    {
        var device = DeviceOverride ?? DeviceOf(env);
        var lease = ModelCache.Acquire(_source.Folder!, device, IntraOpThreads, Warn);
        try
        {
            return (lease, Engine == ScoringEngine.OnnxTransformer ? new OnnxTransformerScorer(lease.Model, device) : null);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    private ScoreTextTransformer(IHostEnvironment env, ModelLoadContext ctx) : base(env, nameof(ScoreTextTransformer))
    {
        ctx.CheckAtModel(GetVersionInfo());
        // *** Binary format ***
        // string output, string text, string? prompt, string? log-likelihood, string? token count, int batch, device?, int engine, int? threads, model source
        var r = ctx.Reader;
        OutputColumnName = r.ReadString();
        TextColumnName = r.ReadString();
        PromptColumnName = OptionsFormat.ReadString(r);
        LogLikelihoodColumnName = OptionsFormat.ReadString(r);
        TokenCountColumnName = OptionsFormat.ReadString(r);
        BatchSize = r.ReadInt32();
        DeviceOverride = OptionsFormat.ReadDevice(r);
        Engine = (ScoringEngine)r.ReadInt32();
        IntraOpThreads = OptionsFormat.ReadInt(r);
        _source = ModelSource.Load(ctx);
        (_lease, _onnxScorer) = Open(env);
    }

    /// <summary>Where the forward pass runs.</summary>
    public ScoringEngine Engine { get; }

    /// <summary>Intra-op threads given in the options.</summary>
    public int? IntraOpThreads { get; }

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

    /// <summary>Rows per forward pass.</summary>
    public int BatchSize { get; }

    /// <summary>The device given in the options (null: the MLContext's).</summary>
    public GptDevice? DeviceOverride { get; }

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
        modelSignature: "GPTSCORE", verWrittenCur: 0x00010001, verReadableCur: 0x00010001, verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(ScoreTextTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        var w = ctx.Writer;
        w.Write(OutputColumnName);
        w.Write(TextColumnName);
        OptionsFormat.Write(w, PromptColumnName);
        OptionsFormat.Write(w, LogLikelihoodColumnName);
        OptionsFormat.Write(w, TokenCountColumnName);
        w.Write(BatchSize);
        OptionsFormat.Write(w, DeviceOverride);
        w.Write((int)Engine);
        OptionsFormat.Write(w, IntraOpThreads);
        _source.Save(ctx, tokenizerOnly: false);
    }


    /// <summary>Releases this stage's share of the model.</summary>
    public override void Dispose() => _lease.Dispose();

    private sealed class Mapper(ScoreTextTransformer owner) : BatchRowMapper(owner.BatchSize)
    {
        protected override object?[][] MapBatch(IReadOnlyList<RowInput> rows, CancellationToken cancellationToken)
        {
            var model = owner._lease.Model;
            var requests = new List<ScoreRequest>(rows.Count);
            foreach (var row in rows)
            {
                try
                {
                    requests.Add(model.Prompts.ForScore((string)row.Values[0]!, row.Values.Length > 1 ? (string?)row.Values[1] : null, checked((int)row.Index)));
                }
                catch (ArgumentException e)
                {
                    throw new InvalidOperationException($"{owner.Describe(row.Index, owner.TextColumnName)}: {e.Message}", e);
                }
            }
            var scores = owner._onnxScorer is { } onnx ? onnx.Score(requests) : new Scorer(model.Backend, model.Info).Score(requests, cancellationToken);
            var outputs = new object?[rows.Count][];
            for (int i = 0; i < rows.Count; i++)
            {
                var values = new List<object?> { (float)scores[i].Perplexity };
                if (owner.LogLikelihoodColumnName is not null) values.Add(scores[i].LogLikelihood);
                if (owner.TokenCountColumnName is not null) values.Add(scores[i].TokenCount);
                outputs[i] = values.ToArray();
            }
            return outputs;
        }
    }
}
