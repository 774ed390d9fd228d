using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>Greedy decoding through the KV-cache loop equals torch's full-recompute greedy sequences.</summary>
public sealed class GoldenGreedyTests
{
    public static TheoryData<string, string, int> FixturesAndBatchSizes()
    {
        var data = new TheoryData<string, string, int>();
        foreach (var (folder, golden) in Fixtures.WithGolden)
            foreach (int batch in new[] { 1, 3, 8 })
                data.Add(folder, golden, batch);
        return data;
    }

    [Theory]
    [MemberData(nameof(FixturesAndBatchSizes))]
    public void Greedy_continuations_equal_torch_token_for_token(string fixture, string goldenName, int batchSize)
    {
        var golden = Fixtures.Golden(goldenName);
        using var model = GptModel.Open(Fixtures.Folder(fixture));
        var options = new GenerationOptions { MaxNewTokens = golden.Greedy[0].Generated.Length, EosTokenIds = [] };
        // Mixed prompt lengths share each batch; the prompt list is repeated so batch 8 is full.
        var cases = golden.Greedy.Concat(golden.Greedy).ToArray();
        var results = model.GenerateTokens(cases.Select(c => (IReadOnlyList<int>)c.PromptIds), options, batchSize);
        for (int i = 0; i < cases.Length; i++)
        {
            Assert.Equal(cases[i].Generated, results[i].TokenIds);
            Assert.Equal(FinishReason.Length, results[i].FinishReason);
        }
    }

    [Theory]
    [MemberData(nameof(FixturesAndBatchSizes))]
    public void Greedy_text_generation_from_prompt_text_matches_golden(string fixture, string goldenName, int batchSize)
    {
        var golden = Fixtures.Golden(goldenName);
        using var model = GptModel.Open(Fixtures.Folder(fixture));
        var options = new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [] };
        var results = model.Generate(golden.Prompts.Select(p => p.Text), options, batchSize);
        for (int i = 0; i < golden.Prompts.Length; i++)
        {
            Assert.Equal(golden.Prompts[i].Ids, model.Tokenizer.EncodeToIds(golden.Prompts[i].Text));
            Assert.Equal(golden.Greedy[i].Generated.Take(20), results[i].TokenIds);
            Assert.Equal(model.Tokenizer.Decode(golden.Greedy[i].Generated.Take(20)), results[i].Text);
        }
    }
}
