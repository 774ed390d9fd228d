using System.Diagnostics;
using System.Globalization;
using MLNetGpt.Training;

namespace MLNetGpt.Bench;

/// <summary>
/// The training graph on CUDA against the CPU: for full fine-tuning and LoRA (rank 8, alpha 16, q and v), the same
/// seeded batch of 8 x 128 tokens and the same AdamW steps on both devices; the losses of every step are compared and the
/// CUDA tokens/s printed. Exits 1 when a loss differs by more than the tolerance or CUDA cannot run the graph.
///   training-cuda MODEL_FOLDER|default [--steps 8] [--threads N] [--tolerance 1e-3] [--dry-run]   (--dry-run: the "CUDA" side on the CPU too)
/// </summary>
internal static class TrainingCuda
{
    private const int Batch = 8, Sequence = 128;

    public static int Run(string[] args)
    {
        string folder = args[0] == "default" ? GptModel.DefaultModelFolder : args[0];
        string? Value(string name) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }
        int steps = int.Parse(Value("--steps") ?? "8", CultureInfo.InvariantCulture);
        int threads = int.Parse(Value("--threads") ?? Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        double tolerance = double.Parse(Value("--tolerance") ?? "1e-3", CultureInfo.InvariantCulture);
        bool dryRun = args.Contains("--dry-run");
        bool ok = true;
        Console.WriteLine($"training-cuda: {folder}, {steps} AdamW steps of {Batch}x{Sequence}, CPU {threads} threads{(dryRun ? ", dry run (both sides on the CPU)" : "")}");
        Console.WriteLine("| Method | Device | Loss step 1 | Loss last step | Largest relative loss difference | ms/step (after the first) | Tokens/s |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var method in new[] { TrainingMethod.Full, TrainingMethod.Lora })
        {
            var cpu = Trajectory(folder, method, GptDevice.Cpu, threads, steps);
            (double[] Losses, double Ms)? cuda;
            try
            {
                cuda = Trajectory(folder, method, dryRun ? GptDevice.Cpu : GptDevice.Cuda(0, fallbackToCpu: false), threads, steps);
            }
            catch (Exception e)
            {
                Console.WriteLine($"| {method} | CUDA | failed: {e.GetType().Name}: {e.Message.Split('\n')[0]} | | | | |");
                ok = false;
                continue;
            }
            double worst = cpu.Losses.Zip(cuda.Value.Losses, (a, b) => Math.Abs(a - b) / Math.Abs(a)).Max();
            if (!(worst <= tolerance)) ok = false;
            Console.WriteLine(Row(method, "CPU", cpu, double.NaN));
            Console.WriteLine(Row(method, dryRun ? "CPU (dry run)" : "CUDA:0", cuda.Value, worst));
        }
        Console.WriteLine(ok ? $"training-cuda: PASS (losses within {tolerance:G2} relative)" : "training-cuda: FAIL");
        return ok ? 0 : 1;
    }

    private static string Row(TrainingMethod method, string device, (double[] Losses, double Ms) r, double worst) => string.Create(CultureInfo.InvariantCulture,
        $"| {method} | {device} | {r.Losses[0]:F6} | {r.Losses[^1]:F6} | {(double.IsNaN(worst) ? "" : worst.ToString("E2", CultureInfo.InvariantCulture))} | {r.Ms:F1} | {Batch * Sequence * 1000 / r.Ms:F0} |");

    /// <summary>The loss of every step of <paramref name="steps"/> AdamW steps on one seeded batch, and the mean time of a step after the first.</summary>
    private static (double[] Losses, double Ms) Trajectory(string folder, TrainingMethod method, GptDevice device, int threads, int steps)
    {
        using var graph = TrainingGraph.Create(folder, new TrainingGraphOptions
        {
            Method = method, LoraRank = 8, LoraAlpha = 16, LoraTargets = ["q", "v"], Threads = threads, Device = device, VerifyLayout = false, Seed = 1,
        });
        var random = new Random(1);
        var inputs = new long[Batch * Sequence];
        var targets = new long[Batch * Sequence];
        for (int i = 0; i < inputs.Length; i++) inputs[i] = random.Next(graph.VocabularySize);
        for (int i = 0; i < targets.Length; i++) targets[i] = i % Sequence == Sequence - 1 ? random.Next(graph.VocabularySize) : inputs[i + 1];
        var optimizer = new AdamW(graph.Parameters, 0.9, 0.999, 1e-8, 0.01);
        var gradients = graph.Parameters.Select(p => new float[p.Value.Length]).ToArray();
        var losses = new double[steps];
        var times = new List<double>();
        for (int step = 0; step < steps; step++)
        {
            var clock = Stopwatch.StartNew();
            var (sum, tokens) = graph.ForwardBackward(inputs, targets, Batch, Sequence);
            for (int t = 0; t < gradients.Length; t++)
            {
                var g = graph.Parameters[t].Gradient;
                for (int i = 0; i < g.Length; i++) gradients[t][i] = g[i] / tokens;
            }
            optimizer.Step(gradients, 1e-4);
            if (step > 0) times.Add(clock.Elapsed.TotalMilliseconds);
            losses[step] = sum / tokens;
        }
        return (losses, times.Count > 0 ? times.Average() : double.NaN);
    }
}
