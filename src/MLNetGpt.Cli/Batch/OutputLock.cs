using System.Diagnostics;
using System.Text.Json;

namespace MLNetGpt.Cli.Batch;

/// <summary>
/// <c>OUTPUT.lock</c>: one run at a time per output. The lock file is created exclusively and names
/// its owner (process id, start time, host). A lock whose owner is no longer running (it crashed or was
/// killed) is stale and is taken over with a warning; a live owner's lock refuses the run, naming it.
/// </summary>
/// <remarks>
/// The owner keeps the file open with a shared advisory lock, which the kernel drops when the process
/// dies. Taking over a stale lock needs the exclusive lock on the same file, so two runs that find the
/// same stale lock cannot both take it: the second sees the first's record and its live process.
/// </remarks>
internal sealed class OutputLock : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(2);

    private readonly string _path;
    private FileStream? _handle;

    private OutputLock(string path, FileStream handle)
    {
        _path = path;
        _handle = handle;
    }

    /// <summary>Takes the lock for <paramref name="output"/> or throws a <see cref="UsageException"/> naming its live owner.</summary>
    public static OutputLock Acquire(string path, string output, Action<string> warn)
    {
        var me = LockOwner.Current();
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            if (TryCreate(path, me) is { } created) return new OutputLock(path, created);
            var owner = LockOwner.TryRead(path);
            if (owner is not null && owner.IsRunning())
                throw new UsageException($"another mlnetgpt run (pid {owner.Pid}, started {owner.Started:yyyy-MM-dd HH:mm:ss} UTC" +
                    $"{(owner.Host == me.Host ? "" : $" on {owner.Host}")}) is writing '{output}'; wait for it to end or choose another --output " +
                    $"(its lock is '{path}').");
            // An unreadable or empty record is a lock being created or taken over right now: give it a moment.
            if (owner is not null || DateTime.UtcNow > deadline)
            {
                if (TryTakeOver(path, owner, me) is { } taken)
                {
                    warn(owner is null
                        ? $"took over the lock '{path}', which named no owner."
                        : $"took over the lock '{path}' of an earlier run (pid {owner.Pid}, started {owner.Started:yyyy-MM-dd HH:mm:ss} UTC), which is no longer running.");
                    return new OutputLock(path, taken);
                }
                if (DateTime.UtcNow > deadline + Patience)
                    throw new UsageException($"the lock '{path}' is held by a process that does not say who it is; if no mlnetgpt run is writing '{output}', delete it.");
            }
            Thread.Sleep(50);
        }
    }

    private static FileStream? TryCreate(string path, LockOwner me)
    {
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        }
        catch (IOException) when (File.Exists(path))
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"cannot create the lock file '{path}': {e.Message}");
        }
        me.WriteTo(stream);
        return stream;
    }

    private static FileStream? TryTakeOver(string path, LockOwner? stale, LockOwner me)
    {
        try
        {
            using (var exclusive = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
            {
                var current = LockOwner.TryRead(exclusive);
                if (current != stale || (current is not null && current.IsRunning())) return null;
                exclusive.SetLength(0);
                me.WriteTo(exclusive);
            }
            var shared = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.Read);
            if (LockOwner.TryRead(path) == me) return shared;
            shared.Dispose();
            return null;
        }
        catch (IOException)
        {
            return null;   // held or gone: the caller looks again
        }
    }

    public void Dispose()
    {
        if (_handle is null) return;
        try
        {
            File.Delete(_path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A lock left behind is stale once this process ends; the next run takes it over.
        }
        _handle.Dispose();
        _handle = null;
    }
}

/// <summary>Who holds an output lock.</summary>
internal sealed record LockOwner(int Pid, DateTime Started, string Host, string Token)
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static LockOwner Current()
    {
        using var process = Process.GetCurrentProcess();
        return new LockOwner(process.Id, process.StartTime.ToUniversalTime(), Environment.MachineName, Guid.NewGuid().ToString("N"));
    }

    public void WriteTo(FileStream stream)
    {
        JsonSerializer.Serialize(stream, this, Json);
        stream.Flush(flushToDisk: true);
    }

    public static LockOwner? TryRead(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            return TryRead(stream);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static LockOwner? TryRead(FileStream stream)
    {
        try
        {
            stream.Position = 0;
            return stream.Length == 0 ? null : JsonSerializer.Deserialize<LockOwner>(stream, Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Whether the owner still runs: same host, the process exists and started when the lock says (pids are reused).</summary>
    public bool IsRunning()
    {
        if (Host != Environment.MachineName) return true;   // another machine's process cannot be checked from here
        try
        {
            using var process = Process.GetProcessById(Pid);
            return !process.HasExited && Math.Abs((process.StartTime.ToUniversalTime() - Started).TotalSeconds) < 1;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
