using MLNetGpt.Generation;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>Decoding controls, seeds, stop strings, EOS, log-probabilities and streaming on a fixture.</summary>
public sealed class GenerationBehaviourTests : IClassFixture<GenerationBehaviourTests.FixtureModel>
{
    public sealed class FixtureModel : IDisposable
    {
        public GptModel Model { get; } = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        public Golden Golden { get; } = Fixtures.Golden("tiny-gpt2-a");
        public void Dispose() => Model.Dispose();
    }

    private static readonly string[] Prompts =
    [
        "In the beginning", "And the LORD said unto Moses,", "The quick brown fox", "Hello", "Question: why?\nAnswer:",
        "For God so loved the world", "a", "Numbers: 1, 2, 3,", "Blessed are", "It was the best of times, it was the worst of times",
        "x y z", "Once upon a time", "The end.", "Call me Ishmael.", "Whereas recognition of the inherent dignity", "Lorem ipsum dolor",
    ];

    private readonly GptModel _model;
    private readonly Golden _golden;

    public GenerationBehaviourTests(FixtureModel fixture)
    {
        _model = fixture.Model;
        _golden = fixture.Golden;
    }

    private static GenerationOptions Sampling(int seed) => new()
    {
        DoSample = true, Temperature = 0.9f, TopK = 40, TopP = 0.95f, MaxNewTokens = 16, EosTokenIds = [], Seed = seed,
    };

    [Fact]
    public void Seeded_sampling_gives_identical_output_on_two_runs()
    {
        var first = _model.Generate(Prompts, Sampling(7), batchSize: 4);
        var second = _model.Generate(Prompts, Sampling(7), batchSize: 4);
        Assert.Equal(first.Select(r => r.TokenIds), second.Select(r => r.TokenIds));
        var other = _model.Generate(Prompts, Sampling(8), batchSize: 4);
        Assert.NotEqual(first.Select(r => string.Join(",", r.TokenIds)), other.Select(r => string.Join(",", r.TokenIds)));
    }

    [Fact]
    public void A_seeded_prompt_gives_the_same_output_alone_and_inside_batches_of_4_and_16()
    {
        var alone = Prompts.Select(p => _model.Generate(p, Sampling(42)).TokenIds).ToList();
        foreach (int batch in new[] { 4, 16 })
        {
            // A different order puts every prompt beside different neighbours.
            var shuffled = Prompts.Reverse().ToArray();
            var results = _model.Generate(shuffled, Sampling(42), batchSize: batch);
            for (int i = 0; i < shuffled.Length; i++)
                Assert.Equal(alone[Prompts.Length - 1 - i], results[i].TokenIds);
        }
    }

    [Fact]
    public void Sampling_with_top_k_1_equals_greedy()
    {
        var greedy = _model.Generate(Prompts, new GenerationOptions { MaxNewTokens = 12, EosTokenIds = [] }, batchSize: 8);
        var topK1 = _model.Generate(Prompts, new GenerationOptions { DoSample = true, TopK = 1, MaxNewTokens = 12, EosTokenIds = [], Seed = 3 }, batchSize: 8);
        Assert.Equal(greedy.Select(r => r.TokenIds), topK1.Select(r => r.TokenIds));
    }

    [Fact]
    public void Temperature_zero_means_greedy_even_when_sampling_is_asked_for()
    {
        var greedy = _model.Generate(Prompts[0], new GenerationOptions { MaxNewTokens = 12, EosTokenIds = [] });
        var zero = _model.Generate(Prompts[0], new GenerationOptions { DoSample = true, Temperature = 0, MaxNewTokens = 12, EosTokenIds = [] });
        Assert.Equal(greedy.TokenIds, zero.TokenIds);
    }

    [Fact]
    public void A_stop_string_spanning_two_tokens_ends_generation_and_is_cut_from_the_text()
    {
        var golden = _golden.Greedy[1];
        var pieces = golden.Generated.Select(id => _model.Tokenizer.Decode([id])).ToList();
        string full = _model.Tokenizer.Decode(golden.Generated);
        // Find token k whose last two characters plus token k+1's first character occur first there.
        for (int k = 2; k + 1 < pieces.Count; k++)
        {
            if (pieces[k].Length < 2 || pieces[k + 1].Length < 1 || pieces[k].Contains('\uFFFD') || pieces[k + 1].Contains('\uFFFD')) continue;
            string stop = pieces[k][^2..] + pieces[k + 1][..1];
            int at = string.Concat(pieces.Take(k)).Length + pieces[k].Length - 2;
            if (full.IndexOf(stop, StringComparison.Ordinal) != at) continue;

            var result = _model.GenerateTokens([golden.PromptIds], new GenerationOptions { MaxNewTokens = 32, EosTokenIds = [], StopStrings = ["never appears", stop] })[0];
            Assert.Equal(FinishReason.StopString, result.FinishReason);
            Assert.Equal(full[..at], result.Text);
            Assert.Equal(golden.Generated.Take(k + 2), result.TokenIds);
            return;
        }
        Assert.Fail("no two-token stop string found in the golden output");
    }

    [Fact]
    public void Eos_ids_end_generation_without_appearing_in_the_output_and_min_new_tokens_delays_them()
    {
        var golden = _golden.Greedy[0];
        int eos = golden.Generated[3];
        int firstAt = Array.IndexOf(golden.Generated, eos);
        var result = _model.GenerateTokens([golden.PromptIds], new GenerationOptions { MaxNewTokens = 32, EosTokenIds = [99999 % 50257, eos] })[0];
        Assert.Equal(FinishReason.Eos, result.FinishReason);
        Assert.Equal(golden.Generated.Take(firstAt), result.TokenIds);

        var delayed = _model.GenerateTokens([golden.PromptIds], new GenerationOptions { MaxNewTokens = 32, EosTokenIds = [eos], MinNewTokens = firstAt + 2 })[0];
        Assert.True(delayed.TokenIds.Count >= firstAt + 2);
        Assert.DoesNotContain(eos, delayed.TokenIds.Take(firstAt + 2));
    }

    [Fact]
    public void Log_probabilities_equal_what_scoring_the_same_tokens_gives()
    {
        var golden = _golden.Greedy[2];
        var result = _model.GenerateTokens([golden.PromptIds], new GenerationOptions { MaxNewTokens = 10, EosTokenIds = [], ReturnLogProbabilities = true })[0];
        Assert.Equal(10, result.LogProbabilities!.Count);
        Assert.All(result.LogProbabilities, lp => Assert.True(lp <= 0));
        var scorer = new Scorer(_model.Engine.Backend, _model.Info);
        var ids = golden.PromptIds.Concat(result.TokenIds).ToArray();
        var score = scorer.Score([new ScoreRequest(ids, golden.PromptIds.Length, false)], CancellationToken.None)[0];
        Assert.Equal(10, score.TokenCount);
        Assert.Equal(score.LogLikelihood, result.LogProbabilities.Sum(lp => (double)lp), 3);
    }

    [Fact]
    public void Scoring_matches_torch_token_log_probabilities_and_perplexity()
    {
        for (int p = 0; p < _golden.Prompts.Length; p++)
        {
            var ids = _golden.Prompts[p].Ids;
            if (ids.Length < 2) continue;
            var expected = _golden.Prefill[p].TokenLogProbs!;
            var scorer = new Scorer(_model.Engine.Backend, _model.Info);
            var score = scorer.Score([new ScoreRequest(ids, 1, false)], CancellationToken.None)[0];
            Assert.Equal(ids.Length - 1, score.TokenCount);
            double nll = -expected.Sum(v => (double)v) / expected.Length;
            Tolerance.Close(Math.Exp(nll), score.Perplexity, $"perplexity of prompt {p}");
        }
    }

    [Fact]
    public void Streaming_pieces_concatenate_to_the_generated_text()
    {
        var options = new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [] };
        foreach (var prompt in Prompts.Take(4))
        {
            var pieces = _model.GenerateStreamingAsync(prompt, options).ToBlockingEnumerable().ToList();
            Assert.Equal(_model.Generate(prompt, options).Text, string.Concat(pieces));
        }
    }

    [Fact]
    public void Streaming_holds_back_text_that_may_start_a_stop_string()
    {
        var golden = _golden.Greedy[1];
        string full = _model.Tokenizer.Decode(golden.Generated);
        string stop = full.Substring(full.Length / 2, 3);
        var options = new GenerationOptions { MaxNewTokens = 32, EosTokenIds = [], StopStrings = [stop] };
        var text = _model.GenerateTokens([golden.PromptIds], options)[0].Text;
        string prompt = _model.Tokenizer.Decode(golden.PromptIds);
        var streamed = string.Concat(_model.GenerateStreamingAsync(prompt, options).ToBlockingEnumerable());
        Assert.Equal(text, streamed);
        Assert.DoesNotContain(stop, streamed);
    }

    [Fact]
    public async Task Cancellation_stops_generation_with_OperationCanceledException()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => _model.Generate(Prompts, new GenerationOptions { MaxNewTokens = 8 }, 4, cancelled.Token));

        using var midway = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in _model.GenerateStreamingAsync(Prompts[0], new GenerationOptions { MaxNewTokens = 30, EosTokenIds = [] }, midway.Token))
                midway.Cancel();
        });
    }

    [Fact]
    public async Task Streaming_reports_a_cancellation_even_after_every_piece_was_produced()
    {
        using var cancel = new CancellationTokenSource();
        await using var pieces = _model.GenerateStreamingAsync(Prompts[0], new GenerationOptions { MaxNewTokens = 3, EosTokenIds = [] }, cancel.Token)
            .GetAsyncEnumerator();
        Assert.True(await pieces.MoveNextAsync());
        await Task.Delay(500);   // the producer has long finished its three tokens
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await pieces.MoveNextAsync());
    }

    [Fact]
    public void An_empty_prompt_starts_from_the_bos_token()
    {
        var fromEmpty = _model.Generate("", new GenerationOptions { MaxNewTokens = 5, EosTokenIds = [] });
        var fromBos = _model.GenerateTokens([[50256]], new GenerationOptions { MaxNewTokens = 5, EosTokenIds = [] })[0];
        Assert.Equal(1, fromEmpty.PromptTokenCount);
        Assert.Equal(fromBos.TokenIds, fromEmpty.TokenIds);
    }

    [Fact]
    public void Generation_stops_when_the_context_window_is_full()
    {
        using var small = GptModel.Open(Fixtures.Folder("tiny-gpt2-b"));     // 64 positions
        var prompt = Enumerable.Range(300, 60).ToArray();
        var result = small.GenerateTokens([prompt], new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [] })[0];
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(4, result.TokenIds.Count);
    }

    [Fact]
    public void A_prompt_longer_than_the_context_is_truncated_from_the_left_with_a_warning_or_rejected()
    {
        var log = new List<string>();
        using var small = GptModel.Open(Fixtures.Folder("tiny-gpt2-b"), new GptModelOptions { Log = log.Add });
        var prompt = Enumerable.Range(300, 100).ToArray();
        var result = small.GenerateTokens([prompt], new GenerationOptions { MaxNewTokens = 10, EosTokenIds = [] })[0];
        Assert.True(result.PromptTruncated);
        Assert.Equal(54, result.PromptTokenCount);
        Assert.Equal(10, result.TokenIds.Count);
        Assert.Contains(log, line => line.Contains("100 tokens") && line.Contains("keeping its last 54"));
        var expected = small.GenerateTokens([prompt[^54..]], new GenerationOptions { MaxNewTokens = 10, EosTokenIds = [] })[0];
        Assert.Equal(expected.TokenIds, result.TokenIds);

        var error = Assert.Throws<ArgumentException>(() =>
            small.GenerateTokens([prompt], new GenerationOptions { PromptOverflow = PromptOverflow.Error }));
        Assert.Contains("100 tokens", error.Message);
        Assert.Contains("64", error.Message);
    }

    [Fact]
    public void Continuous_and_static_batching_give_identical_outputs_for_mixed_lengths()
    {
        var options = new GenerationOptions { MaxNewTokens = 12, EosTokenIds = [], DoSample = true, Seed = 5, StopStrings = ["e"] };
        var settings = _model.Engine.Resolve(options);
        var prepared = Prompts.Select((p, i) => _model.Engine.Prompts.FromText(p, i, settings)).ToList();
        var continuous = _model.Engine.RunOrdered(prepared, settings, 4, continuous: true, CancellationToken.None);
        var staticBatches = _model.Engine.RunOrdered(prepared, settings, 4, continuous: false, CancellationToken.None);
        Assert.Equal(staticBatches.Select(r => r.Text), continuous.Select(r => r.Text));
        Assert.Equal(staticBatches.Select(r => r.FinishReason), continuous.Select(r => r.FinishReason));
        Assert.Contains(continuous, r => r.FinishReason == FinishReason.StopString);
    }
}
