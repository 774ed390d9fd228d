using MLNetGpt.Generation;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>Each decoding control on a crafted logits vector: the exact kept set or changed scores.</summary>
public sealed class LogitsProcessorTests
{
    // Probabilities 0.5, 0.3, 0.15, 0.05 as logits.
    private static float[] Distribution() => [MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.15f), MathF.Log(0.05f)];

    private static int[] Kept(float[] scores) => Enumerable.Range(0, scores.Length).Where(i => !float.IsNegativeInfinity(scores[i])).ToArray();

    [Theory]
    [InlineData(0.45f, new[] { 0 })]          // 0.5 alone reaches 0.45
    [InlineData(0.75f, new[] { 0, 1 })]       // 0.5 + 0.3 = 0.8 >= 0.75
    [InlineData(0.9f, new[] { 0, 1, 2 })]     // 0.95 >= 0.9
    [InlineData(0.99f, new[] { 0, 1, 2, 3 })]
    [InlineData(1.0f, new[] { 0, 1, 2, 3 })]
    public void Top_p_keeps_the_smallest_set_reaching_p(float topP, int[] expected)
    {
        var scores = Distribution();
        int[]? order = null;
        float[]? keys = null;
        LogitsProcessors.ApplyTopP(scores, topP, ref order, ref keys);
        Assert.Equal(expected, Kept(scores));
        Assert.Equal(MathF.Log(0.5f), scores[0]);    // kept scores are unchanged
    }

    [Fact]
    public void Top_p_order_does_not_depend_on_the_token_order()
    {
        float[] scores = [MathF.Log(0.05f), MathF.Log(0.3f), MathF.Log(0.15f), MathF.Log(0.5f)];
        int[]? order = null;
        float[]? keys = null;
        LogitsProcessors.ApplyTopP(scores, 0.75f, ref order, ref keys);
        Assert.Equal([1, 3], Kept(scores));
    }

    [Theory]
    [InlineData(0.2f, new[] { 0, 1, 2 })]     // threshold 0.1: drops 0.05
    [InlineData(0.5f, new[] { 0, 1 })]        // threshold 0.25: drops 0.15 and 0.05
    [InlineData(1.0f, new[] { 0 })]
    [InlineData(0.0f, new[] { 0, 1, 2, 3 })]
    public void Min_p_drops_tokens_below_min_p_times_the_top_probability(float minP, int[] expected)
    {
        var scores = Distribution();
        LogitsProcessors.ApplyMinP(scores, minP);
        Assert.Equal(expected, Kept(scores));
    }

    // Hugging Face's test_typical_dist_warper (tests/generation/test_logits_process.py), case for case.
    [Fact]
    public void Typical_p_keeps_the_tokens_closest_to_the_entropy_as_Hugging_Face_s_warper_does()
    {
        int[]? order = null;
        float[]? keys = null;
        float[] peaked = [MathF.Log(0.97f), MathF.Log(0.01f), MathF.Log(0.01f), MathF.Log(0.01f)];
        LogitsProcessors.ApplyTypicalP(peaked, 0.5f, ref order, ref keys);
        Assert.Equal([0], Kept(peaked));
        // The most likely token is the least typical here: it is removed.
        float[] flat = [MathF.Log(0.4f), MathF.Log(0.2f), MathF.Log(0.2f), MathF.Log(0.2f)];
        LogitsProcessors.ApplyTypicalP(flat, 0.5f, ref order, ref keys);
        Assert.Equal([1, 2, 3], Kept(flat));
        Assert.Equal(MathF.Log(0.2f), flat[1]);

        // A uniform distribution is left as it is.
        float[] uniform = [0.2f, 0.2f, 0.2f, 0.2f, 0.2f];
        LogitsProcessors.ApplyTypicalP(uniform, 0.5f, ref order, ref keys, minTokensToKeep: 3);
        Assert.Equal(5, Kept(uniform).Length);

        // Ramps: the first keeps two tokens; the extreme one would keep one, but min_tokens_to_keep = 2 keeps two.
        float[] ramp = Enumerable.Range(0, 10).Select(i => (float)(i - 5)).ToArray();
        LogitsProcessors.ApplyTypicalP(ramp, 0.7f, ref order, ref keys, minTokensToKeep: 2);
        Assert.Equal(2, Kept(ramp).Length);
        float[] extreme = Enumerable.Range(0, 10).Select(i => (i - 5) * 100f).ToArray();
        LogitsProcessors.ApplyTypicalP(extreme, 0.7f, ref order, ref keys, minTokensToKeep: 2);
        Assert.Equal(2, Kept(extreme).Length);
    }

    [Fact]
    public void Typical_p_of_one_changes_nothing_and_the_option_refuses_values_outside_its_range()
    {
        int[]? order = null;
        float[]? keys = null;
        var scores = Distribution();
        LogitsProcessors.ApplyTypicalP(scores, 1f, ref order, ref keys);
        Assert.Equal(Distribution(), scores);
        Assert.Equal("typical_p must be in (0, 1]. (Parameter 'TypicalP')\nActual value was 0.",
            Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { TypicalP = 0 }).Message.ReplaceLineEndings("\n"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { TypicalP = 1.5f });
    }

    [Fact]
    public void Top_k_keeps_k_tokens_and_every_tie_at_the_boundary()
    {
        float[] scores = [3f, 1f, 3f, 2f, 0.5f];
        LogitsProcessors.ApplyTopK(scores, 1, new float[5]);
        Assert.Equal([0, 2], Kept(scores));

        scores = [3f, 1f, 4f, 2f, 0.5f];
        LogitsProcessors.ApplyTopK(scores, 3, new float[5]);
        Assert.Equal([0, 2, 3], Kept(scores));
    }

    [Fact]
    public void Repetition_penalty_divides_positive_and_multiplies_negative_scores_of_seen_tokens_once()
    {
        float[] scores = [2f, -2f, 1f, 0.5f];
        LogitsProcessors.ApplyRepetitionPenalty(scores, [0, 1, 1, 0], 2f, []);
        Assert.Equal([1f, -4f, 1f, 0.5f], scores);
    }

    [Fact]
    public void No_repeat_ngram_bans_every_token_that_would_repeat_an_ngram()
    {
        var scores = new float[6];
        // 3-grams seen: (1,2,3), (2,3,1), (3,1,2), (1,2,4), (2,4,1), (4,1,2); the last two tokens are (1,2).
        LogitsProcessors.ApplyNoRepeatNgram(scores, [1, 2, 3, 1, 2, 4, 1, 2], 3);
        Assert.Equal([0, 1, 2, 5], Kept(scores));

        scores = new float[6];
        LogitsProcessors.ApplyNoRepeatNgram(scores, [1, 2, 3, 1, 2, 4, 1, 2], 2);   // after 2 came 3 and 4
        Assert.Equal([0, 1, 2, 5], Kept(scores));

        scores = new float[6];
        LogitsProcessors.ApplyNoRepeatNgram(scores, [5], 2);                         // no bigram yet
        Assert.Equal(6, Kept(scores).Length);
    }

    [Fact]
    public void Temperature_divides_scores_and_eos_suppression_bans_every_eos_id()
    {
        float[] scores = [2f, -1f, 4f];
        LogitsProcessors.ApplyTemperature(scores, 0.5f);
        Assert.Equal([4f, -2f, 8f], scores);
        LogitsProcessors.SuppressEos(scores, [0, 2]);
        Assert.Equal([1], Kept(scores));
    }

    [Fact]
    public void Sampling_follows_the_cumulative_distribution_and_skips_removed_tokens()
    {
        float[] scores = [MathF.Log(0.5f), float.NegativeInfinity, MathF.Log(0.25f), MathF.Log(0.25f)];
        Assert.Equal(0, LogitsProcessors.Sample(scores, 0.0));
        Assert.Equal(0, LogitsProcessors.Sample(scores, 0.49));
        Assert.Equal(2, LogitsProcessors.Sample(scores, 0.51));
        Assert.Equal(3, LogitsProcessors.Sample(scores, 0.76));
        Assert.Equal(3, LogitsProcessors.Sample(scores, 0.999999));
    }

    [Fact]
    public void Log_probability_is_the_log_softmax_of_the_token()
    {
        var scores = Distribution();
        Assert.Equal(Math.Log(0.3), LogitsProcessors.LogProbability(scores, 1), 5);
    }
}
