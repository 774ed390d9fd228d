using System.Diagnostics;
using MLNetGpt.Generation;

namespace MLNetGpt.Bench;

/// <summary>Microseconds per call of each decoding control on real logits of a model (a quick look; `micro` is the careful one).</summary>
internal static class Choose
{
    public static void Run(string folder, int calls)
    {
        using var model = GptModel.Open(folder);
        var settings = model.Engine.Resolve(new GenerationOptions { DoSample = true, Seed = 1, MaxNewTokens = 1 });
        // Real logits: the next-token row after a prompt.
        var prepared = model.Engine.Prompts.FromIds(model.Tokenizer.EncodeToIds("And the LORD said unto Moses,").ToArray(), 0, settings);
        var backend = model.Engine.Backend;
        int n = prepared.Ids.Length;
        var input = new StepInput(prepared.Ids.Select(i => (long)i).ToArray(), 1, n, Enumerable.Repeat(1L, n).ToArray(),
            Enumerable.Range(0, n).Select(i => (long)i).ToArray(), 1);
        float[] logits = new float[backend.Graph.VocabularySize];
        using (var empty = backend.EmptyCache(1))
        using (var runOptions = new Microsoft.ML.OnnxRuntime.RunOptions())
        {
            var (buffer, present) = backend.Step(input, empty, runOptions);
            buffer.Read(0, buffer.Length - 1, logits);
            buffer.Dispose();
            present.Dispose();
        }
        var work = new float[logits.Length];
        var scratch = new float[logits.Length];
        int[]? order = null;
        float[]? keys = null;
        void Time(string name, Action action)
        {
            action();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < calls; i++) action();
            Console.WriteLine($"  {name,-32} {clock.Elapsed.TotalMilliseconds * 1000 / calls,8:F1} us");
        }
        Console.WriteLine($"{Path.GetFileName(folder)}: {logits.Length} logits; settings top_k {settings.TopK}, top_p {settings.TopP}, temperature {settings.Temperature}, repetition {settings.RepetitionPenalty}");
        Time("copy", () => logits.CopyTo(work, 0));
        Time("argmax (greedy)", () => LogitsProcessors.ArgMax(logits));
        Time("copy + temperature", () => { logits.CopyTo(work, 0); LogitsProcessors.ApplyTemperature(work, 0.8f); });
        Time("copy + top-k", () => { logits.CopyTo(work, 0); LogitsProcessors.ApplyTopK(work, settings.TopK, scratch); });
        Time("copy + top-k + top-p", () => { logits.CopyTo(work, 0); LogitsProcessors.ApplyTopK(work, settings.TopK, scratch); LogitsProcessors.ApplyTopP(work, settings.TopP, ref order, ref keys); });
        Time("copy + top-k + top-p + sample", () => { logits.CopyTo(work, 0); LogitsProcessors.ApplyTopK(work, settings.TopK, scratch); LogitsProcessors.ApplyTopP(work, settings.TopP, ref order, ref keys); LogitsProcessors.Sample(work, 0.5); });
        var chooser = new TokenChooser(logits.Length);
        var history = prepared.Ids.ToArray();
        var random = new SequenceRandom(1);
        Time("TokenChooser.Choose (all controls)", () => { logits.CopyTo(work, 0); chooser.Choose(settings, work, history, 1, random); });
    }
}
