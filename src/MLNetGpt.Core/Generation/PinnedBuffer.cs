using System.Collections.Concurrent;
using System.Numerics;

namespace MLNetGpt.Generation;

/// <summary>
/// A byte buffer on the pinned object heap, so ONNX Runtime can read and write it in place for
/// the buffer's whole life. Buffers are pooled by power-of-two size: the decode loop asks for a
/// slightly larger cache every step, and fresh large arrays each step would churn the GC.
/// </summary>
internal sealed class PinnedBuffer : IDisposable
{
    private static readonly ConcurrentDictionary<int, ConcurrentBag<byte[]>> Pool = new();
    private const long MaxPooledBytes = 512L << 20;
    private static long s_pooledBytes;
    private byte[]? _array;

    private PinnedBuffer(byte[] array, long length)
    {
        _array = array;
        Length = length;
    }

    public long Length { get; }

    public byte[] Array => _array ?? throw new ObjectDisposedException(nameof(PinnedBuffer));

    public unsafe IntPtr Pointer
    {
        get
        {
            fixed (byte* p = Array) return (IntPtr)p;   // pinned-heap arrays never move
        }
    }

    public Span<byte> Bytes => Array.AsSpan(0, checked((int)Length));

    public Span<T> As<T>() where T : unmanaged => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(Bytes);

    public static PinnedBuffer Rent(long length)
    {
        if (length > int.MaxValue)
            throw new InvalidOperationException($"A tensor of {length} bytes is larger than one .NET array can hold; use a smaller batch size.");
        int size = (int)Math.Max(64, BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, length)));
        if (length > (1L << 30)) size = (int)length;   // avoid doubling a huge request
        if (Pool.TryGetValue(size, out var bag) && bag.TryTake(out var array))
        {
            Interlocked.Add(ref s_pooledBytes, -array.Length);
            return new PinnedBuffer(array, length);
        }
        return new PinnedBuffer(GC.AllocateUninitializedArray<byte>(size, pinned: true), length);
    }

    public void Dispose()
    {
        var array = Interlocked.Exchange(ref _array, null);
        if (array is null) return;
        if (Interlocked.Add(ref s_pooledBytes, array.Length) > MaxPooledBytes)
        {
            Interlocked.Add(ref s_pooledBytes, -array.Length);   // let the GC have it
            return;
        }
        Pool.GetOrAdd(array.Length, _ => []).Add(array);
    }
}
