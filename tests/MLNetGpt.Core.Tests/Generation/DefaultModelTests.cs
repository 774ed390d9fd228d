using System.Text.Json;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>The embedded default model against torch goldens computed from the same fp16-rounded weights.</summary>
public sealed class DefaultModelTests
{
    private sealed record GreedyCase(string Text, int[] PromptIds, int[] Generated, double MinMargin, bool FinishedByEos);

    private sealed record DefaultGolden(GreedyCase[] Greedy);

    private static DefaultGolden Load() => JsonSerializer.Deserialize<DefaultGolden>(
        File.ReadAllText(Path.Combine(Fixtures.Root, "default-golden.json")),
        new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })!;

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(8)]
    public void Greedy_continuations_equal_torch_token_for_token(int batchSize)
    {
        var golden = Load();
        using var model = GptModel.Open(Fixtures.DefaultModel);
        var options = new GenerationOptions { MaxNewTokens = 24, DoSample = false, RepetitionPenalty = 1f };
        var cases = golden.Greedy.Concat(golden.Greedy.Reverse()).ToArray();
        var results = model.GenerateTokens(cases.Select(c => (IReadOnlyList<int>)c.PromptIds), options, batchSize);
        for (int i = 0; i < cases.Length; i++)
        {
            Assert.Equal(cases[i].Generated, results[i].TokenIds);
            Assert.Equal(cases[i].FinishedByEos ? FinishReason.Eos : FinishReason.Length, results[i].FinishReason);
        }
    }

    [Fact]
    public void Text_prompts_start_with_the_bos_token_like_the_training_verses()
    {
        var golden = Load();
        using var model = GptModel.Open(Fixtures.DefaultModel);
        Assert.True(model.Info.AddBosToken);
        var result = model.Generate(golden.Greedy[0].Text, new GenerationOptions { MaxNewTokens = 24, DoSample = false, RepetitionPenalty = 1f });
        Assert.Equal(golden.Greedy[0].PromptIds.Length, result.PromptTokenCount);
        Assert.Equal(golden.Greedy[0].Generated, result.TokenIds);
    }

    [Fact]
    public void The_model_folder_is_small_and_described_by_its_card()
    {
        var folder = Fixtures.DefaultModel;
        long bytes = Directory.GetFiles(folder).Sum(f => new FileInfo(f).Length);
        Assert.True(bytes < 10_500_000, $"the default model takes {bytes} bytes");
        var card = File.ReadAllText(Path.Combine(folder, "README.md"));
        Assert.Contains("Validation loss", card);
        Assert.Contains("## Samples", card);
        using var model = GptModel.Open(folder);
        Assert.Equal(ModelLayout.OptimumDecoder, model.Info.Layout);
        Assert.Equal(256, model.Info.ContextLength);
    }
}
