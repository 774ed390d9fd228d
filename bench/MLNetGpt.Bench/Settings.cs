using MLNetGpt.Generation;

namespace MLNetGpt.Bench;

/// <summary>
/// The engine's decode step under different ONNX Runtime session settings (threads, spinning,
/// block size), measured in one process and interleaved round by round so drift hits every
/// setting alike.
/// </summary>
internal static class Settings
{
    private sealed record Variant(string Name, int Threads, (string Key, string Value)[] Config);

    public static void Run(string folder, int batch, int promptTokens, int steps, int threads, int rounds)
    {
        var variants = new[]
        {
            new Variant($"{threads} threads (default settings)", threads, []),
            new Variant($"{threads} threads, no spinning", threads, [("session.intra_op.allow_spinning", "0")]),
            new Variant($"{threads} threads, dynamic_block_base 4", threads, [("session.dynamic_block_base", "4")]),
            new Variant("1 thread", 1, []),
        };
        var models = variants.Select(v =>
        {
            var options = new GptModelOptions { IntraOpThreads = v.Threads };
            foreach (var (key, value) in v.Config) options.SessionConfig[key] = value;
            return GptModel.Open(folder, options);
        }).ToArray();
        var samples = variants.Select(_ => new List<double>()).ToArray();
        try
        {
            for (int round = 0; round <= rounds; round++)
                for (int i = 0; i < models.Length; i++)
                {
                    var model = models[i];
                    var settings = model.Engine.Resolve(new GenerationOptions { MaxNewTokens = steps, DoSample = false, EosTokenIds = [], RepetitionPenalty = 1f });
                    var prepared = Prompts.Make(model, batch, promptTokens).Select((p, r) => model.Engine.Prompts.FromIds(p, r, settings)).ToList();
                    var timings = new List<(bool Prefill, int Rows, double Milliseconds)>();
                    using var loop = model.Engine.CreateLoop(settings, batch, continuous: true, (_, _) => { });
                    loop.StepTimings = timings;
                    loop.Run(prepared.GetEnumerator(), CancellationToken.None);
                    if (round > 0) samples[i].AddRange(timings.Where(t => !t.Prefill).Select(t => t.Milliseconds));   // round 0 warms up
                }
        }
        finally
        {
            foreach (var model in models) model.Dispose();
        }
        double baseline = Stats.Median(samples[0]);
        Console.WriteLine($"{Path.GetFileName(folder)}, batch {batch}, {promptTokens}-token prompts, {steps} steps x {rounds} rounds: median decode step");
        for (int i = 0; i < variants.Length; i++)
        {
            double median = Stats.Median(samples[i]);
            Console.WriteLine($"  {variants[i].Name,-40} {median,7:F2} ms  ({baseline / median:F2}x)");
        }
    }
}
