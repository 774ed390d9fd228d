using System.Text.Json.Nodes;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Models;

/// <summary>
/// Values a model folder's configuration gives are checked where they are read: a count of 0 or less, or a negative
/// token id, is refused in one line naming the file, the key and the value, instead of generating from an empty
/// context window or meeting .NET's own messages later.
/// </summary>
public sealed class ConfigValueTests
{
    private static string WithConfig(string fixture, string file, Action<JsonObject> edit)
    {
        var folder = Fixtures.CopyOf(fixture);
        var path = Path.Combine(folder, file);
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(config);
        File.WriteAllText(path, config.ToJsonString());
        return folder;
    }

    [Theory]
    [InlineData("n_positions", "0")]
    [InlineData("n_positions", "-1")]
    [InlineData("n_positions", "4294967296")]
    [InlineData("n_layer", "0")]
    [InlineData("n_head", "-4")]
    [InlineData("n_embd", "0")]
    [InlineData("vocab_size", "-50257")]
    public void A_count_of_zero_or_less_in_config_json_is_refused_naming_the_key_and_value(string key, string value)
    {
        var folder = WithConfig("tiny-gpt2-a", "config.json", c => c[key] = JsonNode.Parse(value));
        var e = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.Equal($"{Path.Combine(folder, "config.json")}: '{key}' must be a positive integer, but is {value}.", e.Message);
    }

    [Fact]
    public void Max_position_embeddings_of_zero_is_refused_like_n_positions()
    {
        var folder = WithConfig("tiny-gpt2-a", "config.json", c =>
        {
            c.Remove("n_positions");
            c["max_position_embeddings"] = 0;
        });
        Assert.Equal($"{Path.Combine(folder, "config.json")}: 'max_position_embeddings' must be a positive integer, but is 0.",
            Assert.Throws<GptModelException>(() => GptModel.Open(folder)).Message);
    }

    [Theory]
    [InlineData("generation_config.json", "eos_token_id", "-1")]
    [InlineData("generation_config.json", "eos_token_id", "[50256, -2]")]
    [InlineData("generation_config.json", "bos_token_id", "-1")]
    [InlineData("generation_config.json", "pad_token_id", "-7")]
    public void A_negative_token_id_is_refused_naming_the_file_and_key(string file, string key, string value)
    {
        var folder = WithConfig("tiny-gpt2-a", file, c => c[key] = JsonNode.Parse(value));
        var e = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.StartsWith($"{Path.Combine(folder, file)}: '{key}' must ", e.Message);
        Assert.Contains("integers of 0 or more", e.Message.Replace("an integer of 0 or more", "integers of 0 or more"));
    }

    [Fact]
    public void A_genai_context_length_of_zero_is_refused_naming_the_key()
    {
        var folder = WithConfig("tiny-gqa-genai", "genai_config.json", c => c["model"]!["context_length"] = 0);
        Assert.Equal($"{Path.Combine(folder, "genai_config.json")}: 'model.context_length' must be a positive integer, but is 0.",
            Assert.Throws<GptModelException>(() => GptModel.Open(folder)).Message);
    }

    public static TheoryData<string> Threads => SmallStacks.Threads;

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_configuration_nested_a_million_levels_is_refused_by_the_json_reader_naming_the_file(string thread)
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var path = Path.Combine(folder, "generation_config.json");
        File.WriteAllText(path, "{\"a\":" + new string('[', 1_000_000) + new string(']', 1_000_000) + "}");
        var e = Assert.IsType<GptModelException>(SmallStacks.Run(thread, () => GptModel.Open(folder)));
        Assert.StartsWith($"{path} is not valid JSON at line 1, column ", e.Message);
        Assert.Contains("maximum configured depth of 64", e.Message);
    }
}
