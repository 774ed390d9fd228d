using System.Text;
using Microsoft.VisualBasic.FileIO;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>The real mlnetgpt tool, run as a process on CSV files.</summary>
public sealed class CliBatchTests
{
    private static readonly string Model = Fixtures.Folder("tiny-gpt2-b");

    // Raw CSV records exactly as written to the input file.
    private static readonly string[] NastyRecords =
    [
        "id,prompt,notes,empty",
        "1,plain text,,",
        "2,\"quoted, with commas, here\",\"he said \"\"hi\"\"\",",
        "3,\"multi\r\nline with CRLF\",\"multi\nline with LF\",x",
        "4,emoji 😀🎉 and CJK 日本語のテキスト,\"Ελληνικά, ещё\",",
        "5,\"  spaces kept  \",,\"\"",
        "6,\"\"\"starts with a quote\",trailing,",
        "7,last row,\"ends with newline\n\",z",
    ];

    private static string WriteInput(string folder, string terminator, bool bom)
    {
        var path = Path.Combine(folder, "input.csv");
        var text = string.Join(terminator, NastyRecords) + terminator;
        File.WriteAllBytes(path, (bom ? new byte[] { 0xEF, 0xBB, 0xBF } : []).Concat(new UTF8Encoding(false).GetBytes(text)).ToArray());
        return path;
    }

    private static List<string[]> Parse(string path)
    {
        using var parser = new TextFieldParser(path, Encoding.UTF8) { TextFieldType = FieldType.Delimited, HasFieldsEnclosedInQuotes = true, TrimWhiteSpace = false };
        parser.SetDelimiters(",");
        var rows = new List<string[]>();
        while (!parser.EndOfData) rows.Add(parser.ReadFields()!);
        return rows;
    }

    [Theory]
    [InlineData("\r\n", true)]
    [InlineData("\n", false)]
    public void A_nasty_csv_keeps_every_input_cell_and_gains_the_new_columns(string terminator, bool bom)
    {
        var folder = Fixtures.TempFolder("cli-nasty");
        var input = WriteInput(folder, terminator, bom);
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run("generate", input, "-o", output, "--model", Model, "--max-new-tokens", "3", "--seed", "1", "--quiet");
        Assert.True(code == 0, stderr);

        var bytes = File.ReadAllBytes(output);
        Assert.Equal(bom, bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF);
        var text = new UTF8Encoding(false).GetString(bytes);
        int position = 0;
        foreach (var raw in NastyRecords)
        {
            int at = text.IndexOf(raw + ",", position, StringComparison.Ordinal);
            Assert.True(at >= position, $"record {raw.Split(',')[0]} is not repeated byte for byte");
            position = at + raw.Length;
        }
        Assert.EndsWith(terminator, text);

        var expected = Parse(input);
        var actual = Parse(output);
        Assert.Equal(expected.Count, actual.Count);
        Assert.Equal(expected[0].Concat(["completion", "finish_reason", "error"]), actual[0]);
        for (int r = 1; r < expected.Count; r++)
        {
            Assert.Equal(expected[r], actual[r][..expected[r].Length]);
            Assert.Equal("length", actual[r][^2]);
            Assert.Equal("", actual[r][^1]);
        }
        Assert.Contains("\r\n", expected[3][1]);
        Assert.Contains("😀", expected[4][1]);
    }

    [Fact]
    public void Jsonl_output_holds_every_cell_and_the_new_values()
    {
        var folder = Fixtures.TempFolder("cli-jsonl");
        var input = WriteInput(folder, "\r\n", bom: false);
        var output = Path.Combine(folder, "out.jsonl");
        var (code, _, stderr) = CliProcess.Run("generate", input, "-o", output, "--model", Model, "--max-new-tokens", "2", "--format", "jsonl", "--quiet");
        Assert.True(code == 0, stderr);
        var lines = File.ReadAllLines(output);
        Assert.Equal(NastyRecords.Length - 1, lines.Length);
        var row = System.Text.Json.JsonDocument.Parse(lines[2]).RootElement;
        Assert.Equal("multi\r\nline with CRLF", row.GetProperty("prompt").GetString());
        Assert.Equal("length", row.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public void A_template_builds_prompts_and_rows_that_cannot_be_built_are_recorded_with_exit_code_2()
    {
        var folder = Fixtures.TempFolder("cli-template");
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "question,topic\nWhat is light?,physics\n,empty question\nshort row\nWho wrote it?,books\n");
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run("generate", input, "-o", output, "--model", Model, "--template", "Q ({topic}): {question}\\nA:",
            "--max-new-tokens", "2", "--quiet");
        Assert.Equal(2, code);
        var rows = Parse(output);
        Assert.Equal(5, rows.Count);
        Assert.Equal("", rows[1][^1]);
        Assert.Equal("", rows[2][^1]);                // an empty cell inside a template still leaves a prompt
        Assert.Contains("no value for column 'topic'", rows[3][^1]);
        Assert.Equal("short row", rows[3][0]);
        Assert.Equal("", rows[3][1]);                 // padded to the header's width
        Assert.NotEqual("", rows[4][^3]);

        var failFast = CliProcess.Run("generate", input, "-o", Path.Combine(folder, "ff.csv"), "--model", Model, "--template", "{question}",
            "--max-new-tokens", "2", "--quiet", "--fail-fast");
        Assert.Equal(2, failFast.ExitCode);
        Assert.Contains("the prompt is empty", failFast.Stderr);
        Assert.False(File.Exists(Path.Combine(folder, "ff.csv")));
    }

    [Fact]
    public void Score_adds_log_likelihood_token_count_and_perplexity()
    {
        var folder = Fixtures.TempFolder("cli-score");
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "text\nIn the beginning\nHello\n");
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run("score", input, "-o", output, "--model", Model, "--text-column", "text", "--quiet");
        Assert.True(code == 0, stderr);
        var rows = Parse(output);
        Assert.Equal(["text", "log_likelihood", "token_count", "perplexity", "error"], rows[0]);
        Assert.Equal("3", rows[1][2]);
        double ll = double.Parse(rows[1][1], System.Globalization.CultureInfo.InvariantCulture);
        double ppl = double.Parse(rows[1][3], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(Math.Exp(-ll / 3), ppl, 3);
    }

    [Theory]
    [InlineData("missing-file", "does not exist")]
    [InlineData("unknown-column", "--prompt-column 'nope' is not a column of the input (columns: id, prompt, notes, empty)")]
    [InlineData("bad-template", "--template names the column 'missing'")]
    [InlineData("bad-temperature", "--temperature: temperature must be a finite number >= 0")]
    [InlineData("bad-top-p", "--top-p: top_p must be in (0, 1]")]
    [InlineData("bad-max-new-tokens", "--max-new-tokens: max_new_tokens must be greater than 0")]
    [InlineData("bad-batch-size", "--batch-size must be 1 or more")]
    [InlineData("bad-device", "--device: 'tpu' is not a device")]
    [InlineData("bad-format", "--format")]
    [InlineData("unknown-option", "--bogus")]
    [InlineData("missing-output", "--output")]
    [InlineData("missing-model", "--model: the folder")]
    [InlineData("output-collides", "already has a column 'prompt'")]
    [InlineData("added-twice", "the output would have the column 'finish_reason' twice (--output-column and the finish_reason column)")]
    [InlineData("empty-input", "is empty; it needs a header row")]
    [InlineData("column-twice", "has the column 'prompt' twice")]
    public void Bad_invocations_print_one_clear_line_and_exit_1(string scenario, string expected)
    {
        var folder = Fixtures.TempFolder("cli-bad");
        var input = WriteInput(folder, "\n", bom: false);
        var output = Path.Combine(folder, "out.csv");
        string[] args = scenario switch
        {
            "missing-file" => ["generate", Path.Combine(folder, "none.csv"), "-o", output, "--model", Model],
            "unknown-column" => ["generate", input, "-o", output, "--model", Model, "--prompt-column", "nope"],
            "bad-template" => ["generate", input, "-o", output, "--model", Model, "--template", "{missing} x"],
            "bad-temperature" => ["generate", input, "-o", output, "--model", Model, "--temperature", "-1"],
            "bad-top-p" => ["generate", input, "-o", output, "--model", Model, "--top-p", "2"],
            "bad-max-new-tokens" => ["generate", input, "-o", output, "--model", Model, "--max-new-tokens", "0"],
            "bad-batch-size" => ["generate", input, "-o", output, "--model", Model, "--batch-size", "0"],
            "bad-device" => ["generate", input, "-o", output, "--model", Model, "--device", "tpu"],
            "bad-format" => ["generate", input, "-o", output, "--model", Model, "--format", "xml"],
            "unknown-option" => ["generate", input, "-o", output, "--model", Model, "--bogus"],
            "missing-output" => ["generate", input, "--model", Model],
            "missing-model" => ["generate", input, "-o", output, "--model", Path.Combine(folder, "no-model")],
            "output-collides" => ["generate", input, "-o", output, "--model", Model, "--output-column", "prompt"],
            "added-twice" => ["generate", input, "-o", output, "--model", Model, "--output-column", "finish_reason"],
            "empty-input" => ["generate", Write(folder, "empty.csv", ""), "-o", output, "--model", Model],
            "column-twice" => ["generate", Write(folder, "twice.csv", "id,prompt,prompt\n1,a,b\n"), "-o", output, "--model", Model],
            _ => throw new ArgumentException(scenario),
        };
        var (code, stdout, stderr) = CliProcess.Run(args);
        Assert.Equal(1, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("mlnetgpt: error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.Equal("", stdout);
        Assert.False(File.Exists(output));
    }

    private static string Write(string folder, string name, string text)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Complete_streams_a_completion_and_info_describes_the_model()
    {
        var complete = CliProcess.Run("complete", "In the beginning", "--model", Model, "--max-new-tokens", "5", "--greedy");
        Assert.Equal(0, complete.ExitCode);
        using var model = GptModel.Open(Model);
        var expected = model.Generate("In the beginning", new GenerationOptions { MaxNewTokens = 5, DoSample = false });
        Assert.Equal("In the beginning" + expected.Text, complete.Stdout.TrimEnd('\n'));

        var info = CliProcess.Run("info", "--model", Fixtures.Folder("tiny-gqa-genai"));
        Assert.Equal(0, info.ExitCode);
        Assert.Contains("OnnxRuntimeGenAI", info.Stdout);
        Assert.Contains("4 attention, 2 key/value, head size 16", info.Stdout);
        Assert.Contains("context length          128", info.Stdout);
        Assert.Contains("CPUExecutionProvider", info.Stdout);
    }
}
