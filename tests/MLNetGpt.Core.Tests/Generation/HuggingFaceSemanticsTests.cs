using MLNetGpt.Generation;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>
/// The warpers against Hugging Face transformers' own expectations
/// (tests/generation/test_logits_process.py: test_top_k_dist_warper, test_top_p_dist_warper,
/// test_min_p_dist_warper), including the min_tokens_to_keep edge rows; and the output-length and
/// EOS semantics of GenerationConfig.
/// </summary>
public sealed class HuggingFaceSemanticsTests
{
    private static float[] Log(params double[] probabilities) => probabilities.Select(p => MathF.Log((float)p)).ToArray();

    private static float[] Ramp(int length, float scale = 1f, int shift = 0) => Enumerable.Range(0, length).Select(i => (i - shift) * scale).ToArray();

    private static int Kept(float[] scores) => scores.Count(s => !float.IsNegativeInfinity(s));

    private static bool[] Removed(float[] scores) => scores.Select(float.IsNegativeInfinity).ToArray();

    [Fact]
    public void Top_k_keeps_the_k_largest_as_Hugging_Face_does()
    {
        var first = Ramp(10);
        var second = Ramp(10);
        for (int i = 0; i < 5; i++) second[i] += 10;
        LogitsProcessors.ApplyTopK(first, 3, new float[10]);
        LogitsProcessors.ApplyTopK(second, 3, new float[10]);
        Assert.Equal(Enumerable.Repeat(true, 7).Concat(Enumerable.Repeat(false, 3)), Removed(first));
        Assert.Equal(Enumerable.Repeat(true, 2).Concat(Enumerable.Repeat(false, 3)).Concat(Enumerable.Repeat(true, 5)), Removed(second));
    }

    [Fact]
    public void Top_k_of_1_with_min_tokens_to_keep_3_leaves_a_uniform_row_alone_and_keeps_3_of_a_ramp()
    {
        var uniform = Enumerable.Repeat(0.2f, 5).ToArray();
        LogitsProcessors.ApplyTopK(uniform, 1, new float[5], minTokensToKeep: 3);
        Assert.Equal(5, Kept(uniform));
        var ramp = Ramp(5);
        LogitsProcessors.ApplyTopK(ramp, 1, new float[5], minTokensToKeep: 3);
        Assert.Equal(3, Kept(ramp));
    }

    [Fact]
    public void Top_p_drops_the_token_at_the_boundary_as_Hugging_Face_does()
    {
        int[]? order = null;
        float[]? keys = null;
        var first = Log(0.3, 0.1, 0.1, 0.5);
        var second = Log(0.15, 0.3, 0.3, 0.25);
        LogitsProcessors.ApplyTopP(first, 0.8f, ref order, ref keys);
        LogitsProcessors.ApplyTopP(second, 0.8f, ref order, ref keys);
        // Expected (HF): [[0.3, 0, 0, 0.5], [0, 0.3, 0.3, 0.25]]: both 0.1 tokens go, their sum is exactly 1 - top_p.
        Assert.Equal([false, true, true, false], Removed(first));
        Assert.Equal([true, false, false, false], Removed(second));
    }

    [Fact]
    public void Top_p_with_min_tokens_to_keep_2_keeps_3_of_a_ramp_and_2_of_an_extreme_ramp()
    {
        int[]? order = null;
        float[]? keys = null;
        var ramp = Ramp(10, shift: 5);
        var extreme = Ramp(10, scale: 100f, shift: 5);
        LogitsProcessors.ApplyTopP(ramp, 0.9f, ref order, ref keys, minTokensToKeep: 2);
        LogitsProcessors.ApplyTopP(extreme, 0.9f, ref order, ref keys, minTokensToKeep: 2);
        Assert.Equal(3, Kept(ramp));
        Assert.Equal(2, Kept(extreme));
    }

    [Fact]
    public void Min_p_removes_tokens_below_min_p_times_the_top_probability_as_Hugging_Face_does()
    {
        var rows = new[] { Log(0.9, 0.0274, 0.047, 0.0274), Log(0.15, 0.3, 0.3, 0.25), Log(0.97, 0.01, 0.01, 0.01) };
        foreach (var row in rows) LogitsProcessors.ApplyMinP(row, 0.05f);
        Assert.Equal([false, true, false, true], Removed(rows[0]));
        Assert.Equal([false, false, false, false], Removed(rows[1]));
        Assert.Equal([false, true, true, true], Removed(rows[2]));
    }

    [Fact]
    public void Min_p_with_min_tokens_to_keep_2_keeps_2_of_a_ramp_and_of_an_extreme_ramp()
    {
        var ramp = Ramp(10, shift: 5);
        var extreme = Ramp(10, scale: 100f, shift: 5);
        LogitsProcessors.ApplyMinP(ramp, 0.9f, minTokensToKeep: 2);
        LogitsProcessors.ApplyMinP(extreme, 0.9f, minTokensToKeep: 2);
        Assert.Equal(2, Kept(ramp));
        Assert.Equal(2, Kept(extreme));
    }

    [Fact]
    public void Min_tokens_to_keep_below_1_is_refused_naming_the_option()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { MinTokensToKeep = 0 });
        Assert.Contains("min_tokens_to_keep", error.Message);
    }

    [Fact]
    public void With_include_eos_token_the_eos_id_ends_the_token_ids_but_never_the_text()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        // Pick an EOS id the model actually produces: the greedy first token of the prompt.
        var first = model.Generate("In the beginning", new GenerationOptions { MaxNewTokens = 3, EosTokenIds = [] });
        int eos = first.TokenIds[1];
        var without = model.Generate("In the beginning", new GenerationOptions { MaxNewTokens = 8, EosTokenIds = [eos], ReturnLogProbabilities = true });
        var with = model.Generate("In the beginning", new GenerationOptions { MaxNewTokens = 8, EosTokenIds = [eos], IncludeEosToken = true, ReturnLogProbabilities = true });
        Assert.Equal(FinishReason.Eos, without.FinishReason);
        Assert.Equal(FinishReason.Eos, with.FinishReason);
        Assert.Equal(without.TokenIds.Append(eos), with.TokenIds);
        Assert.Equal(without.Text, with.Text);
        Assert.Equal(with.TokenIds.Count, with.LogProbabilities!.Count);
    }

    [Fact]
    public void Max_length_limits_prompt_plus_output_and_max_new_tokens_wins_when_both_are_set()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var prompts = new[] { "One", "One two three four five" };
        var byLength = model.Generate(prompts, new GenerationOptions { MaxLength = 12, EosTokenIds = [] });
        Assert.All(byLength, r => Assert.Equal(12, r.PromptTokenCount + r.TokenIds.Count));
        var both = model.Generate(prompts, new GenerationOptions { MaxLength = 12, MaxNewTokens = 3, EosTokenIds = [] });
        Assert.All(both, r => Assert.Equal(3, r.TokenIds.Count));
    }

    [Fact]
    public void A_genai_config_search_max_length_becomes_the_models_output_limit()
    {
        var folder = Fixtures.CopyOf("tiny-gqa-genai");
        var path = Path.Combine(folder, "genai_config.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
        json["search"] = new System.Text.Json.Nodes.JsonObject { ["max_length"] = 9 };
        File.WriteAllText(path, json.ToJsonString());
        using var model = GptModel.Open(folder);
        Assert.Equal(9, model.Info.Defaults.MaxLength);
        var result = model.Generate("In the beginning", new GenerationOptions { EosTokenIds = [] });
        Assert.Equal(9, result.PromptTokenCount + result.TokenIds.Count);
    }
}
