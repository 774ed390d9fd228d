using System.Diagnostics;
using System.Text;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>Runs the real mlnetgpt entry point as a separate process (dotnet MLNetGpt.Cli.dll ...).</summary>
public sealed class CliProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private CliProcess(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "MLNetGpt.Cli.dll"));
        foreach (var arg in args) info.ArgumentList.Add(arg);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) info.Environment[name] = value;
        _process = new Process { StartInfo = info };
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_stdout) _stdout.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_stderr) _stderr.AppendLine(e.Data); };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public static CliProcess Start(params string[] args) => new(args, null);

    /// <summary>Starts the tool with extra environment variables.</summary>
    public static CliProcess Start(IReadOnlyDictionary<string, string> environment, params string[] args) => new(args, environment);

    /// <summary>Runs to the end (or fails the test after the timeout).</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        using var process = Start(args);
        return process.WaitForExit(TimeSpan.FromMinutes(5));
    }

    /// <summary>Runs to the end with extra environment variables.</summary>
    public static (int ExitCode, string Stdout, string Stderr) Run(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        using var process = Start(environment, args);
        return process.WaitForExit(TimeSpan.FromMinutes(5));
    }

    public (int ExitCode, string Stdout, string Stderr) WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            _process.Kill(entireProcessTree: true);
            throw new TimeoutException($"mlnetgpt did not finish in {timeout}. stderr: {Stderr}");
        }
        _process.WaitForExit();
        return (_process.ExitCode, Stdout, Stderr);
    }

    public string Stdout
    {
        get { lock (_stdout) return _stdout.ToString(); }
    }

    public string Stderr
    {
        get { lock (_stderr) return _stderr.ToString(); }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The process id (the tool names it in its output lock).</summary>
    public int Id => _process.Id;

    /// <summary>Sends SIGINT, as Ctrl+C does.</summary>
    public void Interrupt() => Process.Start("kill", ["-INT", _process.Id.ToString()])!.WaitForExit();

    /// <summary>Kills the process without warning (SIGKILL), as a crash would.</summary>
    public void Crash() => _process.Kill(entireProcessTree: true);

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }
}
