using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Transforms;

/// <summary>mlContext.Model.Save and Load of pipelines holding MLNetGpt stages.</summary>
public sealed class PersistenceTests
{
    private static GenerateTextOptions Options(string folder, ModelStorage storage) => new()
    {
        OutputColumnName = "Completion",
        InputColumnName = "Prompt",
        ModelFolder = folder,
        BatchSize = 4,
        FinishReasonColumnName = "Finish",
        LogProbabilitiesColumnName = "LogProbs",
        Storage = storage,
        Generation = new GenerationOptions { MaxNewTokens = 8, DoSample = true, TopP = 0.9f, Seed = 21, EosTokenIds = [], StopStrings = ["q"] },
    };

    private static List<GenerateTextPipelineTests.CompletionRow> Run(MLContext ml, ITransformer model, IDataView data) =>
        ml.Data.CreateEnumerable<GenerateTextPipelineTests.CompletionRow>(model.Transform(data), reuseRowObject: false).ToList();

    [Theory]
    [InlineData(ModelStorage.Reference)]
    [InlineData(ModelStorage.Embed)]
    public void Save_then_load_in_a_new_MLContext_gives_identical_output(ModelStorage storage)
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var zip = Path.Combine(Fixtures.TempFolder("zip"), "pipeline.zip");
        var ml = new MLContext(seed: 5);
        var data = ml.Data.LoadFromEnumerable(GenerateTextPipelineTests.Rows(10));
        var pipeline = ml.Transforms.Concatenate("Copy", "Score").Append(ml.Transforms.Text.GenerateText(Options(folder, storage)));
        var model = pipeline.Fit(data);
        var before = Run(ml, model, data);
        ml.Model.Save(model, data.Schema, zip);
        (model as IDisposable)?.Dispose();

        var fresh = new MLContext(seed: 99);      // a different seed: the saved stage keeps its own
        var loaded = fresh.Model.Load(zip, out var schema);
        Assert.Equal(data.Schema.Select(c => c.Name), schema.Select(c => c.Name));
        var after = Run(fresh, loaded, fresh.Data.LoadFromEnumerable(GenerateTextPipelineTests.Rows(10)));
        Assert.Equal(before.Select(r => r.Completion), after.Select(r => r.Completion));
        Assert.Equal(before.Select(r => r.Finish), after.Select(r => r.Finish));

        long zipSize = new FileInfo(zip).Length;
        if (storage == ModelStorage.Embed) Assert.True(zipSize > 400_000, $"the embedded model should be in the zip ({zipSize} bytes)");
        else Assert.True(zipSize < 100_000, $"a referenced model should not be in the zip ({zipSize} bytes)");
    }

    [Fact]
    public void Loading_when_the_referenced_model_folder_has_moved_names_the_path()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var zip = Path.Combine(Fixtures.TempFolder("zip"), "pipeline.zip");
        var ml = new MLContext(seed: 5);
        var data = ml.Data.LoadFromEnumerable(GenerateTextPipelineTests.Rows(3));
        var model = ml.Transforms.Text.GenerateText(Options(folder, ModelStorage.Reference)).Fit(data);
        ml.Model.Save(model, data.Schema, zip);
        model.Dispose();
        Directory.Move(folder, folder + "-moved");

        var error = Record.Exception(() => new MLContext().Model.Load(zip, out _));
        Assert.NotNull(error);
        var message = string.Join(" | ", Flatten(error).Select(e => e.Message));
        Assert.Contains($"'{folder}'", message);
        Assert.Contains("does not exist", message);
    }

    [Fact]
    public void An_embedded_model_loads_after_the_original_folder_is_gone()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-b");
        var zip = Path.Combine(Fixtures.TempFolder("zip"), "pipeline.zip");
        var ml = new MLContext(seed: 5);
        var data = ml.Data.LoadFromEnumerable(GenerateTextPipelineTests.Rows(4));
        var model = ml.Transforms.Text.GenerateText(Options(folder, ModelStorage.Embed)).Fit(data);
        var before = Run(ml, model, data);
        ml.Model.Save(model, data.Schema, zip);
        model.Dispose();
        Directory.Delete(folder, recursive: true);

        var fresh = new MLContext();
        var loaded = fresh.Model.Load(zip, out _);
        Assert.Equal(before.Select(r => r.Completion), Run(fresh, loaded, data).Select(r => r.Completion));
    }

    [Fact]
    public void Score_text_tokenize_and_decode_round_trip_through_save_and_load()
    {
        var ml = new MLContext();
        var rows = new[] { new TextRow { Text = "In the beginning God created" }, new TextRow { Text = "And it was so." } };
        var data = ml.Data.LoadFromEnumerable(rows);
        var folder = Fixtures.Folder("tiny-gpt2-a");
        var pipeline = ml.Transforms.Text.ScoreText("Perplexity", "Text", folder)
            .Append(ml.Transforms.Text.TokenizeText("Ids", "Text", folder, maxTokens: 3))
            .Append(ml.Transforms.Text.DecodeTokens("Back", "Ids", folder));
        var model = pipeline.Fit(data);
        var zip = Path.Combine(Fixtures.TempFolder("zip"), "score.zip");
        ml.Model.Save(model, data.Schema, zip);
        var before = ml.Data.CreateEnumerable<ScoredRow>(model.Transform(data), false).ToList();
        var after = ml.Data.CreateEnumerable<ScoredRow>(new MLContext().Model.Load(zip, out _).Transform(data), false).ToList();
        Assert.Equal(before.Select(r => (r.Perplexity, r.LogLikelihood, r.TokenCount, r.Back)), after.Select(r => (r.Perplexity, r.LogLikelihood, r.TokenCount, r.Back)));
        Assert.Equal(" beginning God created", after[0].Back);      // the last 3 tokens
    }

    public sealed class TextRow
    {
        public string Text { get; set; } = "";
    }

    public sealed class ScoredRow
    {
        public string Text { get; set; } = "";
        public float Perplexity { get; set; }
        public double LogLikelihood { get; set; }
        public int TokenCount { get; set; }
        public string Back { get; set; } = "";
    }

    internal static IEnumerable<Exception> Flatten(Exception e)
    {
        for (Exception? current = e; current is not null; current = current.InnerException) yield return current;
    }
}
