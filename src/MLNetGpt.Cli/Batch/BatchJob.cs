using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetGpt.Cli.Csv;

namespace MLNetGpt.Cli.Batch;

/// <summary>What a batch job was asked to do.</summary>
internal sealed record BatchRequest
{
    public required string Input { get; init; }
    public required string Output { get; init; }
    public required string ModelFolder { get; init; }
    public OutputFormat Format { get; init; }
    public int BatchSize { get; init; } = 8;
    public GptDevice Device { get; init; } = GptDevice.Cpu;
    public int? Threads { get; init; }
    public bool Resume { get; init; }
    public bool FailFast { get; init; }
    public bool Quiet { get; init; }
    public bool ReportMemory { get; init; }

    // generate
    public string? PromptColumn { get; init; }
    public string? Template { get; init; }
    public string OutputColumn { get; init; } = "completion";
    public GenerationOptions Generation { get; init; } = new();

    // score
    public string? TextColumn { get; init; }
}

/// <summary>
/// The batch jobs behind <c>generate</c> and <c>score</c>: a streaming CSV view, the library's
/// ML.NET pipeline (GenerateText or ScoreText), and an output file that gains one row per input
/// row, in input order, flushed as it goes.
/// </summary>
internal static class BatchJob
{
    public const int Success = 0, UsageError = 1, RowsFailed = 2, Interrupted = 130;

    /// <summary>Set by the interrupt handler; the running job's source ends at its next row.</summary>
    public static volatile CsvSourceView? Running;

    public static volatile bool InterruptRequested;

    public static int Generate(BatchRequest request)
    {
        var (header, headerRaw, bom, terminator) = ReadHeader(request.Input);
        var input = request.Template is not null
            ? PromptBuilder.ForTemplate(header, request.Template)
            : PromptBuilder.ForColumn(header, request.PromptColumn ?? DefaultPromptColumn(header), "--prompt-column");
        string[] newColumns = [request.OutputColumn, "finish_reason", "error"];
        CheckNewColumns(header, newColumns, "--output-column");
        return Run(request, header, headerRaw, bom, terminator, newColumns, input, null, "generate", ml =>
            ml.Transforms.Text.GenerateText(new GenerateTextOptions
            {
                OutputColumnName = "__completion",
                InputColumnName = CsvSourceView.InputColumn,
                ModelFolder = request.ModelFolder,
                Generation = request.Generation,
                BatchSize = request.BatchSize,
                Device = request.Device,
                IntraOpThreads = request.Threads,
                FinishReasonColumnName = "__finish",
            }),
            (row, getters) => [getters.Text("__completion"), getters.Text("__finish"), ""],
            getters => getters.VectorLength("__completion_Tokens"));
    }

    public static int Score(BatchRequest request)
    {
        var (header, headerRaw, bom, terminator) = ReadHeader(request.Input);
        var text = PromptBuilder.ForColumn(header, request.TextColumn!, "--text-column").Called("text");
        var prompt = request.PromptColumn is null ? null : PromptBuilder.ForColumn(header, request.PromptColumn, "--prompt-column");
        string[] newColumns = ["log_likelihood", "token_count", "perplexity", "error"];
        CheckNewColumns(header, newColumns, "the score columns");
        return Run(request, header, headerRaw, bom, terminator, newColumns, text, prompt, "score", ml =>
            ml.Transforms.Text.ScoreText(new ScoreTextOptions
            {
                OutputColumnName = "__perplexity",
                TextColumnName = CsvSourceView.InputColumn,
                PromptColumnName = prompt is null ? null : CsvSourceView.SecondInputColumn,
                LogLikelihoodColumnName = "__loglikelihood",
                TokenCountColumnName = "__tokens",
                ModelFolder = request.ModelFolder,
                BatchSize = request.BatchSize,
                Device = request.Device,
                IntraOpThreads = request.Threads,
            }),
            (row, getters) =>
            [
                getters.Value<double>("__loglikelihood").ToString("R", CultureInfo.InvariantCulture),
                getters.Value<int>("__tokens").ToString(CultureInfo.InvariantCulture),
                getters.Value<float>("__perplexity").ToString("R", CultureInfo.InvariantCulture),
                "",
            ],
            getters => getters.Value<int>("__tokens"));
    }

    private static int Run(BatchRequest request, string[] header, string headerRaw, bool bom, string terminator, string[] newColumns,
        PromptBuilder input, PromptBuilder? secondInput, string label, Func<MLContext, IEstimator<ITransformer>> pipeline,
        Func<long, Getters, string[]> values, Func<Getters, int> tokens)
    {
        using var writer = new OutputWriter(request.Output, request.Format, header, headerRaw, newColumns, bom, terminator, request.Resume);
        long total = request.Quiet ? 0 : CsvReader.CountRecords(request.Input);
        var view = new CsvSourceView(request.Input, input, secondInput, writer.ExistingRows);
        var ml = new MLContext();
        ml.Log += (_, e) =>
        {
            if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) Console.Error.WriteLine($"mlnetgpt: warning: {e.Message}");
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
        using var progress = ProgressReporter.Create(request.Quiet, total, writer.ExistingRows, label);
        Running = view;
        if (InterruptRequested) view.Stop = true;
        string? fatal = null;
        try
        {
            var transformed = model.Transform(view);
            using var cursor = transformed.GetRowCursor(transformed.Schema);
            var getters = new Getters(cursor);
            while (fatal is null && cursor.MoveNext())
            {
                long row = getters.Value<long>(CsvSourceView.RowColumn);
                fatal = WriteRejected(view, writer, progress, newColumns.Length, before: row, request.FailFast);
                if (fatal is not null) break;
                string raw = getters.Text(CsvSourceView.RawColumn);
                var record = new CsvRecord(request.Format == OutputFormat.Jsonl ? CsvReader.ParseFields(raw) : new string[getters.Value<int>(CsvSourceView.FieldsColumn)], raw, 0);
                writer.Write(record, values(row, getters));
                progress.Row(false, tokens(getters));
            }
            fatal ??= WriteRejected(view, writer, progress, newColumns.Length, before: long.MaxValue, request.FailFast);
        }
        finally
        {
            Running = null;
            (model as IDisposable)?.Dispose();
        }
        progress.Dispose();

        bool interrupted = view.Stop;
        if (request.ReportMemory)
            Console.Error.WriteLine($"mlnetgpt: peak working set: {System.Diagnostics.Process.GetCurrentProcess().PeakWorkingSet64} bytes");
        if (fatal is not null)
        {
            writer.Close();
            Console.Error.WriteLine($"mlnetgpt: {fatal}");
            Console.Error.WriteLine($"mlnetgpt: stopped (--fail-fast); {writer.ExistingRows + progress.Done} rows are in '{writer.PartialPath}'.");
            return RowsFailed;
        }
        if (interrupted)
        {
            writer.Close();
            Console.Error.WriteLine($"mlnetgpt: interrupted after {writer.ExistingRows + progress.Done} rows; they are in '{writer.PartialPath}'. " +
                "Run the same command with --resume to continue.");
            return Interrupted;
        }
        writer.Complete();
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
            var values = new string[columns];
            for (int i = 0; i < columns; i++) values[i] = "";
            values[^1] = rejected.Error;
            writer.Write(rejected.Record, values);
            progress.Row(true, 0);
        }
        return null;
    }

    private static (string[] Header, string Raw, bool Bom, string Terminator) ReadHeader(string path)
    {
        if (!File.Exists(path)) throw new UsageException($"the input file '{path}' does not exist.");
        using var reader = new CsvReader(path);
        var header = reader.Read() ?? throw new UsageException($"the input file '{path}' is empty; it needs a header row.");
        var duplicate = header.Fields.GroupBy(f => f).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new UsageException($"the input file '{path}' has the column '{duplicate.Key}' twice.");
        reader.Read();
        return (header.Fields, header.Raw, reader.HasByteOrderMark, reader.FirstTerminator ?? "\r\n");
    }

    private static string DefaultPromptColumn(string[] header) =>
        header.Contains("prompt") ? "prompt"
        : throw new UsageException($"name the prompt with --prompt-column or --template (the input has no 'prompt' column; columns: {string.Join(", ", header)}).");

    private static void CheckNewColumns(string[] header, string[] newColumns, string option)
    {
        foreach (var name in newColumns)
            if (header.Contains(name))
                throw new UsageException($"the input already has a column '{name}'; the output adds it ({option}): rename one of them.");
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

        public int VectorLength(string name)
        {
            VBuffer<int> value = default;
            Get<VBuffer<int>>(name)(ref value);
            return value.Length;
        }
    }
}
