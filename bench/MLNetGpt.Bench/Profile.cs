using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Generation;

namespace MLNetGpt.Bench;

/// <summary>
/// Where a decode step's time goes: the engine's step against the leanest possible ONNX Runtime
/// loop (OrtValue inputs, ONNX Runtime allocating the outputs, presents fed back as pasts untouched).
/// The difference is the engine's own per-step overhead.
/// </summary>
internal static class Profile
{
    public static void Run(string folder, int batch, int promptTokens, int steps, int threads)
    {
        using var model = GptModel.Open(folder, new GptModelOptions { IntraOpThreads = threads });
        var prompts = Prompts.Make(model, batch, promptTokens);
        var settings = model.Engine.Resolve(new GenerationOptions { MaxNewTokens = steps, DoSample = false, EosTokenIds = [], RepetitionPenalty = 1f });
        var prepared = prompts.Select((p, i) => model.Engine.Prompts.FromIds(p, i, settings)).ToList();
        var timings = new List<(bool Prefill, int Rows, double Milliseconds)>();
        for (int round = 0; round < 3; round++)
        {
            timings.Clear();
            using var loop = model.Engine.CreateLoop(settings, batch, continuous: true, (_, _) => { });
            loop.StepTimings = timings;
            loop.Run(prepared.GetEnumerator(), CancellationToken.None);
        }
        double engineStep = Stats.Median(timings.Where(t => !t.Prefill).Select(t => t.Milliseconds));

        var info = model.Info;
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = threads };
        using var session = new InferenceSession(Path.Combine(info.Folder, info.ModelFiles[0]), options);
        var graph = model.Engine.Backend.Graph;
        var leanSteps = new List<double>();
        for (int round = 0; round < 3; round++)
        {
            leanSteps.Clear();
            long[] ids = prompts.SelectMany(p => p.Select(i => (long)i)).ToArray();
            int width = promptTokens, length = promptTokens;
            var pasts = graph.States.Select(_ => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [batch, info.KeyValueHeadCount, 0, info.HeadSize])).ToList();
            var outputNames = new[] { graph.Logits }.Concat(graph.States.Select(s => s.Output)).ToArray();
            for (int step = 0; step <= steps; step++)
            {
                var names = new List<string> { graph.InputIds.Name, graph.AttentionMask.Name };
                var values = new List<OrtValue>
                {
                    OrtValue.CreateTensorValueFromMemory(ids, [batch, length]),
                    OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, batch * width).ToArray(), [batch, width]),
                };
                if (graph.PositionIds is not null)
                {
                    names.Add(graph.PositionIds.Name);
                    values.Add(OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, batch).SelectMany(_ => Enumerable.Range(width - length, length).Select(p => (long)p)).ToArray(), [batch, length]));
                }
                names.AddRange(graph.States.Select(s => s.Input));
                values.AddRange(pasts);
                var clock = Stopwatch.StartNew();
                using var runOptions = new RunOptions();
                var outputs = session.Run(runOptions, names, values, outputNames);
                var logits = outputs[0].GetTensorDataAsSpan<float>();
                int vocabulary = info.VocabularySize;
                var next = new long[batch];
                for (int r = 0; r < batch; r++) next[r] = LogitsProcessors.ArgMax(logits.Slice(((r + 1) * length - 1) * vocabulary, vocabulary));
                if (step > 0) leanSteps.Add(clock.Elapsed.TotalMilliseconds);
                foreach (var v in values.Take(values.Count - pasts.Count)) v.Dispose();
                foreach (var p in pasts) p.Dispose();
                pasts = outputs.Skip(1).ToList();     // presents become pasts as they are
                outputs[0].Dispose();
                ids = next;
                length = 1;
                width++;
            }
            foreach (var p in pasts) p.Dispose();
        }
        double leanStep = Stats.Median(leanSteps);
        Console.WriteLine($"{Path.GetFileName(folder)} batch {batch}: engine decode step {engineStep:F2} ms, lean ONNX Runtime loop {leanStep:F2} ms " +
                          $"(engine overhead {engineStep - leanStep:F2} ms, {100 * (engineStep / leanStep - 1):F1}%)");
    }
}
