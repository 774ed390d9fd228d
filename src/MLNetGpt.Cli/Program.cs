using System.CommandLine;
using System.CommandLine.Parsing;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Cli.Batch;
using MLNetGpt.Cli.Commands;
using MLNetGpt.Cli.Csv;

namespace MLNetGpt.Cli;

/// <summary>
/// mlnetgpt: batch-score CSV files with GPT generation through the MLNetGpt ML.NET pipeline.
/// Exit codes: 0 success, 1 bad usage or input file, 2 some rows failed, 130 interrupted.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        NativeLog.Configure();
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnInterrupt);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnInterrupt);
        BatchJob.InterruptRequested = false;
        var root = Commands.CommandLine.Build();
        if (UnknownCommand(root, args) is { } unknown)
        {
            Console.Error.WriteLine($"mlnetgpt: error: {unknown}");
            return BatchJob.UsageError;
        }
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            var command = parse.CommandResult.Command;
            string name = command == root ? "mlnetgpt" : $"mlnetgpt {command.Name}";
            Console.Error.WriteLine($"mlnetgpt: error: {Describe(parse, root)} (see '{name} --help')");
            return BatchJob.UsageError;
        }
        return parse.Invoke(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
    }

    /// <summary>A first word that is no command: named, with the closest command when one is close.</summary>
    private static string? UnknownCommand(RootCommand root, string[] args)
    {
        var names = root.Subcommands.Select(c => c.Name).ToArray();
        if (args.Length == 0) return $"name a command: {string.Join(", ", names)} (see 'mlnetgpt --help')";
        string first = args[0];
        if (first.StartsWith('-') || names.Contains(first, StringComparer.Ordinal)) return null;
        string? suggestion = Suggestions.Closest(first, names);
        return $"unknown command '{first}'{(suggestion is null ? "" : $"; did you mean '{suggestion}'?")} (commands: {string.Join(", ", names)}; see 'mlnetgpt --help')";
    }

    /// <summary>One parse error in words: unknown options get a suggestion; option errors name the option.</summary>
    private static string Describe(ParseResult parse, RootCommand root)
    {
        var command = parse.CommandResult.Command;
        if (parse.UnmatchedTokens.Count > 0)
        {
            string token = parse.UnmatchedTokens[0];
            if (!token.StartsWith('-')) return $"unexpected argument '{token}'";
            var options = command.Options.Concat(root.Options.Where(o => o.Recursive)).Where(o => !o.Hidden)
                .SelectMany(o => o.Aliases.Prepend(o.Name)).Where(n => n.StartsWith("--", StringComparison.Ordinal)).Distinct().ToArray();
            string? suggestion = Suggestions.Closest(token, options);
            return $"unknown option '{token}'{(suggestion is null ? "" : $"; did you mean '{suggestion}'?")}";
        }
        var error = parse.Errors[0];
        string message = string.Join(" ", error.Message.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(p => p.Trim()));
        string? option = error.SymbolResult switch
        {
            OptionResult o => o.Option.Name,
            ArgumentResult { Parent: OptionResult o } => o.Option.Name,
            _ => null,
        };
        if (message.StartsWith("Required command was not provided", StringComparison.Ordinal))
            return $"name a command: {string.Join(", ", root.Subcommands.Select(c => c.Name))}";
        if (option is not null && !message.Contains(option, StringComparison.Ordinal)) message = $"{option}: {message}";
        return message;
    }

    /// <summary>Runs a command body, turning the errors a user can fix into one line and an exit code.</summary>
    internal static int Guard(Func<int> body, TextWriter? error = null)
    {
        error ??= Console.Error;
        try
        {
            return body();
        }
        catch (Exception e) when (e is UsageException or CsvFormatException or GptModelException)
        {
            error.WriteLine($"mlnetgpt: error: {e.Message}");
            return BatchJob.UsageError;
        }
        catch (OperationCanceledException)
        {
            error.WriteLine("mlnetgpt: interrupted.");
            return BatchJob.Interrupted;
        }
        catch (Exception e)
        {
            error.WriteLine($"mlnetgpt: error: {e.Message}");
            if (Environment.GetEnvironmentVariable("MLNETGPT_DEBUG") == "1") error.WriteLine(e);
            return BatchJob.UsageError;
        }
    }

    private static void OnInterrupt(PosixSignalContext context)
    {
        context.Cancel = true;
        if (BatchJob.InterruptRequested)
        {
            Console.Error.WriteLine("mlnetgpt: stopped.");
            Environment.Exit(BatchJob.Interrupted);
        }
        BatchJob.InterruptRequested = true;
        if (BatchJob.Running is { } view) view.Stop = true;
        CompleteCommand.Cancel();
        Console.Error.WriteLine(FineTuneCommand.Cancel()
            ? "mlnetgpt: stopping at the next micro-batch, after writing a checkpoint (press Ctrl+C again to stop at once)."
            : "mlnetgpt: stopping after the rows in progress (press Ctrl+C again to stop at once).");
    }
}
