using System.Globalization;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Training;

namespace MLNetGpt.Bench;

/// <summary>
/// Where a training step spends its time: the training graph of a GPT-2-layout folder run under ONNX Runtime's profiler,
/// summed per operator type and for the slowest nodes.
///   training-profile MODEL_FOLDER full|lora THREADS [RUNS]
/// </summary>
internal static class TrainingProfile
{
    public static void Run(string folder, string method, int threads, int runs)
    {
        var options = new TrainingGraphOptions
        {
            Method = method == "lora" ? TrainingMethod.Lora : TrainingMethod.Full,
            LoraRank = 8,
            LoraAlpha = 16,
            Threads = threads,
            VerifyLayout = false,
        };
        using var graph = TrainingGraph.Create(folder, options);
        int batch = 8, sequence = 128, tokens = batch * sequence;
        using var so = new SessionOptions
        {
            IntraOpNumThreads = threads,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            // The prefix first: setting EnableProfiling starts the profiler with the prefix set at that moment.
            ProfileOutputPathPrefix = Path.Combine(Path.GetTempPath(), "training-profile"),
            EnableProfiling = true,
        };
        so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        using var session = new InferenceSession(graph.BackwardGraph!, so);
        var random = new Random(1);
        var feeds = new Dictionary<string, OrtValue>();
        foreach (var (name, values) in graph.Values)
            if (session.InputMetadata.ContainsKey(name))
                feeds[name] = OrtValue.CreateTensorValueFromMemory(values, session.InputMetadata[name].Dimensions.Select(d => (long)d).ToArray());
        int rows = graph.Layout.InnerVocabulary;
        feeds[TrainingGraphEmitter.InputIds] = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, tokens).Select(_ => (long)random.Next(rows)).ToArray(), [batch, sequence]);
        feeds[TrainingGraphEmitter.LossRows] = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, tokens).Select(i => (long)i).ToArray(), [tokens]);
        feeds[TrainingGraphEmitter.LossTargets] = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, tokens).Select(_ => (long)random.Next(rows)).ToArray(), [tokens, 1]);
        var mask = new float[sequence * sequence];
        for (int q = 0; q < sequence; q++)
            for (int k = q + 1; k < sequence; k++) mask[q * sequence + k] = float.MinValue;
        feeds[TrainingGraphEmitter.AttentionBias] = OrtValue.CreateTensorValueFromMemory(mask, [sequence, sequence]);
        if (session.InputMetadata.ContainsKey(TrainingGraphEmitter.PositionIds))
            feeds[TrainingGraphEmitter.PositionIds] = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, tokens).Select(i => (long)(i % sequence)).ToArray(), [tokens]);
        if (session.InputMetadata.ContainsKey(TrainingGraphEmitter.OutputOffset))
            feeds[TrainingGraphEmitter.OutputOffset] = OrtValue.CreateTensorValueFromMemory(new float[rows], [rows]);
        var outputNames = session.OutputMetadata.Keys.ToArray();
        using var runOptions = new RunOptions();
        for (int r = 0; r < runs; r++)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var outputs = session.Run(runOptions, feeds.Keys.ToArray(), feeds.Values.ToArray(), outputNames);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {r}: {clock.Elapsed.TotalMilliseconds:F0} ms"));
        }
        string file = session.EndProfiling();
        Summarise(file, runs);
        foreach (var v in feeds.Values) v.Dispose();
    }

    private static void Summarise(string file, int runs)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(file));
        var byType = new Dictionary<string, (double Us, int Count)>();
        var byNode = new Dictionary<string, double>();
        foreach (var e in json.RootElement.EnumerateArray())
        {
            if (e.GetProperty("cat").GetString() != "Node" || !e.GetProperty("name").GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal)) continue;
            double us = e.GetProperty("dur").GetDouble();
            string op = e.GetProperty("args").GetProperty("op_name").GetString()!;
            string node = e.GetProperty("name").GetString()!;
            byType[op] = byType.TryGetValue(op, out var t) ? (t.Us + us, t.Count + 1) : (us, 1);
            byNode[node] = byNode.GetValueOrDefault(node) + us;
        }
        double total = byType.Values.Sum(v => v.Us);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"kernel time per run: {total / runs / 1000:F0} ms ({file})"));
        foreach (var (op, (us, count)) in byType.OrderByDescending(p => p.Value.Us))
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {op,-24} {us / runs / 1000,8:F1} ms {100 * us / total,5:F1}%  ({count / runs} nodes)"));
        Console.WriteLine("slowest nodes:");
        foreach (var (node, us) in byNode.OrderByDescending(p => p.Value).Take(25))
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {node,-60} {us / runs / 1000,8:F1} ms"));
    }
}
