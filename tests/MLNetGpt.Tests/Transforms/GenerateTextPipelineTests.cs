using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Transforms;

/// <summary>GenerateText as one stage of ML.NET pipelines: composition, batching, laziness, PredictionEngine.</summary>
public sealed class GenerateTextPipelineTests
{
    public sealed class PromptRow
    {
        public string Id { get; set; } = "";
        public string Prompt { get; set; } = "";
        public float Score { get; set; }
    }

    public sealed class CompletionRow
    {
        public string Id { get; set; } = "";
        public string Prompt { get; set; } = "";
        public float Score { get; set; }
        public string Completion { get; set; } = "";
        public string Finish { get; set; } = "";
    }

    private static readonly string Folder = Fixtures.Folder("tiny-gpt2-a");

    internal static PromptRow[] Rows(int count) => Enumerable.Range(0, count).Select(i => new PromptRow
    {
        Id = $"row-{i:D3}",
        Prompt = (i % 5) switch
        {
            0 => $"In the beginning {i}",
            1 => $"And the LORD said unto Moses, number {i}:",
            2 => "The quick brown fox",
            3 => $"{i}",
            _ => $"Question {i}: what comes next?\nAnswer:",
        },
        Score = i * 0.5f,
    }).ToArray();

    private static GenerateTextOptions Options(int batchSize, bool continuous = true) => new()
    {
        OutputColumnName = "Completion",
        InputColumnName = "Prompt",
        ModelFolder = Folder,
        BatchSize = batchSize,
        ContinuousBatching = continuous,
        FinishReasonColumnName = "Finish",
        Generation = new GenerationOptions { MaxNewTokens = 10, DoSample = true, Temperature = 0.8f, TopK = 20, Seed = 11, EosTokenIds = [], StopStrings = ["o"] },
    };

    [Fact]
    public void Batch_sizes_1_and_16_give_identical_seeded_output_in_order_with_pass_through_columns_intact()
    {
        var ml = new MLContext(seed: 1);
        var rows = Rows(100);
        var data = ml.Data.LoadFromEnumerable(rows);
        List<CompletionRow> Run(int batch, bool continuous)
        {
            using var model = (TransformerChain<ITransformer>)ml.Transforms.Text.GenerateText(Options(batch, continuous)).Fit(data);
            return ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).ToList();
        }
        var one = Run(1, continuous: false);
        var sixteen = Run(16, continuous: true);
        var sixteenStatic = Run(16, continuous: false);
        Assert.Equal(100, one.Count);
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.Equal(rows[i].Id, sixteen[i].Id);
            Assert.Equal(rows[i].Prompt, sixteen[i].Prompt);
            Assert.Equal(rows[i].Score, sixteen[i].Score);
            Assert.Equal(one[i].Completion, sixteen[i].Completion);
            Assert.Equal(one[i].Finish, sixteen[i].Finish);
            Assert.Equal(one[i].Completion, sixteenStatic[i].Completion);
        }
        Assert.Contains(sixteen, r => r.Finish == "stop_string");
        Assert.Contains(sixteen, r => r.Finish == "length");
        Assert.True(sixteen.Select(r => r.Completion).Distinct().Count() > 50, "completions should differ between rows");
    }

    [Fact]
    public void The_pipeline_generates_what_the_engine_generates()
    {
        var ml = new MLContext(seed: 1);
        var rows = Rows(12);
        var data = ml.Data.LoadFromEnumerable(rows);
        var options = Options(4);
        using var transformer = (TransformerChain<ITransformer>)ml.Transforms.Text.GenerateText(options).Fit(data);
        var output = ml.Data.CreateEnumerable<CompletionRow>(transformer.Transform(data), reuseRowObject: false).ToList();
        using var engine = GptModel.Open(Folder);
        var direct = engine.Generate(rows.Select(r => r.Prompt), options.Generation, batchSize: 3);
        Assert.Equal(direct.Select(r => r.Text), output.Select(r => r.Completion));
    }

    [Fact]
    public void Transform_is_lazy_and_the_first_three_rows_read_at_most_one_batch_ahead()
    {
        var ml = new MLContext(seed: 1);
        var counting = new CountingDataView(ml.Data.LoadFromEnumerable(Rows(100)));
        using var model = (TransformerChain<ITransformer>)ml.Transforms.Text.GenerateText(Options(16, continuous: false)).Fit(counting);
        int readByFit = counting.RowsRead;
        var transformed = model.Transform(counting);
        Assert.Equal(readByFit, counting.RowsRead);                      // creating the view reads nothing

        var first = ml.Data.CreateEnumerable<CompletionRow>(transformed, reuseRowObject: false).Take(3).ToList();
        Assert.Equal(3, first.Count);
        int read = counting.RowsRead - readByFit;
        Assert.True(read <= 16, $"taking 3 rows read {read} source rows; one batch is 16");
    }

    [Fact]
    public void Continuous_batching_reads_at_most_one_batch_beyond_the_rows_taken()
    {
        var ml = new MLContext(seed: 1);
        var counting = new CountingDataView(ml.Data.LoadFromEnumerable(Rows(100)));
        using var model = (TransformerChain<ITransformer>)ml.Transforms.Text.GenerateText(Options(16)).Fit(counting);
        int before = counting.RowsRead;
        _ = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(counting), reuseRowObject: false).Take(3).ToList();
        int read = counting.RowsRead - before;
        Assert.True(read <= 16 + 3, $"taking 3 rows read {read} source rows");
    }

    public sealed class TwoFields
    {
        public string Subject { get; set; } = "";
        public string Verb { get; set; } = "";
        public bool Label { get; set; }
    }

    public sealed class PromptOut
    {
        public string Prompt { get; set; } = "";
    }

    public sealed class Prediction
    {
        public bool PredictedLabel { get; set; }
        public string Completion { get; set; } = "";
    }

    [Fact]
    public void A_prompt_built_from_two_columns_feeds_generate_text_then_featurize_text_then_a_trainer()
    {
        var ml = new MLContext(seed: 3);
        var subjects = new[] { "the LORD", "Moses", "the people", "the king", "a man", "the prophet" };
        var verbs = new[] { "said", "went", "spake", "came", "saw" };
        var rows = subjects.SelectMany((s, i) => verbs.Select((v, j) => new TwoFields { Subject = s, Verb = v, Label = (i + j) % 2 == 0 })).ToArray();
        var data = ml.Data.LoadFromEnumerable(rows);

        var pipeline = ml.Transforms.CustomMapping<TwoFields, PromptOut>((input, output) => output.Prompt = $"And {input.Subject} {input.Verb}", contractName: null)
            .Append(ml.Transforms.Text.GenerateText("Completion", "Prompt", Folder, new GenerationOptions { MaxNewTokens = 8, Seed = 2, DoSample = true }, batchSize: 8))
            .Append(ml.Transforms.Text.FeaturizeText("Features", "Completion"))
            .Append(ml.BinaryClassification.Trainers.SdcaLogisticRegression(labelColumnName: "Label", maximumNumberOfIterations: 20));

        var model = pipeline.Fit(data);
        var scored = model.Transform(data);
        var predictions = ml.Data.CreateEnumerable<Prediction>(scored, reuseRowObject: false).ToList();
        Assert.Equal(rows.Length, predictions.Count);
        Assert.All(predictions, p => Assert.False(string.IsNullOrEmpty(p.Completion)));
        var metrics = ml.BinaryClassification.Evaluate(scored, labelColumnName: "Label");
        Assert.InRange(metrics.Accuracy, 0, 1);

        using var engine = ml.Model.CreatePredictionEngine<TwoFields, Prediction>(model);
        var single = engine.Predict(rows[4]);
        Assert.Equal(predictions[4].Completion, single.Completion);
        Assert.Equal(predictions[4].PredictedLabel, single.PredictedLabel);
    }

    [Fact]
    public void Prediction_engine_generates_for_single_rows_like_the_batched_transform()
    {
        var ml = new MLContext(seed: 1);
        var rows = Rows(6);
        var data = ml.Data.LoadFromEnumerable(rows);
        using var model = (TransformerChain<ITransformer>)ml.Transforms.Text.GenerateText(Options(4)).Fit(data);
        var batched = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).ToList();
        using var engine = ml.Model.CreatePredictionEngine<PromptRow, CompletionRow>(model);
        for (int i = 0; i < rows.Length; i++)
        {
            var single = engine.Predict(rows[i]);
            Assert.Equal(batched[i].Completion, single.Completion);
            Assert.Equal(batched[i].Finish, single.Finish);
        }
    }
    [Fact]
    public void Rows_the_model_ends_at_once_are_counted_in_a_warning_that_names_MinNewTokens()
    {
        var ml = new MLContext(seed: 1);
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.RawMessage); };
        var data = ml.Data.LoadFromEnumerable(new[]
        {
            new PromptRow { Id = "a", Prompt = "In the beginning God created the heaven and the earth." },
            new PromptRow { Id = "b", Prompt = "Jesus wept." },
        });
        using var model = ml.Transforms.Text.GenerateText(new GenerateTextOptions
        {
            OutputColumnName = "Completion", InputColumnName = "Prompt", ModelFolder = Fixtures.DefaultModel, FinishReasonColumnName = "Finish",
            Generation = new GenerationOptions { DoSample = false, MaxNewTokens = 6 },
        }).Fit(data);
        var rows = ml.Data.CreateEnumerable<CompletionRow>(model.Transform(data), reuseRowObject: false).ToList();
        int empty = rows.Count(r => r.Completion.Length == 0);
        Assert.True(empty > 0, "the default model should end a whole verse at once under greedy decoding");
        Assert.Contains(warnings, w => w == $"GenerateTokens: {empty} of 2 rows generated nothing: the model ended them at once with its end-of-sequence token. " +
            "Set MinNewTokens to make it write some tokens first (or sample instead of greedy decoding).");
    }
}
