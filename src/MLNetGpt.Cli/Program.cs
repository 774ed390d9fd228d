using System.CommandLine;
using System.Runtime.InteropServices;
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
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnInterrupt);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnInterrupt);
        BatchJob.InterruptRequested = false;
        var root = Commands.CommandLine.Build();
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            var command = parse.CommandResult.Command;
            string name = command == root ? "mlnetgpt" : $"mlnetgpt {command.Name}";
            string message = string.Join(" ", parse.Errors[0].Message.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(p => p.Trim()));
            string? option = parse.Errors[0].SymbolResult switch
            {
                System.CommandLine.Parsing.OptionResult o => o.Option.Name,
                System.CommandLine.Parsing.ArgumentResult { Parent: System.CommandLine.Parsing.OptionResult o } => o.Option.Name,
                _ => null,
            };
            if (option is not null && !message.Contains(option, StringComparison.Ordinal)) message = $"{option}: {message}";
            Console.Error.WriteLine($"mlnetgpt: error: {message} (see '{name} --help')");
            return BatchJob.UsageError;
        }
        return parse.Invoke(new InvocationConfiguration { ProcessTerminationTimeout = null, EnableDefaultExceptionHandler = false });
    }

    /// <summary>Runs a command body, turning the errors a user can fix into one line and an exit code.</summary>
    internal static int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is UsageException or CsvFormatException or GptModelException)
        {
            Console.Error.WriteLine($"mlnetgpt: error: {e.Message}");
            return BatchJob.UsageError;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("mlnetgpt: interrupted.");
            return BatchJob.Interrupted;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"mlnetgpt: error: {e.Message}");
            if (Environment.GetEnvironmentVariable("MLNETGPT_DEBUG") == "1") Console.Error.WriteLine(e);
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
        Console.Error.WriteLine("mlnetgpt: stopping after the rows in progress (press Ctrl+C again to stop at once).");
    }
}
