using Microsoft.Extensions.AI;
using MLNetGpt.Generation;
using MLNetGpt.Tests.Chat;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>
/// The shared scheduler: every caller of one model joins one batch, and every request gives exactly what it gives
/// alone (greedy and seeded, with its own controls, constraint and stop strings), also when others are cancelled
/// beside it; the queue and context bounds refuse or wait with clear messages; disposing drains.
/// </summary>
public sealed class SchedulerTests
{
    private static readonly string[] Prompts =
    [
        "In the beginning", "And the LORD said unto Moses,", "The quick brown fox", "Hello", "Question: why?\nAnswer:",
        "For God so loved the world", "a", "Numbers: 1, 2, 3,", "Blessed are", "It was the best of times",
    ];

    /// <summary>Requests with different controls, constraints, stop strings and seeds.</summary>
    private static (string Prompt, GenerationOptions Options)[] MixedRequests(GptModel model)
    {
        var greedy = model.Generate(Prompts[1], new GenerationOptions { MaxNewTokens = 20, EosTokenIds = [] });
        string stop = greedy.Text.Length > 10 ? greedy.Text.Substring(6, 2) : "e";
        var list = new List<(string, GenerationOptions)>();
        for (int i = 0; i < 24; i++)
        {
            string prompt = Prompts[i % Prompts.Length];
            GenerationOptions options = (i % 8) switch
            {
                0 => new() { MaxNewTokens = 12 + i % 5, EosTokenIds = [] },
                1 => new() { MaxNewTokens = 20, EosTokenIds = [], DoSample = true, Temperature = 0.7f + i * 0.02f, TopK = 20, Seed = i },
                2 => new() { MaxNewTokens = 25, EosTokenIds = [], StopStrings = [stop] },
                3 => new() { MaxNewTokens = 16, EosTokenIds = [], DoSample = true, TopP = 0.9f, Seed = 100 + i, RepetitionPenalty = 1.3f },
                4 => new() { MaxNewTokens = 18, EosTokenIds = [], Constraint = OutputConstraint.Regex("[a-z ]{3,12}") },
                5 => new() { MaxNewTokens = 10, EosTokenIds = [], Constraint = OutputConstraint.Choices([" yes", " no", " maybe"]) },
                6 => new() { MaxNewTokens = 30, EosTokenIds = [], NoRepeatNgramSize = 2, ReturnLogProbabilities = true, PromptLookupNumTokens = 6 },
                _ => new() { MaxNewTokens = 22, EosTokenIds = [], DoSample = true, MinP = 0.05f, Seed = 7, StopStrings = ["the", stop] },
            };
            list.Add((prompt, options));
        }
        return list.ToArray();
    }

    /// <summary>A request run alone: a loop of its own with one row.</summary>
    private static GenerationResult Alone(GptModel model, string prompt, GenerationOptions options)
    {
        var settings = model.Engine.Resolve(options);
        return model.Engine.RunOrdered([model.Engine.Prompts.FromText(prompt, 0, settings)], settings, 1, continuous: false, CancellationToken.None)[0];
    }

    private static void AssertSame(GenerationResult expected, GenerationResult actual, string what)
    {
        Assert.True(expected.TokenIds.SequenceEqual(actual.TokenIds), $"{what}: [{string.Join(",", expected.TokenIds)}] alone, [{string.Join(",", actual.TokenIds)}] shared");
        Assert.Equal(expected.Text, actual.Text);
        Assert.Equal(expected.FinishReason, actual.FinishReason);
    }

    [Fact]
    public async Task Concurrent_callers_with_mixed_controls_share_the_batch_and_each_gets_what_it_gets_alone()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var requests = MixedRequests(model);
        var alone = requests.Select(r => Alone(model, r.Prompt, r.Options)).ToArray();

        // Synchronous Generate calls, streams and batch calls, all at once.
        model.Engine.Scheduler.Pause();
        var generated = requests.Select((r, i) => i % 3 == 0
            ? Task.Run(() => model.Generate(r.Prompt, r.Options))
            : i % 3 == 1
                ? Stream(model, r.Prompt, r.Options)
                : Task.Run(() => model.Generate([r.Prompt], r.Options, batchSize: 1)[0])).ToArray();
        while (model.Engine.Scheduler.Queued < requests.Length) await Task.Delay(5);
        model.Engine.Scheduler.Resume();
        var results = await Task.WhenAll(generated);
        for (int i = 0; i < requests.Length; i++) AssertSame(alone[i], results[i], $"request {i}");
        Assert.True(model.Engine.Scheduler.PeakRows >= 8, $"at most {model.Engine.Scheduler.PeakRows} rows ran together");
    }

    private static async Task<GenerationResult> Stream(GptModel model, string prompt, GenerationOptions options)
    {
        var settings = model.Engine.Resolve(options);
        GenerationResult? result = null;
        var pieces = new List<string>();
        await foreach (var piece in model.Engine.StreamAsync(model.Engine.Prompts.FromText(prompt, 0, settings), settings, r => result = r, CancellationToken.None))
            pieces.Add(piece);
        Assert.Equal(result!.Text, string.Concat(pieces));
        return result;
    }

    [Fact]
    public async Task Cancelled_requests_leave_the_batch_at_once_and_the_others_are_unchanged()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var options = new GenerationOptions { MaxNewTokens = 60, EosTokenIds = [], DoSample = true, Seed = 21, Temperature = 0.8f };
        var alone = Prompts.Select(p => Alone(model, p, options)).ToArray();
        var sources = Prompts.Select(_ => new CancellationTokenSource()).ToArray();
        var streams = Prompts.Select((p, i) => Consume(model, p, options, cancelAfterPieces: i % 2 == 0 ? 3 + i : -1, sources[i])).ToArray();
        var outcomes = await Task.WhenAll(streams);
        for (int i = 0; i < Prompts.Length; i++)
        {
            if (i % 2 == 0)
            {
                Assert.IsAssignableFrom<OperationCanceledException>(outcomes[i].Error);
            }
            else
            {
                Assert.Null(outcomes[i].Error);
                AssertSame(alone[i], outcomes[i].Result!, $"request {i}");
            }
        }
        // Nothing is left behind: no queued request, no row.
        for (int wait = 0; model.Engine.Scheduler.Running > 0 && wait < 200; wait++) await Task.Delay(10);
        Assert.Equal((0, 0), (model.Engine.Scheduler.Queued, model.Engine.Scheduler.Running));
        foreach (var source in sources) source.Dispose();
    }

    private static async Task<(GenerationResult? Result, Exception? Error)> Consume(GptModel model, string prompt, GenerationOptions options, int cancelAfterPieces,
        CancellationTokenSource cancel)
    {
        var settings = model.Engine.Resolve(options);
        GenerationResult? result = null;
        int count = 0;
        try
        {
            await foreach (var _ in model.Engine.StreamAsync(model.Engine.Prompts.FromText(prompt, 0, settings), settings, r => result = r, cancel.Token))
                if (++count == cancelAfterPieces) cancel.Cancel();
            return (result, null);
        }
        catch (Exception e)
        {
            return (null, e);
        }
    }

    [Fact]
    public async Task A_synchronous_call_cancelled_while_its_row_runs_returns_at_once_with_OperationCanceledException()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var scheduler = model.Engine.Scheduler;
        using var cancel = new CancellationTokenSource();
        var options = new GenerationOptions { MaxNewTokens = 100, EosTokenIds = [] };
        scheduler.Pause();
        var call = Task.Run(() => model.Generate(Prompts[0], options, cancel.Token));
        var other = Task.Run(() => model.Generate(Prompts[1], options));
        while (scheduler.Queued < 2) await Task.Delay(5);
        cancel.Cancel();                                  // while queued: taken out of the queue
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        Assert.Equal(1, scheduler.Queued);
        scheduler.Resume();
        AssertSame(Alone(model, Prompts[1], options), await other, "the request beside it");
    }

    [Fact]
    public async Task A_full_queue_refuses_a_request_with_a_message_that_names_the_limit_or_makes_it_wait_when_asked()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { MaxQueuedRequests = 2, MaxBatchSize = 2 });
        var scheduler = model.Engine.Scheduler;
        var options = new GenerationOptions { MaxNewTokens = 8, EosTokenIds = [] };
        scheduler.Pause();
        var queued = new[] { Task.Run(() => model.Generate(Prompts[0], options)), Task.Run(() => model.Generate(Prompts[1], options)) };
        while (scheduler.Queued < 2) await Task.Delay(5);
        var e = Assert.Throws<GptModelException>(() => model.Generate(Prompts[2], options));
        Assert.Contains("queue", e.Message);
        Assert.Contains("tiny-gpt2-a", e.Message);
        Assert.Contains("MaxQueuedRequests = 2", e.Message);
        Assert.Contains("WaitWhenQueueFull", e.Message);
        // Batch calls wait for room instead.
        var batch = Task.Run(() => model.Generate(Prompts.Take(5), options, batchSize: 3));
        scheduler.Resume();
        await Task.WhenAll(queued);
        var results = await batch;
        for (int i = 0; i < 5; i++) AssertSame(Alone(model, Prompts[i], options), results[i], $"batch prompt {i}");

        using var waiting = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { MaxQueuedRequests = 1, WaitWhenQueueFull = true });
        waiting.Engine.Scheduler.Pause();
        var first = Task.Run(() => waiting.Generate(Prompts[0], options));
        while (waiting.Engine.Scheduler.Queued < 1) await Task.Delay(5);
        var second = Task.Run(() => waiting.Generate(Prompts[1], options));
        while (waiting.Engine.Scheduler.Queued < 2) await Task.Delay(5);
        Assert.False(second.IsCompleted);
        waiting.Engine.Scheduler.Resume();
        AssertSame(Alone(waiting, Prompts[1], options), await second, "the waiting request");
        await first;
    }

    [Fact]
    public async Task The_batch_never_holds_more_rows_than_MaxBatchSize()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { MaxBatchSize = 3 });
        var options = new GenerationOptions { MaxNewTokens = 12, EosTokenIds = [] };
        model.Engine.Scheduler.Pause();
        var calls = Prompts.Select(p => Task.Run(() => model.Generate(p, options))).ToArray();
        while (model.Engine.Scheduler.Queued < Prompts.Length) await Task.Delay(5);
        model.Engine.Scheduler.Resume();
        var results = await Task.WhenAll(calls);
        Assert.Equal(3, model.Engine.Scheduler.PeakRows);
        for (int i = 0; i < Prompts.Length; i++) AssertSame(Alone(model, Prompts[i], options), results[i], $"request {i}");
    }

    [Fact]
    public async Task A_long_prompt_is_prefilled_in_chunks_of_the_step_budget_and_gives_the_same_tokens()
    {
        string prompt = string.Join(" ", Enumerable.Repeat("And the LORD spake unto Moses, saying,", 8));
        var options = new GenerationOptions { MaxNewTokens = 12, EosTokenIds = [], DoSample = true, Seed = 4 };
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        using var chunked = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { MaxPrefillTokensPerStep = 7 });
        Assert.True(model.Engine.Prompts.FromText(prompt, 0, model.Engine.Resolve(options)).Ids.Length > 40);
        var expected = model.Generate(prompt, options);
        // Beside short requests that decode between the chunks.
        var others = Prompts.Take(3).Select(p => Task.Run(() => chunked.Generate(p, options))).ToArray();
        var actual = chunked.Generate(prompt, options);
        AssertSame(expected, actual, "the chunked prompt");
        for (int i = 0; i < others.Length; i++) AssertSame(Alone(model, Prompts[i], options), await others[i], $"request {i}");
    }

    [Fact]
    public void MaxTokensPerRequest_cuts_long_prompts_and_ends_generation_at_the_limit()
    {
        var log = new List<string>();
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { MaxTokensPerRequest = 20, Log = log.Add });
        var ids = Enumerable.Range(300, 30).ToArray();
        var result = model.GenerateTokens([ids], new GenerationOptions { MaxNewTokens = 50, EosTokenIds = [] })[0];
        Assert.True(result.PromptTruncated);
        Assert.Equal(20, result.PromptTokenCount + result.TokenIds.Count);
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Contains(log, line => line.Contains("30 tokens") && line.Contains("more than a request may hold (20"));
        var refused = Assert.Throws<ArgumentException>(() => model.GenerateTokens([ids], new GenerationOptions { PromptOverflow = PromptOverflow.Error }));
        Assert.Contains("MaxTokensPerRequest", refused.Message);
        Assert.Contains("30 tokens", refused.Message);
        var shortPrompt = model.Generate("Hello", new GenerationOptions { MaxNewTokens = 50, EosTokenIds = [] });
        Assert.Equal(20, shortPrompt.PromptTokenCount + shortPrompt.TokenIds.Count);
    }

    [Fact]
    public async Task Dispose_refuses_new_requests_and_lets_submitted_ones_finish()
    {
        var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var options = new GenerationOptions { MaxNewTokens = 15, EosTokenIds = [], DoSample = true, Seed = 2 };
        var expected = Prompts.Take(4).Select(p => Alone(model, p, options)).ToArray();
        model.Engine.Scheduler.Pause();
        var running = Prompts.Take(3).Select(p => Task.Run(() => model.Generate(p, options))).ToList();
        var batch = Task.Run(() => model.Generate(Prompts.Skip(3).Take(1), options, 1));
        while (model.Engine.Scheduler.Queued < 4) await Task.Delay(5);
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.Generate(Prompts[0], options));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () =>
        {
            await foreach (var _ in model.GenerateStreamingAsync(Prompts[0], options)) { }
        });
        model.Engine.Scheduler.Resume();
        var results = await Task.WhenAll(running);
        for (int i = 0; i < 3; i++) AssertSame(expected[i], results[i], $"request {i}");
        AssertSame(expected[3], (await batch)[0], "the batch call");
    }

    [Fact]
    public async Task Chat_requests_from_many_callers_share_the_batch_and_answer_as_alone()
    {
        using var model = GptModel.Open(HfConversation.ChatFixtureFolder);
        using var client = new GptChatClient(model);
        var questions = Enumerable.Range(0, 12).Select(i => new[] { new ChatMessage(ChatRole.User, $"Question number {i}: what is {i} plus {i}?") }).ToArray();
        var options = new ChatOptions { MaxOutputTokens = 16, Seed = 5, Temperature = 0.8f };
        var alone = new List<string>();
        foreach (var q in questions) alone.Add((await client.GetResponseAsync(q, options)).Text);
        model.Engine.Scheduler.Pause();
        var together = questions.Select((q, i) => i % 2 == 0
            ? client.GetResponseAsync(q, options).ContinueWith(t => t.Result.Text)
            : client.GetStreamingResponseAsync(q, options).ToChatResponseAsync().ContinueWith(t => t.Result.Text)).ToArray();
        while (model.Engine.Scheduler.Queued < questions.Length) await Task.Delay(5);
        model.Engine.Scheduler.Resume();
        Assert.Equal(alone, await Task.WhenAll(together));
        Assert.True(model.Engine.Scheduler.PeakRows >= 6);
    }

    [Fact]
    public void The_scheduler_options_refuse_values_out_of_range_naming_the_option()
    {
        var options = new GptModelOptions();
        Assert.Equal(64, options.MaxBatchSize);
        Assert.Equal(1024, options.MaxQueuedRequests);
        Assert.Equal(512, options.MaxPrefillTokensPerStep);
        Assert.Null(options.MaxTokensPerRequest);
        Assert.False(options.WaitWhenQueueFull);
        Assert.Contains("maximum batch size", Assert.Throws<ArgumentOutOfRangeException>(() => options.MaxBatchSize = 0).Message);
        Assert.Contains("queued requests", Assert.Throws<ArgumentOutOfRangeException>(() => options.MaxQueuedRequests = 0).Message);
        Assert.Contains("prefill budget", Assert.Throws<ArgumentOutOfRangeException>(() => options.MaxPrefillTokensPerStep = 0).Message);
        Assert.Contains("tokens per request", Assert.Throws<ArgumentOutOfRangeException>(() => options.MaxTokensPerRequest = 1).Message);
        Assert.Contains("prompt_lookup_num_tokens", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { PromptLookupNumTokens = 11 }).Message);
        Assert.Contains("prompt_lookup_num_tokens", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { PromptLookupNumTokens = -1 }).Message);
    }
}
