using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetGpt.Generation;

namespace MLNetGpt.Bench;

/// <summary>The measured subjects that run in this process: the ML.NET pipeline, the engine, and a plain ONNX Runtime loop.</summary>
internal static class Subjects
{
    // Plain greedy, as the other subjects run it: no repetition penalty from generation_config.json.
    private static GenerationOptions Greedy(int newTokens) => new() { MaxNewTokens = newTokens, DoSample = false, EosTokenIds = [], RepetitionPenalty = 1f };

    public static Measurement Measure(string subject, Workload w) => subject switch
    {
        "pipeline" => Pipeline(w),
        "engine" => Engine(w),
        "plain" => Plain(w),
        _ => throw new ArgumentException($"unknown subject '{subject}'"),
    };

    /// <summary>Set by the report for its no-spin subjects: ONNX Runtime's intra-op threads sleep instead of spinning while they wait.</summary>
    public const string NoSpinVariable = "MLNETGPT_BENCH_NO_SPIN";

    private static GptModel Open(Workload w)
    {
        var options = new GptModelOptions { IntraOpThreads = w.Threads };
        if (Environment.GetEnvironmentVariable(NoSpinVariable) == "1") options.SessionConfig["session.intra_op.allow_spinning"] = "0";
        return GptModel.Open(w.Model, options);
    }

    private static Measurement Engine(Workload w)
    {
        using var model = Open(w);
        var prompts = Prompts.Make(model, w.Rows, w.PromptTokens);
        var settings = model.Engine.Resolve(Greedy(w.NewTokens));
        var prepared = prompts.Select((p, i) => model.Engine.Prompts.FromIds(p, i, settings)).ToList();
        Run(model, settings, prepared.Take(Math.Min(w.Batch, prepared.Count)).ToList(), w.Batch, null);   // warm-up

        var result = new Measurement { Subject = "engine" };
        var tokens = new List<double>();
        var rows = new List<double>();
        var timings = new List<(bool Prefill, int Rows, double Milliseconds)>();
        for (int run = 0; run < w.Runs; run++)
        {
            var clock = Stopwatch.StartNew();
            int generated = Run(model, settings, prepared, w.Batch, timings);
            double seconds = clock.Elapsed.TotalSeconds;
            tokens.Add(generated / seconds);
            rows.Add(w.Rows / seconds);
        }
        result.TokensPerSecond = tokens.ToArray();
        result.RowsPerSecond = rows.ToArray();
        result.TimeToFirstTokenMs = Stats.Median(timings.Where(t => t.Prefill).Select(t => t.Milliseconds));
        result.StepP50Ms = Stats.Percentile(timings.Where(t => !t.Prefill).Select(t => t.Milliseconds), 0.5);
        result.StepP95Ms = Stats.Percentile(timings.Where(t => !t.Prefill).Select(t => t.Milliseconds), 0.95);
        return result;
    }

    private static int Run(GptModel model, DecodingSettings settings, List<PreparedPrompt> prompts, int batch, List<(bool, int, double)>? timings)
    {
        int generated = 0;
        using var loop = model.Engine.CreateLoop(settings, batch, continuous: true, (_, r) => generated += r.TokenIds.Count);
        loop.StepTimings = timings;
        loop.Run(prompts.GetEnumerator(), CancellationToken.None);
        return generated;
    }

    private sealed class TextRow
    {
        public string Prompt { get; set; } = "";
    }

    private static Measurement Pipeline(Workload w)
    {
        string[] texts;
        using (var model = Open(w))
            texts = Prompts.Make(model, w.Rows, w.PromptTokens).Select(ids => model.Tokenizer.Decode(ids)).ToArray();
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(texts.Select(t => new TextRow { Prompt = t }).ToList());
        var options = new GenerateTextOptions
        {
            OutputColumnName = "Completion", InputColumnName = "Prompt", ModelFolder = w.Model, BatchSize = w.Batch,
            IntraOpThreads = w.Threads, Generation = Greedy(w.NewTokens),
        };
        using var fitted = (TransformerChain<ITransformer>)ml.Transforms.Text.GenerateText(options).Fit(data);
        int Consume(IDataView view)
        {
            var output = fitted.Transform(view);
            int generated = 0;
            using var cursor = output.GetRowCursor(output.Schema.Where(c => c.Name is "Completion" or "Completion_Tokens"));
            var text = cursor.GetGetter<ReadOnlyMemory<char>>(output.Schema["Completion"]);
            var ids = cursor.GetGetter<VBuffer<int>>(output.Schema["Completion_Tokens"]);
            ReadOnlyMemory<char> t = default;
            VBuffer<int> v = default;
            while (cursor.MoveNext())
            {
                text(ref t);
                ids(ref v);
                generated += v.Length;
            }
            return generated;
        }
        Consume(ml.Data.TakeRows(data, Math.Min(w.Batch, w.Rows)));   // warm-up

        var tokens = new List<double>();
        var rows = new List<double>();
        for (int run = 0; run < w.Runs; run++)
        {
            var clock = Stopwatch.StartNew();
            int generated = Consume(data);
            double seconds = clock.Elapsed.TotalSeconds;
            tokens.Add(generated / seconds);
            rows.Add(w.Rows / seconds);
        }
        return new Measurement { Subject = "pipeline", TokensPerSecond = tokens.ToArray(), RowsPerSecond = rows.ToArray() };
    }

    /// <summary>
    /// The obvious hand-written ONNX Runtime loop: NamedOnnxValue inputs, DenseTensor copies of the
    /// presents fed back as pasts, greedy argmax; equal-length prompts, so no padding.
    /// </summary>
    private static Measurement Plain(Workload w)
    {
        int[][] prompts;
        GptModelInfo info;
        using (var model = Open(w))
        {
            prompts = Prompts.Make(model, w.Rows, w.PromptTokens);
            info = model.Info;
        }
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = w.Threads };
        using var session = new InferenceSession(Path.Combine(info.Folder, info.ModelFiles[0]), options);
        var pastNames = session.InputMetadata.Keys.Where(k => k.StartsWith("past_key_values", StringComparison.Ordinal)).ToList();
        var presentNames = session.OutputMetadata.Keys.Where(k => k.StartsWith("present", StringComparison.Ordinal)).ToList();
        bool positions = session.InputMetadata.ContainsKey("position_ids");

        var timings = new List<(bool Prefill, double Milliseconds)>();
        int RunBatch(int[][] batch)
        {
            int b = batch.Length, length = batch[0].Length, vocabulary = info.VocabularySize;
            var ids = new DenseTensor<long>(batch.SelectMany(p => p.Select(i => (long)i)).ToArray(), [b, length]);
            var past = pastNames.Select(n => new DenseTensor<float>([b, info.KeyValueHeadCount, 0, info.HeadSize])).ToList();
            int generated = 0, total = length;
            for (int step = 0; step < w.NewTokens; step++)
            {
                int s = (int)ids.Dimensions[1];
                var inputs = new List<NamedOnnxValue>
                {
                    NamedOnnxValue.CreateFromTensor("input_ids", ids),
                    NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(Enumerable.Repeat(1L, b * total).ToArray(), [b, total])),
                };
                if (positions)
                    inputs.Add(NamedOnnxValue.CreateFromTensor("position_ids",
                        new DenseTensor<long>(Enumerable.Range(0, b).SelectMany(_ => Enumerable.Range(total - s, s).Select(p => (long)p)).ToArray(), [b, s])));
                for (int i = 0; i < pastNames.Count; i++) inputs.Add(NamedOnnxValue.CreateFromTensor(pastNames[i], past[i]));
                var clock = Stopwatch.StartNew();
                using var results = session.Run(inputs);
                var logits = results.First(r => r.Name == "logits").AsTensor<float>();
                var next = new long[b];
                for (int r = 0; r < b; r++)
                {
                    int best = 0;
                    float bestValue = float.NegativeInfinity;
                    for (int v = 0; v < vocabulary; v++)
                    {
                        float value = logits[r, s - 1, v];
                        if (value > bestValue) { bestValue = value; best = v; }
                    }
                    next[r] = best;
                }
                past = presentNames.Select(n => results.First(r => r.Name == n).AsTensor<float>().ToDenseTensor()).ToList();
                timings.Add((step == 0, clock.Elapsed.TotalMilliseconds));
                ids = new DenseTensor<long>(next, [b, 1]);
                total++;
                generated += b;
            }
            return generated;
        }
        int RunAll() => prompts.Chunk(w.Batch).Sum(RunBatch);

        RunBatch(prompts.Take(Math.Min(w.Batch, prompts.Length)).ToArray());   // warm-up
        timings.Clear();
        var tokens = new List<double>();
        var rows = new List<double>();
        for (int run = 0; run < w.Runs; run++)
        {
            var clock = Stopwatch.StartNew();
            int generated = RunAll();
            double seconds = clock.Elapsed.TotalSeconds;
            tokens.Add(generated / seconds);
            rows.Add(w.Rows / seconds);
        }
        return new Measurement
        {
            Subject = "plain",
            TokensPerSecond = tokens.ToArray(),
            RowsPerSecond = rows.ToArray(),
            TimeToFirstTokenMs = Stats.Median(timings.Where(t => t.Prefill).Select(t => t.Milliseconds)),
            StepP50Ms = Stats.Percentile(timings.Where(t => !t.Prefill).Select(t => t.Milliseconds), 0.5),
            StepP95Ms = Stats.Percentile(timings.Where(t => !t.Prefill).Select(t => t.Milliseconds), 0.95),
        };
    }
}
