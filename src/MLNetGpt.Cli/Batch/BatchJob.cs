using System.Security.Cryptography;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetGpt.Cli.Csv;

namespace MLNetGpt.Cli.Batch;

/// <summary>What a batch job was asked to do.</summary>
internal sealed record BatchRequest
{
    public required string Input { get; init; }
    public required string Output { get; init; }
    public string? Variant { get; init; }
    public required string ModelFolder { get; init; }
    public OutputFormat Format { get; init; }
    public int BatchSize { get; init; } = 8;
    public GptDevice Device { get; init; } = GptDevice.Cpu;
    public int? Threads { get; init; }
    public bool Resume { get; init; }
    public bool FailFast { get; init; }
    public bool Quiet { get; init; }
    public bool ReportMemory { get; init; }

    /// <summary>The shard of the input this run processes (<c>--shard K/N</c>); null: the whole input.</summary>
    public ShardAssignment? Shard { get; init; }

    /// <summary>The error column's name; null: <c>error</c>, or <c>COMMAND_error</c> when the input already has an <c>error</c> column.</summary>
    public string? ErrorColumn { get; init; }

    // generate
    public string? PromptColumn { get; init; }
    public string? Template { get; init; }
    public bool Chat { get; init; }
    public string? SystemPrompt { get; init; }
    public string OutputColumn { get; init; } = "completion";
    public GenerationOptions Generation { get; init; } = new();

    /// <summary>With <c>--json-columns</c>: the schema's top-level properties, one added column each.</summary>
    public IReadOnlyList<string>? JsonColumns { get; init; }

    // score, classify
    public string? TextColumn { get; init; }

    // classify
    public IReadOnlyList<string> Labels { get; init; } = [];
    public bool LengthNormalized { get; init; }
    public bool Probabilities { get; init; }
}

/// <summary>
/// The batch jobs behind <c>generate</c>, <c>score</c> and <c>classify</c>: a streaming CSV view, the
/// library's ML.NET pipeline (GenerateText, ScoreText or ClassifyText), and an output file that gains
/// one row per input row (per row of its shard, for a sharded job), in input order. Every check that
/// can refuse the job (output paths, the lock, the whole input's structure, a resumed job's identity,
/// the model) runs before the first row is generated.
/// </summary>
internal static class BatchJob
{
    public const int Success = 0, UsageError = 1, RowsFailed = 2, Interrupted = 130;

    /// <summary>Set by the interrupt handler; the running job's source ends at its next row.</summary>
    public static volatile CsvSourceView? Running;

    public static volatile bool InterruptRequested;

    public static void Warn(string message) => Console.Error.WriteLine($"mlnetgpt: warning: {message}");

    public static int Generate(BatchRequest request)
    {
        var paths = OutputPaths.For(request.Output);
        paths.Check(request.Input);
        var header = InputHeader.Read(request.Input);
        string? promptColumn = request.Template is null ? request.PromptColumn ?? DefaultPromptColumn(header.Columns) : null;
        var input = request.Template is not null
            ? PromptBuilder.ForTemplate(header.Columns, request.Template)
            : PromptBuilder.ForColumn(header.Columns, promptColumn!, "--prompt-column");
        string errorColumn = ErrorColumn(request, header, "generate");
        var json = request.JsonColumns is { } properties ? new JsonColumns([.. properties]) : null;
        var jsonColumns = json?.Properties ?? [];
        CheckNewColumns(header, [(request.OutputColumn, "--output-column"), .. jsonColumns.Select(c => (c, "--json-columns")),
            ("finish_reason", "the finish_reason column"), (errorColumn, "--error-column")]);
        var g = request.Generation;
        var options = new Dictionary<string, string?>
        {
            ["--prompt-column"] = promptColumn,
            ["--template"] = request.Template,
            ["--chat"] = request.Chat ? "given" : null,
            ["--system"] = request.SystemPrompt,
            ["--output-column"] = request.OutputColumn,
            ["--error-column"] = errorColumn,
        };
        AddDecodingControls(options, g);
        AddConstraint(options, g.Constraint, json is not null);
        var job = new JobShape("generate", header, [request.OutputColumn, .. jsonColumns, "finish_reason", errorColumn], input, null, options);
        return Run(request, paths, job, ml =>
            ml.Transforms.Text.GenerateText(new GenerateTextOptions
            {
                OutputColumnName = "__completion",
                InputColumnName = CsvSourceView.InputColumn,
                ModelFolder = request.ModelFolder,
                Variant = request.Variant,
                Generation = request.Generation,
                BatchSize = request.BatchSize,
                Device = request.Device,
                IntraOpThreads = request.Threads,
                FinishReasonColumnName = "__finish",
                Chat = request.Chat,
                SystemPrompt = request.SystemPrompt,
            }),
            getters =>
            {
                string completion = getters.Text("__completion"), finish = getters.Text("__finish");
                if (json is null) return [OutputValue.Of(completion), OutputValue.Of(finish), OutputValue.Missing];
                var (values, problem) = json.Split(completion);
                var error = problem is null ? OutputValue.Missing
                    : OutputValue.Of($"line {getters.Value<long>(CsvSourceView.LineColumn)}: the completion {problem} (finish_reason {finish}), so its --json-columns are empty");
                return [OutputValue.Of(completion), .. values, OutputValue.Of(finish), error];
            },
            getters => getters.VectorLength("__completion_Tokens"));
    }

    /// <summary>
    /// Every decoding control of the library's list under its command-line flag, as canonical JSON text (a switch as
    /// "given"), or null when not given: the list decides what identifies a job, so a new control can never be
    /// changed on a --resume unnoticed. The constraint is recorded by <see cref="AddConstraint"/>.
    /// </summary>
    internal static void AddDecodingControls(Dictionary<string, string?> options, GenerationOptions generation)
    {
        foreach (var control in GenerationControls.All)
        {
            if (control.Key == "constraint") continue;
            string key = control.Flag ?? control.Key;
            options[key] = control.Get(generation) is not { } value ? null
                : control.SwitchValue is null ? control.Text(value)
                : Equals(value, control.SwitchValue) ? "given" : null;
        }
    }

    /// <summary>The constraint in the manifest, under the option that expresses it (--choices-file records its choices as --choices: the file's name is not the job).</summary>
    private static void AddConstraint(Dictionary<string, string?> options, OutputConstraint? constraint, bool jsonColumns)
    {
        options["--choices"] = constraint?.Kind == OutputConstraintKind.Choices ? JobManifest.Canonical(constraint.ChoiceList) : null;
        options["--regex"] = constraint?.Kind == OutputConstraintKind.Regex ? constraint.Pattern : null;
        options["--json-schema"] = constraint?.Kind == OutputConstraintKind.JsonSchema ? constraint.Schema : null;
        options["--json-columns"] = jsonColumns ? "given" : null;
    }

    public static int Classify(BatchRequest request)
    {
        var paths = OutputPaths.For(request.Output);
        paths.Check(request.Input);
        var header = InputHeader.Read(request.Input);
        string? textColumn = request.Template is null ? request.TextColumn ?? DefaultTextColumn(header.Columns) : null;
        var input = request.Template is not null
            ? PromptBuilder.ForTemplate(header.Columns, request.Template)
            : PromptBuilder.ForColumn(header.Columns, textColumn!, "--text-column").Called("text");
        string errorColumn = ErrorColumn(request, header, "classify");
        var labels = request.Labels.ToArray();
        var probabilityColumns = request.Probabilities ? labels.Select(ProbabilityColumn).ToArray() : [];
        CheckNewColumns(header, [("label", "the label column"), ("label_probability", "the label_probability column"),
            .. probabilityColumns.Select((c, i) => (c, $"--probabilities (the label '{labels[i]}')")), (errorColumn, "--error-column")]);
        var options = new Dictionary<string, string?>
        {
            ["--text-column"] = textColumn,
            ["--template"] = request.Template,
            ["--labels"] = JobManifest.Canonical(labels),
            ["--length-normalized"] = request.LengthNormalized ? "given" : null,
            ["--probabilities"] = request.Probabilities ? "given" : null,
            ["--error-column"] = errorColumn,
        };
        var job = new JobShape("classify", header, ["label", "label_probability", .. probabilityColumns, errorColumn], input, null, options);
        return Run(request, paths, job, ml =>
            // The stage's template is only "{input}": the CLI renders prompts itself, the same way generate does.
            ml.Transforms.Text.ClassifyText(new ClassifyTextOptions
            {
                OutputColumnName = "__label",
                InputColumnName = CsvSourceView.InputColumn,
                ScoreColumnName = "__score",
                Labels = labels,
                Template = "{input}",
                LengthNormalized = request.LengthNormalized,
                ModelFolder = request.ModelFolder,
                Variant = request.Variant,
                BatchSize = request.BatchSize,
                Device = request.Device,
                IntraOpThreads = request.Threads,
            }),
            getters =>
            {
                // The stage's key values are 1-based positions in the label list (0 would mean missing; it never writes one).
                int predicted = (int)getters.Value<uint>("__label") - 1;
                var scores = getters.Vector<float>("__score");
                return [OutputValue.Of(labels[predicted]), OutputValue.Of(scores[predicted]), .. probabilityColumns.Select((_, i) => OutputValue.Of(scores[i])),
                    OutputValue.Missing];
            },
            getters => 0);
    }

    /// <summary>A label's probability column: <c>p_</c> and the label without its edge spaces (" yes" gives <c>p_yes</c>).</summary>
    internal static string ProbabilityColumn(string label) => "p_" + label.Trim();

    public static int Score(BatchRequest request)
    {
        var paths = OutputPaths.For(request.Output);
        paths.Check(request.Input);
        var header = InputHeader.Read(request.Input);
        var text = PromptBuilder.ForColumn(header.Columns, request.TextColumn!, "--text-column").Called("text");
        var prompt = request.PromptColumn is null ? null : PromptBuilder.ForColumn(header.Columns, request.PromptColumn, "--prompt-column");
        string errorColumn = ErrorColumn(request, header, "score");
        CheckNewColumns(header, [("log_likelihood", "the score columns"), ("token_count", "the score columns"), ("perplexity", "the score columns"),
            (errorColumn, "--error-column")]);
        var options = new Dictionary<string, string?>
        {
            ["--text-column"] = request.TextColumn,
            ["--prompt-column"] = request.PromptColumn,
            ["--error-column"] = errorColumn,
        };
        var job = new JobShape("score", header, ["log_likelihood", "token_count", "perplexity", errorColumn], text, prompt, options);
        return Run(request, paths, job, ml =>
            ml.Transforms.Text.ScoreText(new ScoreTextOptions
            {
                OutputColumnName = "__perplexity",
                TextColumnName = CsvSourceView.InputColumn,
                PromptColumnName = prompt is null ? null : CsvSourceView.SecondInputColumn,
                LogLikelihoodColumnName = "__loglikelihood",
                TokenCountColumnName = "__tokens",
                ModelFolder = request.ModelFolder,
                Variant = request.Variant,
                BatchSize = request.BatchSize,
                Device = request.Device,
                IntraOpThreads = request.Threads,
            }),
            getters =>
            [
                OutputValue.Of(getters.Value<double>("__loglikelihood")),
                OutputValue.Of(getters.Value<int>("__tokens")),
                OutputValue.Of(getters.Value<float>("__perplexity")),
                OutputValue.Missing,
            ],
            getters => getters.Value<int>("__tokens"));
    }

    /// <summary>What a command adds to the generic job: its columns, how it builds the model input, the options that identify it.</summary>
    private sealed record JobShape(string Command, InputHeader Header, string[] NewColumns, PromptBuilder Input, PromptBuilder? SecondInput,
        Dictionary<string, string?> Options);

    private static int Run(BatchRequest request, OutputPaths paths, JobShape job, Func<MLContext, IEstimator<ITransformer>> pipeline,
        Func<Getters, OutputValue[]> values, Func<Getters, int> tokens)
    {
        using var outputLock = OutputLock.Acquire(paths.Lock, paths.Output, Warn);
        foreach (var temporary in paths.Temporaries) File.Delete(temporary);

        var input = InputFile.Scan(request.Input);
        var shard = request.Shard ?? new ShardAssignment(0, 1);
        long rows = shard.RowsOf(input.Rows);
        var layout = new OutputLayout(request.Format, job.Header.Columns, job.Header.Raw, job.NewColumns, job.Header.ByteOrderMark, job.Header.Terminator);
        job.Options["--format"] = layout.Shape.Format;
        job.Options["--device"] = request.Device.ToString();
        job.Options["--variant"] = request.Variant;
        var manifest = new JobManifest
        {
            Tool = JobManifest.ToolVersion,
            Command = job.Command,
            Input = new InputIdentity(Path.GetFullPath(request.Input), input.Bytes, input.Sha256),
            Model = ModelIdentity.Of(request.ModelFolder),
            Options = job.Options,
            Output = layout.Shape,
            Partial = new PartialPrefix(0, 0, ""),
            Shard = request.Shard is null ? null : new ShardRecord(shard.Index, shard.Count, ShardAssignment.Scheme, input.Rows, rows),
        };
        using var resumeFrom = request.Resume ? ResumePoint.Check(paths, layout, manifest, rows) : null;
        if (!request.Resume && File.Exists(paths.Partial)) throw InterruptedRunInTheWay(paths, layout);

        // The model opens before anything is written: a model that does not load leaves no files behind.
        var view = new CsvSourceView(request.Input, job.Input, job.SecondInput, shard, resumeFrom?.State.Rows ?? 0);
        var ml = new MLContext();
        ml.Log += (_, e) =>
        {
            if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) Warn(e.RawMessage);
        };
        ITransformer model;
        try
        {
            model = pipeline(ml).Fit(view);
        }
        catch (GptModelException e)
        {
            throw new UsageException(e.Message);
        }

        OutputWriter writer;
        try
        {
            writer = resumeFrom is null
                ? OutputWriter.Create(paths, layout, manifest, Warn)
                : OutputWriter.Continue(paths, layout, manifest, resumeFrom.State, resumeFrom.TakeHash(), Warn);
        }
        catch
        {
            (model as IDisposable)?.Dispose();
            throw;
        }
        string label = request.Shard is null ? job.Command : $"{job.Command} (shard {shard})";
        using var progress = ProgressReporter.Create(request.Quiet, rows, writer.ExistingRows, label);
        string? fatal = null;
        bool completed = false;
        try
        {
            Running = view;
            if (InterruptRequested) view.Stop = true;
            var transformed = model.Transform(view);
            using (var cursor = transformed.GetRowCursor(transformed.Schema))
            {
                var getters = new Getters(cursor);
                while (fatal is null && cursor.MoveNext())
                {
                    long row = getters.Value<long>(CsvSourceView.RowColumn);
                    fatal = WriteRejected(view, writer, progress, job.NewColumns.Length, before: row, request.FailFast);
                    if (fatal is not null) break;
                    string raw = getters.Text(CsvSourceView.RawColumn);
                    var fields = request.Format == OutputFormat.Jsonl ? CsvReader.ParseFields(raw) : new string[getters.Value<int>(CsvSourceView.FieldsColumn)];
                    var computed = values(getters);
                    bool failed = computed[^1].Text is not null;
                    if (failed && request.FailFast)
                    {
                        fatal = computed[^1].Text;
                        break;
                    }
                    writer.Write(new CsvRecord(fields, raw, getters.Value<long>(CsvSourceView.LineColumn)), computed);
                    progress.Row(failed, tokens(getters));
                }
                fatal ??= WriteRejected(view, writer, progress, job.NewColumns.Length, before: long.MaxValue, request.FailFast);
            }
            if (fatal is null && !view.Stop)
            {
                if (view.Sha256OfWhatWasRead != input.Sha256)
                    throw new UsageException($"the input '{request.Input}' changed while the job ran; the output is left as '{writer.PartialPath}', " +
                        "which --resume will refuse: start over.");
                writer.Complete();
                completed = true;
            }
        }
        finally
        {
            Running = null;
            if (!completed) writer.Close();
            (model as IDisposable)?.Dispose();
        }
        progress.Dispose();

        long rowsDone = writer.ExistingRows + writer.RowsWritten;
        if (request.ReportMemory)
            Console.Error.WriteLine($"mlnetgpt: peak working set: {System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64} bytes");
        if (fatal is not null)
        {
            Console.Error.WriteLine($"mlnetgpt: {fatal}");
            Console.Error.WriteLine($"mlnetgpt: stopped (--fail-fast); {rowsDone} rows are in '{writer.PartialPath}'.");
            return RowsFailed;
        }
        if (!completed)
        {
            Console.Error.WriteLine($"mlnetgpt: interrupted after {rowsDone} rows; they are in '{writer.PartialPath}'. " +
                "Run the same command with --resume to continue.");
            return Interrupted;
        }
        if (!request.Quiet)
            Console.Error.WriteLine($"mlnetgpt: {label}: {progress.Done} rows ({progress.Failed} failed{(writer.ExistingRows > 0 ? $", {writer.ExistingRows} resumed" : "")}) " +
                $"in {progress.Elapsed.TotalSeconds:F1} s, {progress.Rates(withEta: false)} -> {writer.OutputPath}");
        return progress.Failed > 0 ? RowsFailed : Success;
    }

    private static UsageException InterruptedRunInTheWay(OutputPaths paths, OutputLayout layout)
    {
        string holds;
        try
        {
            holds = $"holds {PartialFile.Scan(paths.Partial, layout).Rows} rows of an interrupted run";
        }
        catch (Exception e) when (e is UsageException or IOException)
        {
            holds = "holds an interrupted run";
        }
        return new UsageException($"'{paths.Partial}' {holds}: add --resume to continue it, or delete it to start over.");
    }

    /// <summary>Where a resumed job continues: checked to be the same job, with the partial's finished prefix hashed.</summary>
    private sealed class ResumePoint(PartialState state, IncrementalHash hash) : IDisposable
    {
        private IncrementalHash? _hash = hash;

        public PartialState State { get; } = state;

        public IncrementalHash TakeHash()
        {
            var taken = _hash!;
            _hash = null;
            return taken;
        }

        public void Dispose() => _hash?.Dispose();

        public static ResumePoint Check(OutputPaths paths, OutputLayout layout, JobManifest job, long inputRows)
        {
            if (!File.Exists(paths.Partial))
                throw new UsageException($"--resume: there is no interrupted run to continue ('{paths.Partial}' does not exist" +
                    (File.Exists(paths.Output) ? $"; '{paths.Output}' does, so the job may have completed)." : ")."));
            if (!File.Exists(paths.Manifest))
                throw new UsageException($"--resume: '{paths.Partial}' has no job manifest ('{paths.Manifest}'), so nothing shows which job wrote it; " +
                    "delete it to start over.");
            var recorded = JobManifest.Read(paths.Manifest);
            var differences = job.DifferencesFrom(recorded);
            if (differences.Count > 0)
                throw new UsageException($"--resume: the job differs from the one in '{paths.Partial}': {string.Join("; ", differences)}. " +
                    $"Run it as it was, or delete '{paths.Partial}' to start over.");
            var state = PartialFile.Scan(paths.Partial, layout);
            if (state.CompleteBytes < recorded.Partial.Bytes)
                throw new UsageException($"--resume: the finished rows were changed or removed: '{paths.Partial}' holds {state.Rows} finished rows, " +
                    $"but held {recorded.Partial.Rows}. Delete it to start over.");
            var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            try
            {
                if (PartialFile.Hash(paths.Partial, hash, recorded.Partial.Bytes, state.CompleteBytes) != recorded.Partial.Sha256)
                    throw new UsageException($"--resume: the finished rows were changed in '{paths.Partial}' since mlnetgpt wrote them. Delete it to start over.");
                if (state.Rows > inputRows)
                    throw new UsageException($"--resume: '{paths.Partial}' holds {state.Rows} rows, more than the {inputRows} " +
                        $"{(job.Shard is null ? "of the input" : $"of shard {job.Shard}")}. Delete it to start over.");
            }
            catch
            {
                hash.Dispose();
                throw;
            }
            return new ResumePoint(state, hash);
        }
    }

    private static string? WriteRejected(CsvSourceView view, OutputWriter writer, ProgressReporter progress, int columns, long before, bool failFast)
    {
        while (view.Rejected.Count > 0 && view.Rejected.Peek().Index < before)
        {
            var rejected = view.Rejected.Dequeue();
            if (failFast) return rejected.Error;
            var values = new OutputValue[columns];
            values[^1] = OutputValue.Of(rejected.Error);
            writer.Write(rejected.Record, values);
            progress.Row(true, 0);
        }
        return null;
    }

    private static string DefaultTextColumn(string[] header) =>
        header.Contains("text") ? "text"
        : throw new UsageException($"name the text with --text-column or --template (the input has no 'text' column; columns: {string.Join(", ", header)}).");

    private static string DefaultPromptColumn(string[] header) =>
        header.Contains("prompt") ? "prompt"
        : throw new UsageException($"name the prompt with --prompt-column or --template (the input has no 'prompt' column; columns: {string.Join(", ", header)}).");

    /// <summary>
    /// The error column: as given, else <c>error</c>, else (when the input already has an <c>error</c>
    /// column, as a <c>generate</c> output does) <c>COMMAND_error</c>, so outputs chain without editing.
    /// </summary>
    private static string ErrorColumn(BatchRequest request, InputHeader header, string command) =>
        request.ErrorColumn ?? (header.Columns.Contains("error") ? $"{command}_error" : "error");

    private static void CheckNewColumns(InputHeader header, (string Name, string Option)[] newColumns)
    {
        foreach (var (name, option) in newColumns)
        {
            if (name.Length == 0) throw new UsageException($"{option} is empty; give a column name.");
            if (header.Columns.Contains(name))
                throw new UsageException($"the input already has a column '{name}'; the output adds it ({option}): rename one of them.");
        }
        var twice = newColumns.GroupBy(c => c.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null)
            throw new UsageException($"the output would have the column '{twice.Key}' twice ({string.Join(" and ", twice.Select(c => c.Option))}): choose another name.");
    }

    /// <summary>Typed access to the current row of the output cursor by column name.</summary>
    internal sealed class Getters(DataViewRowCursor cursor)
    {
        private readonly Dictionary<string, Delegate> _getters = [];

        private ValueGetter<T> Get<T>(string name)
        {
            if (!_getters.TryGetValue(name, out var getter))
                _getters[name] = getter = cursor.GetGetter<T>(cursor.Schema[name]);
            return (ValueGetter<T>)getter;
        }

        public string Text(string name)
        {
            ReadOnlyMemory<char> value = default;
            Get<ReadOnlyMemory<char>>(name)(ref value);
            return value.ToString();
        }

        /// <summary>A numeric column's value (<c>long</c>, <c>int</c>, <c>double</c> or <c>float</c>).</summary>
        public T Value<T>(string name) where T : struct
        {
            T value = default;
            Get<T>(name)(ref value);
            return value;
        }

        public T[] Vector<T>(string name)
        {
            VBuffer<T> value = default;
            Get<VBuffer<T>>(name)(ref value);
            return value.DenseValues().ToArray();
        }

        public int VectorLength(string name)
        {
            VBuffer<int> value = default;
            Get<VBuffer<int>>(name)(ref value);
            return value.Length;
        }
    }
}
