using System.CommandLine;
using System.Globalization;
using MLNetGpt.Cli.Batch;

namespace MLNetGpt.Cli.Commands;

/// <summary>The command tree and its options.</summary>
internal static class CommandLine
{
    public static RootCommand Build()
    {
        var root = new RootCommand("mlnetgpt: GPT text generation and scoring for CSV files, through an ML.NET pipeline (MLNetGpt).");
        root.Add(GenerateCommand());
        root.Add(ScoreCommand());
        root.Add(CompleteCommand.Build());
        root.Add(InfoCommand.Build());
        root.Add(QuantizeCommand.Build());
        return root;
    }

    /// <summary>The default model: MLNetGpt.Models.Kjv's files, extracted once to a cache folder (GptModel.DefaultModelFolder).</summary>
    public static string DefaultModel => GptModel.DefaultModelFolder;

    internal static Option<string> ModelOption() => new("--model", "-m")
    {
        Description = "Model folder (Optimum or ONNX Runtime GenAI layout). Default: the embedded KJV model.",
        DefaultValueFactory = _ => DefaultModel,
    };

    internal static Option<string> DeviceOption() => new("--device")
    {
        Description = "cpu, cuda or cuda:N (CUDA needs CUDA 13.x and cuDNN 9; falls back to the CPU with a warning).",
        DefaultValueFactory = _ => "cpu",
    };

    internal sealed class GenerationFlags
    {
        public Option<int?> MaxNewTokens { get; } = new("--max-new-tokens") { Description = "Most tokens to generate per row (> 0)." };
        public Option<int?> MinNewTokens { get; } = new("--min-new-tokens") { Description = "Tokens before an end-of-sequence token may end a row." };
        public Option<float?> Temperature { get; } = new("--temperature") { Description = "Sampling temperature (>= 0; 0 = greedy)." };
        public Option<int?> TopK { get; } = new("--top-k") { Description = "Sample from the k most likely tokens (0 = off)." };
        public Option<float?> TopP { get; } = new("--top-p") { Description = "Nucleus sampling mass, in (0, 1]." };
        public Option<float?> MinP { get; } = new("--min-p") { Description = "Drop tokens below min-p x the top probability, in [0, 1]." };
        public Option<float?> RepetitionPenalty { get; } = new("--repetition-penalty") { Description = "> 1 discourages repeating tokens." };
        public Option<int?> NoRepeatNgram { get; } = new("--no-repeat-ngram-size") { Description = "Never repeat an n-gram of this size." };
        public Option<int?> Seed { get; } = new("--seed") { Description = "Seed: a row's output then depends only on the seed and its prompt." };
        public Option<string[]> Stop { get; } = new("--stop") { Description = "Stop text (repeatable); it is cut from the output." };
        public Option<bool> Greedy { get; } = new("--greedy") { Description = "Greedy decoding, ignoring the model's sampling defaults." };

        public void AddTo(Command command)
        {
            foreach (var option in new Option[] { MaxNewTokens, MinNewTokens, Temperature, TopK, TopP, MinP, RepetitionPenalty, NoRepeatNgram, Seed, Stop, Greedy })
                command.Add(option);
        }

        public GenerationOptions Read(ParseResult p)
        {
            var options = new GenerationOptions();
            Set(() => options.MaxNewTokens = p.GetValue(MaxNewTokens), MaxNewTokens);
            Set(() => options.MinNewTokens = p.GetValue(MinNewTokens), MinNewTokens);
            Set(() => options.Temperature = p.GetValue(Temperature), Temperature);
            Set(() => options.TopK = p.GetValue(TopK), TopK);
            Set(() => options.TopP = p.GetValue(TopP), TopP);
            Set(() => options.MinP = p.GetValue(MinP), MinP);
            Set(() => options.RepetitionPenalty = p.GetValue(RepetitionPenalty), RepetitionPenalty);
            Set(() => options.NoRepeatNgramSize = p.GetValue(NoRepeatNgram), NoRepeatNgram);
            Set(() => options.StopStrings = p.GetValue(Stop) is { Length: > 0 } stops ? stops.Select(Unescape).ToArray() : null, Stop);
            options.Seed = p.GetValue(Seed);
            if (p.GetValue(Greedy)) options.DoSample = false;
            else if (options.Temperature is not null || options.TopK is not null || options.TopP is not null || options.MinP is not null)
                options.DoSample = true;
            return options;
        }

        private static void Set(Action assign, Option option)
        {
            try
            {
                assign();
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new UsageException($"{option.Name}: {e.Message.Split(" (Parameter", 2)[0].Split(Environment.NewLine)[0]}");
            }
        }

        private static string Unescape(string text) => text.Replace("\\n", "\n").Replace("\\t", "\t");
    }

    private static Command GenerateCommand()
    {
        var command = new Command("generate", "Add a generated completion to every row of a CSV file.");
        var input = new Argument<string>("INPUT") { Description = "Input CSV file (RFC 4180, UTF-8, first row = column names)." };
        var output = new Option<string>("--output", "-o") { Description = "Output file.", Required = true };
        var promptColumn = new Option<string?>("--prompt-column") { Description = "Column holding the prompt (default: 'prompt')." };
        var template = new Option<string?>("--template") { Description = "Prompt template with {column} placeholders, e.g. \"Question: {question}\\nAnswer:\"." };
        var outputColumn = new Option<string>("--output-column") { Description = "Name of the added completion column.", DefaultValueFactory = _ => "completion" };
        var common = new CommonFlags();
        var flags = new GenerationFlags();
        command.Add(input);
        command.Add(output);
        command.Add(promptColumn);
        command.Add(template);
        command.Add(outputColumn);
        flags.AddTo(command);
        common.AddTo(command);
        command.SetAction(p => Program.Guard(() =>
        {
            if (p.GetValue(promptColumn) is not null && p.GetValue(template) is not null)
                throw new UsageException("give --prompt-column or --template, not both.");
            return BatchJob.Generate(common.Read(p, p.GetValue(input)!, p.GetValue(output)!, flags.Read(p)) with
            {
                PromptColumn = p.GetValue(promptColumn),
                Template = p.GetValue(template),
                OutputColumn = p.GetValue(outputColumn)!,
            });
        }));
        return command;
    }

    private static Command ScoreCommand()
    {
        var command = new Command("score", "Add log-likelihood, token count and perplexity of a text column to every row of a CSV file.");
        var input = new Argument<string>("INPUT") { Description = "Input CSV file." };
        var output = new Option<string>("--output", "-o") { Description = "Output file.", Required = true };
        var textColumn = new Option<string>("--text-column") { Description = "Column holding the text to score.", Required = true };
        var promptColumn = new Option<string?>("--prompt-column") { Description = "Optional column the text continues (not scored)." };
        var common = new CommonFlags();
        command.Add(input);
        command.Add(output);
        command.Add(textColumn);
        command.Add(promptColumn);
        common.AddTo(command);
        command.SetAction(p => Program.Guard(() => BatchJob.Score(common.Read(p, p.GetValue(input)!, p.GetValue(output)!, new GenerationOptions()) with
        {
            TextColumn = p.GetValue(textColumn),
            PromptColumn = p.GetValue(promptColumn),
        })));
        return command;
    }

    /// <summary>Options every batch job takes.</summary>
    private sealed class CommonFlags
    {
        private readonly Option<string> _model = ModelOption();
        private readonly Option<int> _batchSize = new("--batch-size") { Description = "Rows processed together.", DefaultValueFactory = _ => 8 };
        private readonly Option<string> _device = DeviceOption();
        private readonly Option<int?> _threads = new("--threads") { Description = "CPU threads for ONNX Runtime (default: ONNX Runtime's choice)." };
        private readonly Option<string> _format = new("--format") { Description = "Output format: csv or jsonl.", DefaultValueFactory = _ => "csv" };
        private readonly Option<bool> _resume = new("--resume") { Description = "Continue an interrupted run from OUTPUT.partial." };
        private readonly Option<bool> _failFast = new("--fail-fast") { Description = "Stop at the first row that fails instead of recording it in the error column." };
        private readonly Option<bool> _quiet = new("--quiet", "-q") { Description = "No progress output." };
        private readonly Option<bool> _reportMemory = new("--report-memory") { Description = "Print the peak working set at the end.", Hidden = true };

        public CommonFlags() => _format.AcceptOnlyFromAmong("csv", "jsonl");

        public void AddTo(Command command)
        {
            foreach (var option in new Option[] { _model, _batchSize, _device, _threads, _format, _resume, _failFast, _quiet, _reportMemory })
                command.Add(option);
        }

        public BatchRequest Read(ParseResult p, string input, string output, GenerationOptions generation)
        {
            int batch = p.GetValue(_batchSize);
            if (batch < 1) throw new UsageException($"--batch-size must be 1 or more, not {batch}.");
            if (p.GetValue(_threads) is int threads && threads < 1) throw new UsageException($"--threads must be 1 or more, not {threads}.");
            GptDevice device;
            try
            {
                device = GptDevice.Parse(p.GetValue(_device)!);
            }
            catch (FormatException e)
            {
                throw new UsageException($"--device: {e.Message}");
            }
            string model = p.GetValue(_model)!;
            if (!Directory.Exists(model))
                throw new UsageException(model == DefaultModel
                    ? $"the embedded default model is missing from '{model}'; pass --model DIR."
                    : $"--model: the folder '{model}' does not exist.");
            if (Path.GetFullPath(input) == Path.GetFullPath(output))
                throw new UsageException("the output file must not be the input file.");
            return new BatchRequest
            {
                Input = input,
                Output = output,
                ModelFolder = model,
                Format = p.GetValue(_format) == "jsonl" ? OutputFormat.Jsonl : OutputFormat.Csv,
                BatchSize = batch,
                Device = device,
                Threads = p.GetValue(_threads),
                Resume = p.GetValue(_resume),
                FailFast = p.GetValue(_failFast),
                Quiet = p.GetValue(_quiet),
                ReportMemory = p.GetValue(_reportMemory),
                Generation = generation,
            };
        }
    }

    internal static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
