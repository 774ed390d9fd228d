using System.CommandLine;
using System.CommandLine.Parsing;
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
        root.Add(ClassifyCommand.Build());
        root.Add(MergeCommand.Build());
        root.Add(CompleteCommand.Build());
        root.Add(InfoCommand.Build());
        root.Add(QuantizeCommand.Build());
        root.Add(FineTuneCommand.Build());
        HelpText.Configure(root);
        return root;
    }

    /// <summary>The default model: MLNetGpt.Models.Kjv's files, extracted once to a cache folder (GptModel.DefaultModelFolder).</summary>
    public static string DefaultModel => GptModel.DefaultModelFolder;

    /// <summary>The word that names the built-in model wherever a model folder is asked for.</summary>
    internal const string DefaultModelWord = "default";

    internal static Option<string?> ModelOption() => new("--model", "-m")
    {
        Description = "Model folder (Optimum or ONNX Runtime GenAI layout), or 'default'. Default: the built-in model (mlnetgpt-kjv: a small demonstration " +
            "model that writes King James Bible-style English and knows nothing else; see docs/models.md for real ones).",
        HelpName = "DIR",
    };

    /// <summary>
    /// The model folder the user named, or the built-in model for none or the word <c>default</c> (a folder of that name
    /// is <c>./default</c>); a file or a missing folder is a usage error naming <paramref name="option"/>.
    /// </summary>
    internal static string ResolveModel(string? given, string option = "--model")
    {
        if (given is null || given == DefaultModelWord) return DefaultModel;
        if (given.Length == 0) throw new UsageException($"{option} is empty; give a model folder, or 'default' for the built-in model.");
        if (File.Exists(given)) throw new UsageException($"{option}: '{given}' is a file; {option} takes a model folder (the folder that holds the .onnx file and its configuration).");
        if (!Directory.Exists(given)) throw new UsageException($"{option}: the folder '{given}' does not exist ('default' names the built-in model).");
        return given;
    }

    internal static Option<string?> VariantOption() => new("--variant")
    {
        Description = "For an onnx-community model folder (decoders under onnx/): the precision to open, e.g. fp32, fp16, q4, int8 " +
            "(default: fp32 on the CPU, fp16 on CUDA, else the first that exists; 'info' lists them).",
    };

    internal static Option<string?> DraftModelOption() => new("--draft-model")
    {
        Description = "A smaller model folder with the same tokenizer that proposes tokens for speculative decoding on the CPU " +
            "(does not change results; used for batches of up to 4 rows where it pays).",
        HelpName = "FOLDER",
    };

    /// <summary>The --draft-model folder, checked like --model; null when not given.</summary>
    internal static string? ReadDraftModel(ParseResult p, Option<string?> option)
    {
        if (p.GetValue(option) is not { } given) return null;
        if (given.Length == 0) throw new UsageException("--draft-model is empty; give a model folder.");
        if (!Directory.Exists(given)) throw new UsageException($"--draft-model: the folder '{given}' does not exist.");
        return given;
    }

    internal static Option<string> DeviceOption() => new("--device")
    {
        Description = "cpu, cuda or cuda:N (CUDA needs CUDA 13.x and cuDNN 9; falls back to the CPU with a warning).",
        DefaultValueFactory = _ => "cpu",
    };

    internal static GptDevice ReadDevice(ParseResult p, Option<string> option)
    {
        try
        {
            return GptDevice.Parse(p.GetValue(option)!);
        }
        catch (FormatException e)
        {
            throw new UsageException($"--device: {e.Message}");
        }
    }

    /// <summary>An option taking a whole number; a value that is not one is reported in words.</summary>
    internal static Option<int?> WholeNumber(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "N",
        CustomParser = result => ParseWhole(result, name),
    };

    /// <summary>An option taking a number such as 0.8; a value that is not one is reported in words.</summary>
    internal static Option<float?> RealNumber(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "X",
        CustomParser = result =>
        {
            string token = Token(result);
            if (float.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out float value)) return value;
            result.AddError($"{name} takes a number such as 0.8, not '{token}'.");
            return null;
        },
    };

    private static int? ParseWhole(ArgumentResult result, string name)
    {
        string token = Token(result);
        if (int.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value)) return value;
        result.AddError(long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)
            ? $"{name} takes a whole number up to {int.MaxValue}, not '{token}'."
            : $"{name} takes a whole number, not '{token}'.");
        return null;
    }

    private static string Token(ArgumentResult result) => result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";

    /// <summary>
    /// The decoding flags, one per control of the library's list that the command line offers (GenerationControls):
    /// each flag's name, value type, help text and "implies sampling" rule come from its entry there, so a new control
    /// appears here, in the help and in a job's identity without an edit to the tool.
    /// </summary>
    internal sealed class GenerationFlags
    {
        private readonly List<(GenerationControls.Control Control, Option Option)> _flags = [];

        public GenerationFlags()
        {
            foreach (var control in GenerationControls.CommandLine)
                _flags.Add((control, Create(control)));
        }

        /// <summary>The flag of the control with JSON key <paramref name="key"/> (tests).</summary>
        internal Option this[string key] => _flags.Single(f => f.Control.Key == key).Option;

        private static Option Create(GenerationControls.Control control)
        {
            string flag = control.Flag!;
            if (control.SwitchValue is not null) return new Option<bool>(flag) { Description = control.Help + "." };
            string sampling = control.ImpliesSampling ? "; implies sampling" : "";
            string description = control.DefaultText is "none" ? $"{control.Help}{sampling}."
                : $"{control.Help}{sampling}. Default: {(control.InGenerationConfig ? "the model's, else " : "")}{DefaultText(control)}.";
            return control.ValueType switch
            {
                var t when t == typeof(int) => WholeNumber(flag, description),
                var t when t == typeof(float) => RealNumber(flag, description),
                var t when t == typeof(IReadOnlyList<string>) => new Option<string[]>(flag) { Description = description, HelpName = "TEXT" },
                var t => throw new InvalidOperationException($"The control '{control.Key}' has a value of type {t.Name}, which the command line cannot take."),
            };
        }

        private static string DefaultText(GenerationControls.Control control) =>
            control.DefaultText ?? (control.LibraryDefault is { } value ? control.Text(value) : "unset");

        public void AddTo(Command command)
        {
            foreach (var (_, option) in _flags) command.Add(option);
        }

        public GenerationOptions Read(ParseResult p)
        {
            var options = new GenerationOptions();
            bool sampling = false, greedy = false;
            foreach (var (control, option) in _flags)
            {
                object? value = option switch
                {
                    Option<bool> sw => p.GetValue(sw) ? control.SwitchValue : null,
                    Option<int?> whole => p.GetValue(whole),
                    Option<float?> real => p.GetValue(real),
                    Option<string[]> texts => p.GetValue(texts) is { Length: > 0 } given ? given.Select(Unescape).ToArray() : null,
                    _ => null,
                };
                if (value is null) continue;
                try
                {
                    control.Set(options, value);
                }
                catch (ArgumentOutOfRangeException e)
                {
                    throw new UsageException($"{option.Name}: {e.Message.Split(" (Parameter", 2)[0].Split(Environment.NewLine)[0]}");
                }
                sampling |= control.ImpliesSampling;
                greedy |= control.Key == "do_sample";
            }
            if (!greedy && sampling) options.DoSample = true;
            return options;
        }

        private static string Unescape(string text) => text.Replace("\\n", "\n").Replace("\\t", "\t");
    }

    internal static Option<string?> ErrorColumnOption() => new("--error-column")
    {
        Description = "Name of the added error column. Default: 'error', or 'COMMAND_error' when the input already has an 'error' column " +
            "(as a generate output does), so outputs chain without editing.",
        HelpName = "NAME",
    };

    private static Command GenerateCommand()
    {
        var command = new Command("generate", "Add a generated completion to every row of a CSV file.");
        var input = new Argument<string>("INPUT") { Description = "Input CSV file (RFC 4180, UTF-8, first row = column names)." };
        var output = new Option<string>("--output", "-o") { Description = "Output file.", Required = true, HelpName = "FILE" };
        var promptColumn = new Option<string?>("--prompt-column") { Description = "Column holding the prompt. Default: 'prompt'.", HelpName = "NAME" };
        var template = new Option<string?>("--template") { Description = "Prompt template with {column} placeholders, e.g. \"Question: {question}\\nAnswer:\".", HelpName = "TEXT" };
        var outputColumn = new Option<string>("--output-column") { Description = "Name of the added completion column.", DefaultValueFactory = _ => "completion", HelpName = "NAME" };
        var chat = new Option<bool>("--chat") { Description = "Send each prompt as the user's message through the model's chat template, so it answers in its own format." };
        var system = new Option<string?>("--system") { Description = "With --chat: the system message of every conversation.", HelpName = "TEXT" };
        var errorColumn = ErrorColumnOption();
        var common = new CommonFlags();
        var flags = new GenerationFlags();
        var constraints = new ConstraintFlags();
        var draft = DraftModelOption();
        command.Add(input);
        command.Add(output);
        command.Add(promptColumn);
        command.Add(template);
        command.Add(chat);
        command.Add(system);
        command.Add(outputColumn);
        command.Add(errorColumn);
        command.Add(draft);
        flags.AddTo(command);
        constraints.AddTo(command);
        common.AddTo(command);
        command.SetAction(p => Program.Guard(() =>
        {
            if (p.GetValue(promptColumn) is not null && p.GetValue(template) is not null)
                throw new UsageException("give --prompt-column or --template, not both.");
            if (p.GetValue(system) is not null && !p.GetValue(chat))
                throw new UsageException("--system needs --chat (a system message is part of a chat conversation).");
            var (constraint, jsonColumns) = constraints.Read(p);
            var generation = flags.Read(p);
            generation.Constraint = constraint;
            return BatchJob.Generate(common.Read(p, p.GetValue(input)!, p.GetValue(output)!, generation) with
            {
                PromptColumn = p.GetValue(promptColumn),
                Template = p.GetValue(template),
                Chat = p.GetValue(chat),
                SystemPrompt = p.GetValue(system),
                OutputColumn = p.GetValue(outputColumn)!,
                ErrorColumn = p.GetValue(errorColumn),
                JsonColumns = jsonColumns,
                DraftModelFolder = ReadDraftModel(p, draft),
            });
        }));
        return command;
    }

    private static Command ScoreCommand()
    {
        var command = new Command("score", "Add log-likelihood, token count and perplexity of a text column to every row of a CSV file.");
        var input = new Argument<string>("INPUT") { Description = "Input CSV file (a generate output works as it is)." };
        var output = new Option<string>("--output", "-o") { Description = "Output file.", Required = true, HelpName = "FILE" };
        var textColumn = new Option<string>("--text-column") { Description = "Column holding the text to score.", Required = true, HelpName = "NAME" };
        var promptColumn = new Option<string?>("--prompt-column") { Description = "Optional column the text continues (not scored).", HelpName = "NAME" };
        var errorColumn = ErrorColumnOption();
        var common = new CommonFlags();
        command.Add(input);
        command.Add(output);
        command.Add(textColumn);
        command.Add(promptColumn);
        command.Add(errorColumn);
        common.AddTo(command);
        command.SetAction(p => Program.Guard(() => BatchJob.Score(common.Read(p, p.GetValue(input)!, p.GetValue(output)!, new GenerationOptions()) with
        {
            TextColumn = p.GetValue(textColumn),
            PromptColumn = p.GetValue(promptColumn),
            ErrorColumn = p.GetValue(errorColumn),
        })));
        return command;
    }

    /// <summary>Options every batch job takes.</summary>
    internal sealed class CommonFlags
    {
        private readonly Option<string?> _model = ModelOption();
        private readonly Option<int?> _batchSize = WholeNumber("--batch-size", "Rows processed together (does not change seeded results). Default: 8.");
        private readonly Option<string> _device = DeviceOption();
        private readonly Option<string?> _variant = VariantOption();
        private readonly Option<int?> _threads = WholeNumber("--threads", "CPU threads for ONNX Runtime (does not change results). Default: ONNX Runtime's choice.");
        private readonly Option<string> _format = new("--format") { Description = "Output format: csv or jsonl (computed numbers as JSON numbers).", DefaultValueFactory = _ => "csv" };
        private readonly Option<bool> _resume = new("--resume") { Description = "Continue an interrupted run of the same job from OUTPUT.partial (refused if the input, model or an option that changes results differs)." };
        private readonly Option<bool> _failFast = new("--fail-fast") { Description = "Stop at the first row that fails instead of recording it in the error column." };
        private readonly Option<bool> _quiet = new("--quiet", "-q") { Description = "No progress output (warnings and errors still show)." };
        private readonly Option<bool> _reportMemory = new("--report-memory") { Description = "Print the peak working set at the end.", Hidden = true };
        private readonly Option<string?> _shard = new("--shard")
        {
            Description = "Process shard K of N of the input rows (0 <= K < N; rows go to shards by a hash of their index), for 'mlnetgpt merge' to join. " +
                "auto: K and N from a Slurm job array (SLURM_ARRAY_TASK_ID, _MIN, _COUNT); auto/N: K from SLURM_ARRAY_TASK_ID or Kubernetes' JOB_COMPLETION_INDEX.",
            HelpName = "K/N|auto|auto/N",
        };

        public CommonFlags() => _format.AcceptOnlyFromAmong("csv", "jsonl");

        public void AddTo(Command command)
        {
            foreach (var option in new Option[] { _model, _variant, _batchSize, _device, _threads, _format, _resume, _failFast, _quiet, _reportMemory, _shard })
                command.Add(option);
        }

        public BatchRequest Read(ParseResult p, string input, string output, GenerationOptions generation)
        {
            int batch = p.GetValue(_batchSize) ?? 8;
            if (batch < 1) throw new UsageException($"--batch-size must be 1 or more, not {batch}.");
            if (p.GetValue(_threads) is int threads && threads < 1) throw new UsageException($"--threads must be 1 or more, not {threads}.");
            if (input.Length == 0) throw new UsageException("the input file name is empty.");
            if (output.Length == 0) throw new UsageException("--output is empty; give the path of the file to write.");
            var device = ReadDevice(p, _device);
            var shard = p.GetValue(_shard) is { } text ? ShardAssignment.Parse(text, Environment.GetEnvironmentVariables()) : null;
            string model = ResolveModel(p.GetValue(_model));
            return new BatchRequest
            {
                Input = input,
                Output = output,
                ModelFolder = model,
                Variant = p.GetValue(_variant) is { } variant && variant.Trim().Length == 0 ? throw new UsageException("--variant is empty; give a precision such as fp32 or q4.") : p.GetValue(_variant),
                Format = p.GetValue(_format) == "jsonl" ? OutputFormat.Jsonl : OutputFormat.Csv,
                BatchSize = batch,
                Device = device,
                Threads = p.GetValue(_threads),
                Resume = p.GetValue(_resume),
                FailFast = p.GetValue(_failFast),
                Quiet = p.GetValue(_quiet),
                ReportMemory = p.GetValue(_reportMemory),
                Generation = generation,
                Shard = shard,
            };
        }
    }

    internal static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
