using System.Security.Cryptography;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetGpt.Cli.Csv;

namespace MLNetGpt.Cli.Batch;

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
        string? promptColumn = request.Template is null ? request.PromptColumn ?? JobColumns.DefaultPromptColumn(header.Columns) : null;
        var input = request.Template is not null
            ? PromptBuilder.ForTemplate(header.Columns, request.Template)
            : PromptBuilder.ForColumn(header.Columns, promptColumn!, "--prompt-column");
        string errorColumn = JobColumns.ErrorColumn(request, header, "generate");
        var json = request.JsonColumns is { } properties ? new JsonColumns([.. properties]) : null;
        var jsonColumns = json?.Properties ?? [];
        JobColumns.CheckNewColumns(header, [(request.OutputColumn, "--output-column"), .. jsonColumns.Select(c => (c, "--json-columns")),
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
        JobIdentity.AddDecodingControls(options, g);
        JobIdentity.AddConstraint(options, g.Constraint, json is not null);
        var job = new JobShape("generate", header, [request.OutputColumn, .. jsonColumns, "finish_reason", errorColumn], input, null, options)
        {
            Notes = new JobNotes.EmptyCompletions("__completion", "__finish"),
        };
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
                DraftModelFolder = request.DraftModelFolder,
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

    public static int Classify(BatchRequest request)
    {
        var paths = OutputPaths.For(request.Output);
        paths.Check(request.Input);
        var header = InputHeader.Read(request.Input);
        string? textColumn = request.Template is null ? request.TextColumn ?? JobColumns.DefaultTextColumn(header.Columns) : null;
        var input = request.Template is not null
            ? PromptBuilder.ForTemplate(header.Columns, request.Template)
            : PromptBuilder.ForColumn(header.Columns, textColumn!, "--text-column").Called("text");
        string errorColumn = JobColumns.ErrorColumn(request, header, "classify");
        var labels = request.Labels.ToArray();
        var probabilityColumns = request.Probabilities ? labels.Select(JobColumns.ProbabilityColumn).ToArray() : [];
        JobColumns.CheckNewColumns(header, [("label", "the label column"), ("label_probability", "the label_probability column"),
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
        var job = new JobShape("classify", header, ["label", "label_probability", .. probabilityColumns, errorColumn], input, null, options)
        {
            Notes = new JobNotes.TiedLabels("__score"),
        };
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


    public static int Score(BatchRequest request)
    {
        var paths = OutputPaths.For(request.Output);
        paths.Check(request.Input);
        var header = InputHeader.Read(request.Input);
        var text = PromptBuilder.ForColumn(header.Columns, request.TextColumn!, "--text-column").Called("text");
        var prompt = request.PromptColumn is null ? null : PromptBuilder.ForColumn(header.Columns, request.PromptColumn, "--prompt-column");
        string errorColumn = JobColumns.ErrorColumn(request, header, "score");
        JobColumns.CheckNewColumns(header, [("log_likelihood", "the score columns"), ("token_count", "the score columns"), ("perplexity", "the score columns"),
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
        Dictionary<string, string?> Options)
    {
        /// <summary>What to count about the rows and report at the end (null: nothing).</summary>
        public JobNotes? Notes { get; init; }
    }

    private static int Run(BatchRequest request, OutputPaths paths, JobShape job, Func<MLContext, IEstimator<ITransformer>> pipeline,
        Func<RowGetters, OutputValue[]> values, Func<RowGetters, int> tokens)
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
        if (!request.Resume && File.Exists(paths.Partial)) throw ResumePoint.InterruptedRunInTheWay(paths, layout);

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
                var getters = new RowGetters(cursor);
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
                    if (!failed) job.Notes?.Observe(getters);
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
        foreach (var note in job.Notes?.Summary() ?? []) Warn(note);
        if (!request.Quiet)
            Console.Error.WriteLine($"mlnetgpt: {label}: {progress.Done} rows ({progress.Failed} failed{(writer.ExistingRows > 0 ? $", {writer.ExistingRows} resumed" : "")}) " +
                $"in {progress.Elapsed.TotalSeconds:F1} s, {progress.Rates(withEta: false)} -> {writer.OutputPath}");
        return progress.Failed > 0 ? RowsFailed : Success;
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
}
