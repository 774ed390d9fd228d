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
        var settings = model.Engine.Resolve(options);
        var prepared = prompts.Select((p, i) => model.Engine.Prompts.FromText(p, i, settings)).ToList();

        GenerationResult[] Run(bool continuous, bool keepFinished, out double seconds)
        {
            var results = new GenerationResult[prepared.Count];
            using var loop = model.Engine.CreateLoop(settings, batch, continuous, (i, r) => results[i] = r);
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
