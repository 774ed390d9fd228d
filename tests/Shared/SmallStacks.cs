using Xunit;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>
/// Runs code where a stack overflow would come first: on a thread-pool thread (less stack than the main thread) and
/// on a thread created with a 256 KB stack. Returns what was thrown (null when nothing was), so a test can assert on
/// the refusal; a stack overflow would kill the test host instead, which is what these tests guard against.
/// </summary>
public static class SmallStacks
{
    public const int SmallStackBytes = 256 * 1024;

    /// <summary>The two kinds of thread the deep-input tests run on.</summary>
    public static readonly TheoryData<string> Threads = new() { "thread pool", "256 KB stack" };

    public static Exception? Run(string thread, Action action) => thread switch
    {
        "thread pool" => OnThreadPool(action),
        "256 KB stack" => OnSmallStack(action),
        _ => throw new ArgumentOutOfRangeException(nameof(thread), thread, "unknown thread kind"),
    };

    public static Exception? OnThreadPool(Action action) => Task.Run(() => Capture(action)).GetAwaiter().GetResult();

    public static Exception? OnSmallStack(Action action)
    {
        Exception? error = null;
        var thread = new Thread(() => error = Capture(action), SmallStackBytes);
        thread.Start();
        thread.Join();
        return error;
    }

    private static Exception? Capture(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }
}
