using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Transforms;

/// <summary>Bad and edge-case inputs of the ML.NET stages: each a clear error or a defined result.</summary>
public sealed class StageInputTests
{
    private static readonly string Folder = Fixtures.Folder("tiny-gpt2-a");

    public sealed class NumberRow
    {
        public float Prompt { get; set; }
        public string Other { get; set; } = "";
    }

    public sealed class TextRow
    {
        public string? Prompt { get; set; }
    }

    public sealed class OutRow
    {
        public string Prompt { get; set; } = "";
        public string Completion { get; set; } = "";
        public string Finish { get; set; } = "";
    }

    [Fact]
    public void A_missing_input_column_names_the_column_the_stage_and_the_columns_present()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new NumberRow() });
        var estimator = ml.Transforms.Text.GenerateText("Completion", "Question", Folder);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(data));
        Assert.Contains("TokenizeText: input column 'Question' was not found", error.Message);
        Assert.Contains("'Prompt'", error.Message);
        Assert.Contains("'Other'", error.Message);
        var shapeError = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(Shapes.Of(data.Schema)));
        Assert.Contains("'Question' was not found", shapeError.Message);
    }

    [Fact]
    public void A_wrong_input_type_names_the_expected_and_actual_types()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new NumberRow() });
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.GenerateText("Completion", "Prompt", Folder).Fit(data));
        Assert.Contains("input column 'Prompt' has type Single; expected String (text)", error.Message);

        var tokens = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.GenerateTokens("Out", "Other", Folder).Fit(data));
        Assert.Contains("GenerateTokens: input column 'Other' has type String; expected Vector<Int32> (token ids)", tokens.Message);

        var shape = Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.Transforms.Text.DecodeTokens("Text", "Prompt", Folder).GetOutputSchema(Shapes.Of(data.Schema)));
        Assert.Contains("DecodeTokens: input column 'Prompt' has type Single; expected Vector<Int32>", shape.Message);

        // Transforming data of the wrong schema with an already fitted model fails the same way.
        var good = ml.Data.LoadFromEnumerable(new[] { new TextRow { Prompt = "x" } });
        using var model = (TransformerChain<ITransformer>)ml.Transforms.Text.GenerateText("Completion", "Prompt", Folder).Fit(good);
        var later = Assert.Throws<ArgumentOutOfRangeException>(() => model.Transform(data));
        Assert.Contains("has type Single", later.Message);
    }

    [Fact]
    public void An_empty_dataset_gives_an_empty_result()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(Array.Empty<TextRow>());
        using var model = (TransformerChain<ITransformer>)ml.Transforms.Text.GenerateText("Completion", "Prompt", Folder).Fit(data);
        Assert.Empty(ml.Data.CreateEnumerable<OutRow>(model.Transform(data), false, ignoreMissingColumns: true));
    }

    [Fact]
    public void Null_and_empty_text_cells_generate_from_the_bos_token()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new TextRow { Prompt = null }, new TextRow { Prompt = "" }, new TextRow { Prompt = "Hello" } });
        var options = new GenerateTextOptions
        {
            OutputColumnName = "Completion", InputColumnName = "Prompt", ModelFolder = Folder, FinishReasonColumnName = "Finish",
            Generation = new GenerationOptions { MaxNewTokens = 5, EosTokenIds = [] },
        };
        using var model = (TransformerChain<ITransformer>)ml.Transforms.Text.GenerateText(options).Fit(data);
        var rows = ml.Data.CreateEnumerable<OutRow>(model.Transform(data), false, ignoreMissingColumns: true).ToList();
        using var engine = GptModel.Open(Folder);
        var fromBos = engine.GenerateTokens([[50256]], options.Generation)[0].Text;
        Assert.Equal(fromBos, rows[0].Completion);
        Assert.Equal(fromBos, rows[1].Completion);
        Assert.Equal("length", rows[0].Finish);
    }

    [Fact]
    public void A_row_that_cannot_be_encoded_fails_naming_the_row_and_column()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new TextRow { Prompt = "fine" }, new TextRow { Prompt = "fine" }, new TextRow { Prompt = "bad \uD800" } });
        using var model = (TransformerChain<ITransformer>)ml.Transforms.Text.GenerateText("Completion", "Prompt", Folder).Fit(data);
        var error = Assert.Throws<InvalidOperationException>(() => ml.Data.CreateEnumerable<OutRow>(model.Transform(data), false, ignoreMissingColumns: true).ToList());
        Assert.Contains("TokenizeText: row 2 of column 'Prompt'", error.Message);
        Assert.Contains("lone surrogate", error.Message);
    }

    [Fact]
    public void Tokenize_text_truncates_from_the_start_or_the_end_and_can_add_bos()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new TextRow { Prompt = "In the beginning God created the heaven" } });
        int[] Ids(TokenizeTextOptions o) =>
            ml.Data.CreateEnumerable<IdsRow>(ml.Transforms.Text.TokenizeText(o).Fit(data).Transform(data), false).Single().Ids;
        var all = Ids(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Prompt", Encoding = "gpt2" });
        Assert.Equal([818, 262, 3726, 1793, 2727, 262, 9538], all);
        Assert.Equal(all[^3..], Ids(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Prompt", Encoding = "gpt2", MaxTokens = 3 }));
        Assert.Equal(all[..3], Ids(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Prompt", Encoding = "gpt2", MaxTokens = 3, TruncateFromStart = false }));
        Assert.Equal(new[] { 50256 }.Concat(all[^2..]), Ids(new TokenizeTextOptions
        {
            OutputColumnName = "Ids", InputColumnName = "Prompt", ModelFolder = Folder, MaxTokens = 3, AddBeginningOfSequence = true,
        }));
        Assert.Throws<ArgumentException>(() => ml.Transforms.Text.TokenizeText(new TokenizeTextOptions { OutputColumnName = "Ids" }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenizeTextOptions { OutputColumnName = "Ids", MaxTokens = 0 });
    }

    public sealed class IdsRow
    {
        [VectorType]
        public int[] Ids { get; set; } = [];
    }

    [Fact]
    public void A_missing_model_folder_is_reported_when_the_estimator_is_created()
    {
        var ml = new MLContext();
        var error = Assert.Throws<GptModelException>(() => ml.Transforms.Text.GenerateText("Completion", "Prompt", "/nowhere/model"));
        Assert.Contains("'/nowhere/model' does not exist", error.Message);
    }

    [Fact]
    public void The_mlcontext_gpu_setting_is_honoured_and_a_stage_device_overrides_it()
    {
        var messages = new List<string>();
        var ml = new MLContext { GpuDeviceId = 0, FallbackToCpu = true };
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Message); };
        var folder = Fixtures.CopyOf("tiny-gpt2-b");      // a folder no other test has opened (the model cache is per folder and device)
        var data = ml.Data.LoadFromEnumerable(new[] { new TextRow { Prompt = "x" } });
        using var fromContext = (GenerateTokensTransformer)ml.Transforms.Text.GenerateTokens(new GenerateTokensOptions
        {
            OutputColumnName = "Out", InputColumnName = "Ids", ModelFolder = folder,
        }).Fit(ml.Transforms.Text.TokenizeText("Ids", "Prompt", folder).Fit(data).Transform(data));
        Assert.Equal(GptDevice.Cuda(0), fromContext.Device);
        if (fromContext.ModelInfo.ExecutionProvider == "CPU")
            Assert.Contains(messages, m => m.Contains("CUDA device 0 is unavailable, running on the CPU"));

        using var overridden = (GenerateTokensTransformer)ml.Transforms.Text.GenerateTokens(new GenerateTokensOptions
        {
            OutputColumnName = "Out", InputColumnName = "Ids", ModelFolder = folder, Device = GptDevice.Cpu,
        }).Fit(ml.Transforms.Text.TokenizeText("Ids", "Prompt", folder).Fit(data).Transform(data));
        Assert.Equal(GptDevice.Cpu, overridden.Device);
        Assert.Equal("CPU", overridden.ModelInfo.ExecutionProvider);

        var strict = new MLContext { GpuDeviceId = 0, FallbackToCpu = false };
        var error = Record.Exception(() => strict.Transforms.Text.GenerateTokens(new GenerateTokensOptions
        {
            OutputColumnName = "Out", InputColumnName = "Ids", ModelFolder = Fixtures.CopyOf("tiny-gpt2-b"),
        }).Fit(strict.Transforms.Text.TokenizeText("Ids", "Prompt", folder).Fit(data).Transform(data)).Dispose());
        if (error is not null) Assert.Contains("cuDNN 9", error.Message);
    }

    [Fact]
    public void Device_strings_parse_like_the_command_line_takes_them()
    {
        Assert.Equal(GptDevice.Cpu, GptDevice.Parse("cpu"));
        Assert.Equal(GptDevice.Cuda(0), GptDevice.Parse("cuda"));
        Assert.Equal(GptDevice.Cuda(2), GptDevice.Parse("CUDA:2"));
        Assert.Contains("use cpu, cuda or cuda:N", Assert.Throws<FormatException>(() => GptDevice.Parse("tpu")).Message);
        Assert.Throws<FormatException>(() => GptDevice.Parse("cuda:-1"));
    }
}
