using MLNetGpt.Generation.Constraints;
using Xunit;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>Masks against a scalar reference.</summary>
public sealed class TokenSetTests
{
    [Theory]
    [InlineData(50257, 0.0)]
    [InlineData(50257, 0.0005)]
    [InlineData(50257, 0.02)]
    [InlineData(50257, 0.5)]
    [InlineData(50257, 0.98)]
    [InlineData(50257, 1.0)]
    [InlineData(37, 0.3)]
    public void Apply_keeps_exactly_the_allowed_logits_and_removes_every_other(int vocabulary, double density)
    {
        var random = new Random(vocabulary + (int)(density * 1000));
        var ids = Enumerable.Range(0, vocabulary).Where(_ => random.NextDouble() < density).ToList();
        var set = TokenSet.Of(ids, vocabulary);
        Assert.Equal(ids.Count, set.Count);
        Assert.Equal(ids, set.ToArray());
        // Logits wider than the set's vocabulary (a model padded past it): the extra ones are never allowed.
        var logits = Enumerable.Range(0, vocabulary + 40).Select(_ => (float)(random.NextDouble() * 20 - 10)).ToArray();
        var original = (float[])logits.Clone();
        set.Apply(logits);
        var allowed = new HashSet<int>(ids);
        for (int i = 0; i < logits.Length; i++)
        {
            if (allowed.Contains(i)) Assert.Equal(original[i], logits[i]);
            else Assert.Equal(float.NegativeInfinity, logits[i]);
            Assert.Equal(allowed.Contains(i), set.Contains(i));
        }
    }

    [Fact]
    public void Few_ids_are_stored_sparsely_and_many_as_a_bitset()
    {
        Assert.False(TokenSet.Of(Enumerable.Range(0, 100), 50257).IsBitset);
        Assert.True(TokenSet.Of(Enumerable.Range(0, 5000), 50257).IsBitset);
        Assert.Equal(2, TokenSet.Of([3, 3, 9, -1, 50257], 50257).Count);
    }
}
