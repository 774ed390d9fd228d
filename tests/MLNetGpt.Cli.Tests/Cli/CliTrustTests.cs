using System.Text.Json.Nodes;
using MLNetGpt.Models.Onnx;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>
/// Hostile inputs on the command line end the tool with exit 1 and one line naming the input, never a crash (exit 134),
/// a hang or a silent wrong result: a deeply nested regex, a chat template that would loop for hours, a configuration
/// with no context window, a model folder whose data file links elsewhere.
/// </summary>
public sealed class CliTrustTests
{
    private static string Prompts(string folder)
    {
        var path = Path.Combine(folder, "in.csv");
        File.WriteAllText(path, "id,prompt\n1,In the beginning\n2,And God said\n");
        return path;
    }

    private static string ErrorLine(string stderr) => stderr.Split('\n').First(l => l.StartsWith("mlnetgpt: error: ", StringComparison.Ordinal)).TrimEnd();

    [Fact]
    public void A_regex_of_ten_thousand_nested_groups_exits_1_naming_the_nesting_limit()
    {
        var folder = Fixtures.TempFolder("cli-trust");
        var pattern = new string('(', 10_000) + "a" + new string(')', 10_000);
        var (code, _, stderr) = CliProcess.Run("generate", Prompts(folder), "-o", Path.Combine(folder, "out.csv"), "-m", Fixtures.Folder("tiny-gpt2-a"),
            "--regex", pattern, "--quiet");
        Assert.Equal(1, code);
        Assert.Contains("regex: groups nest more than 100 levels deep (the group at position 100).", ErrorLine(stderr));
    }

    [Fact]
    public void A_chat_template_that_would_loop_for_hours_exits_1_naming_the_template_and_its_budget()
    {
        var folder = Fixtures.TempFolder("cli-trust");
        var model = Fixtures.CopyOf("tiny-chatml");
        var config = Path.Combine(model, "tokenizer_config.json");
        var json = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        json["chat_template"] = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        File.WriteAllText(config, json.ToJsonString());
        var (code, _, stderr) = CliProcess.Run("generate", Prompts(folder), "-o", Path.Combine(folder, "out.csv"), "-m", model, "--chat",
            "--max-new-tokens", "2", "--quiet");
        Assert.Equal(1, code);
        var line = ErrorLine(stderr);
        Assert.Contains($"The chat template 'default' (tokenizer_config.json in '{model}') was stopped: the template ran past its budget of 10,000,000 steps", line);
        Assert.Contains("raise GptModelOptions.ChatTemplateLimits.MaxSteps to allow more", line);
    }

    [Fact]
    public void A_configuration_without_a_context_window_exits_1_instead_of_generating_without_the_prompt()
    {
        var folder = Fixtures.TempFolder("cli-trust");
        var model = Fixtures.CopyOf("tiny-gpt2-a");
        var config = Path.Combine(model, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"n_positions\": 128", "\"n_positions\": 0"));
        var (code, _, stderr) = CliProcess.Run("generate", Prompts(folder), "-o", Path.Combine(folder, "out.csv"), "-m", model, "--quiet");
        Assert.Equal(1, code);
        Assert.Equal($"mlnetgpt: error: {config}: 'n_positions' must be a positive integer, but is 0.", ErrorLine(stderr));
        Assert.False(File.Exists(Path.Combine(folder, "out.csv")));
    }

    [LinuxFact]
    public void Quantizing_a_folder_whose_data_file_links_elsewhere_exits_1_naming_the_link_and_writes_nothing()
    {
        var model = Fixtures.CopyOf("tiny-gpt2-a");
        OnnxModelFile.Load(Path.Combine(Fixtures.Folder("tiny-gpt2-a"), "model.onnx")).Save(Path.Combine(model, "model.onnx"), externalDataThreshold: 0);
        var outside = Path.Combine(Fixtures.TempFolder("outside"), "model.onnx.data");
        File.Move(Path.Combine(model, "model.onnx.data"), outside);
        File.CreateSymbolicLink(Path.Combine(model, "model.onnx.data"), outside);
        var output = Path.Combine(Fixtures.TempFolder("cli-trust"), "int8");
        var (code, _, stderr) = CliProcess.Run("quantize", model, output, "--bits", "8");
        Assert.Equal(1, code);
        Assert.Contains($"'{Path.Combine(model, "model.onnx.data")}' is a link to '{outside}', outside the model folder '{model}'", ErrorLine(stderr));
        Assert.False(Directory.Exists(output));
    }
}
