using Microsoft.ML;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Transforms;
using Xunit;
using static MLNetGpt.Tests.Transforms.GenerateTextPipelineTests;

namespace MLNetGpt.Tests.Transforms;

/// <summary>
/// Who owns the model, and what many threads may do at once: the transformer owns its model,
/// cursors and prediction engines borrow it, and disposing a borrower never frees what others use.
/// </summary>
public sealed class LifetimeTests
{
    private static GenerateTextOptions Options(string folder) => new()
    {
        OutputColumnName = "Completion",
        InputColumnName = "Prompt",
        ModelFolder = folder,
        BatchSize = 4,
        FinishReasonColumnName = "Finish",
        Generation = new GenerationOptions { MaxNewTokens = 6, DoSample = true, Temperature = 0.9f, TopK = 30, Seed = 5, EosTokenIds = [] },
    };

    private static string PromptOf(int thread, int round) => $"Thread {thread} round {round} says";

    [Fact]
    public void Eight_threads_each_creating_using_and_disposing_its_own_prediction_engine_for_50_rounds_match_the_single_threaded_output()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Rows(2));
        var model = ml.Transforms.Text.GenerateText(Options(folder)).Fit(data);
        const int threads = 8, rounds = 50;

        var expected = new Dictionary<(int, int), string>();
        using (var engine = ml.Model.CreatePredictionEngine<PromptRow, CompletionRow>(model, new PredictionEngineOptions { OwnsTransformer = false }))
            for (int t = 0; t < threads; t++)
                for (int r = 0; r < rounds; r++)
                    expected[(t, r)] = engine.Predict(new PromptRow { Prompt = PromptOf(t, r) }).Completion;

        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            try
            {
                for (int r = 0; r < rounds; r++)
                {
                    // The default PredictionEngine owns (and on Dispose disposes) the transformer the others still use.
                    using var engine = ml.Model.CreatePredictionEngine<PromptRow, CompletionRow>(model);
                    string got = engine.Predict(new PromptRow { Prompt = PromptOf(t, r) }).Completion;
                    if (got != expected[(t, r)]) failures.Add($"thread {t} round {r}: '{got}' instead of '{expected[(t, r)]}'");
                }
            }
            catch (Exception e)
            {
                failures.Add($"thread {t}: {e.GetType().Name}: {e.Message}");
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(10)));
    }

    [Fact]
    public void Transform_works_after_prediction_engines_disposed_the_model_they_were_made_from()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Rows(6));
        var model = ml.Transforms.Text.GenerateText(Options(folder)).Fit(data);
        var before = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList();

        for (int i = 0; i < 3; i++)
        {
            using var engine = ml.Model.CreatePredictionEngine<PromptRow, CompletionRow>(model);
            engine.Predict(new PromptRow { Prompt = "Hello" });
        }

        var after = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList();
        Assert.Equal(before, after);
    }

    [Fact]
    public void A_cursor_keeps_generating_when_its_transformer_is_disposed_midway()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-b");
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Rows(20));
        var model = ml.Transforms.Text.GenerateText(Options(folder)).Fit(data);
        var expected = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList();

        var rows = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false);
        var got = new List<string>();
        foreach (var row in rows)
        {
            got.Add(row.Completion);
            if (got.Count == 3) model.Dispose();
        }
        Assert.Equal(expected, got);
    }

    [Fact]
    public void Disposing_every_holder_releases_the_model_and_the_next_use_opens_it_again()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Rows(3));
        var model = ml.Transforms.Text.GenerateText(Options(folder)).Fit(data);
        Assert.Equal(1, ModelCache.References(folder));

        model.Dispose();
        Assert.Equal(0, ModelCache.References(folder));

        var rows = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).ToList();
        Assert.Equal(3, rows.Count);
        Assert.Equal(1, ModelCache.References(folder));   // the transformer holds it again; the cursor's borrow ended
        // ML.NET's TransformerChain disposes its stages only once; the stage itself can be disposed again.
        foreach (var stage in model.OfType<IDisposable>()) stage.Dispose();
        Assert.Equal(0, ModelCache.References(folder));
    }

    [Fact]
    public void Many_threads_reading_their_own_cursors_of_one_transformer_get_the_single_threaded_output()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Rows(12));
        var model = ml.Transforms.Text.GenerateText(Options(folder)).Fit(data);
        var expected = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList();

        var results = new List<string>[6];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 6 }, i =>
            results[i] = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList());

        foreach (var result in results) Assert.Equal(expected, result);
        model.Dispose();
    }

    [Fact]
    public async Task A_model_disposed_while_a_call_is_running_lets_that_call_finish_and_refuses_new_calls()
    {
        var gpt = GptModel.Open(Fixtures.Folder("tiny-gpt2-b"));
        var options = new GenerationOptions { MaxNewTokens = 40, EosTokenIds = [] };
        var pieces = new List<string>();
        await foreach (var piece in gpt.GenerateStreamingAsync("In the beginning", options))
        {
            if (pieces.Count == 0) gpt.Dispose();      // the loop is running: its sessions must stay alive
            pieces.Add(piece);
        }
        var reference = GptModel.Open(Fixtures.Folder("tiny-gpt2-b"));
        Assert.Equal(reference.Generate("In the beginning", options).Text, string.Concat(pieces));
        reference.Dispose();
        var error = Assert.Throws<ObjectDisposedException>(() => gpt.Generate("after"));
        Assert.Contains("was disposed", error.Message);
    }

    [Fact]
    public void The_OnnxTransformer_scoring_engine_is_released_when_its_stage_is_disposed()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new PersistenceTests.TextRow { Text = "In the beginning" } });
        var stage = ml.Transforms.Text.ScoreText(new ScoreTextOptions
        {
            OutputColumnName = "Perplexity", TextColumnName = "Text", ModelFolder = folder, Engine = ScoringEngine.OnnxTransformer,
        }).Fit(data);
        Assert.True(stage.OnnxScorerIsOpen);
        stage.Dispose();
        Assert.False(stage.OnnxScorerIsOpen);
        Assert.Equal(0, ModelCache.References(folder));
    }
}
