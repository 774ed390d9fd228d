using System.Runtime.ExceptionServices;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// Runs a compile on a thread of its own with a stack of known size: the compilers recurse a few frames per level of
/// their input, and how large those frames are depends on the JIT (tiered code inlines more), so on the caller's stack a
/// depth limit could be met after the stack check instead of before it. Here the limits decide; the stack checks stay as
/// a backstop. Exceptions (and cancellation) come back to the caller unchanged.
/// </summary>
internal static class LargeStack
{
    public const int Bytes = 16 * 1024 * 1024;

    public static T Run<T>(Func<T> compile, string name)
    {
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = compile();
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
        }, Bytes) { IsBackground = true, Name = name };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result;
    }
}
