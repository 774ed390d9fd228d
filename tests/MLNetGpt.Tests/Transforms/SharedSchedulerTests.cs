using Microsoft.ML;
using MLNetGpt.Tests.Infrastructure;
using Xunit;
using static MLNetGpt.Tests.Transforms.GenerateTextPipelineTests;

namespace MLNetGpt.Tests.Transforms;

/// <summary>
/// The generating stage sends its rows to the model's shared scheduler: concurrent prediction engines and cursors of
/// one loaded stage share one batch, and every row is what it is on one thread.
/// </summary>
public sealed class SharedSchedulerTests
{
    private static GenerateTextOptions Options(string folder, bool continuous = true) => new()
    {
        OutputColumnName = "Completion",
        InputColumnName = "Prompt",
        ModelFolder = folder,
        BatchSize = 4,
        ContinuousBatching = continuous,
        FinishReasonColumnName = "Finish",
        Generation = new GenerationOptions { MaxNewTokens = 12, DoSample = true, Temperature = 0.9f, TopK = 30, Seed = 5, EosTokenIds = [] },
    };

    private static GenerateTokensTransformer Stage(ITransformer transformer) => transformer switch
    {
        GenerateTokensTransformer stage => stage,
        IEnumerable<ITransformer> chain => chain.Select(Find).First(s => s is not null)!,
        _ => throw new InvalidOperationException("no GenerateTokens stage"),
    };

    private static GenerateTokensTransformer? Find(ITransformer transformer) => transformer switch
    {
        GenerateTokensTransformer stage => stage,
        IEnumerable<ITransformer> chain => chain.Select(Find).FirstOrDefault(s => s is not null),
        _ => null,
    };

    private static ITransformer FitSaveAndLoad(MLContext ml, IDataView data, GenerateTextOptions options, string folder)
    {
        var fitted = ml.Transforms.Text.GenerateText(options).Fit(data);
        string zip = Path.Combine(folder, "pipeline.zip");
        ml.Model.Save(fitted, data.Schema, zip);
        fitted.Dispose();
        return ml.Model.Load(zip, out _);
    }

    [Fact]
    public async Task Concurrent_prediction_engines_of_a_loaded_stage_share_one_batch_and_match_the_single_threaded_output()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Rows(2));
        var loaded = FitSaveAndLoad(ml, data, Options(folder), Fixtures.TempFolder("shared-stage"));
        var prompts = Enumerable.Range(0, 8).Select(i => $"Caller {i} asks about").ToArray();
        List<string> expected;
        using (var engine = ml.Model.CreatePredictionEngine<PromptRow, CompletionRow>(loaded, new PredictionEngineOptions { OwnsTransformer = false }))
            expected = prompts.Select(p => engine.Predict(new PromptRow { Prompt = p }).Completion).ToList();

        var scheduler = Stage(loaded).Model.Engine.Scheduler;
        scheduler.Pause();
        var callers = prompts.Select(p => Task.Factory.StartNew(() =>
        {
            using var engine = ml.Model.CreatePredictionEngine<PromptRow, CompletionRow>(loaded, new PredictionEngineOptions { OwnsTransformer = false });
            return engine.Predict(new PromptRow { Prompt = p }).Completion;
        }, TaskCreationOptions.LongRunning)).ToArray();
        while (scheduler.Queued < prompts.Length) await Task.Delay(5);
        scheduler.Resume();
        Assert.Equal(expected, await Task.WhenAll(callers));
        Assert.True(scheduler.PeakRows >= prompts.Length / 2, $"at most {scheduler.PeakRows} rows ran together");
        (loaded as IDisposable)?.Dispose();
    }

    [Fact]
    public void A_stage_with_a_draft_model_gives_the_same_rows_and_a_saved_pipeline_keeps_the_draft_folder()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Rows(10));
        var plain = ml.Transforms.Text.GenerateText(Options(folder)).Fit(data);
        var options = Options(folder);
        options.DraftModelFolder = Fixtures.Folder("tiny-gpt2-a-pair");
        var drafted = FitSaveAndLoad(ml, data, options, Fixtures.TempFolder("draft-stage"));
        var stage = Stage(drafted);
        Assert.Equal(Path.GetFullPath(Fixtures.Folder("tiny-gpt2-a-pair")), stage.DraftModelFolder);
        Assert.NotNull(stage.Model.Engine.Draft);
        stage.Model.Engine.ForcedProposals = 3;
        var expected = ml.Data.CreateEnumerable<CompletionRow>(plain.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList();
        var actual = ml.Data.CreateEnumerable<CompletionRow>(drafted.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList();
        Assert.Equal(expected, actual);
        Assert.True(stage.Model.Engine.SpeculationCounters.Accepted > 0);
        plain.Dispose();
        (drafted as IDisposable)?.Dispose();
    }

    [Fact]
    public void Cursors_of_one_stage_on_several_threads_fill_one_batch_beyond_each_cursors_batch_size()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var ml = new MLContext(seed: 3);
        var data = ml.Data.LoadFromEnumerable(Rows(16));
        var model = ml.Transforms.Text.GenerateText(Options(folder)).Fit(data);
        var expected = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList();
        var staticBatches = ml.Transforms.Text.GenerateText(Options(folder, continuous: false)).Fit(data);
        Assert.Equal(expected, ml.Data.CreateEnumerable<CompletionRow>(staticBatches.Transform(data), reuseRowObject: false).Select(r => r.Completion));

        var results = new List<string>[3];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = results.Length }, i =>
            results[i] = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList());
        foreach (var result in results) Assert.Equal(expected, result);
        Assert.InRange(Stage(model).Model.Engine.Scheduler.PeakRows, 4, 12);
        model.Dispose();
        staticBatches.Dispose();
    }
}
