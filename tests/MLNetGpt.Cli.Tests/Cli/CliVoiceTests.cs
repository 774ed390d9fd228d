using System.Text.Json;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>The tool's own voice: plain warnings, errors in words, help that says what happens, outputs that chain.</summary>
public sealed class CliVoiceTests
{
    private static readonly string Model = Fixtures.Folder("tiny-gpt2-a");

    private static string SmallInput(string folder, string text = "id,prompt\n1,In the beginning\n2,And God said\n")
    {
        var path = Path.Combine(folder, "in.csv");
        File.WriteAllText(path, text);
        return path;
    }

    private static string SingleErrorLine((int ExitCode, string Stdout, string Stderr) run)
    {
        Assert.Equal(1, run.ExitCode);
        var lines = run.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("mlnetgpt: error: ", lines[0]);
        return lines[0];
    }

    [Fact]
    public void A_cuda_request_on_a_machine_without_cuda_gives_one_plain_warning_and_no_native_colour_codes()
    {
        var folder = Fixtures.TempFolder("cli-cuda-warning");
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run("generate", SmallInput(folder), "-o", output, "--model", Model, "--max-new-tokens", "2",
            "--device", "cuda", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain('\u001b', stderr);
        Assert.DoesNotContain("[Source=", stderr);
        Assert.DoesNotContain("onnxruntime", stderr);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lines, line => Assert.StartsWith("mlnetgpt: warning: ", line));
        // Where CUDA can start there is nothing to warn about; elsewhere the one warning says what happened.
        if (lines.Length > 0)
        {
            Assert.Single(lines);
            Assert.StartsWith("mlnetgpt: warning: CUDA device 0 is unavailable, running on the CPU instead", lines[0]);
        }
    }

    [Theory]
    [InlineData("--seed", "abc", "--seed takes a whole number, not 'abc'")]
    [InlineData("--max-new-tokens", "9999999999", "--max-new-tokens takes a whole number up to 2147483647, not '9999999999'")]
    [InlineData("--temperature", "warm", "--temperature takes a number such as 0.8, not 'warm'")]
    [InlineData("--batch-size", "eight", "--batch-size takes a whole number, not 'eight'")]
    [InlineData("--top-p", "0,9", "--top-p takes a number such as 0.8, not '0,9'")]
    public void A_value_of_the_wrong_kind_is_reported_in_words(string option, string value, string expected)
    {
        var folder = Fixtures.TempFolder("cli-parse");
        var line = SingleErrorLine(CliProcess.Run("generate", SmallInput(folder), "-o", Path.Combine(folder, "out.csv"), "--model", Model, option, value));
        Assert.Contains(expected, line);
        Assert.DoesNotContain("System.", line);
    }

    [Theory]
    [InlineData("generat", "unknown command 'generat'; did you mean 'generate'?")]
    [InlineData("scroe", "unknown command 'scroe'; did you mean 'score'?")]
    [InlineData("infos", "unknown command 'infos'; did you mean 'info'?")]
    [InlineData("translate", "unknown command 'translate' (commands: generate, score, classify, merge, complete, info")]
    public void An_unknown_command_is_named_with_the_closest_command(string typed, string expected)
    {
        var line = SingleErrorLine(CliProcess.Run(typed, "x.csv"));
        Assert.Contains(expected, line);
    }

    [Fact]
    public void An_unknown_option_is_named_with_the_closest_option()
    {
        var folder = Fixtures.TempFolder("cli-option");
        var line = SingleErrorLine(CliProcess.Run("generate", SmallInput(folder), "-o", Path.Combine(folder, "out.csv"), "--sede", "4"));
        Assert.Contains("unknown option '--sede'; did you mean '--seed'?", line);
    }

    [Fact]
    public void Row_errors_name_the_physical_line_of_the_record()
    {
        var folder = Fixtures.TempFolder("cli-line");
        var input = SmallInput(folder, "id,prompt\n1,\"a prompt\nover two lines\"\n2,\n3,fine\n4,  \n");
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run("generate", input, "-o", output, "--model", Model, "--max-new-tokens", "2", "--quiet");
        Assert.True(code == 2, stderr);
        var rows = CliFiles.ParseCsv(output);
        Assert.Equal("", rows[1][^1]);
        Assert.Equal("line 4: the prompt is empty", rows[2][^1]);
        Assert.Equal("line 6: the prompt is empty", rows[4][^1]);

        var failFast = CliProcess.Run("generate", input, "-o", Path.Combine(folder, "ff.csv"), "--model", Model, "--max-new-tokens", "2", "--quiet", "--fail-fast");
        Assert.Contains("mlnetgpt: line 4: the prompt is empty", failFast.Stderr);
    }

    [Fact]
    public void Help_shows_the_effective_defaults_the_added_columns_and_the_exit_codes_and_no_machine_path()
    {
        var help = CliProcess.Run("generate", "--help");
        Assert.Equal(0, help.ExitCode);
        string text = help.Stdout;
        Assert.Contains("Default: the built-in model (mlnetgpt-kjv", text);
        Assert.DoesNotContain(AppContext.BaseDirectory.TrimEnd('/'), text);
        Assert.DoesNotContain(Fixtures.DefaultModel, text);
        Assert.Contains("Default: the model's, else 20.", text);
        Assert.Contains("finish_reason  eos, stop_string, length, or constraint", text);
        Assert.Contains("130  interrupted", text);
        Assert.Contains("OUTPUT.partial.job.json", text);

        // The sampling defaults shown are the ones in the embedded model's generation_config.json.
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.DefaultModel, "generation_config.json")));
        var root = config.RootElement;
        Assert.True(root.GetProperty("do_sample").GetBoolean());
        Assert.Contains("sampling (do_sample true)", text);
        foreach (var key in new[] { "temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens" })
            Assert.Contains($"{key} {root.GetProperty(key).GetRawText()}", text);

        var score = CliProcess.Run("score", "--help");
        Assert.Contains("perplexity      exp(-log_likelihood / token_count)", score.Stdout);
        Assert.Contains("Exit codes:", score.Stdout);
        var rootHelp = CliProcess.Run("--help");
        Assert.Contains("2    some rows failed", rootHelp.Stdout);
    }

    [Theory]
    [InlineData("--output-column", "--output-column is empty")]
    [InlineData("--prompt-column", "--prompt-column is empty")]
    [InlineData("--error-column", "--error-column is empty")]
    [InlineData("--template", "--template is empty")]
    [InlineData("--model", "--model is empty")]
    [InlineData("--output", "--output is empty")]
    public void An_empty_name_is_refused_naming_the_option(string option, string expected)
    {
        var folder = Fixtures.TempFolder("cli-empty");
        string[] args = option == "--output"
            ? ["generate", SmallInput(folder), "-o", "", "--model", Model]
            : ["generate", SmallInput(folder), "-o", Path.Combine(folder, "out.csv"), "--model", option == "--model" ? "" : Model, .. option == "--model" ? Array.Empty<string>() : [option, ""]];
        Assert.Contains(expected, SingleErrorLine(CliProcess.Run(args)));
        Assert.False(File.Exists(Path.Combine(folder, "out.csv.partial")));
    }

    [Fact]
    public void An_empty_text_column_is_refused_naming_the_option()
    {
        var folder = Fixtures.TempFolder("cli-empty-text");
        var line = SingleErrorLine(CliProcess.Run("score", SmallInput(folder), "-o", Path.Combine(folder, "out.csv"), "--model", Model, "--text-column", ""));
        Assert.Contains("--text-column is empty", line);
    }

    [Fact]
    public void A_folder_given_as_input_and_a_file_given_as_model_are_named_for_what_they_are()
    {
        var folder = Fixtures.TempFolder("cli-mixup");
        var input = SmallInput(folder);
        var asInput = SingleErrorLine(CliProcess.Run("generate", folder, "-o", Path.Combine(folder, "out.csv"), "--model", Model));
        Assert.Contains($"the input '{folder}' is a folder, not a CSV file", asInput);
        var modelFile = Path.Combine(Model, "model.onnx");
        var asModel = SingleErrorLine(CliProcess.Run("generate", input, "-o", Path.Combine(folder, "out.csv"), "--model", modelFile));
        Assert.Contains($"--model: '{modelFile}' is a file; --model takes a model folder", asModel);
        Assert.Contains("is a file; --model takes a model folder", SingleErrorLine(CliProcess.Run("info", "--model", modelFile)));
    }

    [Theory]
    [InlineData("{\n  \"n_layer\": 2,\n  \"n_head\": ,\n}\n", "line 3, column 13")]
    [InlineData("{\n  \"a\": \"日本語\", \"b\": ]\n}\n", "line 2, column 20")]
    public void Malformed_config_json_is_reported_with_one_based_line_and_column(string json, string expected)
    {
        var model = Fixtures.CopyOf("tiny-gpt2-a");
        File.WriteAllText(Path.Combine(model, "config.json"), json);
        var line = SingleErrorLine(CliProcess.Run("info", "--model", model));
        Assert.Contains($"config.json is not valid JSON at {expected}: ", line);
        Assert.DoesNotContain("LineNumber", line);
        Assert.DoesNotContain("BytePositionInLine", line);
    }

    [Fact]
    public void Score_runs_on_a_generate_output_as_it_is_adding_its_own_error_column()
    {
        var folder = Fixtures.TempFolder("cli-chain");
        var generated = Path.Combine(folder, "generated.csv");
        var first = CliProcess.Run("generate", SmallInput(folder), "-o", generated, "--model", Model, "--max-new-tokens", "4", "--seed", "3", "--quiet");
        Assert.True(first.ExitCode == 0, first.Stderr);

        var scored = Path.Combine(folder, "scored.csv");
        var second = CliProcess.Run("score", generated, "-o", scored, "--model", Model, "--text-column", "completion", "--prompt-column", "prompt", "--quiet");
        Assert.True(second.ExitCode == 0, second.Stderr);
        var rows = CliFiles.ParseCsv(scored);
        Assert.Equal(["id", "prompt", "completion", "finish_reason", "error", "log_likelihood", "token_count", "perplexity", "score_error"], rows[0]);
        Assert.All(rows.Skip(1), row => Assert.True(int.Parse(row[6]) > 0));

        var named = Path.Combine(folder, "named.csv");
        var third = CliProcess.Run("score", generated, "-o", named, "--model", Model, "--text-column", "completion", "--error-column", "problem", "--quiet");
        Assert.True(third.ExitCode == 0, third.Stderr);
        Assert.Equal("problem", CliFiles.ParseCsv(named)[0][^1]);
    }

    [Fact]
    public void Jsonl_writes_computed_numbers_as_json_numbers_and_input_cells_as_strings()
    {
        var folder = Fixtures.TempFolder("cli-jsonl-numbers");
        var input = SmallInput(folder, "id,text\n1,In the beginning\n2,\n");
        var output = Path.Combine(folder, "out.jsonl");
        var (code, _, stderr) = CliProcess.Run("score", input, "-o", output, "--model", Model, "--text-column", "text", "--format", "jsonl", "--quiet");
        Assert.True(code == 2, stderr);
        var lines = File.ReadAllLines(output);
        using var scored = JsonDocument.Parse(lines[0]);
        var row = scored.RootElement;
        Assert.Equal(JsonValueKind.String, row.GetProperty("id").ValueKind);
        Assert.Equal("1", row.GetProperty("id").GetString());
        Assert.Equal(JsonValueKind.Number, row.GetProperty("token_count").ValueKind);
        Assert.Equal(3, row.GetProperty("token_count").GetInt32());
        double ll = row.GetProperty("log_likelihood").GetDouble();
        Assert.Equal(Math.Exp(-ll / 3), row.GetProperty("perplexity").GetDouble(), 3);
        Assert.Equal(JsonValueKind.Null, row.GetProperty("error").ValueKind);
        Assert.Contains("\"token_count\":3,", lines[0]);

        using var failed = JsonDocument.Parse(lines[1]);
        Assert.Equal(JsonValueKind.Null, failed.RootElement.GetProperty("token_count").ValueKind);
        Assert.Equal("line 3: the text is empty", failed.RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public void The_word_default_names_the_built_in_model_for_every_command_that_takes_a_folder()
    {
        var folder = Fixtures.TempFolder("cli-default-word");
        var input = SmallInput(folder);
        var generate = CliProcess.Run("generate", input, "-o", Path.Combine(folder, "out.csv"), "--model", "default", "--max-new-tokens", "2", "--seed", "1", "--quiet");
        Assert.True(generate.ExitCode == 0, generate.Stderr);
        var info = CliProcess.Run("info", "default");
        Assert.Equal(0, info.ExitCode);
        Assert.Contains("works                   yes: generate, score and classify; not chat: the folder has no chat template", info.Stdout);
        Assert.Contains("mlnetgpt-kjv", info.Stdout);
        Assert.Equal(info.Stdout, CliProcess.Run("info", "--model", "default").Stdout);
    }

    [Fact]
    public void Info_says_in_its_first_line_whether_a_folder_will_work_and_why_not()
    {
        var chat = CliProcess.Run("info", Fixtures.Folder("tiny-chatml"));
        Assert.Equal(0, chat.ExitCode);
        Assert.StartsWith("works                   yes: generate, score and classify, and chat (--chat)", chat.Stdout);
        var empty = Fixtures.TempFolder("cli-info-empty");
        var broken = CliProcess.Run("info", empty);
        Assert.Equal(1, broken.ExitCode);
        Assert.StartsWith($"works                   no: The model folder '{empty}' has no model file: expected model.onnx", broken.Stdout);
        Assert.Contains("give the model folder once", SingleErrorLine(CliProcess.Run("info", "default", "--model", "default")));
    }
}
