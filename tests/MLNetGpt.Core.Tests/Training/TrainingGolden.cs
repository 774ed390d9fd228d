using System.Text.Json;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>Torch's loss, gradients and AdamW trajectory for one fixture (tools/make_training_goldens.py).</summary>
public sealed class TrainingGolden
{
    public required string Fixture { get; init; }
    public string? Variant { get; init; }
    public required int Batch { get; init; }
    public required int Sequence { get; init; }
    public required long[] InputIds { get; init; }
    public required long[] Targets { get; init; }
    public required GoldenAdamW Adamw { get; init; }
    public required GoldenCase[] Cases { get; init; }

    public string Folder => Fixture == "mlnetgpt-kjv" ? Fixtures.DefaultModel : Fixtures.Folder(Fixture);

    public GoldenCase Case(string name) => Cases.Single(c => c.Name == name);

    public static TrainingGolden Load(string path)
    {
        var options = new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
        return JsonSerializer.Deserialize<TrainingGolden>(File.ReadAllText(path), options)!;
    }

    public static TrainingGolden For(string file) => Load(Path.Combine(Fixtures.Root, file));
}

public sealed record GoldenAdamW(float Lr, float Beta1, float Beta2, float Eps, float WeightDecay, int Steps);

public sealed record GoldenLora(int Rank, float Alpha, string[] Targets);

public sealed record GoldenSummary(double Sum, double AbsSum, double Norm, double[][] Samples);

public sealed record GoldenTrajectory(double[] Losses, Dictionary<string, GoldenSummary> Final, Dictionary<string, int[][]>? Excluded);

public sealed class GoldenCase
{
    public required string Name { get; init; }
    public required string Method { get; init; }
    public GoldenLora? Lora { get; init; }
    public int[]? Extension { get; init; }
    public required double LossSum { get; init; }
    public required int Tokens { get; init; }
    public required Dictionary<string, GoldenSummary> Gradients { get; init; }
    public Dictionary<string, float[]>? LoraValues { get; init; }
    public Dictionary<string, float[]>? TrajectoryLoraA { get; init; }
    public required GoldenTrajectory Trajectory { get; init; }

    internal TrainingGraphOptions Options(string? variant, int? threads = 1) => new()
    {
        Method = Method == "lora" ? TrainingMethod.Lora : TrainingMethod.Full,
        LoraRank = Lora?.Rank ?? 8,
        LoraAlpha = Lora?.Alpha ?? 8,
        LoraTargets = Lora?.Targets ?? ["q", "v"],
        VocabularyExtension = Extension ?? [],
        Variant = variant,
        Threads = threads,
    };
}

/// <summary>Comparisons of tensors with the goldens' summaries, and torch's AdamW for the trajectories.</summary>
internal static class GoldenCheck
{
    /// <summary>Relative tolerance of gradients and trajectories.</summary>
    public const double Relative = 1e-4;

    /// <summary>The largest relative deviation seen, for the report in the test output.</summary>
    /// <param name="excluded">[start, end) ranges of flat indices the golden leaves out (see the script's summary()).</param>
    public static double Summary(GoldenSummary expected, float[] actual, string what, int[][]? excluded = null, double tolerance = Relative)
    {
        double sum = 0, absSum = 0, squares = 0;
        int counted = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (excluded is not null && excluded.Any(r => i >= r[0] && i < r[1])) continue;
            float v = actual[i];
            counted++;
            sum += v;
            absSum += Math.Abs(v);
            squares += (double)v * v;
        }
        double norm = Math.Sqrt(squares);
        double worst = 0;
        void Check(double e, double a, double scale, string label)
        {
            double deviation = Math.Abs(a - e) / Math.Max(scale, 1e-30);
            worst = Math.Max(worst, deviation);
            Assert.True(deviation <= tolerance, $"{what} {label}: torch {e:R}, ONNX Runtime {a:R} (off by {deviation:E2} of {scale:E3}, allowed {tolerance:E0})");
        }
        Check(expected.Norm, norm, Math.Max(expected.Norm, 1e-12), "norm");
        Check(expected.Sum, sum, Math.Max(expected.AbsSum, 1e-12), "sum (relative to the sum of |x|)");
        double rms = expected.Norm / Math.Sqrt(counted);
        foreach (var sample in expected.Samples)
        {
            int index = (int)sample[0];
            Check(sample[1], actual[index], Math.Abs(sample[1]) + rms, $"[{index}]");
        }
        return worst;
    }

    /// <summary>torch.optim.AdamW's update (torch 1.13, _single_tensor_adamw), in float32 as torch computes it.</summary>
    public static void AdamW(float[] p, float[] g, float[] m, float[] v, int step, GoldenAdamW h, bool decay)
    {
        float bias1 = 1f - MathF.Pow(h.Beta1, step);
        float bias2 = 1f - MathF.Pow(h.Beta2, step);
        float stepSize = h.Lr / bias1;
        float bias2Sqrt = MathF.Sqrt(bias2);
        for (int i = 0; i < p.Length; i++)
        {
            if (decay) p[i] *= 1f - h.Lr * h.WeightDecay;
            m[i] = m[i] * h.Beta1 + g[i] * (1f - h.Beta1);
            v[i] = v[i] * h.Beta2 + (1f - h.Beta2) * g[i] * g[i];
            float denominator = MathF.Sqrt(v[i]) / bias2Sqrt + h.Eps;
            p[i] += -stepSize * (m[i] / denominator);
        }
    }
}
