using MLNetGpt.Models;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Training;
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

    [Fact]
    public void Extending_the_vocabulary_of_the_default_model_trains_the_new_rows_and_writes_a_folder_whose_greedy_ids_equal_a_forward_pass()
    {
        // Words of software licences: the default model's KJV vocabulary has no rows for most of them.
        string[] texts = Enumerable.Range(0, 12).Select(i =>
            $"Clause {i}: this software is provided by the copyright holders and contributors, without warranty; see the license.").ToArray();
        string output = Path.Combine(Fixtures.TempFolder("e2e-extend"), "tuned");
        var report = GptFineTuner.FineTune(Fixtures.DefaultModel, output, texts, texts.Take(2), new FineTuneOptions
        {
            ExtendVocabulary = true, ExtendVocabularyLimit = 6, MaxSteps = 6, BatchSize = 2, SequenceLength = 32, LearningRate = 1e-3,
            Threads = 1, Seed = 3, Log = _ => { },
        });

        // The ids the trainer chose are the text's most frequent ones without a row of their own.
        using var model = GptModel.Open(Fixtures.DefaultModel);
        var map = VocabularyMap.Read(Path.Combine(Fixtures.DefaultModel, "model.onnx"))!;
        var added = map.ChooseExtension(texts.Select(t => model.Tokenizer.EncodeToIds(t).ToArray()).ToList(), 6);
        Assert.Equal(6, added.Length);
        Assert.Equal(6, report.AddedTokens);
        Assert.True(report.ValidationLossAfter < report.ValidationLossBefore - 0.5, $"held-out loss {report.ValidationLossBefore:F3} -> {report.ValidationLossAfter:F3}");

        // The written folder has the new rows, each id mapped to its own row, and they were trained away from the unk row they started as.
        using var original = TrainingGraph.Create(Fixtures.DefaultModel, new TrainingGraphOptions { Threads = 1, VerifyLayout = false });
        using var reread = TrainingGraph.Create(output, new TrainingGraphOptions { Threads = 1 });
        Assert.Equal(original.Layout.InnerVocabulary + 6, reread.Layout.InnerVocabulary);
        for (int i = 0; i < added.Length; i++) Assert.Equal(original.Layout.InnerVocabulary + i, reread.TokenMap![added[i]]);
        var sequences = SequencePacker.PackDocuments(texts.Take(2).Select(t => model.Tokenizer.EncodeToIds(t).ToArray()), 32,
            new SpecialIds(model.Info.BosTokenId, model.Info.EosTokenIds[0], model.Info.PadTokenId));
        var (sum, count) = reread.Evaluate(sequences.SelectMany(s => s.Inputs).ToArray(), sequences.SelectMany(s => s.Targets).ToArray(), sequences.Count, 32);
        Assert.Equal(report.ValidationLossAfter!.Value, sum / count, 0.05);   // float16 storage rounds the trained weights a little
        var before = original.NextTokenLogProbabilities([50256, added[0]]);
        var after = reread.NextTokenLogProbabilities([50256, added[0]]);
        Assert.NotEqual(before[added[1]], after[added[1]]);

        // It opens as a model, and generation picks what a forward pass with the written weights picks, new ids included.
        int[] prompt = [50256, added[0], added[1], 262];
        Assert.Equal(TrainingWriteBackTests.GreedyWithGraph(reread, prompt), TrainingWriteBackTests.GreedyWithModel(output, prompt));
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
