using MLNetGpt.Generation;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>
/// The vectorised processors against plain scalar references, on vocabulary-sized logits shaped
/// like real ones: ties, long runs of one value (the default model's shared unknown-token logit),
/// removed (-inf) tokens, lengths that are not a multiple of the vector width.
/// </summary>
public sealed class VectorisedProcessorTests
{
    public static TheoryData<string> Shapes => new() { "random", "ties", "shared-run", "mostly-removed", "odd-length", "all-removed" };

    private static float[] Logits(string shape, int seed = 7)
    {
        var random = new Random(seed);
        int length = shape == "odd-length" ? 50_257 - 3 : 50_257;
        var scores = new float[length];
        for (int i = 0; i < length; i++) scores[i] = (float)(random.NextDouble() * 20 - 10);
        switch (shape)
        {
            case "ties":
                for (int i = 0; i < length; i++) scores[i] = MathF.Round(scores[i]);          // 21 distinct values
                break;
            case "shared-run":
                for (int i = 7_833; i < length; i++) scores[i] = -3.25f;                       // one value for most ids
                scores[40_000] = 12f;                                                         // the maximum inside the run
                break;
            case "mostly-removed":
                for (int i = 0; i < length; i++) if (i % 997 != 0) scores[i] = float.NegativeInfinity;
                break;
            case "all-removed":
                Array.Fill(scores, float.NegativeInfinity);
                break;
        }
        return scores;
    }

    private static int ReferenceArgMax(float[] scores)
    {
        int best = 0;
        float bestScore = float.NegativeInfinity;
        for (int i = 0; i < scores.Length; i++)
            if (scores[i] > bestScore) (bestScore, best) = (scores[i], i);
        return best;
    }

    private static float[] ReferenceTopK(float[] scores, int k)
    {
        float threshold = scores.OrderByDescending(x => x).ElementAt(k - 1);
        return scores.Select(x => x < threshold ? float.NegativeInfinity : x).ToArray();
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ArgMax_is_the_first_index_of_the_largest_score(string shape)
    {
        var scores = Logits(shape);
        Assert.Equal(ReferenceArgMax(scores), LogitsProcessors.ArgMax(scores));
        // The same maximum twice: the first one wins.
        if (shape != "all-removed")
        {
            int first = ReferenceArgMax(scores);
            scores[^1] = scores[first];
            Assert.Equal(first, LogitsProcessors.ArgMax(scores));
        }
    }

    [Fact]
    public void ArgMax_ignores_NaN_like_the_scalar_loop()
    {
        var scores = Logits("random");
        scores[10] = float.NaN;
        scores[20_000] = float.NaN;
        Assert.Equal(ReferenceArgMax(scores), LogitsProcessors.ArgMax(scores));
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Top_k_equals_the_sorted_reference(string shape)
    {
        foreach (int k in new[] { 1, 40, 1_000, 49_000 })
        {
            var scores = Logits(shape);
            var expected = ReferenceTopK(scores, k);
            LogitsProcessors.ApplyTopK(scores, k, new float[scores.Length]);
            Assert.Equal(expected, scores);
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Temperature_and_min_p_equal_the_scalar_reference(string shape)
    {
        var scores = Logits(shape);
        var expected = scores.Select(x => x * (1f / 0.7f)).ToArray();
        LogitsProcessors.ApplyTemperature(scores, 0.7f);
        Assert.Equal(expected, scores);

        float max = scores.Max();
        float threshold = max + MathF.Log(0.05f);
        expected = float.IsNegativeInfinity(max) ? scores.ToArray() : scores.Select(x => x < threshold ? float.NegativeInfinity : x).ToArray();
        LogitsProcessors.ApplyMinP(scores, 0.05f);
        Assert.Equal(expected, scores);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Sampling_after_top_k_follows_the_scalar_cumulative_walk(string shape)
    {
        if (shape == "all-removed") return;
        var scores = Logits(shape);
        LogitsProcessors.ApplyTopK(scores, 40, new float[scores.Length]);
        float max = scores.Max();
        var kept = Enumerable.Range(0, scores.Length).Where(i => !float.IsNegativeInfinity(scores[i])).ToArray();
        double total = kept.Sum(i => Math.Exp(scores[i] - max));
        foreach (double uniform in new[] { 0.0, 0.01, 0.37, 0.5, 0.93, 0.999999 })
        {
            double running = 0;
            int expected = kept[^1];
            foreach (int i in kept)
            {
                running += Math.Exp(scores[i] - max);
                if (running > uniform * total) { expected = i; break; }
            }
            Assert.Equal(expected, LogitsProcessors.Sample(scores, uniform));
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Top_p_after_top_k_keeps_the_same_set_as_on_a_short_vector(string shape)
    {
        if (shape == "all-removed") return;
        var scores = Logits(shape);
        LogitsProcessors.ApplyTopK(scores, 40, new float[scores.Length]);
        var kept = Enumerable.Range(0, scores.Length).Where(i => !float.IsNegativeInfinity(scores[i])).ToArray();
        // The same scores on a vector holding only the kept tokens (no removed runs to skip).
        var compact = kept.Select(i => scores[i]).ToArray();
        int[]? order = null, order2 = null;
        float[]? keys = null, keys2 = null;
        LogitsProcessors.ApplyTopP(compact, 0.8f, ref order, ref keys);
        LogitsProcessors.ApplyTopP(scores, 0.8f, ref order2, ref keys2);
        var expected = kept.Where((_, j) => !float.IsNegativeInfinity(compact[j])).ToArray();
        Assert.Equal(expected, Enumerable.Range(0, scores.Length).Where(i => !float.IsNegativeInfinity(scores[i])).ToArray());
    }
}
