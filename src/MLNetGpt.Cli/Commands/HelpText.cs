using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Text.Json;

namespace MLNetGpt.Cli.Commands;

/// <summary>
/// The help sections after the options: the columns a command adds, the files it keeps beside the
/// output, the embedded default model's decoding defaults, and the exit codes. No machine paths.
/// </summary>
internal static class HelpText
{
    private const string ExitCodes = """
        Exit codes:
          0    success
          1    bad usage, input file, model or output path; a --resume of another job (nothing is generated)
          2    some rows failed (their message is in the error column), or --fail-fast stopped at one
          130  interrupted (Ctrl+C or SIGTERM); --resume continues
        """;

    private const string Files = """
        Files beside the output (removed when the job completes, but for the output and a shard's OUTPUT.job.json):
          OUTPUT.partial           the rows written so far; moved to OUTPUT only when every row is there
          OUTPUT.partial.job.json  the job manifest: input (size, SHA-256), model, every option that changes
                                   results; --resume continues only the same job
          OUTPUT.lock              the running job's process id and start time; a second run is refused
          OUTPUT.job.json          with --shard only, kept when the shard completes: its manifest, which
                                   'mlnetgpt merge' reads to check the shards are one whole job
        """;

    public static void Configure(RootCommand root)
    {
        var help = root.Options.OfType<HelpOption>().Single();
        if (help.Action is HelpAction standard) help.Action = new WithSections(standard);
    }

    /// <summary>The standard help, then this tool's sections for the command asked about.</summary>
    private sealed class WithSections(HelpAction standard) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            int code = standard.Invoke(parseResult);
            parseResult.InvocationConfiguration.Output.WriteLine(Sections(parseResult.CommandResult.Command));
            return code;
        }
    }

    private static string Sections(Command command)
    {
        var text = command.Name switch
        {
            "generate" => string.Join(Environment.NewLine + Environment.NewLine,
                """
                Added columns (after every input column, which is kept byte for byte):
                  completion     the generated text (renamed with --output-column)
                  PROPERTY       with --json-schema and --json-columns: one column per top-level property
                                 of the schema (empty, with a message in error, if the row's output is
                                 not a complete object)
                  finish_reason  eos, stop_string, length, or constraint (the output is complete and
                                 nothing more may follow)
                  error          why the row could not be generated (empty otherwise; see --error-column)
                """, ModelDefaults(), Files, ExitCodes),
            "classify" => string.Join(Environment.NewLine + Environment.NewLine,
                """
                Added columns (after every input column, which is kept byte for byte):
                  label              the most likely label, as given (with its leading space, if any)
                  label_probability  its probability, normalised over the label set
                  p_LABEL            with --probabilities: each label's probability (LABEL without edge spaces)
                  error              why the row could not be classified (see --error-column)
                """, Files, ExitCodes),
            "merge" => string.Join(Environment.NewLine + Environment.NewLine,
                """
                Checks before anything is written: every shard completed (SHARD.job.json beside it, no
                SHARD.partial), all from one job (same input, model, options and shard count), every shard
                index once. While merging, each shard's size and SHA-256 are checked against its manifest.
                Rows are written in input order: the output equals the unsharded job's, byte for byte.
                """, "Exit codes: 0 success, 1 a shard is missing, unfinished, duplicated, changed or from another job (nothing is written), 130 interrupted."),
            "score" => string.Join(Environment.NewLine + Environment.NewLine,
                """
                Added columns (after every input column, which is kept byte for byte):
                  log_likelihood  natural-log likelihood of the text's tokens
                  token_count     tokens scored
                  perplexity      exp(-log_likelihood / token_count)
                  error           why the row could not be scored (see --error-column)
                """, Files, ExitCodes),
            "finetune" => string.Join(Environment.NewLine + Environment.NewLine,
                """
                Written:
                  OUT_FOLDER                        the tuned model: the model's files with the trained weights, a
                                                    'Fine-tuning' section in its README.md, finetune_report.json
                                                    (losses, evaluations, tokens/s); it appears only when complete
                  OUT_FOLDER.checkpoint/            while training (--checkpoint-folder): weights, optimizer state
                                                    and data position, every --checkpoint-every steps and on Ctrl+C;
                                                    removed when the run completes. --resume continues from it with
                                                    the same final weights as an uninterrupted run (same --threads
                                                    and --device)
                """, "Exit codes: 0 success, 1 bad usage, input file, model, output folder or a --resume of another job, 130 interrupted (--resume continues)."),
            "complete" => string.Join(Environment.NewLine + Environment.NewLine, ModelDefaults(), "Exit codes: 0 success, 1 bad usage or model, 130 interrupted."),
            "info" => "Exit codes: 0 the folder opens and works, 1 bad usage, or the folder will not work (the reason is printed).",
            "quantize" => string.Join(Environment.NewLine + Environment.NewLine,
                """
                Examples:
                  mlnetgpt quantize default kjv-q4 --bits 4        the built-in model, 4-bit
                  mlnetgpt quantize ./my-model ./my-model-int8 --bits 8
                The copy opens like the original (GptModel.Open, --model). Attention's own MatMuls (whose inputs are
                computed, not weights) stay as they are; --verbose lists every MatMul with what happened to it.
                """, "Exit codes: 0 success, 1 bad usage or model (nothing is written), 130 interrupted (nothing is left at OUT)."),
            _ => ExitCodes,
        };
        return text.TrimEnd() + Environment.NewLine;
    }

    // The generation_config.json keys the command line has a flag for (from the library's list of controls).
    private static readonly HashSet<string> Shown =
        GenerationControls.CommandLine.Where(c => c.InGenerationConfig && c.SwitchValue is null).Select(c => c.Key).ToHashSet(StringComparer.Ordinal);

    /// <summary>The decoding defaults the embedded default model's generation_config.json sets (they apply unless an option overrides them).</summary>
    internal static string ModelDefaults()
    {
        var path = Path.Combine(CommandLine.DefaultModel, "generation_config.json");
        var settings = new List<string>();
        bool samples = false;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            foreach (var property in document.RootElement.EnumerateObject())
            {
                string? shown = property.Name switch
                {
                    "do_sample" => (samples = property.Value.ValueKind == JsonValueKind.True) ? "sampling (do_sample true)" : "greedy (do_sample false)",
                    var key when Shown.Contains(key) => $"{property.Name} {property.Value.GetRawText()}",
                    _ => null,
                };
                if (shown is not null) settings.Add(shown);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return "Model defaults: unset options come from the model's generation_config.json (the embedded default model's could not be read).";
        }
        return "Model defaults: unset options come from the model's generation_config.json. The embedded default model's sets" + Environment.NewLine +
            "  " + (settings.Count == 0 ? "nothing (library defaults apply)" : string.Join(", ", settings)) + "." + Environment.NewLine +
            (samples ? "  With it, generate and complete sample unless --greedy is given." : "  With it, decoding is greedy unless a sampling option is given.");
    }
}
