using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Generation;

namespace MLNetGpt.Bench;

/// <summary>
/// The CUDA path on a machine with an NVIDIA GPU, in one run: the provider actually used, CUDA
/// results against the CPU's (greedy tokens, scores, seeded sampling across batch sizes), the
/// ML.NET pipeline on the GPU, and tokens/s on CUDA and CPU for each model folder given.
/// </summary>
internal static class GpuCheck
{
    public static int Run(string[] folders)
    {
        int failures = 0;
        void Check(string name, Func<string> body)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                Console.WriteLine($"gpu: {name}: {body()} ({clock.Elapsed.TotalSeconds:F1} s)");
            }
            catch (Exception e)
            {
                failures++;
                Console.WriteLine($"gpu: {name}: FAILED {e.GetType().Name}: {e.Message}");
            }
        }

        bool dryRun = folders.Contains("--dry-run");   // every check on the CPU: tests the checks themselves
        folders = folders.Where(f => f != "--dry-run").ToArray();
        string first = folders[0];
        var gpu = new GptModelOptions { GpuDeviceId = dryRun ? null : 0, FallbackToCpu = false, Log = m => Console.WriteLine($"gpu: log: {m}") };
        GptModel? cuda = null;
        Check("open on CUDA", () =>
        {
            cuda = GptModel.Open(first, gpu);
            return $"{Path.GetFileName(first)} runs on {cuda.Info.ExecutionProvider}";
        });
        if (cuda is null) return 1;
        using var cpu = GptModel.Open(first);
        string[] prompts = ["In the beginning", "And the children of Israel", "Blessed are the", "The LORD is my shepherd;",
                            "And it came to pass, when", "And the LORD said unto Moses,", "For God so loved the world,", "Then said the king"];

        Check("prefill logits shape with num_logits_to_keep = 1 (CPU Run / CUDA Run / CUDA IOBinding)", () =>
        {
            var info = cpu.Info;
            var graph = cpu.Engine.Backend.Graph;
            if (graph.LogitsToKeep is null) return "the graph has no num_logits_to_keep input";
            string path = Path.Combine(info.Folder, info.ModelFiles[0]);
            const int T = 5;
            (List<string> Names, List<OrtValue> Values) Inputs()
            {
                var names = new List<string> { graph.InputIds.Name, graph.AttentionMask.Name };
                var values = new List<OrtValue>
                {
                    OrtValue.CreateTensorValueFromMemory(new long[] { 50256, 818, 262, 3726, 286 }, [1, T]),
                    OrtValue.CreateTensorValueFromMemory(new long[] { 1, 1, 1, 1, 1 }, [1, T]),
                };
                if (graph.PositionIds is not null)
                {
                    names.Add(graph.PositionIds.Name);
                    values.Add(OrtValue.CreateTensorValueFromMemory(new long[] { 0, 1, 2, 3, 4 }, [1, T]));
                }
                foreach (var past in graph.States.Select(s => s.Input))
                {
                    names.Add(past);
                    values.Add(OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, info.KeyValueHeadCount, 0, info.HeadSize]));
                }
                names.Add(graph.LogitsToKeep);
                values.Add(OrtValue.CreateTensorValueFromMemory(new long[] { 1 }, []));
                return (names, values);
            }
            string RunShape(bool onCuda, bool binding)
            {
                using var so = new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING };
                if (onCuda) so.AppendExecutionProvider_CUDA(0);
                using var session = new InferenceSession(path, so);
                var (names, values) = Inputs();
                using var runOptions = new RunOptions();
                try
                {
                    if (!binding)
                    {
                        using var outputs = session.Run(runOptions, names, values, [graph.Logits]);
                        return "[" + string.Join(", ", outputs[0].GetTensorTypeAndShape().Shape) + "]";
                    }
                    using var io = session.CreateIoBinding();
                    for (int i = 0; i < names.Count; i++) io.BindInput(names[i], values[i]);
                    io.BindOutputToDevice(graph.Logits, OrtMemoryInfo.DefaultInstance);
                    io.SynchronizeBoundInputs();
                    session.RunWithBinding(runOptions, io);
                    io.SynchronizeBoundOutputs();
                    using var bound = io.GetOutputValues();
                    return "[" + string.Join(", ", bound[0].GetTensorTypeAndShape().Shape) + "]";
                }
                finally
                {
                    foreach (var v in values) v.Dispose();
                }
            }
            return $"CPU Run {RunShape(false, false)}, CUDA Run {RunShape(true, false)}, CUDA IOBinding {RunShape(true, true)}";
        });
        Check("greedy, CUDA vs CPU, batch 1 and 8", () =>
        {
            var greedy = new GenerationOptions { MaxNewTokens = 24, DoSample = false, RepetitionPenalty = 1f };
            var reference = cpu.Generate(prompts, greedy, 8);
            var one = cuda.Generate(prompts, greedy, 1);
            var eight = cuda.Generate(prompts, greedy, 8);
            int same1 = prompts.Select((_, i) => reference[i].TokenIds.SequenceEqual(one[i].TokenIds)).Count(x => x);
            int same8 = prompts.Select((_, i) => reference[i].TokenIds.SequenceEqual(eight[i].TokenIds)).Count(x => x);
            int agree = prompts.Select((_, i) => one[i].TokenIds.SequenceEqual(eight[i].TokenIds)).Count(x => x);
            return $"{same1}/{prompts.Length} rows equal CPU at batch 1, {same8}/{prompts.Length} at batch 8, CUDA batch 1 vs 8 {agree}/{prompts.Length}; " +
                   $"first: \"{prompts[0]}{eight[0].Text}\"";
        });
        Check("scores, CUDA vs CPU", () =>
        {
            var texts = prompts.Select(p => (p + " and the earth was without form, and void", (string?)null)).ToList();
            var a = cpu.Score(texts, 4);
            var b = cuda.Score(texts, 4);
            double worst = a.Zip(b).Max(x => Math.Abs(x.First.LogLikelihood - x.Second.LogLikelihood) / Math.Max(1e-9, Math.Abs(x.First.LogLikelihood)));
            return $"largest relative difference of log-likelihoods {worst:E2}";
        });
        Check("seeded sampling on CUDA: batch 1 vs 4 vs 8", () =>
        {
            var sampled = new GenerationOptions { MaxNewTokens = 24, DoSample = true, Temperature = 0.9f, TopK = 40, Seed = 5 };
            var r1 = cuda.Generate(prompts, sampled, 1);
            var r4 = cuda.Generate(prompts, sampled, 4);
            var r8 = cuda.Generate(prompts, sampled, 8);
            int same = prompts.Select((_, i) => r1[i].TokenIds.SequenceEqual(r4[i].TokenIds) && r1[i].TokenIds.SequenceEqual(r8[i].TokenIds)).Count(x => x);
            return $"{same}/{prompts.Length} rows identical across batch sizes";
        });
        Check("streaming on CUDA", () =>
        {
            var pieces = cuda.GenerateStreamingAsync(prompts[0], new GenerationOptions { MaxNewTokens = 16, DoSample = false }).ToBlockingEnumerable().ToList();
            return $"{pieces.Count} pieces: \"{string.Concat(pieces)}\"";
        });
        Check("ML.NET pipeline with MLContext.GpuDeviceId = 0", () =>
        {
            var ml = new MLContext(seed: 1) { GpuDeviceId = dryRun ? null : 0, FallbackToCpu = false };
            var rows = Enumerable.Range(0, 64).Select(i => new PromptRow { Prompt = prompts[i % prompts.Length] }).ToList();
            var data = ml.Data.LoadFromEnumerable(rows);
            var pipeline = ml.Transforms.Text.GenerateText(new GenerateTextOptions
            {
                OutputColumnName = "Completion", InputColumnName = "Prompt", ModelFolder = first, BatchSize = 16,
                Generation = new GenerationOptions { MaxNewTokens = 32, DoSample = true, Seed = 3 },
            });
            using var fitted = (TransformerChain<ITransformer>)pipeline.Fit(data);
            var clock = Stopwatch.StartNew();
            var output = ml.Data.CreateEnumerable<CompletionRow>(fitted.Transform(data), reuseRowObject: false).ToList();
            return $"{output.Count} rows in {clock.Elapsed.TotalSeconds:F2} s ({output.Count / clock.Elapsed.TotalSeconds:F1} rows/s); row 0: \"{output[0].Prompt}{output[0].Completion}\"";
        });
        cuda.Dispose();

        Console.WriteLine();
        Console.WriteLine("| model | device | batch | prompt | new tokens | tokens/s | TTFT ms | step p50 ms |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (string folder in folders)
        {
            foreach (bool onGpu in new[] { true, false })
            {
                Check($"throughput {Path.GetFileName(folder)} on {(onGpu ? "CUDA" : "CPU")}", () =>
                {
                    using var model = GptModel.Open(folder, onGpu ? gpu : new GptModelOptions());
                    var lines = new List<string>();
                    foreach (int batch in dryRun ? new[] { 1, 4 } : onGpu ? new[] { 1, 8, 32, 128 } : new[] { 1, 8, 32 })
                    {
                        foreach (int promptTokens in new[] { 16, 128 })
                        {
                            const int newTokens = 64;
                            var settings = model.Engine.Resolve(new GenerationOptions { MaxNewTokens = newTokens, DoSample = false, EosTokenIds = [], RepetitionPenalty = 1f });
                            var prepared = Prompts.Make(model, batch, promptTokens).Select((p, i) => model.Engine.Prompts.FromIds(p, i, settings)).ToList();
                            double best = 0;
                            var timings = new List<(bool Prefill, int Rows, double Milliseconds)>();
                            for (int run = 0; run < 3; run++)
                            {
                                timings.Clear();
                                int generated = 0;
                                using var loop = model.Engine.CreateLoop(settings, batch, continuous: true, (_, r) => generated += r.TokenIds.Count);
                                loop.StepTimings = timings;
                                var clock = Stopwatch.StartNew();
                                loop.Run(prepared.GetEnumerator(), CancellationToken.None);
                                if (run > 0) best = Math.Max(best, generated / clock.Elapsed.TotalSeconds);
                            }
                            double ttft = timings.Where(t => t.Prefill).Select(t => t.Milliseconds).DefaultIfEmpty(0).Max();
                            double step = Stats.Median(timings.Where(t => !t.Prefill).Select(t => t.Milliseconds));
                            Console.WriteLine($"| {Path.GetFileName(folder)} | {model.Info.ExecutionProvider} | {batch} | {promptTokens} | {newTokens} | {best:F0} | {ttft:F1} | {step:F2} |");
                        }
                    }
                    return "done";
                });
            }
        }
        Console.WriteLine($"gpu: {failures} failed checks");
        return failures == 0 ? 0 : 1;
    }

    private sealed class PromptRow
    {
        public string Prompt { get; set; } = "";
    }

    private sealed class CompletionRow
    {
        public string Prompt { get; set; } = "";
        public string Completion { get; set; } = "";
    }
}
