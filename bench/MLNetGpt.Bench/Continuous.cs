using System.Runtime.Intrinsics;
using System.Diagnostics;

namespace MLNetGpt.Bench;

/// <summary>
/// Static against continuous batching on a workload with mixed prompt and output lengths: the
/// default model samples (seeded) and ends verses with its EOS token at different points.
/// </summary>
internal static class Continuous
{
    public sealed class Result
    {
        public int Rows { get; set; }
        public int Batch { get; set; }
        public double MeanNewTokens { get; set; }
        public int MaxNewTokens { get; set; }
        public double[] StaticRowsPerSecond { get; set; } = [];
        public double[] CompactingRowsPerSecond { get; set; } = [];
        public double[] ContinuousRowsPerSecond { get; set; } = [];
        public bool IdenticalOutputs { get; set; }
    }

    public static Result Measure(string folder, int rows, int batch, int runs, int threads)
    {
        using var model = GptModel.Open(folder, new GptModelOptions { IntraOpThreads = threads });
        var words = "And the LORD said unto Moses , speak unto the children of Israel and say unto them when ye be come into the land which I give".Split(' ');
        var prompts = Enumerable.Range(0, rows).Select(i => string.Join(' ', words.Take(2 + (i * 7) % 20))).ToList();
        var options = new GenerationOptions { MaxNewTokens = 64, DoSample = true, Temperature = 0.9f, TopK = 40, Seed = 11 };
        var settings = model.Resolve(options);
        var prepared = prompts.Select((p, i) => model.Prompts.FromText(p, i, settings)).ToList();

        GenerationResult[] Run(bool continuous, bool keepFinished, out double seconds)
        {
            var results = new GenerationResult[prepared.Count];
            using var loop = model.CreateLoop(settings, batch, continuous, (i, r) => results[i] = r);
            loop.KeepFinishedRows = keepFinished;
            var clock = Stopwatch.StartNew();
            loop.Run(prepared.GetEnumerator(), CancellationToken.None);
            seconds = clock.Elapsed.TotalSeconds;
            return results;
        }

        var reference = Run(false, true, out _);   // warm-up, and the outputs every mode must reproduce
        var result = new Result
        {
            Rows = rows, Batch = batch, MaxNewTokens = 64,
            MeanNewTokens = reference.Average(r => r.TokenIds.Count),
        };
        var fixedRuns = new List<double>();
        var compacting = new List<double>();
        var continuousRuns = new List<double>();
        bool identical = true;
        for (int run = 0; run < runs; run++)
        {
            foreach (var (list, continuous, keep) in new[] { (fixedRuns, false, true), (compacting, false, false), (continuousRuns, true, false) })
            {
                var outputs = Run(continuous, keep, out double seconds);
                list.Add(rows / seconds);
                identical &= outputs.Select(o => string.Join(",", o.TokenIds)).SequenceEqual(reference.Select(o => string.Join(",", o.TokenIds)));
            }
        }
        result.StaticRowsPerSecond = fixedRuns.ToArray();
        result.CompactingRowsPerSecond = compacting.ToArray();
        result.ContinuousRowsPerSecond = continuousRuns.ToArray();
        result.IdenticalOutputs = identical;
        return result;
    }
}

/// <summary>Memory bandwidth: the physical limit of batch-1 decoding, which reads every weight once per token.</summary>
internal static class Bandwidth
{
    /// <summary>
    /// Best of several passes reading a 1 GiB array with <paramref name="threads"/> threads (GB/s,
    /// 1e9 bytes): 256-bit loads into eight independent accumulators, so the loop is bound by
    /// memory, not by add latency or bounds checks.
    /// </summary>
    public static unsafe double Measure(int threads)
    {
        const long length = 1L << 28;                      // 256 Mi floats = 1 GiB
        float* data = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(length * sizeof(float)), 64);
        try
        {
            long chunk = length / threads;
            Parallel.For(0, threads, t => new Span<float>(data + t * chunk, (int)Math.Min(chunk, int.MaxValue)).Fill(1f));
            double best = 0;
            for (int pass = 0; pass < 7; pass++)
            {
                var sums = new float[threads];
                var clock = Stopwatch.StartNew();
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t => sums[t] = Sum(data + t * chunk, chunk));
                double seconds = clock.Elapsed.TotalSeconds;
                if (sums.Sum() < 0) Console.Write("");
                best = Math.Max(best, (double)length * sizeof(float) / seconds / 1e9);
            }
            return best;
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(data);
        }
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
}
