using MLNetGpt.Training;
using Xunit;
using Xunit.Abstractions;

namespace MLNetGpt.Tests.Training;

/// <summary>
/// The training graph against torch 1.13 (tools/make_training_goldens.py): the loss of a batch, the gradient of every
/// trained tensor, and five AdamW steps, for GPT-2 (the kit's layout with its vocabulary remap, Hugging Face's names
/// and Conv1D orientation, the default model's real fp16 weights) and Llama (onnx-community fp32 and int4, the GenAI
/// builder's int4 GroupQueryAttention graph), full fine-tuning and LoRA.
/// </summary>
public sealed class TrainingGraphGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Cases() => new()
    {
        { "tiny-gpt2-a/golden-training.json", "full" },
        { "tiny-gpt2-a/golden-training.json", "lora" },
        { "tiny-gpt2-a/golden-training.json", "full-extended" },
        { "tiny-gpt2-hf/golden-training.json", "full" },
        { "tiny-gpt2-hf/golden-training.json", "lora" },
        { "tiny-onnx-community/golden-training.json", "full" },
        { "tiny-onnx-community/golden-training.json", "lora" },
        { "tiny-onnx-community/golden-training-q4.json", "lora" },
        { "tiny-llama-builder/golden-training.json", "full" },
        { "tiny-llama-builder/golden-training.json", "lora" },
        { "default-training-golden.json", "full" },
        { "default-training-golden.json", "lora" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_loss_and_every_gradient_equal_torchs(string file, string name)
    {
        var golden = TrainingGolden.For(file);
        var c = golden.Case(name);
        using var graph = TrainingGraph.Create(golden.Folder, c.Options(golden.Variant));
        Assert.Equal(c.Gradients.Keys.Order(StringComparer.Ordinal), graph.Parameters.Select(p => p.Name).Order(StringComparer.Ordinal));
        SetLora(graph, c.LoraValues);

        var (loss, tokens) = graph.ForwardBackward(golden.InputIds, golden.Targets, golden.Batch, golden.Sequence);

        Assert.Equal(c.Tokens, tokens);
        double lossDeviation = Math.Abs(loss - c.LossSum) / Math.Abs(c.LossSum);
        Assert.True(lossDeviation <= 1e-5, $"loss: torch {c.LossSum:R}, ONNX Runtime {loss:R} ({lossDeviation:E2} relative)");
        double worst = 0;
        foreach (var p in graph.Parameters) worst = Math.Max(worst, GoldenCheck.Summary(c.Gradients[p.Name], p.Gradient, $"gradient of '{p.Name}'"));
        output.WriteLine($"{file} {name}: loss {lossDeviation:E2} relative, gradients within {worst:E2} ({graph.Parameters.Count} tensors)");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Five_AdamW_steps_follow_torchs_losses_and_end_at_torchs_weights(string file, string name)
    {
        var golden = TrainingGolden.For(file);
        var c = golden.Case(name);
        using var graph = TrainingGraph.Create(golden.Folder, c.Options(golden.Variant));
        if (c.TrajectoryLoraA is not null)
        {
            SetLora(graph, c.TrajectoryLoraA);
            foreach (var p in graph.Parameters.Where(p => p.Name.EndsWith(".lora_B", StringComparison.Ordinal))) Array.Clear(p.Value);
        }
        var h = golden.Adamw;
        var moments = graph.Parameters.ToDictionary(p => p, p => (M: new float[p.Value.Length], V: new float[p.Value.Length]));
        double worst = 0;
        for (int step = 1; step <= h.Steps; step++)
        {
            var (loss, tokens) = graph.ForwardBackward(golden.InputIds, golden.Targets, golden.Batch, golden.Sequence);
            double mean = loss / tokens, expected = c.Trajectory.Losses[step - 1];
            // Per-token losses in nats: relative to the loss, or absolute below 1 nat (a memorised batch nears 0).
            double deviation = Math.Abs(mean - expected) / Math.Max(Math.Abs(expected), 1);
            worst = Math.Max(worst, deviation);
            Assert.True(deviation <= GoldenCheck.Relative, $"step {step}: torch's mean loss {expected:R}, ONNX Runtime {mean:R}");
            float scale = 1f / tokens;
            foreach (var p in graph.Parameters)
            {
                var g = p.Gradient.Select(x => x * scale).ToArray();
                GoldenCheck.AdamW(p.Value, g, moments[p].M, moments[p].V, step, h, p.Decay);
            }
        }
        foreach (var p in graph.Parameters)
            worst = Math.Max(worst, GoldenCheck.Summary(c.Trajectory.Final[p.Name], p.Value, $"'{p.Name}' after {h.Steps} steps", c.Trajectory.Excluded?.GetValueOrDefault(p.Name)));
        output.WriteLine($"{file} {name}: trajectory within {worst:E2}");
    }

    internal static void SetLora(TrainingGraph graph, Dictionary<string, float[]>? values)
    {
        if (values is null) return;
        foreach (var (name, v) in values)
        {
            var p = graph.Parameters.Single(t => t.Name == name);
            Assert.Equal(p.Value.Length, v.Length);
            v.CopyTo(p.Value, 0);
        }
    }
}
