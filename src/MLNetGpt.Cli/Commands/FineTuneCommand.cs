using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using MLNetGpt.Cli.Batch;
using MLNetGpt.Cli.Csv;
using Spectre.Console;

namespace MLNetGpt.Cli.Commands;

/// <summary>
/// <c>mlnetgpt finetune TRAIN.csv -o OUT_FOLDER</c>: fine-tunes a model on a CSV file's text column (or prompt and
/// completion columns) and writes the tuned model folder, with a checkpoint beside it that <c>--resume</c> continues.
/// </summary>
internal static class FineTuneCommand
{
    private static CancellationTokenSource? s_running;

    /// <summary>Stops the running fine-tune at its next micro-batch (it writes its checkpoint first); false when none runs.</summary>
    public static bool Cancel()
    {
        if (s_running is not { } running) return false;
        try
        {
            running.Cancel();
            return true;
        }
        catch (ObjectDisposedException)
        {
            return false;   // the run ended meanwhile
        }
    }

    /// <summary>What one run does, read from the command line.</summary>
    internal sealed record Request
    {
        public required string Input { get; init; }
        public required string Output { get; init; }
        public required string Model { get; init; }
        public string? TextColumn { get; init; }
        public string? PromptColumn { get; init; }
        public string? CompletionColumn { get; init; }
        public string? Validation { get; init; }
        public required string CheckpointFolder { get; init; }
        public required FineTuneOptions Options { get; init; }
        public bool Quiet { get; init; }
    }

    private sealed class Flags
    {
        public readonly Argument<string> Input = new("TRAIN") { Description = "Training CSV file (RFC 4180, UTF-8, first row = column names)." };
        public readonly Option<string> Output = new("--output", "-o") { Description = "The folder to write the tuned model to (new or empty).", Required = true, HelpName = "DIR" };
        public readonly Option<string?> Model = CommandLine.ModelOption();
        public readonly Option<string?> TextColumn = new("--text-column") { Description = "Column of texts to learn whole. Default: 'text'.", HelpName = "NAME" };
        public readonly Option<string?> PromptColumn = new("--prompt-column") { Description = "Column of prompts; with --completion-column, the loss counts the completions only (supervised fine-tuning).", HelpName = "NAME" };
        public readonly Option<string?> CompletionColumn = new("--completion-column") { Description = "Column of completions, learnt as the continuation of --prompt-column.", HelpName = "NAME" };
        public readonly Option<string?> Validation = new("--validation") { Description = "Held-out CSV file with the same columns: its loss is reported before, during (--evaluate-every) and after training.", HelpName = "FILE" };
        public readonly Option<string> Method = new("--method") { Description = "full (every weight learns) or lora (low-rank factors, merged into the written weights).", DefaultValueFactory = _ => "full" };
        public readonly Option<int?> LoraRank = CommandLine.WholeNumber("--lora-rank", "LoRA rank r. Default: 8.");
        public readonly Option<float?> LoraAlpha = CommandLine.RealNumber("--lora-alpha", "LoRA alpha (the factors are scaled by alpha / r). Default: 16.");
        public readonly Option<string?> LoraTargets = new("--lora-targets") { Description = "Projections that get LoRA factors, comma-separated, of q, k, v, o, gate, up, down. Default: q,v.", HelpName = "LIST" };
        public readonly Option<int?> Steps = CommandLine.WholeNumber("--steps", "Optimizer steps; overrides --epochs. Default: the steps of --epochs.");
        public readonly Option<float?> Epochs = CommandLine.RealNumber("--epochs", "Passes over the training sequences (fractions allowed). Default: 1.");
        public readonly Option<int?> BatchSize = CommandLine.WholeNumber("--batch-size", "Sequences per micro-batch. Default: 8.");
        public readonly Option<int?> Accumulation = CommandLine.WholeNumber("--gradient-accumulation", "Micro-batches per optimizer step. Default: 1.");
        public readonly Option<int?> SequenceLength = CommandLine.WholeNumber("--sequence-length", "Tokens per training sequence (at most the model's context). Default: 128.");
        public readonly Option<float?> LearningRate = CommandLine.RealNumber("--learning-rate", "AdamW's peak learning rate. Default: 0.0001.");
        public readonly Option<float?> WeightDecay = CommandLine.RealNumber("--weight-decay", "AdamW's decoupled weight decay (not on biases or norms). Default: 0.01.");
        public readonly Option<int?> WarmupSteps = CommandLine.WholeNumber("--warmup-steps", "Steps of linear warm-up before the cosine decay. Default: 0.");
        public readonly Option<float?> ClipNorm = CommandLine.RealNumber("--clip-norm", "Largest global gradient norm; 0 turns clipping off. Default: 1.");
        public readonly Option<int?> EvaluateEvery = CommandLine.WholeNumber("--evaluate-every", "Evaluate --validation every N steps (always before and after). Default: only before and after.");
        public readonly Option<int?> EarlyStopping = CommandLine.WholeNumber("--early-stopping", "Stop after N evaluations without a better validation loss. Default: off.");
        public readonly Option<bool> ExtendVocabulary = new("--extend-vocabulary") { Description = "For a model with a remapped vocabulary (the default model): give the training text's frequent unknown tokens rows of their own." };
        public readonly Option<int?> Seed = CommandLine.WholeNumber("--seed", "Seed of the data order (and LoRA's initialization). Default: 42.");
        public readonly Option<int?> Threads = CommandLine.WholeNumber("--threads", "CPU threads for ONNX Runtime (the same threads give the same weights). Default: ONNX Runtime's choice.");
        public readonly Option<string> Device = CommandLine.DeviceOption();
        public readonly Option<string?> CheckpointFolder = new("--checkpoint-folder") { Description = "Where the checkpoint is kept while training. Default: OUT_FOLDER.checkpoint beside the output.", HelpName = "DIR" };
        public readonly Option<int?> CheckpointEvery = CommandLine.WholeNumber("--checkpoint-every", "Steps between checkpoints (one is also written on Ctrl+C). Default: 100.");
        public readonly Option<bool> Resume = new("--resume") { Description = "Continue an interrupted run of the same job from its checkpoint (refused if the model, data or a setting differs)." };
        public readonly Option<bool> Quiet = new("--quiet", "-q") { Description = "No progress output (warnings and errors still show)." };

        public Flags() => Method.AcceptOnlyFromAmong("full", "lora");

        public IEnumerable<Symbol> All => new Symbol[]
        {
            Input, Output, Model, TextColumn, PromptColumn, CompletionColumn, Validation, Method, LoraRank, LoraAlpha, LoraTargets, Steps, Epochs,
            BatchSize, Accumulation, SequenceLength, LearningRate, WeightDecay, WarmupSteps, ClipNorm, EvaluateEvery, EarlyStopping, ExtendVocabulary,
            Seed, Threads, Device, CheckpointFolder, CheckpointEvery, Resume, Quiet,
        };
    }

    public static Command Build()
    {
        var flags = new Flags();
        var command = Define(flags);
        command.SetAction(p => Program.Guard(() =>
        {
            using var cancellation = new CancellationTokenSource();
            s_running = cancellation;
            try
            {
                return Run(Read(p, flags), Console.Out, Console.Error, cancellation.Token);
            }
            finally
            {
                s_running = null;
            }
        }));
        return command;
    }

    private static Command Define(Flags flags)
    {
        var command = new Command("finetune", "Fine-tune a model on the texts of a CSV file (or prompt/completion pairs) and write the tuned model folder.");
        foreach (var symbol in flags.All)
        {
            if (symbol is Argument argument) command.Add(argument);
            else command.Add((Option)symbol);
        }
        return command;
    }

    /// <summary>Parses <paramref name="args"/> (after <c>finetune</c>) and runs, writing to the given writers (tests run it in-process).</summary>
    internal static int Invoke(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var flags = new Flags();
        var parse = new RootCommand { Define(flags) }.Parse(["finetune", .. args]);
        if (parse.Errors.Count > 0)
        {
            error.WriteLine($"mlnetgpt: error: {parse.Errors[0].Message}");
            return BatchJob.UsageError;
        }
        return Program.Guard(() => Run(Read(parse, flags), output, error, cancellationToken), error);
    }

    private static Request Read(ParseResult p, Flags f)
    {
        string input = p.GetValue(f.Input)!, output = p.GetValue(f.Output)!;
        if (input.Length == 0) throw new UsageException("the training file name is empty.");
        if (output.Length == 0) throw new UsageException("--output is empty; give the folder to write the tuned model to.");
        string? text = p.GetValue(f.TextColumn), prompt = p.GetValue(f.PromptColumn), completion = p.GetValue(f.CompletionColumn);
        if (text is not null && (prompt is not null || completion is not null))
            throw new UsageException("give --text-column, or --prompt-column with --completion-column, not both.");
        if ((prompt is null) != (completion is null))
            throw new UsageException(prompt is null ? "--completion-column needs --prompt-column (the completion continues a prompt)." : "--prompt-column needs --completion-column (the column the loss is counted on).");
        if (p.GetValue(f.EarlyStopping) is not null && p.GetValue(f.Validation) is null)
            throw new UsageException("--early-stopping needs --validation (a held-out file to evaluate).");

        var options = new FineTuneOptions { Method = p.GetValue(f.Method) == "lora" ? FineTuneMethod.LoRA : FineTuneMethod.Full, ExtendVocabulary = p.GetValue(f.ExtendVocabulary) };
        Set(() => { if (p.GetValue(f.LoraRank) is int v) options.LoraRank = v; }, f.LoraRank);
        Set(() => { if (p.GetValue(f.LoraAlpha) is float v) options.LoraAlpha = Exact(v); }, f.LoraAlpha);
        SetTargets(p.GetValue(f.LoraTargets), options, f.LoraTargets);
        Set(() => options.MaxSteps = p.GetValue(f.Steps), f.Steps);
        Set(() => { if (p.GetValue(f.Epochs) is float v) options.Epochs = Exact(v); }, f.Epochs);
        Set(() => { if (p.GetValue(f.BatchSize) is int v) options.BatchSize = v; }, f.BatchSize);
        Set(() => { if (p.GetValue(f.Accumulation) is int v) options.GradientAccumulationSteps = v; }, f.Accumulation);
        Set(() => { if (p.GetValue(f.SequenceLength) is int v) options.SequenceLength = v; }, f.SequenceLength);
        Set(() => { if (p.GetValue(f.LearningRate) is float v) options.LearningRate = Exact(v); }, f.LearningRate);
        Set(() => { if (p.GetValue(f.WeightDecay) is float v) options.WeightDecay = Exact(v); }, f.WeightDecay);
        Set(() => options.WarmupSteps = p.GetValue(f.WarmupSteps), f.WarmupSteps);
        Set(() => { if (p.GetValue(f.ClipNorm) is float v) options.ClipNorm = v == 0 ? null : Exact(v); }, f.ClipNorm);
        Set(() => options.EvaluateEveryNSteps = p.GetValue(f.EvaluateEvery), f.EvaluateEvery);
        Set(() => options.EarlyStoppingPatience = p.GetValue(f.EarlyStopping), f.EarlyStopping);
        Set(() => { if (p.GetValue(f.Seed) is int v) options.Seed = v; }, f.Seed);
        Set(() => options.Threads = p.GetValue(f.Threads), f.Threads);
        Set(() => { if (p.GetValue(f.CheckpointEvery) is int v) options.CheckpointEveryNSteps = v; }, f.CheckpointEvery);
        options.Device = CommandLine.ReadDevice(p, f.Device);
        options.Resume = p.GetValue(f.Resume);

        string checkpoints = p.GetValue(f.CheckpointFolder) ?? Path.TrimEndingDirectorySeparator(Path.GetFullPath(output)) + ".checkpoint";
        if (checkpoints.Length == 0) throw new UsageException("--checkpoint-folder is empty; give a folder.");
        options.CheckpointFolder = checkpoints;
        return new Request
        {
            Input = input,
            Output = output,
            Model = CommandLine.ResolveModel(p.GetValue(f.Model)),
            TextColumn = text,
            PromptColumn = prompt,
            CompletionColumn = completion,
            Validation = p.GetValue(f.Validation),
            CheckpointFolder = checkpoints,
            Options = options,
            Quiet = p.GetValue(f.Quiet),
        };
    }

    /// <summary>Reads the files, trains, writes the folder and prints what was done.</summary>
    internal static int Run(Request request, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var (texts, pairs) = ReadRows(request, request.Input, "the training file");
        var (validationTexts, validationPairs) = request.Validation is { } validation ? ReadRows(request, validation, "--validation") : (null, null);

        bool hasCheckpoint = Directory.Exists(request.CheckpointFolder) && Directory.EnumerateFileSystemEntries(request.CheckpointFolder).Any();
        if (request.Options.Resume && !hasCheckpoint)
            throw new UsageException($"--resume: there is no interrupted fine-tune to continue ('{request.CheckpointFolder}' {(Directory.Exists(request.CheckpointFolder) ? "is empty" : "does not exist")}).");
        if (!request.Options.Resume && hasCheckpoint)
            throw new UsageException($"the checkpoint folder '{request.CheckpointFolder}' is not empty (an interrupted fine-tune?): add --resume to continue it, or delete it to start over.");

        var options = request.Options;
        options.Log = line => { if (!request.Quiet && line.StartsWith("resumed", StringComparison.Ordinal)) error.WriteLine($"mlnetgpt: {line}"); };
        using var progress = StepProgress.Create(request.Quiet, error);
        FineTuneReport report;
        try
        {
            report = pairs is not null
                ? GptFineTuner.FineTune(request.Model, request.Output, pairs, validationPairs, options, progress, cancellationToken)
                : GptFineTuner.FineTune(request.Model, request.Output, texts!, validationTexts, options, progress, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            progress.Dispose();
            error.WriteLine($"mlnetgpt: interrupted; the checkpoint of the last completed step is in '{request.CheckpointFolder}': run the same command with --resume to continue.");
            return BatchJob.Interrupted;
        }
        catch (Exception e) when (e is ArgumentException)
        {
            throw new UsageException(e.Message.Split(" (Parameter", 2)[0].Split(Environment.NewLine)[0]);
        }
        progress.Dispose();
        File.Delete(Path.Combine(request.CheckpointFolder, "checkpoint.bin"));
        if (Directory.Exists(request.CheckpointFolder) && !Directory.EnumerateFileSystemEntries(request.CheckpointFolder).Any()) Directory.Delete(request.CheckpointFolder);

        var lines = new List<(string, string)>
        {
            ("fine-tuned", $"{Path.GetFullPath(request.Model)} -> {report.OutputFolder}"),
            ("method", report.Method == FineTuneMethod.LoRA
                ? Invariant($"lora, rank {options.LoraRank}, alpha {options.LoraAlpha}, on {string.Join(",", options.LoraTargets)} (merged)") : "full"),
            ("steps", Invariant($"{report.StepsRun} of {report.TotalSteps} ({(report.StopReason == FineTuneStopReason.EarlyStopping ? "early stopping" : "completed")}), {report.Epochs:F2} epochs") +
                (report.ResumedFromStep is int from ? Invariant($", resumed from step {from}") : "")),
            ("training data", Invariant($"{report.TrainingSequences:N0} sequences of {options.SequenceLength} tokens, {report.TrainingTokens:N0} tokens with loss") +
                (report.TruncatedRows > 0 ? Invariant($", {report.TruncatedRows} rows cut") : "")),
            ("train loss", report.TrainLosses.Count > 0 ? Invariant($"{report.TrainLosses[0]:F4} -> {report.TrainLosses[^1]:F4} (first -> last step)") : "no step ran"),
        };
        if (report.ValidationLossBefore is double before && report.ValidationLossAfter is double after)
            lines.Add(("validation loss", Invariant($"{before:F4} -> {after:F4} ({report.ValidationTokens:N0} tokens)")));
        if (report.UnkRate is double unk)
            lines.Add(("unknown tokens", Invariant($"{unk * 100:F1}% of the training text; {report.AddedTokens} added to the vocabulary")));
        lines.Add(("tokens/s", Invariant($"{report.TokensPerSecond:N0}")));
        lines.Add(("report", Path.Combine(report.OutputFolder, "finetune_report.json")));
        foreach (var (name, value) in lines) output.WriteLine($"{name,-28}{value}");
        return BatchJob.Success;
    }

    /// <summary>The texts, or prompt/completion pairs, of one CSV file; errors name the file, the line and the column.</summary>
    private static (List<string>? Texts, List<(string, string)>? Pairs) ReadRows(Request request, string path, string what)
    {
        var header = InputHeader.Read(path);
        int Column(string? given, string option, string? fallback)
        {
            string name = given ?? fallback!;
            if (name.Length == 0) throw new UsageException($"{option} is empty; give a column name.");
            int index = Array.IndexOf(header.Columns, name);
            if (index >= 0) return index;
            throw new UsageException(given is null
                ? $"{what} '{path}' has no '{fallback}' column; name the text with {option} (columns: {string.Join(", ", header.Columns)})."
                : $"{option} '{name}' is not a column of {what} '{path}' (columns: {string.Join(", ", header.Columns)}).");
        }
        bool supervised = request.PromptColumn is not null;
        int first = supervised ? Column(request.PromptColumn, "--prompt-column", null) : Column(request.TextColumn, "--text-column", "text");
        int second = supervised ? Column(request.CompletionColumn, "--completion-column", null) : -1;

        var texts = supervised ? null : new List<string>();
        var pairs = supervised ? new List<(string, string)>() : null;
        using var reader = new CsvReader(path);
        reader.Read();   // the header
        while (reader.Read() is { } record)
        {
            if (BatchJob.InterruptRequested) throw new OperationCanceledException();
            if (record.Fields.Length > header.Columns.Length)
                throw new CsvFormatException($"{path}: line {record.Line}: the row has {record.Fields.Length} fields, but the header has " +
                    $"{header.Columns.Length} (a cell that holds a comma must be quoted).");
            string Cell(int index) => index < record.Fields.Length ? record.Fields[index] : "";
            if (supervised) pairs!.Add((Cell(first), Cell(second)));
            else texts!.Add(Cell(first));
        }
        if ((texts?.Count ?? pairs!.Count) == 0) throw new UsageException($"{what} '{path}' has no rows after its header.");
        return (texts, pairs);
    }

    private static void Set(Action assign, Option option)
    {
        try
        {
            assign();
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"{option.Name}: {e.Message.Split(" (Parameter", 2)[0].Split(Environment.NewLine)[0]}");
        }
    }

    /// <summary>The decimal number the user typed (0.0001, not float's 9.99999974737875E-05); NaN and infinities as they are, for the setters to refuse.</summary>
    private static double Exact(float value) => float.IsFinite(value) && Math.Abs(value) < 7.9e27f ? (double)(decimal)value : value;

    private static void SetTargets(string? list, FineTuneOptions options, Option option)
    {
        if (list is null) return;
        Set(() => options.LoraTargets = list.Split(',', StringSplitOptions.TrimEntries), option);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// The step progress on standard error: a live bar with loss, tokens/s and ETA on a terminal, a plain line every few
    /// seconds (and at the last step) when it is redirected, nothing with --quiet.
    /// </summary>
    private abstract class StepProgress : IProgress<FineTuneProgress>, IDisposable
    {
        public static StepProgress Create(bool quiet, TextWriter error)
        {
            if (quiet) return new Silent();
            if (ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected && AnsiConsole.Profile.Capabilities.Interactive) return new Live();
            return new Plain(error);
        }

        public abstract void Report(FineTuneProgress value);

        public virtual void Dispose() { }

        protected static string Describe(FineTuneProgress p) => string.Create(CultureInfo.InvariantCulture,
            $"step {p.Step}/{p.TotalSteps} ({100.0 * p.Step / Math.Max(1, p.TotalSteps):F1}%), loss {p.TrainLoss:F4}{(p.ValidationLoss is double v ? $", validation {v:F4}" : "")}, " +
            $"{p.TokensPerSecond:N0} tokens/s, ETA {Format(p.EstimatedTimeLeft)}");

        private static string Format(TimeSpan t) => t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m{t.Seconds:D2}s" : $"{t.Seconds}s";

        private sealed class Silent : StepProgress
        {
            public override void Report(FineTuneProgress value) { }
        }

        private sealed class Plain(TextWriter error) : StepProgress
        {
            private readonly Stopwatch _clock = Stopwatch.StartNew();
            private TimeSpan? _last;

            public override void Report(FineTuneProgress value)
            {
                if (value.Step < value.TotalSteps && value.ValidationLoss is null && _last is { } last && _clock.Elapsed - last < TimeSpan.FromSeconds(2)) return;
                _last = _clock.Elapsed;
                error.WriteLine($"finetune: {Describe(value)}");
            }
        }

        private sealed class Live : StepProgress
        {
            private readonly IAnsiConsole _console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
            private readonly ManualResetEventSlim _finished = new();
            private readonly Task _render;
            private ProgressTask? _task;
            private volatile FineTuneProgress? _latest;
            private int _disposed;

            public Live()
            {
                var ready = new ManualResetEventSlim();
                _render = Task.Run(() => _console.Progress()
                    .AutoClear(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                    .Start(context =>
                    {
                        _task = context.AddTask("finetune", maxValue: 1);
                        ready.Set();
                        while (!_finished.Wait(200)) Refresh();
                        Refresh();
                    }));
                ready.Wait(TimeSpan.FromSeconds(5));
            }

            public override void Report(FineTuneProgress value) => _latest = value;

            private void Refresh()
            {
                if (_task is null || _latest is not { } p) return;
                _task.MaxValue = Math.Max(1, p.TotalSteps);
                _task.Value = p.Step;
                _task.Description = Markup.Escape(Describe(p));
            }

            public override void Dispose()
            {
                if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
                _finished.Set();
                _render.Wait(TimeSpan.FromSeconds(5));
            }
        }
    }
}
