using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>Zero-shot classification: each label's log-likelihood after the prompt, with the prompt prefilled once for all its labels.</summary>
public sealed class ClassifyTests
{
    private static readonly string[] Prompts = ["And God said,", "In the beginning", "The LORD is my shepherd;", "Blessed are the meek", "Thus saith the LORD"];

    [Theory]
    [InlineData("tiny-gpt2-a", 1)]
    [InlineData("tiny-gpt2-a", 4)]
    [InlineData("tiny-gpt2-a-pair", 3)]
    [InlineData("tiny-llama-builder", 2)]
    [InlineData("tiny-onnx-community", 5)]
    public void Each_labels_log_likelihood_equals_scoring_the_label_after_the_prompt(string fixture, int batch)
    {
        using var model = GptModel.Open(Fixtures.Folder(fixture));
        string[] labels = [" yes", " no", " the children of Israel", " and the LORD spake unto Moses"];
        var results = model.Classify(Prompts, labels, batchSize: batch);
        for (int p = 0; p < Prompts.Length; p++)
            for (int l = 0; l < labels.Length; l++)
            {
                var reference = model.Score(labels[l], Prompts[p]);
                Assert.Equal(reference.TokenCount, results[p].TokenCounts[l]);
                Assert.Equal(reference.LogLikelihood, results[p].LogLikelihoods[l], 3);
            }
    }

    [Fact]
    public void Labels_the_model_cannot_tell_apart_are_named_and_every_tie_is_flagged()
    {
        // " GPL", " Apache" and " Mozilla" are all unknown to the default model's vocabulary: they share one row.
        using var model = GptModel.Open(Fixtures.DefaultModel);
        string[] labels = [" GPL", " Apache", " Mozilla"];
        var results = model.Classify(["This software is licensed under the", "Copyright and license:"], labels);
        foreach (var result in results)
        {
            Assert.True(result.Tied);
            Assert.Equal(" GPL", result.Label);
            Assert.Equal(1f / 3, result.Probabilities[0], 5);
            Assert.Contains(result.Warnings, w => w.StartsWith("the labels ' GPL', ' Apache', ' Mozilla' are the same to this model " +
                "(the tokens that tell them apart are all unknown to its vocabulary and share one row)", StringComparison.Ordinal));
            Assert.Contains(result.Warnings, w => w.StartsWith("the labels ' GPL' and ' Apache' and ' Mozilla' tie at probability 0.3333", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void A_label_unknown_to_the_vocabulary_is_named_and_labels_the_model_knows_carry_no_warning()
    {
        using var model = GptModel.Open(Fixtures.DefaultModel);
        var mixed = model.Classify(["And the LORD"], [" GPL", " God"])[0];
        Assert.False(mixed.Tied);
        Assert.Equal(["the label ' GPL' is unknown to this model's vocabulary (every token of it shares the row of unknown tokens), " +
            "so its score measures an unknown token, not the label"], mixed.Warnings);
        var known = model.Classify(["And the LORD"], [" God", " Pharaoh", " bread"])[0];
        Assert.False(known.Tied);
        Assert.Empty(known.Warnings);
    }

    [Fact]
    public void The_predicted_label_is_the_most_likely_and_the_probabilities_sum_to_one()
    {
        using var model = GptModel.Open(Fixtures.DefaultModel);
        string[] labels = [" God", " Pharaoh", " bread"];
        var result = model.Classify(["And the LORD"], labels)[0];
        Assert.Equal(labels[result.LogLikelihoods.Select((v, i) => (v, i)).MaxBy(x => x.v).i], result.Label);
        Assert.Equal(1.0, result.Probabilities.Sum(), 4);
        Assert.True(result.Probabilities[result.Index] == result.Probabilities.Max());
    }

    [Fact]
    public void Length_normalisation_ranks_labels_by_their_mean_log_likelihood_per_token()
    {
        using var model = GptModel.Open(Fixtures.DefaultModel);
        string[] labels = [" the", " the children of Israel went out of Egypt"];
        var plain = model.Classify(["And"], labels)[0];
        var normalised = model.Classify(["And"], labels, lengthNormalized: true)[0];
        var means = plain.LogLikelihoods.Select((ll, i) => ll / plain.TokenCounts[i]).ToArray();
        Assert.Equal(Array.IndexOf(means, means.Max()), normalised.Index);
    }

    [Fact]
    public void Fewer_than_two_labels_duplicates_and_empty_labels_are_refused()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        Assert.Contains("at least two labels", Assert.Throws<ArgumentException>(() => model.Classify(["x"], [" a"])).Message);
        Assert.Contains("' a' is given twice", Assert.Throws<ArgumentException>(() => model.Classify(["x"], [" a", " a"])).Message);
        Assert.Contains("A label is empty", Assert.Throws<ArgumentException>(() => model.Classify(["x"], [" a", ""])).Message);
    }

    [SharedDataFact("peer-models/onnxruntime-genai/tiny-random-lfm2-fp32")]
    public void Labels_after_a_prompt_with_recurrent_states_score_as_their_own_continuations()
    {
        using var model = GptModel.Open(SharedData.PathOf("peer-models/onnxruntime-genai/tiny-random-lfm2-fp32"));
        // No tokenizer in that folder: compare through token ids.
        var prompt = new[] { 5, 6, 7, 8 };
        int[][] labels = [[10], [11, 12], [13, 14, 15]];
        var results = model.Engine.ClassifyIds([prompt], ["a", "b", "c"], labels, false, 1, CancellationToken.None)[0];
        for (int l = 0; l < labels.Length; l++)
        {
            var ids = prompt.Concat(labels[l]).ToArray();
            var reference = model.Engine.ScoreRequests([new MLNetGpt.Generation.ScoreRequest(ids, prompt.Length, false)], CancellationToken.None)[0];
            Assert.Equal(reference.LogLikelihood, results.LogLikelihoods[l], 3);
        }
    }
}
