// llama.cpp (through LLamaSharp and its CPU backend), the benchmarks' second peer. Its own process
// and output folder, as bench/GenAiRunner: its native libraries never meet ONNX Runtime's.
//
//   LlamaRunner run MODEL.gguf PROMPTS.json BATCH NEW_TOKENS RUNS THREADS
//       greedy decoding of every prompt, BATCH sequences per llama_decode; one JSON line with
//       tokens/s and rows/s per run, prefill (TTFT) and decode-step latencies, peak working set
//   LlamaRunner ids MODEL.gguf PROMPTS.json NEW_TOKENS THREADS
//       one JSON line: the greedy continuation of each prompt, decoded alone ([[ids...], ...])
//   LlamaRunner quantize IN.gguf OUT.gguf q8_0|q4_0 THREADS
//       llama.cpp's own quantizer (llama_model_quantize) with its default recipe
//
// PROMPTS.json: [[ids...], ...], all of one length. Token ids go in as they are: no tokenizer runs.
using System.Diagnostics;
using System.Text.Json;
using MLNetGpt.Bench;
using LLama;
using LLama.Common;
using LLama.Native;

NativeLibraryConfig.All.WithLogCallback((level, message) =>
{
    if (level is LLamaLogLevel.Error) Console.Error.Write(message);
});

switch (args)
{
    case ["run", var model, var promptsFile, var batch, var newTokens, var runs, var threads]:
        return Run(model, ReadPrompts(promptsFile), int.Parse(batch), int.Parse(newTokens), int.Parse(runs), int.Parse(threads));
    case ["ids", var model, var promptsFile, var newTokens, var threads]:
        return Ids(model, ReadPrompts(promptsFile), int.Parse(newTokens), int.Parse(threads));
    case ["quantize", var input, var output, var type, var threads]:
        return Quantize(input, output, type, int.Parse(threads));
    default:
        Console.Error.WriteLine("usage: LlamaRunner run MODEL.gguf PROMPTS.json BATCH NEW_TOKENS RUNS THREADS\n" +
                                "       LlamaRunner ids MODEL.gguf PROMPTS.json NEW_TOKENS THREADS\n" +
                                "       LlamaRunner quantize IN.gguf OUT.gguf q8_0|q4_0 THREADS");
        return 1;
}

static int[][] ReadPrompts(string path) => JsonSerializer.Deserialize<int[][]>(File.ReadAllText(path))
    ?? throw new InvalidDataException($"{path}: expected a JSON array of id arrays");

static int Quantize(string input, string output, string type, int threads)
{
    var ftype = type switch
    {
        "q8_0" => LLamaFtype.MOSTLY_Q8_0,
        "q4_0" => LLamaFtype.MOSTLY_Q4_0,
        _ => throw new ArgumentException($"quantization type must be q8_0 or q4_0, not '{type}'"),
    };
    // LLamaQuantizer calls into llama.cpp before anything has made LLamaSharp choose and load its native library.
    NativeApi.llama_empty_call();
    if (!LLamaQuantizer.Quantize(input, output, ftype, threads, allowRequantize: false, quantizeOutputTensor: true))
    {
        Console.Error.WriteLine($"LlamaRunner: llama_model_quantize failed for {input} -> {output} ({type})");
        return 1;
    }
    Console.WriteLine($"{input} -> {output} ({type}, {new FileInfo(output).Length / 1e6:F0} MB)");
    return 0;
}

static (LLamaWeights Weights, LLamaContext Context) Open(string path, int sequences, int length, int threads)
{
    // One cache stream per sequence, each long enough for its prompt and output; a batch never
    // holds more than all prompts' tokens at once.
    uint perSequence = (uint)((length + 255) / 256 * 256);
    var parameters = new ModelParams(path)
    {
        ContextSize = perSequence * (uint)sequences,
        SeqMax = (uint)sequences,
        BatchSize = (uint)Math.Max(512, sequences * length),
        Threads = threads,
        BatchThreads = threads,
        GpuLayerCount = 0,
    };
    var weights = LLamaWeights.LoadFromFile(parameters);
    return (weights, weights.CreateContext(parameters));
}

static int ArgMax(ReadOnlySpan<float> logits)
{
    int best = 0;
    for (int i = 1; i < logits.Length; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

// Greedy decoding of one batch of equal-length prompts; the timings of its prefill and decode steps.
static int[][] Decode(LLamaContext context, int[][] rows, int newTokens, List<double>? prefill, List<double>? steps)
{
    var handle = context.NativeHandle;
    handle.MemoryClear(true);
    var batch = new LLamaBatch();
    var outputs = rows.Select(_ => new List<int>(newTokens)).ToArray();
    var logitIndex = new int[rows.Length];
    int length = rows[0].Length;
    var clock = Stopwatch.StartNew();
    for (int s = 0; s < rows.Length; s++)
        for (int p = 0; p < length; p++)
        {
            int index = batch.TokenCount;
            batch.Add(rows[s][p], p, (LLamaSeqId)s, p == length - 1);
            if (p == length - 1) logitIndex[s] = index;
        }
    for (int step = 0; step < newTokens; step++)
    {
        if (step > 0) clock.Restart();
        var result = handle.Decode(batch);
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode returned {result} at step {step}");
        var next = new int[rows.Length];
        for (int s = 0; s < rows.Length; s++)
        {
            next[s] = ArgMax(handle.GetLogitsIth(logitIndex[s]));
            outputs[s].Add(next[s]);
        }
        (step == 0 ? prefill : steps)?.Add(clock.Elapsed.TotalMilliseconds);
        if (step == newTokens - 1) break;
        batch.Clear();
        for (int s = 0; s < rows.Length; s++)
            logitIndex[s] = batch.Add(next[s], length + step, (LLamaSeqId)s, true);
    }
    return outputs.Select(o => o.ToArray()).ToArray();
}

static int Ids(string model, int[][] prompts, int newTokens, int threads)
{
    var (weights, context) = Open(model, 1, prompts.Max(p => p.Length) + newTokens, threads);
    using (weights)
    using (context)
        Console.WriteLine(JsonSerializer.Serialize(prompts.Select(p => Decode(context, [p], newTokens, null, null)[0]).ToArray()));
    return 0;
}

static int Run(string model, int[][] prompts, int batchSize, int newTokens, int runs, int threads)
{
    var (weights, context) = Open(model, batchSize, prompts[0].Length + newTokens, threads);
    using var _ = weights;
    using var __ = context;
    var prefill = new List<double>();
    var steps = new List<double>();
    Decode(context, prompts.Take(Math.Min(batchSize, prompts.Length)).ToArray(), newTokens, null, null);   // warm-up
    var tokensPerSecond = new List<double>();
    var rowsPerSecond = new List<double>();
    for (int run = 0; run < runs; run++)
    {
        var clock = Stopwatch.StartNew();
        int generated = prompts.Chunk(batchSize).Sum(rows => Decode(context, rows, newTokens, prefill, steps).Sum(o => o.Length));
        double seconds = clock.Elapsed.TotalSeconds;
        tokensPerSecond.Add(generated / seconds);
        rowsPerSecond.Add(prompts.Length / seconds);
    }
    Stats.PrintMeasurement("llama", tokensPerSecond, rowsPerSecond, prefill, steps);
    return 0;
}

