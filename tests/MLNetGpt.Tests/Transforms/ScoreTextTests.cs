using Microsoft.ML;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Transforms;

/// <summary>ScoreText against log-probabilities computed by torch for the same weights.</summary>
public sealed class ScoreTextTests
{
    public sealed class Row
    {
        public string Prompt { get; set; } = "";
        public string Text { get; set; } = "";
    }

    public sealed class Scored
    {
        public float Perplexity { get; set; }
        public double LogLikelihood { get; set; }
        public int TokenCount { get; set; }
    }

    [Theory]
    [InlineData("tiny-gpt2-a", "tiny-gpt2-a", 1, ScoringEngine.Batched)]
    [InlineData("tiny-gpt2-a", "tiny-gpt2-a", 4, ScoringEngine.Batched)]
    [InlineData("tiny-gpt2-a", "tiny-gpt2-a", 4, ScoringEngine.OnnxTransformer)]
    [InlineData("tiny-gpt2-a-pair", "tiny-gpt2-a", 3, ScoringEngine.OnnxTransformer)]
    [InlineData("tiny-gpt2-a-merged", "tiny-gpt2-a", 3, ScoringEngine.OnnxTransformer)]
    [InlineData("tiny-gqa-genai", "tiny-gqa-genai", 3, ScoringEngine.OnnxTransformer)]
    [InlineData("tiny-gqa-genai", "tiny-gqa-genai", 3, ScoringEngine.Batched)]
    public void Perplexity_equals_exp_of_the_mean_negative_log_likelihood_from_torch(string fixture, string goldenName, int batchSize, ScoringEngine engine)
    {
        var golden = Fixtures.Golden(goldenName);
        var ml = new MLContext();
        // Scored as a continuation of the prompt's first token, the text's tokens are exactly ids[1..].
        var tokenizer = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt2");
        var cases = golden.Prompts.Select((p, i) => (p, i)).Where(x => x.p.Ids.Length >= 2).ToList();
        var rows = cases.Select(x => new Row { Prompt = tokenizer.Decode(x.p.Ids[..1]), Text = tokenizer.Decode(x.p.Ids[1..]) }).ToArray();
        foreach (var (row, (p, _)) in rows.Zip(cases))
            Assert.Equal(p.Ids, tokenizer.EncodeToIds(row.Prompt).Concat(tokenizer.EncodeToIds(row.Text)));

        var data = ml.Data.LoadFromEnumerable(rows);
        using var model = ml.Transforms.Text.ScoreText(new ScoreTextOptions
        {
            OutputColumnName = "Perplexity", TextColumnName = "Text", PromptColumnName = "Prompt",
            ModelFolder = Fixtures.Folder(fixture), BatchSize = batchSize, Engine = engine,
        }).Fit(data);
        var scored = ml.Data.CreateEnumerable<Scored>(model.Transform(data), false).ToList();
        for (int k = 0; k < cases.Count; k++)
        {
            var expected = golden.Prefill[cases[k].i].TokenLogProbs!;
            double nll = -expected.Sum(v => (double)v) / expected.Length;
            Assert.Equal(expected.Length, scored[k].TokenCount);
            Tolerance.Close(-nll * expected.Length, scored[k].LogLikelihood, $"log-likelihood of row {k}");
            Tolerance.Close(Math.Exp(nll), scored[k].Perplexity, $"perplexity of row {k}");
        }
    }

    [Fact]
    public void Empty_text_scores_no_token_and_text_without_prompt_is_scored_after_bos()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new Row { Text = "" }, new Row { Text = "Hello" } });
        using var model = ml.Transforms.Text.ScoreText("Perplexity", "Text", Fixtures.Folder("tiny-gpt2-a")).Fit(data);
        var scored = ml.Data.CreateEnumerable<Scored>(model.Transform(data), false).ToList();
        Assert.Equal(0, scored[0].TokenCount);
        Assert.True(float.IsNaN(scored[0].Perplexity));
        Assert.Equal(1, scored[1].TokenCount);      // "Hello" is one token, scored after <|endoftext|>
        Assert.True(scored[1].LogLikelihood < 0);
    }
}
