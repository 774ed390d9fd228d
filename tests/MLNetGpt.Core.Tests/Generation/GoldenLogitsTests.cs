using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Generation;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>The C# ONNX Runtime path reproduces torch's logits for every fixture.</summary>
public sealed class GoldenLogitsTests
{
    public static TheoryData<string, string> FixtureNames()
    {
        var data = new TheoryData<string, string>();
        foreach (var (folder, golden) in Fixtures.WithGolden) data.Add(folder, golden);
        return data;
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Prefill_logits_of_each_prompt_match_torch(string fixture, string goldenName)
    {
        var golden = Fixtures.Golden(goldenName);
        using var model = GptModel.Open(Fixtures.Folder(fixture));
        for (int p = 0; p < golden.Prompts.Length; p++)
        {
            var ids = golden.Prompts[p].Ids.Select(i => (long)i).ToArray();
            var input = new StepInput(ids, 1, ids.Length, Enumerable.Repeat(1L, ids.Length).ToArray(),
                Enumerable.Range(0, ids.Length).Select(i => (long)i).ToArray());
            var (logits, cache) = Step(model, input, null);
            using (logits)
            using (cache)
            {
                for (int position = 0; position < ids.Length; position++)
                    AssertFigures(model, logits, 0, position, golden.Prefill[p], position, golden.ProbeIds, $"{fixture} prompt {p} position {position}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Left_padded_batch_and_one_cached_decode_step_match_torch(string fixture, string goldenName)
    {
        var golden = Fixtures.Golden(goldenName);
        using var model = GptModel.Open(Fixtures.Folder(fixture));
        var batch = golden.PaddedBatch;
        int rows = batch.InputIds.Length, width = batch.InputIds[0].Length;
        var input = new StepInput(batch.InputIds.SelectMany(r => r).ToArray(), rows, width,
            batch.AttentionMask.SelectMany(r => r).ToArray(), batch.PositionIds.SelectMany(r => r).ToArray());
        var (logits, cache) = Step(model, input, null);
        using (cache)
        {
            using (logits)
            {
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < width; c++)
                        if (batch.AttentionMask[r][c] == 1)
                            AssertFigures(model, logits, r, c, batch.Rows[r], c, golden.ProbeIds, $"{fixture} padded row {r} column {c}");
            }

            var step = golden.DecodeStep;
            var decodeInput = new StepInput(step.InputIds.SelectMany(r => r).ToArray(), rows, 1,
                step.AttentionMask.SelectMany(r => r).ToArray(), step.PositionIds.SelectMany(r => r).ToArray());
            var (stepLogits, stepCache) = Step(model, decodeInput, cache);
            using (stepLogits)
            using (stepCache)
            {
                Assert.Equal(width + 1, stepCache.Width);
                for (int r = 0; r < rows; r++)
                    AssertFigures(model, stepLogits, r, 0, step.Rows[r], 0, golden.ProbeIds, $"{fixture} decode step row {r}");
            }
        }
    }

    [Fact]
    public void A_graph_with_num_logits_to_keep_returns_only_the_last_positions_logits_when_asked()
    {
        var golden = Fixtures.Golden("tiny-gpt2-b");
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-b"));
        Assert.Equal("num_logits_to_keep", model.Engine.Backend.Graph.LogitsToKeep);
        using var withoutIt = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        Assert.Null(withoutIt.Engine.Backend.Graph.LogitsToKeep);

        var ids = golden.Prompts[5].Ids.Select(i => (long)i).ToArray();
        var input = new StepInput(ids, 1, ids.Length, Enumerable.Repeat(1L, ids.Length).ToArray(),
            Enumerable.Range(0, ids.Length).Select(i => (long)i).ToArray(), LogitsToKeep: 1);
        var (logits, cache) = Step(model, input, null);
        using (logits)
        using (cache)
        {
            Assert.Equal(1, logits.Length);
            AssertFigures(model, logits, 0, 0, golden.Prefill[5], ids.Length - 1, golden.ProbeIds, "kept last position");
        }
    }

    [Fact]
    public void Comparison_fails_when_logits_are_off_by_more_than_the_tolerance()
    {
        var error = Record.Exception(() => Tolerance.Close(10.0, 10.0 + 2e-3, "logit"));
        Assert.NotNull(error);
        Tolerance.Close(10.0, 10.0 + 5e-4, "logit");
    }

    private static (LogitsBuffer, IKvCache) Step(GptModel model, StepInput input, IKvCache? past)
    {
        using var runOptions = new RunOptions();
        using var empty = past is null ? model.Engine.Backend.EmptyCache(input.Batch) : null;
        return model.Engine.Backend.Step(input, past ?? empty!, runOptions);
    }

    private static void AssertFigures(GptModel model, LogitsBuffer logits, int row, int position, GoldenFigures golden, int goldenPosition,
        int[] probeIds, string where)
    {
        var values = new float[model.Info.VocabularySize];
        logits.Read(row, position, values);
        for (int k = 0; k < probeIds.Length; k++)
            Tolerance.Close(golden.Probe[goldenPosition][k], values[probeIds[k]], $"{where} logit[{probeIds[k]}]");
        Tolerance.Close(golden.Logsumexp[goldenPosition], LogSumExp(values), $"{where} logsumexp");
        Assert.Equal(golden.Argmax[goldenPosition], LogitsProcessors.ArgMax(values));
    }

    private static double LogSumExp(float[] values)
    {
        double max = values.Max();
        return max + Math.Log(values.Sum(v => Math.Exp(v - max)));
    }
}
