using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetGpt.Transforms;

[assembly: LoadableClass(typeof(MLNetGpt.ClassifyTextTransformer), null, typeof(SignatureLoadModel),
    "MLNetGpt Classify Text", MLNetGpt.ClassifyTextTransformer.LoaderSignature)]

namespace MLNetGpt;

/// <summary>Options of <c>ClassifyText</c>: zero-shot classification of a text column into a fixed label set.</summary>
public sealed class ClassifyTextOptions : GptModelStageOptions
{
    /// <summary>The predicted-label column: a key over <see cref="Labels"/> (its key values are the labels), as ML.NET's classifiers write <c>PredictedLabel</c>.</summary>
    public required string OutputColumnName { get; set; }

    /// <summary>The text column to classify.</summary>
    public required string InputColumnName { get; set; }

    /// <summary>The label set (two or more, distinct). Each is scored as the continuation of the prompt, so it usually starts with a space.</summary>
    public required IReadOnlyList<string> Labels { get; set; }

    /// <summary>
    /// The prompt, with <c>{input}</c> standing for the row's text, e.g.
    /// <c>"Verse: {input}\nTestament:"</c>. Default <c>{input}</c>.
    /// </summary>
    public string Template { get; set; } = "{input}";

    /// <summary>
    /// The score column (Vector&lt;Single&gt; with one probability per label, normalised over the label
    /// set, slot names = labels), as <c>MulticlassClassification.Evaluate</c> reads <c>Score</c>.
    /// </summary>
    public string ScoreColumnName { get; set; } = "Score";

    /// <summary>Rank labels by their mean log-likelihood per token rather than the sum, so longer labels are not penalised. Default false.</summary>
    public bool LengthNormalized { get; set; }

    /// <summary>
    /// A key-typed label column of the data the stage is fitted on (as <c>MapValueToKey</c> makes it), whose key values
    /// are the labels. The predicted label and the score vector then follow that column's key order, so
    /// <c>MulticlassClassification.Evaluate</c> compares like with like whatever order the labels were given in.
    /// Each key value must name one label, as given or without its edge spaces (" yes" for "yes"); fitting refuses a
    /// column whose key values do not. Default: none (the order of
    /// <see cref="Labels"/>; then build the label column with the same order, e.g. with <c>MapValueToKey</c>'s
    /// <c>keyData</c>).
    /// </summary>
    public string? LabelColumnName { get; set; }
}

/// <summary>Estimator for <see cref="ClassifyTextTransformer"/>; nothing is trained.</summary>
public sealed class ClassifyTextEstimator : GptEstimatorBase<ClassifyTextTransformer>
{
    private readonly ClassifyTextOptions _options;

    internal ClassifyTextEstimator(IHostEnvironment env, ClassifyTextOptions options) : base(env)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        ClassifyTextTransformer.Check(options.Labels, options.Template, options.OutputColumnName, options.ScoreColumnName);
        ModelSource.ForFolder(options.ModelFolder, options.Storage);
    }

    private protected override string StageName => "ClassifyText";

    internal override IEnumerable<(string Name, InputKind Kind)> InputColumns => [(_options.InputColumnName, InputKind.Text)];

    internal override IEnumerable<(string Name, DataViewType Type)> OutputColumns =>
        ClassifyTextTransformer.Outputs(_options.OutputColumnName, _options.ScoreColumnName, _options.Labels.Count);

    internal override IReadOnlyList<(string Name, DataViewType Type)>? OutputAnnotations(string column) =>
        column == _options.OutputColumnName ? [(AnnotationUtils.Kinds.KeyValues, new VectorDataViewType(TextDataViewType.Instance, _options.Labels.Count))]
        : column == _options.ScoreColumnName ? [(AnnotationUtils.Kinds.SlotNames, new VectorDataViewType(TextDataViewType.Instance, _options.Labels.Count))]
        : null;

    /// <summary>Opens the model (shared with other stages using it).</summary>
    private protected override ClassifyTextTransformer CreateTransformer() => new(Environment, _options);

    /// <summary>With <see cref="ClassifyTextOptions.LabelColumnName"/>, orders the labels as that column's keys before opening.</summary>
    private protected override ClassifyTextTransformer CreateTransformer(DataViewSchema inputSchema)
    {
        if (_options.LabelColumnName is not { } name) return CreateTransformer();
        var keyOrder = ClassifyTextTransformer.KeyOrder(inputSchema, name, _options.Labels);
        return new(Environment, _options, keyOrder);
    }
}

/// <summary>
/// Zero-shot classification with a generative model: for each row, the log-likelihood of every label
/// as the continuation of the rendered prompt, with the prompt prefilled once for all its labels.
/// Outputs a key-typed predicted label (key values = the labels) and a score vector (probabilities
/// over the labels), so <c>MulticlassClassification.Evaluate</c> and <c>MapKeyToValue</c> work on it
/// directly.
/// </summary>
/// <remarks>Thread-safety and disposal: see <see cref="GptModelTransformerBase"/>.</remarks>
public sealed class ClassifyTextTransformer : GptModelTransformerBase
{
    internal const string LoaderSignature = "MLNetGptClassifyText";

    // Saved-format history (ModelVerWritten):
    //   0x00010002  JSON settings (StageSettings), model source. (The stage is new in this format.)
    private const uint VersionJson = 0x00010002;

    private int[][] _labelIds = [];

    internal ClassifyTextTransformer(IHostEnvironment env, ClassifyTextOptions options, IReadOnlyList<string>? labelsInKeyOrder = null)
        : base(env, nameof(ClassifyTextTransformer))
    {
        ArgumentNullException.ThrowIfNull(options);
        Check(options.Labels, options.Template, options.OutputColumnName, options.ScoreColumnName);
        TakeModelOptions(options);
        OutputColumnName = options.OutputColumnName;
        InputColumnName = options.InputColumnName;
        ScoreColumnName = options.ScoreColumnName;
        Labels = (labelsInKeyOrder ?? options.Labels).ToArray();
        LabelColumnName = labelsInKeyOrder is null ? null : options.LabelColumnName;
        Template = options.Template;
        LengthNormalized = options.LengthNormalized;
        Open(env);
    }

    private ClassifyTextTransformer(IHostEnvironment env, ModelLoadContext ctx) : base(env, nameof(ClassifyTextTransformer))
    {
        ctx.CheckAtModel(GetVersionInfo());
        var s = new StageSettingsReader(ctx.Reader.ReadString(), StageName);
        OutputColumnName = s.RequiredString("output_column");
        InputColumnName = s.RequiredString("input_column");
        ScoreColumnName = s.RequiredString("score_column");
        Labels = s.Strings("labels") ?? throw new FormatException("ClassifyText in the saved pipeline: the required setting 'labels' is missing.");
        Template = s.String("template") ?? "{input}";
        LengthNormalized = s.Bool("length_normalized", false);
        LabelColumnName = s.String("label_column");
        ReadModelSettings(s);
        s.EnsureAllRead();
        Check(Labels, Template, OutputColumnName, ScoreColumnName);
        Source = ModelSource.Load(ctx, Warn);
        Open(env);
    }

    private void Open(IHostEnvironment env)
    {
        OpenModel(env);
        try
        {
            _labelIds = Handle.Model.Engine.LabelIds(Labels);
            foreach (var warning in Handle.Model.Engine.LabelWarnings(Labels, _labelIds))
                Warn($"ClassifyText: {warning}.");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// The labels in the key order of <paramref name="column"/> (a key column whose key values are exactly the labels);
    /// anything else is refused naming the column and what it holds.
    /// </summary>
    internal static IReadOnlyList<string> KeyOrder(DataViewSchema schema, string column, IReadOnlyList<string> labels)
    {
        var found = schema.GetColumnOrNull(column) is { } present ? present : throw new ArgumentOutOfRangeException(nameof(column), $"ClassifyText: the label column '{column}' (LabelColumnName) is not in the data; " +
                $"its columns are {string.Join(", ", schema.Select(c => c.Name))}.");
        if (found.Type is not KeyDataViewType)
            throw new ArgumentException($"ClassifyText: the label column '{column}' (LabelColumnName) must be a key column whose key values are the labels " +
                $"(MapValueToKey makes one), but it is {found.Type}.");
        var keyValuesType = found.Annotations.Schema.GetColumnOrNull(AnnotationUtils.Kinds.KeyValues)?.Type as VectorDataViewType;
        if (keyValuesType?.ItemType is not TextDataViewType)
            throw new ArgumentException($"ClassifyText: the key column '{column}' (LabelColumnName) has no text key values, so its keys cannot be matched to the labels.");
        VBuffer<ReadOnlyMemory<char>> values = default;
        found.Annotations.GetValue(AnnotationUtils.Kinds.KeyValues, ref values);
        var keys = values.DenseValues().Select(v => v.ToString()).ToArray();
        // Each key value names one label: as given, or without edge spaces (a label " yes" is scored with its space; a
        // label column usually holds "yes").
        var ordered = new List<string>(keys.Length);
        foreach (var k in keys)
        {
            var matches = labels.Where(l => l == k).ToList();
            if (matches.Count == 0) matches = labels.Where(l => l.Trim() == k.Trim()).ToList();
            if (matches.Count == 1 && !ordered.Contains(matches[0])) ordered.Add(matches[0]);
        }
        if (keys.Length != labels.Count || ordered.Count != labels.Count)
            throw new ArgumentException($"ClassifyText: the key values of '{column}' (LabelColumnName) are {Quoted(keys)}, but the labels are {Quoted(labels)}: " +
                "each key value must name exactly one label (as given, or without its edge spaces).");
        return ordered;
    }

    private static string Quoted(IEnumerable<string> values) => string.Join(", ", values.Select(v => $"'{v}'"));

    internal static void Check(IReadOnlyList<string>? labels, string? template, string? output, string? score)
    {
        if (string.IsNullOrEmpty(output)) throw new ArgumentException("ClassifyText: OutputColumnName is required.");
        if (string.IsNullOrEmpty(score)) throw new ArgumentException("ClassifyText: ScoreColumnName is required.");
        if (output == score) throw new ArgumentException($"ClassifyText: the output and score columns are both '{output}'.");
        if (labels is null || labels.Count < 2) throw new ArgumentException($"ClassifyText needs at least two labels; {labels?.Count ?? 0} given.");
        if (labels.Any(string.IsNullOrEmpty)) throw new ArgumentException("ClassifyText: a label is empty.");
        if (labels.GroupBy(l => l).FirstOrDefault(g => g.Count() > 1) is { } twice) throw new ArgumentException($"ClassifyText: the label '{twice.Key}' is given twice.");
        if (template is null || !template.Contains("{input}", StringComparison.Ordinal))
            throw new ArgumentException($"ClassifyText: the template '{template}' has no {{input}} placeholder for the row's text.");
    }

    /// <summary>The predicted-label (key) column.</summary>
    public string OutputColumnName { get; }

    /// <summary>The text column.</summary>
    public string InputColumnName { get; }

    /// <summary>The score (probabilities over the labels) column.</summary>
    public string ScoreColumnName { get; }

    /// <summary>The label set; key value k (1-based) is <c>Labels[k - 1]</c>.</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>The prompt template (<c>{input}</c> = the row's text).</summary>
    public string Template { get; }

    /// <summary>Whether labels are ranked by their mean log-likelihood per token.</summary>
    public bool LengthNormalized { get; }

    /// <summary>The key column whose order <see cref="Labels"/> took when the stage was fitted, or null.</summary>
    public string? LabelColumnName { get; }

    private protected override string StageName => "ClassifyText";

    internal override IReadOnlyList<(string Name, InputKind Kind)> InputColumns => [(InputColumnName, InputKind.Text)];

    internal override IReadOnlyList<(string Name, DataViewType Type)> OutputColumns => Outputs(OutputColumnName, ScoreColumnName, Labels.Count);

    internal static IReadOnlyList<(string Name, DataViewType Type)> Outputs(string predicted, string score, int labels) =>
        [(predicted, new KeyDataViewType(typeof(uint), labels)), (score, new VectorDataViewType(NumberDataViewType.Single, labels))];

    internal override DataViewSchema.Annotations? OutputAnnotations(string column)
    {
        if (column != OutputColumnName && column != ScoreColumnName) return null;
        var values = new VBuffer<ReadOnlyMemory<char>>(Labels.Count, Labels.Select(l => l.AsMemory()).ToArray());
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add(column == OutputColumnName ? AnnotationUtils.Kinds.KeyValues : AnnotationUtils.Kinds.SlotNames,
            new VectorDataViewType(TextDataViewType.Instance, Labels.Count), (ref VBuffer<ReadOnlyMemory<char>> v) => values.CopyTo(ref v));
        return builder.ToAnnotations();
    }

    internal override int LookAhead => BatchSize;

    internal override RowStreamMapper CreateMapper() => new Mapper(this);

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "GPTCLASS", verWrittenCur: VersionJson, verReadableCur: VersionJson, verWeCanReadBack: VersionJson,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(ClassifyTextTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        var settings = new StageSettingsWriter()
            .String("output_column", OutputColumnName)
            .String("input_column", InputColumnName)
            .String("score_column", ScoreColumnName)
            .Strings("labels", Labels)
            .String("template", Template)
            .Bool("length_normalized", LengthNormalized)
            .String("label_column", LabelColumnName);
        WriteModelSettings(settings);
        ctx.Writer.Write(settings.ToString());
        Source.Save(ctx, tokenizerOnly: false, ModelInfo.Files);
    }

    /// <summary>One cursor's (or one prediction's) classification: a borrowed model reference, batch by batch.</summary>
    private sealed class Mapper : BatchRowMapper
    {
        private readonly ClassifyTextTransformer _owner;
        private readonly ModelLease _lease;
        private long _rows, _tied, _firstTied = -1;

        public Mapper(ClassifyTextTransformer owner) : base(owner.BatchSize)
        {
            _owner = owner;
            _lease = owner.Handle.Borrow();
        }

        protected override object?[][] MapBatch(IReadOnlyList<RowInput> rows, CancellationToken cancellationToken)
        {
            var model = _lease.Model;
            var settings = model.Engine.Resolve(new GenerationOptions { MaxNewTokens = _owner._labelIds.Max(l => l.Length) });
            var prompts = new List<int[]>(rows.Count);
            foreach (var row in rows)
            {
                string prompt = _owner.Template.Replace("{input}", (string)row.Values[0]!, StringComparison.Ordinal);
                try
                {
                    prompts.Add(model.Engine.Prompts.FromText(prompt, checked((int)row.Index), settings).Ids);
                }
                catch (ArgumentException e)
                {
                    throw new InvalidOperationException($"{_owner.Describe(row.Index, _owner.InputColumnName)}: {e.Message}", e);
                }
            }
            var results = model.Engine.ClassifyIds(prompts, _owner.Labels, _owner._labelIds, _owner.LengthNormalized, rows.Count, cancellationToken);
            var outputs = new object?[rows.Count][];
            for (int i = 0; i < rows.Count; i++)
            {
                var probabilities = results[i].Probabilities.ToArray();
                _rows++;
                if (results[i].Tied && _tied++ == 0) _firstTied = rows[i].Index;
                // Key values are 1-based; 0 would mean "missing".
                outputs[i] = [(uint)(results[i].Index + 1), new VBuffer<float>(probabilities.Length, probabilities)];
            }
            return outputs;
        }

        public override void Dispose()
        {
            if (_tied > 0)
                _owner.Warn($"ClassifyText: {_tied} of {_rows} rows had two or more labels tied for the best score (the first was {_owner.Describe(_firstTied, _owner.InputColumnName)}); " +
                    "their predicted label is merely the first of the tied ones.");
            _lease.Dispose();
        }
    }
}
