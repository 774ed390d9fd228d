using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>Whole fine-tunes through the product's own training graph (no test double): the model learns, and the written folder is that model.</summary>
public sealed class FineTuneEndToEndTests
{
    private static readonly string[] Texts = Enumerable.Range(0, 24).Select(i =>
        $"Rule {i}: the quick brown fox jumps over the lazy dog, and the dog sleeps on.").ToArray();

    [Theory]
    [InlineData(FineTuneMethod.Full)]
    [InlineData(FineTuneMethod.LoRA)]
    public void Fine_tuning_a_fixture_lowers_its_held_out_loss_and_writes_a_folder_that_scores_as_trained(FineTuneMethod method)
    {
        string output = Path.Combine(Fixtures.TempFolder($"e2e-{method}"), "tuned");
        var report = GptFineTuner.FineTune(Fixtures.Folder("tiny-gpt2-a"), output, Texts, Texts.Take(4), new FineTuneOptions
        {
            Method = method, MaxSteps = 12, BatchSize = 4, SequenceLength = 32, LearningRate = method == FineTuneMethod.Full ? 3e-3 : 1e-2,
            LoraTargets = ["q", "v", "o"], Threads = 1, Seed = 5, Log = _ => { },
        });
        Assert.Equal(12, report.StepsRun);
        Assert.True(report.ValidationLossAfter < report.ValidationLossBefore - 0.2,
            $"held-out loss {report.ValidationLossBefore:F3} -> {report.ValidationLossAfter:F3}");

        // The written folder is the trained model: GptModel scores the held-out text at the loss the trainer measured.
        using var tuned = GptModel.Open(output);
        using var original = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        double Mean(GptModel m) => -m.Score(Texts.Take(4).Select(t => (t, (string?)null)).ToList()).Average(s => s.LogLikelihood / s.TokenCount);
        Assert.True(Mean(tuned) < Mean(original) - 0.2, $"scored {Mean(original):F3} -> {Mean(tuned):F3}");
        Assert.True(File.Exists(Path.Combine(output, "finetune_report.json")));
        Assert.Contains("## Fine-tuning", File.ReadAllText(Path.Combine(output, "README.md")));
    }

    [SharedDataFact("peer-models/onnxruntime-genai/tiny-random-gpt2-fp32")]
    public void A_layout_the_training_graph_does_not_know_is_refused_naming_what_it_found()
    {
        // GenAI's peer GPT-2 keeps its caches combined and its attention fused in one op: not a layout the emitter knows.
        string peer = SharedData.PathOf("peer-models/onnxruntime-genai/tiny-random-gpt2-fp32");
        var e = Assert.ThrowsAny<Exception>(() => GptFineTuner.FineTune(peer, Path.Combine(Fixtures.TempFolder("e2e-refuse"), "out"), Texts,
            options: new FineTuneOptions { MaxSteps = 1, BatchSize = 2, SequenceLength = 8, Log = _ => { } }));
        Assert.IsType<GptModelException>(e);
        Assert.Contains("expected", e.Message);
        Assert.Contains("found", e.Message);
    }
}
