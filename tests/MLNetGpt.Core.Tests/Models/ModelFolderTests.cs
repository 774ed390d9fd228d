using System.Text.Json.Nodes;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Models;

/// <summary>Opening model folders: what is discovered, and the error for each kind of broken folder.</summary>
public sealed class ModelFolderTests
{
    [Theory]
    [InlineData("tiny-gpt2-a", ModelLayout.OptimumDecoder, 2, 4, 4, 16, true)]
    [InlineData("tiny-gpt2-b", ModelLayout.OptimumDecoder, 3, 3, 3, 16, true)]
    [InlineData("tiny-gpt2-a-pair", ModelLayout.OptimumDecoderPair, 2, 4, 4, 16, true)]
    [InlineData("tiny-gpt2-a-merged", ModelLayout.OptimumMergedDecoder, 2, 4, 4, 16, true)]
    [InlineData("tiny-gqa-genai", ModelLayout.OnnxRuntimeGenAI, 2, 4, 2, 16, false)]
    public void Layout_and_shapes_are_read_from_the_files_and_the_graph(string fixture, ModelLayout layout, int layers, int heads,
        int kvHeads, int headSize, bool positionIds)
    {
        using var model = GptModel.Open(Fixtures.Folder(fixture));
        var info = model.Info;
        Assert.Equal(layout, info.Layout);
        Assert.Equal(layers, info.LayerCount);
        Assert.Equal(heads, info.AttentionHeadCount);
        Assert.Equal(kvHeads, info.KeyValueHeadCount);
        Assert.Equal(headSize, info.HeadSize);
        Assert.Equal(positionIds, info.HasPositionIds);
        Assert.Equal(50257, info.VocabularySize);
        Assert.Equal([50256], info.EosTokenIds);
        Assert.Equal(50256, info.BosTokenId);
        Assert.Equal("CPU", info.ExecutionProvider);
        Assert.Equal("float32", info.CacheElementType);
    }

    [Fact]
    public void Generation_config_defaults_are_read()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        Assert.Equal(20, model.Info.Defaults.MaxNewTokens);
        Assert.Equal(128, model.Info.ContextLength);
    }

    [Fact]
    public void Changing_the_defaults_a_model_hands_out_changes_nothing_it_does()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var before = model.Generate("Hello", new GenerationOptions { DoSample = false });
        var handedOut = model.Info.Defaults;
        handedOut.MaxNewTokens = 1;
        handedOut.DoSample = true;
        handedOut.Temperature = 2;
        Assert.Equal(20, model.Info.Defaults.MaxNewTokens);
        Assert.Null(model.Info.Defaults.Temperature);
        Assert.Equal(before.TokenIds, model.Generate("Hello", new GenerationOptions { DoSample = false }).TokenIds);
        Assert.Equal(20, model.Generate("Hello", new GenerationOptions { DoSample = false, EosTokenIds = [] }).TokenIds.Count);
    }

    [Fact]
    public void A_missing_folder_is_named()
    {
        var error = Assert.Throws<GptModelException>(() => GptModel.Open("/nonexistent/model-folder"));
        Assert.Contains("'/nonexistent/model-folder' does not exist", error.Message);
    }

    [Fact]
    public void A_folder_without_a_model_file_names_the_files_it_expects()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        File.Delete(Path.Combine(folder, "model.onnx"));
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.Contains("has no model file", error.Message);
        Assert.Contains("model.onnx", error.Message);
        Assert.Contains("genai_config.json", error.Message);
    }

    [Fact]
    public void A_folder_without_config_json_names_it()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        File.Delete(Path.Combine(folder, "config.json"));
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.Contains("no config.json", error.Message);
    }

    [Fact]
    public void A_config_without_a_context_length_names_the_keys_it_needs()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        config.Remove("n_positions");
        config.Remove("n_ctx");
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.Contains("config.json has no context length", error.Message);
        Assert.Contains("n_positions", error.Message);
    }

    [Fact]
    public void A_config_key_of_the_wrong_type_is_named()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var path = Path.Combine(folder, "config.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"n_layer\": 2", "\"n_layer\": \"two\""));
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.Contains("config.json: 'n_layer' must be a positive integer, but is \"two\".", error.Message);
    }

    [Fact]
    public void A_corrupt_model_file_is_reported_with_its_path()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var path = Path.Combine(folder, "model.onnx");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length / 3).ToArray());
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.Contains(path, error.Message);
        Assert.Contains("could not load", error.Message);
    }

    [Fact]
    public void Invalid_json_is_reported_with_the_file()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        File.WriteAllText(Path.Combine(folder, "generation_config.json"), "{ \"max_new_tokens\": ");
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.Contains("generation_config.json is not valid JSON", error.Message);
    }

    [Fact]
    public void A_genai_config_naming_a_missing_file_is_reported()
    {
        var folder = Fixtures.CopyOf("tiny-gqa-genai");
        File.Move(Path.Combine(folder, "model.onnx"), Path.Combine(folder, "renamed.onnx"));
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.Contains("names the model file 'model.onnx'", error.Message);
    }

    [Fact]
    public void A_folder_without_a_tokenizer_opens_for_token_ids_and_refuses_text_naming_the_folder()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        File.Delete(Path.Combine(folder, "tokenizer_config.json"));
        using (var idsOnly = GptModel.Open(folder))
        {
            Assert.StartsWith("none", idsOnly.Info.TokenizerSource);
            Assert.Equal(3, idsOnly.GenerateTokens([new[] { 1, 2, 3 }], new GenerationOptions { MaxNewTokens = 3, EosTokenIds = [] })[0].TokenIds.Count);
            var error = Assert.Throws<GptModelException>(() => idsOnly.Generate("text"));
            Assert.Contains($"'{folder}' has no tokenizer", error.Message);
            Assert.Contains("GenerateTokens", error.Message);
        }
        using var withOption = GptModel.Open(folder, new GptModelOptions { TokenizerEncoding = "gpt2" });
        Assert.Equal("encoding gpt2", withOption.Info.TokenizerSource);
    }

    [Fact]
    public void An_empty_prompt_without_a_bos_token_is_rejected()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        foreach (var file in new[] { "config.json", "generation_config.json" })
        {
            var node = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, file)))!.AsObject();
            node.Remove("bos_token_id");
            File.WriteAllText(Path.Combine(folder, file), node.ToJsonString());
        }
        using var model = GptModel.Open(folder);
        var error = Assert.Throws<ArgumentException>(() => model.Generate(""));
        Assert.Contains("Prompt 0 is empty", error.Message);
        Assert.Contains("bos_token_id", error.Message);
    }

    [Fact]
    public void Text_that_is_not_valid_unicode_is_rejected_with_its_position()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var error = Assert.Throws<ArgumentException>(() => model.Generate(["fine", "bad \uD800 text"]));
        Assert.Contains("Prompt 1", error.Message);
        Assert.Contains("lone surrogate (U+D800) at index 4", error.Message);
        Assert.Throws<ArgumentException>(() => model.Score("\uDC00"));
    }

    [Fact]
    public void Token_ids_outside_the_vocabulary_are_rejected()
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => model.GenerateTokens([[1, 2], [5, 60000]]));
        Assert.Contains("Prompt 1: token id 60000 at position 1", error.Message);
    }

    [Fact]
    public void Invalid_option_values_name_the_option()
    {
        Assert.Contains("max_new_tokens", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { MaxNewTokens = 0 }).Message);
        Assert.Contains("max_new_tokens", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { MaxNewTokens = -3 }).Message);
        Assert.Contains("temperature", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { Temperature = -0.1f }).Message);
        Assert.Contains("temperature", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { Temperature = float.NaN }).Message);
        Assert.Contains("top_p", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { TopP = 0f }).Message);
        Assert.Contains("top_p", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { TopP = 1.01f }).Message);
        Assert.Contains("min_p", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { MinP = 2f }).Message);
        Assert.Contains("top_k", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { TopK = -1 }).Message);
        Assert.Contains("repetition_penalty", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { RepetitionPenalty = 0f }).Message);
        Assert.Contains("stop strings", Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationOptions { StopStrings = [""] }).Message);
        Assert.Contains("batch size", Assert.Throws<ArgumentOutOfRangeException>(() =>
        {
            using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
            model.Generate(["x"], null, batchSize: 0);
        }).Message);
    }

    [Fact]
    public void An_invalid_default_in_generation_config_is_reported_with_the_file()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        File.WriteAllText(Path.Combine(folder, "generation_config.json"), """{"top_p": 3.0}""");
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.Contains("generation_config.json", error.Message);
        Assert.Contains("top_p", error.Message);
    }
}
