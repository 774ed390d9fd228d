using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>Prompts sharing a head prefill it once; every output equals the one computed without the cache.</summary>
public sealed class PrefixCacheTests
{
    private const string Head = "Instructions: continue the verse in the style of the King James Bible, keeping its rhythm and its words. Verse:";

    private static readonly string[] Tails = ["In the beginning", "And the LORD said", "Blessed are the meek", "And it came to pass", "The LORD is my shepherd",
        "Let there be light", "For God so loved", "Thus saith the LORD", "And Moses went up", "Hear, O Israel", "Praise ye the LORD", "And Jesus answered"];

    private static List<string> Prompts(int count) => Enumerable.Range(0, count).Select(i => $"{Head} {Tails[i % Tails.Length]} {i}").ToList();

    private static (IReadOnlyList<GenerationResult> Results, (int Heads, int Rows) Use) Run(GptModel model, IReadOnlyList<string> prompts, GenerationOptions options, bool cached, int batch)
    {
        var o = options.Clone();
        o.PrefixCaching = cached;
        var before = model.Engine.Scheduler.PrefixUse;
        var results = model.Generate(prompts, o, batch);
        var after = model.Engine.Scheduler.PrefixUse;
        return (results, (after.Heads - before.Heads, after.Rows - before.Rows));
    }

    public static TheoryData<string, int, bool> Cases()
    {
        var data = new TheoryData<string, int, bool>();
        foreach (var fixture in new[] { "tiny-gpt2-a", "tiny-gpt2-a-pair", "tiny-llama-builder", "tiny-onnx-community" })
            foreach (int batch in new[] { 1, 3, 8 })
                foreach (bool sample in new[] { false, true })
                    data.Add(fixture, batch, sample);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Prefix_cached_outputs_equal_uncached_ones_and_the_head_is_computed_once(string fixture, int batch, bool sample)
    {
        using var model = GptModel.Open(Fixtures.Folder(fixture));
        var options = new GenerationOptions { MaxNewTokens = 8, EosTokenIds = [], DoSample = sample, Temperature = 0.9f, TopK = 40, Seed = 17 };
        var prompts = Prompts(10);
        var (without, none) = Run(model, prompts, options, cached: false, batch);
        var (with, use) = Run(model, prompts, options, cached: true, batch);
        Assert.Equal((0, 0), none);
        Assert.Equal(without.Select(r => r.TokenIds), with.Select(r => r.TokenIds));
        Assert.Equal(without.Select(r => r.Text), with.Select(r => r.Text));
        Assert.Equal(1, use.Heads);
        // With one row per batch the first prompt has nobody to share with yet; every later one starts from the head.
        Assert.Equal(batch == 1 ? prompts.Count - 1 : prompts.Count, use.Rows);
    }

    [Fact]
    public void Prompts_that_share_less_than_the_minimum_head_are_prefilled_as_usual()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var (_, use) = Run(model, Tails.Take(6).ToList(), new GenerationOptions { MaxNewTokens = 4, EosTokenIds = [] }, cached: true, 6);
        Assert.Equal((0, 0), use);
    }

    [SharedDataFact("peer-models/onnxruntime-genai/tiny-random-lfm2-fp32")]
    public void A_head_carries_recurrent_states_as_well_as_caches()
    {
        using var model = GptModel.Open(SharedData.PathOf("peer-models/onnxruntime-genai/tiny-random-lfm2-fp32"));
        var head = Enumerable.Range(10, 24).ToArray();
        var prompts = Enumerable.Range(0, 6).Select(i => (IReadOnlyList<int>)head.Append(100 + i).Append(200 + i * 3).ToArray()).ToList();
        var plain = model.GenerateTokens(prompts, new GenerationOptions { MaxNewTokens = 5, EosTokenIds = [], PrefixCaching = false }, 3);
        var cached = model.GenerateTokens(prompts, new GenerationOptions { MaxNewTokens = 5, EosTokenIds = [], PrefixCaching = true }, 3);
        Assert.Equal(plain.Select(r => r.TokenIds), cached.Select(r => r.TokenIds));
        Assert.Equal(1, model.Engine.Scheduler.PrefixUse.Heads);
    }
}
