using System.Diagnostics;
using MLNetGpt.Cli.Batch;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>The output lock, in process: who holds it, and when it may be taken over.</summary>
public sealed class OutputLockTests
{
    private static string LockPath() => Path.Combine(Fixtures.TempFolder("lock"), "out.csv.lock");

    [Fact]
    public void A_held_lock_refuses_a_second_taker_naming_the_holder_and_is_gone_when_released()
    {
        var path = LockPath();
        using (OutputLock.Acquire(path, "out.csv", _ => Assert.Fail("no warning expected")))
        {
            var error = Assert.Throws<UsageException>(() => OutputLock.Acquire(path, "out.csv", _ => { }));
            Assert.Contains($"another mlnetgpt run (pid {Environment.ProcessId}, started ", error.Message);
            Assert.Contains("is writing 'out.csv'", error.Message);
        }
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void The_lock_of_a_process_that_no_longer_runs_is_taken_over_with_a_warning_naming_it()
    {
        var path = LockPath();
        using var gone = Process.Start(new ProcessStartInfo("true"))!;
        gone.WaitForExit();
        File.WriteAllText(path, $"{{\"pid\":{gone.Id},\"started\":\"2026-12-01T20:00:00Z\",\"host\":\"{Environment.MachineName}\",\"token\":\"x\"}}");
        var warnings = new List<string>();
        using (OutputLock.Acquire(path, "out.csv", warnings.Add))
        {
            Assert.Contains($"pid {gone.Id}", Assert.Single(warnings));
            Assert.Contains("no longer running", warnings[0]);
            Assert.Contains($"\"pid\":{Environment.ProcessId}", File.ReadAllText(path));
        }
    }

    [Fact]
    public void An_empty_lock_left_by_a_crash_is_taken_over_with_a_warning()
    {
        var path = LockPath();
        File.WriteAllText(path, "");
        var warnings = new List<string>();
        using (OutputLock.Acquire(path, "out.csv", warnings.Add)) Assert.Contains("which named no owner", Assert.Single(warnings));
    }

    [Fact]
    public void A_lock_held_open_without_an_owner_record_is_refused_after_a_wait()
    {
        var path = LockPath();
        File.WriteAllText(path, "not a lock record");
        // A shared lock on the file, as a live owner holds it: the exclusive lock a takeover needs cannot be had.
        using var holder = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.Read);
        var error = Assert.Throws<UsageException>(() => OutputLock.Acquire(path, "out.csv", _ => { }));
        Assert.Contains($"the lock '{path}' is held by a process that does not say who it is", error.Message);
    }
}
