using System.Diagnostics;

namespace MLNetGpt.Cli.Batch;

/// <summary>
/// Named moments of the resume repair at which the crash-safety tests kill the tool: with
/// <c>MLNETGPT_KILL_AT=NAME</c> in the environment the process sends itself SIGKILL on reaching
/// <c>NAME</c>. The repair takes microseconds, so a test's timer would almost never land inside it;
/// this lets a test kill exactly there, the same way a real crash would (no cleanup runs).
/// Points: <c>resume-scanned</c>, <c>resume-truncated</c>, <c>manifest-written</c>.
/// </summary>
internal static class FaultPoint
{
    private static readonly string? Armed = Environment.GetEnvironmentVariable("MLNETGPT_KILL_AT");

    public static void Reached(string name)
    {
        if (Armed != name) return;
        Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
    }
}
