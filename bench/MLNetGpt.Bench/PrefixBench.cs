using System.Diagnostics;

namespace MLNetGpt.Bench;

/// <summary>
/// A shared-prompt-head workload (a long system prompt or few-shot block before short per-row
/// parts): rows/s with <see cref="GenerationOptions.PrefixCaching"/> on and off, interleaved run by
/// run, and whether both settings generate the same ids.
/// </summary>
internal static class PrefixBench
{
    public sealed class Result
    {
        public int Rows { get; set; }
        public int Batch { get; set; }
        public int HeadTokens { get; set; }
        public int RowTokens { get; set; }
        public int NewTokens { get; set; }
        public double[] CachedRowsPerSecond { get; set; } = [];
        public double[] UncachedRowsPerSecond { get; set; } = [];
        public bool IdenticalOutputs { get; set; }
        public double LoadAverage { get; set; }
    }

    public static Result Measure(string folder, int rows, int batch, int runs, int threads, int headTokens = 256, int rowTokens = 16, int newTokens = 32)
    {
        using var model = GptModel.Open(folder, new GptModelOptions { IntraOpThreads = threads });
        // One head for all rows, then a different stretch of text for each row.
        var text = Prompts.Make(model, rows + 1, headTokens + rowTokens);
        int[] head = text[0][..headTokens];
        var prompts = Enumerable.Range(0, rows).Select(r => head.Concat(text[r + 1][headTokens..]).ToArray()).ToList();

        List<int[]> Run(bool cached, out double seconds)
        {
            var settings = model.Engine.Resolve(new GenerationOptions
            {
                MaxNewTokens = newTokens, DoSample = false, EosTokenIds = [], RepetitionPenalty = 1f, PrefixCaching = cached,
            });
            var prepared = prompts.Select((p, i) => model.Engine.Prompts.FromIds(p, i, settings)).ToList();
            var outputs = new int[rows][];
            using var loop = model.Engine.CreateLoop(settings, batch, continuous: true, (i, r) => outputs[i] = r.TokenIds.ToArray());
            var clock = Stopwatch.StartNew();
            loop.Run(prepared.GetEnumerator(), CancellationToken.None);
            seconds = clock.Elapsed.TotalSeconds;
            return outputs.ToList();
        }

        var result = new Result { Rows = rows, Batch = batch, HeadTokens = headTokens, RowTokens = rowTokens, NewTokens = newTokens, LoadAverage = Load.Now() };
        var reference = Run(false, out _);   // warm-up, and the outputs both settings must give
        Run(true, out _);
        var cachedRuns = new List<double>();
        var uncachedRuns = new List<double>();
        bool identical = true;
        for (int run = 0; run < runs; run++)
            foreach (bool cached in run % 2 == 0 ? new[] { true, false } : new[] { false, true })
            {
                var outputs = Run(cached, out double seconds);
                (cached ? cachedRuns : uncachedRuns).Add(rows / seconds);
                identical &= outputs.Select(o => string.Join(",", o)).SequenceEqual(reference.Select(o => string.Join(",", o)));
            }
        result.CachedRowsPerSecond = cachedRuns.ToArray();
        result.UncachedRowsPerSecond = uncachedRuns.ToArray();
        result.IdenticalOutputs = identical;
        return result;
    }
}
