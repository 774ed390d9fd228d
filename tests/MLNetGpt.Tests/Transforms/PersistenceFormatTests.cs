using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Transforms;
using Xunit;

namespace MLNetGpt.Tests.Transforms;

/// <summary>The saved format: versioned per stage, JSON settings with Hugging Face names, older zips still load.</summary>
public sealed class PersistenceFormatTests
{
    private static readonly string Legacy = Path.Combine(Fixtures.Root, "legacy-0.1.0");

    public sealed class LegacyRow
    {
        public string Prompt { get; set; } = "";
        public string Text { get; set; } = "";
    }

    public sealed class LegacyOutput
    {
        public string Prompt { get; set; } = "";
        public string Text { get; set; } = "";
        public string Completion { get; set; } = "";
        public string Finish { get; set; } = "";
        public float[] LogProbs { get; set; } = [];
        public float Perplexity { get; set; }
        public double LL { get; set; }
        public int Count { get; set; }
        public int[] TextIds { get; set; } = [];
        public string TextBack { get; set; } = "";
    }

    [Fact]
    public void A_pipeline_saved_by_the_0_1_0_format_loads_and_generates_the_text_it_generated_then()
    {
        var expected = JsonSerializer.Deserialize<List<LegacyOutput>>(File.ReadAllText(Path.Combine(Legacy, "pipeline-0.1.0.expected.json")))!;
        var ml = new MLContext(seed: 99);   // the stages keep their own seed
        var model = ml.Model.Load(Path.Combine(Legacy, "pipeline-0.1.0.zip"), out var schema);
        Assert.Equal(["Prompt", "Text"], schema.Select(c => c.Name));
        var data = ml.Data.LoadFromEnumerable(expected.Select(e => new LegacyRow { Prompt = e.Prompt, Text = e.Text }));
        var got = ml.Data.CreateEnumerable<LegacyOutput>(model.Transform(data), reuseRowObject: false).ToList();
        (model as IDisposable)?.Dispose();

        Assert.Equal(expected.Count, got.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Completion, got[i].Completion);
            Assert.Equal(expected[i].Finish, got[i].Finish);
            Assert.Equal(expected[i].LogProbs.Length, got[i].LogProbs.Length);
            for (int t = 0; t < expected[i].LogProbs.Length; t++) Assert.Equal(expected[i].LogProbs[t], got[i].LogProbs[t], 4);
            Assert.Equal(expected[i].Count, got[i].Count);
            Assert.Equal(expected[i].LL, got[i].LL, 3);
            Assert.Equal(expected[i].TextIds, got[i].TextIds);
            Assert.Equal(expected[i].TextBack, got[i].TextBack);
        }
    }

    [Fact]
    public void The_0_1_0_pipeline_saved_again_is_written_in_the_current_format_and_still_gives_the_same_text()
    {
        var ml = new MLContext();
        var model = ml.Model.Load(Path.Combine(Legacy, "pipeline-0.1.0.zip"), out var schema);
        var zip = Path.Combine(Fixtures.TempFolder("resave"), "pipeline.zip");
        ml.Model.Save(model, schema, zip);
        var expected = JsonSerializer.Deserialize<List<LegacyOutput>>(File.ReadAllText(Path.Combine(Legacy, "pipeline-0.1.0.expected.json")))!;
        var data = ml.Data.LoadFromEnumerable(expected.Select(e => new LegacyRow { Prompt = e.Prompt, Text = e.Text }));
        (model as IDisposable)?.Dispose();

        var settings = StageSettingsOf(zip);
        Assert.Contains(settings, s => s.Contains("\"max_new_tokens\":12", StringComparison.Ordinal) && s.Contains("\"top_p\":0.95", StringComparison.Ordinal)
            && s.Contains("\"no_repeat_ngram_size\":3", StringComparison.Ordinal) && s.Contains("\"seed\":1234", StringComparison.Ordinal));
        var reloaded = new MLContext().Model.Load(zip, out _);
        var got = ml.Data.CreateEnumerable<LegacyOutput>(reloaded.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList();
        (reloaded as IDisposable)?.Dispose();
        Assert.Equal(expected.Select(e => e.Completion), got);
    }

    [Fact]
    public void Every_stage_writes_its_own_version_and_json_settings()
    {
        var ml = new MLContext();
        var folder = Fixtures.Folder("tiny-gpt2-a");
        var data = ml.Data.LoadFromEnumerable(new[] { new LegacyRow { Prompt = "a", Text = "b" } });
        var model = ml.Transforms.Text.GenerateText(new GenerateTextOptions
            {
                OutputColumnName = "Completion", InputColumnName = "Prompt", ModelFolder = folder,
                Generation = new GenerationOptions { MaxNewTokens = 3, MinTokensToKeep = 2, IncludeEosToken = true },
            })
            .Append(ml.Transforms.Text.ScoreText("P", "Text", folder))
            .Fit(data);
        var zip = Path.Combine(Fixtures.TempFolder("stages"), "pipeline.zip");
        ml.Model.Save(model, data.Schema, zip);
        (model as IDisposable)?.Dispose();

        var settings = StageSettingsOf(zip);
        Assert.Equal(4, settings.Count);
        Assert.Contains(settings, s => s.Contains("\"generation\":{\"max_new_tokens\":3,\"min_tokens_to_keep\":2,\"include_eos_token\":true}", StringComparison.Ordinal));
        Assert.Contains(settings, s => s.Contains("\"text_column\":\"Text\"", StringComparison.Ordinal) && s.Contains("\"engine\":\"batched\"", StringComparison.Ordinal));
    }

    [Fact]
    public void Settings_with_an_unknown_key_are_refused_naming_it()
    {
        var reader = new StageSettingsReader("{\"output_column\":\"a\",\"beam_width\":4}", "GenerateTokens");
        reader.String("output_column");
        var error = Assert.Throws<FormatException>(reader.EnsureAllRead);
        Assert.Contains("'beam_width'", error.Message);
        Assert.Contains("newer MLNetGpt", error.Message);
    }

    [Fact]
    public void Generation_settings_with_a_value_of_the_wrong_type_are_refused_naming_the_key()
    {
        var reader = new StageSettingsReader("{\"generation\":{\"top_k\":\"forty\"}}", "GenerateTokens");
        var error = Assert.Throws<FormatException>(() => reader.Generation("generation"));
        Assert.Contains("'top_k'", error.Message);
        Assert.Contains("\"forty\"", error.Message);
    }

    [Fact]
    public void A_missing_setting_reads_as_its_default()
    {
        var reader = new StageSettingsReader("{\"output_column\":\"a\",\"input_column\":\"b\"}", "GenerateTokens");
        Assert.True(reader.Bool("continuous_batching", true));
        Assert.Null(reader.Int("intra_op_threads"));
        Assert.Null(reader.Device());
        Assert.Null(reader.Generation("generation").MaxNewTokens);
    }

    /// <summary>The JSON settings strings in a saved pipeline's stage entries.</summary>
    private static List<string> StageSettingsOf(string zip)
    {
        using var archive = ZipFile.OpenRead(zip);
        var result = new List<string>();
        foreach (var entry in archive.Entries.Where(e => e.FullName.EndsWith("Model.key", StringComparison.Ordinal)))
        {
            using var stream = entry.Open();
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var text = Encoding.UTF8.GetString(buffer.ToArray());
            int start = text.IndexOf("{\"output_column\"", StringComparison.Ordinal);
            if (start < 0) continue;
            int depth = 0, end = start;
            for (; end < text.Length; end++)
            {
                if (text[end] == '{') depth++;
                else if (text[end] == '}' && --depth == 0) break;
            }
            result.Add(text[start..(end + 1)]);
        }
        return result;
    }
}
