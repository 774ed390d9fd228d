using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;
using MLNetGpt.Training;

namespace MLNetGpt.Bench;

/// <summary>
/// Training throughput of the training graph (src/MLNetGpt/Training) against torch 1.13 on the same recipe: batch 8 x 128
/// tokens, full fine-tuning and LoRA (rank 8, alpha 16, q and v), forward + backward + AdamW, 1 and 2 threads, the
/// default model and the GPT-2-small shape. Every measurement runs in a fresh process, subjects interleaved
/// (torch, ONNX Runtime, then the other order next round), each with the 1-minute load average.
///   training [--models default,gpt2-small] [--threads 1,2] [--methods full,lora] [--steps 5] [--rounds 2] [--out FILE]
///   training-one MODEL_FOLDER full|lora THREADS STEPS   (one ONNX Runtime measurement, one JSON line)
/// </summary>
internal static class TrainingBench
{
    private const int Batch = 8, Sequence = 128, Warmup = 1, Rank = 8;
    private const float Alpha = 16f, LearningRate = 1e-4f, WeightDecay = 0.1f, Beta1 = 0.9f, Beta2 = 0.999f, Epsilon = 1e-8f;

    public sealed class Result
    {
        public string Subject { get; set; } = "";
        public string Model { get; set; } = "";
        public string Method { get; set; } = "";
        public int Threads { get; set; }
        public List<double> StepMs { get; set; } = [];
        public double TokensPerSecond { get; set; }

        /// <summary>Processor time (all threads, user + system) per step: unlike wall time, not stretched by other work on the machine.</summary>
        public List<double> CpuMs { get; set; } = [];
        public double TokensPerCpuSecond { get; set; }
        public double GraphMs { get; set; }
        public double OptimizerMs { get; set; }
        public double Loss { get; set; }
        public long PeakRssBytes { get; set; }
        public double LoadBefore { get; set; }
        public double LoadAfter { get; set; }
        public string? Error { get; set; }
    }

    /// <summary>One ONNX Runtime measurement in this process.</summary>
    public static Result MeasureOne(string folder, string method, int threads, int steps)
    {
        var options = new TrainingGraphOptions
        {
            Method = method == "lora" ? TrainingMethod.Lora : TrainingMethod.Full,
            LoraRank = Rank,
            LoraAlpha = Alpha,
            LoraTargets = ["q", "v"],
            Threads = threads,
            VerifyLayout = false,
        };
        using var graph = TrainingGraph.Create(folder, options);
        var random = new Random(1);
        var ids = new long[Batch * (Sequence + 1)];
        for (int i = 0; i < ids.Length; i++) ids[i] = random.Next(graph.VocabularySize);
        var inputs = new long[Batch * Sequence];
        var targets = new long[Batch * Sequence];
        for (int b = 0; b < Batch; b++)
            for (int s = 0; s < Sequence; s++)
            {
                inputs[b * Sequence + s] = ids[b * (Sequence + 1) + s];
                targets[b * Sequence + s] = ids[b * (Sequence + 1) + s + 1];
            }
        var moments = graph.Parameters.Select(p => (M: new float[p.Value.Length], V: new float[p.Value.Length])).ToArray();
        var result = new Result { Subject = "onnxruntime", Method = method, Threads = threads };
        var graphMs = new List<double>();
        var optimizerMs = new List<double>();
        var process = Process.GetCurrentProcess();
        for (int step = 1; step <= Warmup + steps; step++)
        {
            process.Refresh();
            var cpuStart = process.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            var (loss, tokens) = graph.ForwardBackward(inputs, targets, Batch, Sequence);
            double pass = clock.Elapsed.TotalMilliseconds;
            for (int i = 0; i < graph.Parameters.Count; i++)
            {
                var p = graph.Parameters[i];
                AdamW(p.Value, p.Gradient, moments[i].M, moments[i].V, step, 1f / tokens, p.Decay);
            }
            double total = clock.Elapsed.TotalMilliseconds;
            process.Refresh();
            double cpu = (process.TotalProcessorTime - cpuStart).TotalMilliseconds;
            if (step <= Warmup) continue;
            result.StepMs.Add(total);
            result.CpuMs.Add(cpu);
            graphMs.Add(pass);
            optimizerMs.Add(total - pass);
            result.Loss = loss / tokens;
        }
        result.TokensPerSecond = Batch * Sequence / (Stats.Median(result.StepMs) / 1000);
        result.TokensPerCpuSecond = Batch * Sequence / (Stats.Median(result.CpuMs) / 1000);
        result.GraphMs = Stats.Median(graphMs);
        result.OptimizerMs = Stats.Median(optimizerMs);
        result.PeakRssBytes = Process.GetCurrentProcess().PeakWorkingSet64;
        return result;
    }

    /// <summary>torch.optim.AdamW's update on the mean-loss gradient (the sum's gradient times <paramref name="scale"/>), vectorised.</summary>
    private static void AdamW(float[] p, float[] sumGradient, float[] m, float[] v, int step, float scale, bool decay)
    {
        float bias1 = 1f - MathF.Pow(Beta1, step), bias2Sqrt = MathF.Sqrt(1f - MathF.Pow(Beta2, step));
        float stepSize = LearningRate / bias1, shrink = decay ? 1f - LearningRate * WeightDecay : 1f;
        int width = Vector<float>.Count, i = 0;
        var vScale = new Vector<float>(scale);
        for (; i <= p.Length - width; i += width)
        {
            var g = new Vector<float>(sumGradient, i) * vScale;
            var mi = new Vector<float>(m, i) * Beta1 + g * (1f - Beta1);
            var vi = new Vector<float>(v, i) * Beta2 + g * g * (1f - Beta2);
            mi.CopyTo(m, i);
            vi.CopyTo(v, i);
            var denominator = Vector.SquareRoot(vi) / bias2Sqrt + new Vector<float>(Epsilon);
            (new Vector<float>(p, i) * shrink - mi / denominator * stepSize).CopyTo(p, i);
        }
        for (; i < p.Length; i++)
        {
            float g = sumGradient[i] * scale;
            m[i] = m[i] * Beta1 + g * (1f - Beta1);
            v[i] = v[i] * Beta2 + g * g * (1f - Beta2);
            p[i] = p[i] * shrink - stepSize * m[i] / (MathF.Sqrt(v[i]) / bias2Sqrt + Epsilon);
        }
    }

    /// <summary>The interleaved run: prints the table and writes it (with every raw figure) to the output file.</summary>
    public static int Run(string[] args)
    {
        string root = Report.FindRoot();
        var models = (Value(args, "--models") ?? "default,gpt2-small").Split(',');
        var threads = (Value(args, "--threads") ?? "1,2").Split(',').Select(int.Parse).ToArray();
        var methods = (Value(args, "--methods") ?? "full,lora").Split(',');
        int steps = int.Parse(Value(args, "--steps") ?? "5", CultureInfo.InvariantCulture);
        int rounds = int.Parse(Value(args, "--rounds") ?? "2", CultureInfo.InvariantCulture);
        string output = Value(args, "--out") ?? Path.Combine(root, "artifacts", "training-bench.md");
        var folders = new Dictionary<string, string>();
        foreach (var model in models)
        {
            string folder = model switch
            {
                "default" => Path.Combine(root, "models", "mlnetgpt-kjv"),
                "gpt2-small" => Path.Combine(root, "artifacts", "models", "gpt2-small-train"),
                _ => model,
            };
            if (model == "gpt2-small" && !File.Exists(Path.Combine(folder, "model.onnx")))
            {
                Console.Error.WriteLine("bench: making the GPT-2-small-shaped model with the model kit (tools/make_bench_model.py)...");
                // Random biases and gains: with zeros and ones the exporter stores every bias as one shared tensor.
                Report.Exec("/usr/bin/python3", [Path.Combine(root, "tools", "make_bench_model.py"), folder, "--vector-std", "0.02"], out _);
            }
            folders[model] = folder;
        }

        string self = typeof(TrainingBench).Assembly.Location;
        string torchScript = Path.Combine(root, "tools", "bench_training_torch.py");
        var results = new List<Result>();
        var started = Stopwatch.StartNew();
        for (int round = 0; round < rounds; round++)
            foreach (var model in models)
                foreach (var method in methods)
                    foreach (int t in threads)
                    {
                        var order = round % 2 == 0 ? new[] { "torch", "onnxruntime" } : ["onnxruntime", "torch"];
                        foreach (var subject in order)
                        {
                            double before = Load.Now();
                            var r = subject == "torch"
                                ? Child("/usr/bin/python3", [torchScript, folders[model], method, t.ToString(CultureInfo.InvariantCulture), "--steps", steps.ToString(CultureInfo.InvariantCulture),
                                    "--rank", Rank.ToString(CultureInfo.InvariantCulture), "--alpha", Alpha.ToString(CultureInfo.InvariantCulture)])
                                : Child("dotnet", [self, "training-one", folders[model], method, t.ToString(CultureInfo.InvariantCulture), steps.ToString(CultureInfo.InvariantCulture)]);
                            r.Subject = subject;
                            r.Model = model;
                            r.Method = method;
                            r.Threads = t;
                            r.LoadBefore = before;
                            r.LoadAfter = Load.Now();
                            results.Add(r);
                            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                $"bench: training {model} {method} {t}t {subject}: {(r.Error ?? $"{r.TokensPerSecond:F0} tokens/s, {r.TokensPerCpuSecond:F0} per processor-second")} (load {before:F1} -> {r.LoadAfter:F1})"));
                        }
                    }

        string table = Table(results, models, methods, threads, steps, rounds, started.Elapsed.TotalMinutes);
        Console.WriteLine(table);
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        File.WriteAllText(output, table);
        File.WriteAllText(Path.ChangeExtension(output, ".json"), JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    private static Result Child(string program, IEnumerable<string> arguments)
    {
        int code = Report.Exec(program, arguments.ToArray(), out string text);
        string? line = text.Trim().Split('\n').LastOrDefault(l => l.TrimStart().StartsWith('{'));
        if (code != 0 || line is null) return new Result { Error = $"exit {code}: {text.Trim().Split('\n').LastOrDefault()}" };
        using var json = JsonDocument.Parse(line);
        var root = json.RootElement;
        if (root.TryGetProperty("Subject", out _)) return JsonSerializer.Deserialize<Result>(line)!;
        var r = new Result
        {
            StepMs = root.GetProperty("step_ms").EnumerateArray().Select(e => e.GetDouble()).ToList(),
            TokensPerSecond = root.GetProperty("tokens_per_second").GetDouble(),
            CpuMs = root.GetProperty("cpu_ms").EnumerateArray().Select(e => e.GetDouble()).ToList(),
            TokensPerCpuSecond = root.GetProperty("tokens_per_cpu_second").GetDouble(),
            Loss = root.GetProperty("loss").GetDouble(),
            PeakRssBytes = root.GetProperty("peak_rss_bytes").GetInt64(),
        };
        return r;
    }

    private static string Table(List<Result> results, string[] models, string[] methods, int[] threads, int steps, int rounds, double minutes)
    {
        var s = new StringBuilder();
        s.AppendLine(CultureInfo.InvariantCulture, $"Training throughput, batch {Batch} x {Sequence} tokens, forward + backward + AdamW; median of {steps} steps after {Warmup} warm-up, per fresh process;");
        s.AppendLine(CultureInfo.InvariantCulture, $"{rounds} rounds, subjects interleaved; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {minutes:F0} minutes in all.");
        s.AppendLine();
        s.AppendLine("| model | method | threads | torch 1.13 tokens/s | ONNX Runtime tokens/s | ratio per round | tokens per processor-second torch / ORT | ratio per round | ONNX Runtime graph / AdamW ms | peak RSS torch / ORT MB | load (1-min) |");
        s.AppendLine("|---|---|---:|---:|---:|---|---|---|---|---|---|");
        foreach (var model in models)
            foreach (var method in methods)
                foreach (int t in threads)
                {
                    var mine = results.Where(r => r.Model == model && r.Method == method && r.Threads == t).ToList();
                    var torch = mine.Where(r => r.Subject == "torch" && r.Error is null).ToList();
                    var ort = mine.Where(r => r.Subject == "onnxruntime" && r.Error is null).ToList();
                    var ratios = torch.Zip(ort, (a, b) => b.TokensPerSecond / a.TokensPerSecond).ToList();
                    var cpuRatios = torch.Zip(ort, (a, b) => b.TokensPerCpuSecond / a.TokensPerCpuSecond).ToList();
                    string errors = string.Join("; ", mine.Where(r => r.Error is not null).Select(r => $"{r.Subject}: {r.Error}"));
                    s.AppendLine(CultureInfo.InvariantCulture,
                        $"| {model} | {method} | {t} | {Figures(torch)} | {Figures(ort)} | {string.Join(", ", ratios.Select(x => x.ToString("F2", CultureInfo.InvariantCulture)))} | " +
                        $"{CpuFigures(torch)} / {CpuFigures(ort)} | {string.Join(", ", cpuRatios.Select(x => x.ToString("F2", CultureInfo.InvariantCulture)))} | " +
                        $"{(ort.Count > 0 ? $"{Stats.Median(ort.Select(r => r.GraphMs)):F0} / {Stats.Median(ort.Select(r => r.OptimizerMs)):F0}" : "")} | " +
                        $"{(torch.Count > 0 ? torch.Max(r => r.PeakRssBytes) / 1048576 : 0)} / {(ort.Count > 0 ? ort.Max(r => r.PeakRssBytes) / 1048576 : 0)} | " +
                        $"{string.Join(" ", mine.Select(r => $"{r.LoadBefore:F1}"))}{(errors.Length > 0 ? $" ({errors})" : "")} |");
                }
        return s.ToString();
    }

    private static string CpuFigures(List<Result> rs) =>
        rs.Count == 0 ? "-" : string.Join(" ", rs.Select(r => r.TokensPerCpuSecond.ToString("F0", CultureInfo.InvariantCulture)));

    private static string Figures(List<Result> rs) =>
        rs.Count == 0 ? "-" : string.Join(" / ", rs.Select(r => r.TokensPerSecond.ToString("F0", CultureInfo.InvariantCulture)));

    private static string? Value(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
