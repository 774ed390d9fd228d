using Microsoft.ML;
using Microsoft.ML.Data;
using System.Reflection;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tests.Training;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Transforms;

/// <summary><c>mlContext.Transforms.Text.FineTuneGpt</c>: a Fit that learns, and the stage it returns (with the bigram graph).</summary>
public sealed class FineTuneGptTests
{
    public sealed class Row
    {
        public string Text { get; set; } = "";
        public string Prompt { get; set; } = "";
    }

    public sealed class Scored
    {
        public string Text { get; set; } = "";
        public float Perplexity { get; set; }
        public double LogLikelihood { get; set; }
        public int TokenCount { get; set; }
    }

    private static readonly string Model = FineTuneKit.Model;

    private static IDataView Rows(MLContext ml, IEnumerable<string> texts) => ml.Data.LoadFromEnumerable(texts.Select(t => new Row { Text = t, Prompt = "Say:" }).ToList());

    private static string Output(string label) => Path.Combine(Fixtures.TempFolder(label), "tuned");

    private static FineTuneGptOptions Options(string output, Action<FineTuneGptOptions>? change = null)
    {
        var options = new FineTuneGptOptions
        {
            TextColumnName = "Text", ModelFolder = Model, OutputFolder = output, BatchSize = 3,
            FineTune = FineTuneKit.Small(),
        };
        change?.Invoke(options);
        return options;
    }

    private static List<Scored> Score(MLContext ml, ITransformer stage, IDataView data) =>
        ml.Data.CreateEnumerable<Scored>(stage.Transform(data), reuseRowObject: false).ToList();

    [Fact]
    public void Fit_trains_writes_the_tuned_folder_and_returns_a_stage_that_scores_the_text_with_it()
    {
        var ml = new MLContext(seed: 1);
        var data = Rows(ml, FineTuneKit.Texts);
        string output = Output("ml-fit");
        var graphs = new List<BigramGraph>();
        FineTuneGptTransformer stage;
        using (TrainingGraphs.Use(FineTuneKit.Bigram(graphs: graphs)))
            stage = ml.Transforms.Text.FineTuneGpt(null, "Text", Model, output).Fit(data);

        Assert.Equal(Path.GetFullPath(output), stage.ModelFolder);
        Assert.Equal(Path.GetFullPath(output), stage.Report.OutputFolder);
        Assert.Equal(stage.Report.TotalSteps, stage.Report.StepsRun);
        Assert.Equal(FineTuneMethod.Full, stage.Report.Method);
        var weights = BigramGraph.ReadWeights(output);
        Assert.Equal(graphs[0].Embedding.Value, weights["embedding"]);

        var scored = Score(ml, stage, data);
        using var reference = ml.Transforms.Text.ScoreText("Perplexity", "Text", output).Fit(data);
        var expected = Score(ml, reference, data);
        Assert.Equal(expected.Select(r => r.LogLikelihood), scored.Select(r => r.LogLikelihood));
        Assert.Equal(expected.Select(r => r.TokenCount), scored.Select(r => r.TokenCount));
        Assert.Equal(FineTuneKit.Texts, scored.Select(r => r.Text));
        stage.Dispose();
    }

    [Theory]
    [InlineData(ModelStorage.Reference)]
    [InlineData(ModelStorage.Embed)]
    public void The_fitted_stage_saves_and_loads_with_its_report_and_scores_the_same(ModelStorage storage)
    {
        var ml = new MLContext(seed: 1);
        var data = Rows(ml, FineTuneKit.Texts);
        string output = Output("ml-save");
        string zip = Path.Combine(Fixtures.TempFolder("ml-zip"), "pipeline.zip");
        ITransformer model;
        using (TrainingGraphs.Use(FineTuneKit.Bigram()))
            model = ml.Transforms.Concatenate("Copy", "Text")
                .Append(ml.Transforms.Text.FineTuneGpt(Options(output, o => o.Storage = storage)))
                .Fit(data);
        var before = Score(ml, model, data);
        var report = ((TransformerChain<FineTuneGptTransformer>)model).LastTransformer.Report;
        ml.Model.Save(model, data.Schema, zip);
        (model as IDisposable)?.Dispose();
        if (storage == ModelStorage.Embed) Directory.Move(output, output + "-gone");

        var fresh = new MLContext(seed: 2);
        var loaded = fresh.Model.Load(zip, out _);
        var stage = ((TransformerChain<ITransformer>)loaded).LastTransformer as FineTuneGptTransformer;
        Assert.NotNull(stage);
        Assert.Equal(report.ToJson(), stage!.Report.ToJson());
        Assert.Equal(storage, stage.Storage);
        if (storage == ModelStorage.Reference) Assert.Equal(Path.GetFullPath(output), stage.ModelFolder);
        else Assert.NotEqual(Path.GetFullPath(output), stage.ModelFolder);
        var after = Score(fresh, loaded, Rows(fresh, FineTuneKit.Texts));
        Assert.Equal(before.Select(r => r.LogLikelihood), after.Select(r => r.LogLikelihood));
        (loaded as IDisposable)?.Dispose();
    }

    [Fact]
    public void The_options_overload_learns_completions_of_a_prompt_column_reports_progress_and_logs_to_the_mlcontext()
    {
        var ml = new MLContext(seed: 1);
        var lines = new List<string>();
        ml.Log += (_, e) => { if (e.Source.Contains("FineTuneGpt", StringComparison.Ordinal)) lock (lines) lines.Add(e.RawMessage); };
        var data = Rows(ml, [" yes", " no", " yes"]);
        var progress = new List<FineTuneProgress>();
        FineTuneGptTransformer stage;
        using (TrainingGraphs.Use(FineTuneKit.Bigram()))
            stage = ml.Transforms.Text.FineTuneGpt(Options(Output("ml-sft"), o =>
            {
                o.PromptColumnName = "Prompt";
                o.ValidationSet = Rows(ml, [" no"]);
                o.Progress = new FineTuneKit.Collect(progress);
                o.FineTune.EvaluateEveryNSteps = 1;
            })).Fit(data);

        Assert.Equal(3, stage.Report.TrainingSequences);
        Assert.Equal(3 * 2, stage.Report.TrainingTokens);   // one completion token and the EOS per row
        Assert.Equal(2, stage.Report.ValidationTokens);
        Assert.Equal([0, 1, 2, 3], stage.Report.Evaluations.Select(e => e.Step));
        Assert.Equal([1, 2, 3], progress.Select(p => p.Step));
        Assert.Equal("Prompt", stage.PromptColumnName);
        Assert.True(lines.Any(l => l.StartsWith("fine-tuning (full): 3 sequences of 16 tokens, 3 steps of 2 x 1 sequences", StringComparison.Ordinal)), string.Join("\n", lines));
        Assert.Contains(lines, l => l.StartsWith("step 3: validation loss", StringComparison.Ordinal));
        stage.Dispose();
    }

    [Fact]
    public void Training_runs_on_the_device_and_threads_of_the_stage_or_the_mlcontext_unless_the_fine_tune_options_say_otherwise()
    {
        var requests = new List<TrainingGraphRequest>();
        var ml = new MLContext(seed: 1) { GpuDeviceId = 1, FallbackToCpu = true };
        var data = Rows(ml, FineTuneKit.Texts);
        using (TrainingGraphs.Use(FineTuneKit.Bigram(requests)))
        {
            ml.Transforms.Text.FineTuneGpt(Options(Output("ml-device-1"), o => { o.Device = GptDevice.Cpu; o.IntraOpThreads = 2; })).Fit(data).Dispose();
            ml.Transforms.Text.FineTuneGpt(Options(Output("ml-device-2"), o => o.Device = GptDevice.Cpu)).Fit(data).Dispose();
            ml.Transforms.Text.FineTuneGpt(Options(Output("ml-device-3"), o => { o.Device = GptDevice.Cpu; o.FineTune.Device = GptDevice.Cuda(3); o.FineTune.Threads = 1; })).Fit(data).Dispose();
        }
        Assert.Equal((GptDevice.Cpu, (int?)2), (requests[0].Device, requests[0].Threads));
        Assert.Equal((GptDevice.Cpu, (int?)null), (requests[1].Device, requests[1].Threads));
        Assert.Equal((GptDevice.Cuda(3), (int?)1), (requests[2].Device, requests[2].Threads));
    }

    [Fact]
    public void Without_a_device_anywhere_training_takes_the_mlcontext_gpu()
    {
        var requests = new List<TrainingGraphRequest>();
        var ml = new MLContext(seed: 1) { GpuDeviceId = 1, FallbackToCpu = true };
        using (TrainingGraphs.Use(FineTuneKit.Bigram(requests)))
            ml.Transforms.Text.FineTuneGpt(Options(Output("ml-context-gpu"))).Fit(Rows(ml, FineTuneKit.Texts)).Dispose();
        Assert.Equal(GptDevice.Cuda(1), Assert.Single(requests).Device);
    }

    [Fact]
    public void A_missing_or_non_text_column_is_named_before_anything_is_trained()
    {
        var ml = new MLContext(seed: 1);
        var data = Rows(ml, FineTuneKit.Texts);
        int graphs = 0;
        using var _ = TrainingGraphs.Use(request => { graphs++; return FineTuneKit.Bigram()(request); });

        var missing = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.FineTuneGpt(Options(Output("ml-missing"), o => o.TextColumnName = "Body")).Fit(data));
        Assert.StartsWith("FineTuneGpt: input column 'Body' was not found; expected a String (text) column. The input has: 'Text', 'Prompt'.", missing.Message);

        var numbers = ml.Data.LoadFromEnumerable(new[] { new { Text = 1f } });
        var wrongType = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.FineTuneGpt(Options(Output("ml-type"))).Fit(numbers));
        Assert.StartsWith("FineTuneGpt: input column 'Text' has type Single; expected String (text).", wrongType.Message);

        var badValidation = Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.Transforms.Text.FineTuneGpt(Options(Output("ml-validation"), o => o.ValidationSet = numbers)).Fit(data));
        Assert.StartsWith("The validation set: FineTuneGpt: input column 'Text' has type Single; expected String (text).", badValidation.Message);

        var shape = Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.Transforms.Text.FineTuneGpt(Options(Output("ml-shape"), o => o.PromptColumnName = "Question")).GetOutputSchema(Shapes.Of(data.Schema)));
        Assert.StartsWith("FineTuneGpt: input column 'Question' was not found", shape.Message);
        Assert.Equal(0, graphs);
    }

    [Fact]
    public void The_estimator_refuses_missing_settings_when_it_is_made()
    {
        var ml = new MLContext();
        Assert.StartsWith("OutputFolder is required", Assert.Throws<ArgumentException>(() => ml.Transforms.Text.FineTuneGpt(null, "Text", Model, " ")).Message);
        Assert.StartsWith("TextColumnName is required.", Assert.Throws<ArgumentException>(() => ml.Transforms.Text.FineTuneGpt(null, "", Model, "out")).Message);
        Assert.Contains("does not exist", Assert.Throws<GptModelException>(() => ml.Transforms.Text.FineTuneGpt(null, "Text", Model + "-missing", "out")).Message);
    }

    [Fact]
    public void The_estimator_output_schema_adds_the_scoring_columns()
    {
        var ml = new MLContext();
        var data = Rows(ml, ["a"]);
        var shape = ml.Transforms.Text.FineTuneGpt(Options(Output("ml-schema"), o => o.TokenCountColumnName = null)).GetOutputSchema(Shapes.Of(data.Schema));
        Assert.Equal(["Text", "Prompt", "Perplexity", "LogLikelihood"], shape.Select(c => c.Name));
        Assert.Equal(NumberDataViewType.Double, shape.Single(c => c.Name == "LogLikelihood").ItemType);
    }

    [Fact]
    public void Cancelling_the_mlcontext_leaves_a_checkpoint_that_a_second_fit_resumes()
    {
        var ml = new MLContext(seed: 1);
        var data = Rows(ml, FineTuneKit.Texts);
        string output = Output("ml-cancel");
        string checkpoints = Fixtures.TempFolder("ml-cancel-ckpt");
        var options = Options(output, o => { o.FineTune.MaxSteps = 5; o.FineTune.CheckpointFolder = checkpoints; });
        var cancelling = FineTuneKit.Bigram();
        using (TrainingGraphs.Use(request =>
        {
            var graph = (BigramGraph)cancelling(request);
            graph.BeforeForwardBackward = call => { if (call == 2) CancelExecution(ml); };
            return graph;
        }))
            Assert.ThrowsAny<OperationCanceledException>(() => ml.Transforms.Text.FineTuneGpt(options).Fit(data));
        Assert.Equal(2, TrainingCheckpoint.StepOf(checkpoints));

        var again = new MLContext(seed: 1);
        options.FineTune.Resume = true;
        using (TrainingGraphs.Use(FineTuneKit.Bigram()))
        {
            using var stage = again.Transforms.Text.FineTuneGpt(options).Fit(Rows(again, FineTuneKit.Texts));
            Assert.Equal(2, stage.Report.ResumedFromStep);
            Assert.Equal(5, stage.Report.StepsRun);
        }
    }

    /// <summary>
    /// What <c>mlContext.CancelExecution()</c> (Microsoft.ML.Experimental's extension, a package this project does not
    /// reference) calls: MLContext's own internal method.
    /// </summary>
    private static void CancelExecution(MLContext ml)
    {
        var method = typeof(MLContext).GetMethod("CancelExecution", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public, []);
        Assert.NotNull(method);
        method!.Invoke(ml, null);
    }
}
