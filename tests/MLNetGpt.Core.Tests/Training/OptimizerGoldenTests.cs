using System.Text.Json;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>AdamW, global-norm clipping and the warm-up + cosine schedule against torch 1.13 (tools/make_optimizer_goldens.py).</summary>
public sealed class OptimizerGoldenTests
{
    internal static JsonElement Golden(string part)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.Root, "training", "optimizer-golden.json")));
        return document.RootElement.GetProperty(part).Clone();
    }

    internal static float[] Floats(JsonElement e) => e.EnumerateArray().Select(v => (float)v.GetDouble()).ToArray();

    [Fact]
    public void Clipping_then_AdamW_then_the_schedule_reproduce_torch_for_seven_steps()
    {
        var g = Golden("adamw");
        var tensors = g.GetProperty("tensors").EnumerateArray().Select(t => new TrainableTensor(t.GetProperty("name").GetString()!,
            t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray(), Floats(t.GetProperty("initial")), t.GetProperty("decay").GetBoolean())).ToArray();
        var optimizer = new AdamW(tensors, g.GetProperty("beta1").GetDouble(), g.GetProperty("beta2").GetDouble(), g.GetProperty("epsilon").GetDouble(),
            g.GetProperty("weight_decay").GetDouble());
        var schedule = new LearningRateSchedule(g.GetProperty("learning_rate").GetDouble(), g.GetProperty("warmup_steps").GetInt32(), g.GetProperty("total_steps").GetInt32());
        var gradients = g.GetProperty("gradients").EnumerateArray().ToArray();
        var steps = g.GetProperty("steps").EnumerateArray().ToArray();
        int clipped = 0;
        for (int step = 0; step < steps.Length; step++)
        {
            var grads = tensors.Select(t => Floats(gradients[step].GetProperty(t.Name))).ToArray();
            double norm = GradientClipping.Clip(grads, g.GetProperty("max_norm").GetDouble());
            Tolerance.Close(steps[step].GetProperty("total_norm").GetDouble(), norm, $"step {step} norm");
            if (norm > 1) clipped++;
            double rate = schedule.At(step);
            Assert.Equal(steps[step].GetProperty("learning_rate").GetDouble(), rate, 15);
            optimizer.Step(grads, rate);
            foreach (var t in tensors)
            {
                var expected = Floats(steps[step].GetProperty("after").GetProperty(t.Name));
                for (int i = 0; i < expected.Length; i++)
                    Assert.True(Math.Abs(expected[i] - t.Value[i]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i])),
                        $"step {step}, {t.Name}[{i}]: torch {expected[i]:R}, ours {t.Value[i]:R}");
            }
        }
        Assert.InRange(clipped, 2, steps.Length - 2);   // both branches of clipping were exercised
        Assert.Equal(steps.Length, optimizer.Steps);
    }

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(1, 0.25)]
    [InlineData(4, 1.0)]
    [InlineData(10, 0.5)]        // half-way through the cosine: (1 + cos(pi/2)) / 2
    [InlineData(16, 0.0)]        // the last step's end: 0
    public void The_schedule_warms_up_linearly_then_follows_half_a_cosine(int step, double factor)
    {
        Assert.Equal(factor, LearningRateSchedule.Factor(step, warmupSteps: 4, totalSteps: 16), 12);
        Assert.Equal(2e-3 * factor, new LearningRateSchedule(2e-3, 4, 16).At(step), 15);
    }

    [Fact]
    public void The_schedule_at_a_quarter_of_the_cosine_is_torch_lambda_lr_value()
    {
        // Without warm-up, step 4 of 16 is a quarter of the way: (1 + cos(pi/4)) / 2.
        Assert.Equal((1 + Math.Cos(Math.PI / 4)) / 2, LearningRateSchedule.Factor(4, 0, 16), 15);
        Assert.Equal(1.0, LearningRateSchedule.Factor(0, 0, 16));
    }

    [Fact]
    public void Clipping_scales_by_max_norm_over_the_norm_plus_1e_6_as_torch_does()
    {
        float[][] grads = [[3f, 0f], [0f, 4f]];   // global norm 5
        double norm = GradientClipping.Clip(grads, 1.0);
        Assert.Equal(5.0, norm, 6);
        float coefficient = 1f / (5f + 1e-6f);
        Assert.Equal([3f * coefficient, 0f], grads[0]);
        Assert.Equal([0f, 4f * coefficient], grads[1]);
    }

    [Fact]
    public void Clipping_leaves_gradients_below_the_limit_or_without_a_limit_unchanged()
    {
        float[][] small = [[0.3f, 0.4f]];
        Assert.Equal(0.5, GradientClipping.Clip(small, 1.0), 6);
        Assert.Equal([0.3f, 0.4f], small[0]);
        float[][] large = [[30f, 40f]];
        Assert.Equal(50.0, GradientClipping.Clip(large, null), 5);
        Assert.Equal([30f, 40f], large[0]);
    }

    [Fact]
    public void AdamW_does_not_decay_tensors_marked_without_decay()
    {
        var decayed = new TrainableTensor("w", [1], [2f], decay: true);
        var kept = new TrainableTensor("b", [1], [2f], decay: false);
        var optimizer = new AdamW([decayed, kept], 0.9, 0.999, 1e-8, weightDecay: 0.5);
        optimizer.Step([[0f], [0f]], 0.1);   // zero gradient: only the decay moves a value
        Assert.Equal(2f * (float)(1 - 0.1 * 0.5), decayed.Value[0]);
        Assert.Equal(2f, kept.Value[0]);
    }
}
