using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace MLNetGpt.Bench;

/// <summary>
/// Memory bandwidth, the physical limit of batch-1 decoding (which reads every weight once per
/// token). One reading is easily lowered by other work on a shared host (FACTS: 20 to 65 GB/s within
/// an hour), so the probe takes many: buffers far above the last-level cache, a read-only pass
/// (vectorised sum, eight accumulators) and a triad pass (a = b + s * c), with 1 thread and with the
/// engine's threads, several repetitions interleaved so that drift hits every kind alike.
/// </summary>
internal static class Bandwidth
{
    public sealed class Reading
    {
        public string Kind { get; set; } = "";
        public int Threads { get; set; }
        public int SizeMiB { get; set; }
        public double GBps { get; set; }
    }

    public sealed class Result
    {
        public List<Reading> Readings { get; set; } = [];
        public double LoadAverage { get; set; }
    }

    public const string Read = "read";
    public const string Triad = "triad";
    public static readonly int[] SizesMiB = [256, 512, 1024];

    /// <summary>All readings for the thread counts (1 and the engine's), <paramref name="repetitions"/> rounds of every size and kind.</summary>
    public static unsafe Result Measure(int threads, int repetitions)
    {
        long bytes = (long)SizesMiB.Max() << 20;
        float* data = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        try
        {
            long length = bytes / sizeof(float);
            // Touch every page first so that no reading pays for page faults.
            new Workers(threads).Run(t =>
            {
                var (start, count) = Slice(length, threads, t);
                for (long i = start; i < start + count; i += 1 << 28) new Span<float>(data + i, (int)Math.Min(1 << 28, start + count - i)).Fill(1f);
            });
            var result = new Result { LoadAverage = Load.Now() };
            var threadCounts = threads == 1 ? new[] { 1 } : new[] { threads, 1 };
            var pools = threadCounts.ToDictionary(n => n, n => new Workers(n));
            for (int rep = 0; rep < repetitions; rep++)
                foreach (int size in rep % 2 == 0 ? SizesMiB : SizesMiB.Reverse())
                    foreach (int n in threadCounts)
                        foreach (string kind in new[] { Read, Triad })
                            result.Readings.Add(new Reading { Kind = kind, Threads = n, SizeMiB = size, GBps = Pass(pools[n], data, (long)size << 20, kind) });
            return result;
        }
        finally
        {
            NativeMemory.AlignedFree(data);
        }
    }

    private static unsafe double Pass(Workers workers, float* data, long bytes, string kind)
    {
        int n = workers.Count;
        var sums = new float[n];
        double seconds;
        if (kind == Read)
        {
            long length = bytes / sizeof(float);
            seconds = workers.Run(t =>
            {
                var (start, count) = Slice(length, n, t);
                sums[t] = Sum(data + start, count);
            });
            GC.KeepAlive(sums);
            return bytes / seconds / 1e9;
        }
        // Three arrays of a third each; traffic counted as STREAM counts it (read b and c, write a),
        // without the write-allocate read of a that the CPU adds.
        long third = bytes / 3 / sizeof(float) / 64 * 64;
        float* a = data, b = data + third, c = data + 2 * third;
        seconds = workers.Run(t =>
        {
            var (start, count) = Slice(third, n, t);
            TriadPass(a + start, b + start, c + start, count, 0.5f);
        });
        return 3.0 * third * sizeof(float) / seconds / 1e9;
    }

    private static (long Start, long Count) Slice(long length, int parts, int index)
    {
        long chunk = length / parts / 64 * 64;
        long start = index * chunk;
        return (start, index == parts - 1 ? length - start : chunk);
    }

    private static unsafe float Sum(float* p, long count)
    {
        var a0 = Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0; var a4 = a0; var a5 = a0; var a6 = a0; var a7 = a0;
        float* end = p + count - 63;
        for (; p < end; p += 64)
        {
            a0 += Vector256.Load(p); a1 += Vector256.Load(p + 8); a2 += Vector256.Load(p + 16); a3 += Vector256.Load(p + 24);
            a4 += Vector256.Load(p + 32); a5 += Vector256.Load(p + 40); a6 += Vector256.Load(p + 48); a7 += Vector256.Load(p + 56);
        }
        return Vector256.Sum(((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)));
    }

    private static unsafe void TriadPass(float* a, float* b, float* c, long count, float s)
    {
        var scale = Vector256.Create(s);
        for (long i = 0; i + 31 < count; i += 32)
        {
            Vector256.Store(Vector256.Load(b + i) + scale * Vector256.Load(c + i), a + i);
            Vector256.Store(Vector256.Load(b + i + 8) + scale * Vector256.Load(c + i + 8), a + i + 8);
            Vector256.Store(Vector256.Load(b + i + 16) + scale * Vector256.Load(c + i + 16), a + i + 16);
            Vector256.Store(Vector256.Load(b + i + 24) + scale * Vector256.Load(c + i + 24), a + i + 24);
        }
    }

    /// <summary>
    /// Dedicated threads released together by one barrier: a pass is timed from the release to the
    /// last thread's finish, without thread-pool injection delays in the measurement.
    /// </summary>
    private sealed class Workers
    {
        private readonly int _count;

        public Workers(int count) => _count = count;

        public int Count => _count;

        public double Run(Action<int> work)
        {
            using var start = new Barrier(_count + 1);
            using var done = new CountdownEvent(_count);
            var threads = Enumerable.Range(0, _count).Select(t => new Thread(() =>
            {
                start.SignalAndWait();
                work(t);
                done.Signal();
            }) { IsBackground = true }).ToList();
            foreach (var thread in threads) thread.Start();
            // The threads exist and wait at the barrier before the clock starts.
            while (start.ParticipantsRemaining > 1) Thread.SpinWait(100);
            var clock = Stopwatch.StartNew();
            start.SignalAndWait();
            done.Wait();
            double seconds = clock.Elapsed.TotalSeconds;
            foreach (var thread in threads) thread.Join();
            return seconds;
        }
    }
}

/// <summary>The 1-minute load average (/proc/loadavg) recorded with every figure: the machine is shared.</summary>
internal static class Load
{
    public static double Now()
    {
        try
        {
            return double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }
}
