using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Json.Schema;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>generate --choices / --choices-file / --regex / --json-schema [--json-columns]: outputs that always fit, and refusals in words.</summary>
public sealed class CliConstraintTests
{
    private const string Person = """
        {"type":"object","properties":{
          "name":{"type":"string","minLength":1,"maxLength":10},
          "age":{"type":"integer","minimum":0,"maximum":120},
          "faithful":{"type":"boolean"},
          "tribe":{"enum":["Judah","Levi",null]}},
         "required":["name","age","faithful"]}
        """;

    private static string Prompts(string folder)
    {
        var path = Path.Combine(folder, "in.csv");
        var text = new StringBuilder("id,prompt\n");
        string[] heads = ["In the beginning", "And God said,", "The LORD is my shepherd;", "And Moses said unto the people,", "Blessed are the",
            "Then said he, \"Go\"", "And it came to pass", "My son, hear"];
        for (int i = 0; i < 16; i++) text.Append(i).Append(",\"").Append(heads[i % heads.Length].Replace("\"", "\"\"")).Append("\"\n");
        File.WriteAllText(path, text.ToString());
        return path;
    }

    private static string Write(string folder, string name, string text)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static string[] Generate(string input, string output, params string[] extra) =>
        ["generate", input, "-o", output, "--seed", "5", "--quiet", .. extra, .. extra.Contains("--max-new-tokens") ? Array.Empty<string>() : ["--max-new-tokens", "48"]];

    [Fact]
    public void Every_completion_of_a_regex_job_matches_the_whole_pattern_as_dotnet_regex_reads_it()
    {
        var folder = Fixtures.TempFolder("cli-regex");
        const string pattern = @"(And|But|For) [a-z]{2,8}( [a-z]{2,8}){0,3}\.";
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run(Generate(Prompts(folder), output, "--regex", pattern));
        Assert.True(code == 0, stderr);
        var rows = CliFiles.ParseCsv(output);
        Assert.Equal(["id", "prompt", "completion", "finish_reason", "error"], rows[0]);
        Assert.Equal(17, rows.Count);
        var whole = new Regex($"^(?:{pattern})$");
        foreach (var row in rows.Skip(1))
        {
            Assert.Matches(whole, row[2]);
            Assert.Contains(row[3], new[] { "constraint", "eos" });
        }
        Assert.Contains(rows.Skip(1), row => row[3] == "constraint");
    }

    [Fact]
    public void Every_completion_of_a_json_schema_job_validates_and_json_columns_hold_its_properties()
    {
        var folder = Fixtures.TempFolder("cli-schema");
        var schema = Write(folder, "person.json", Person);
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run(Generate(Prompts(folder), output, "--json-schema", schema, "--json-columns"));
        Assert.True(code == 0, stderr);
        var rows = CliFiles.ParseCsv(output);
        Assert.Equal(["id", "prompt", "completion", "name", "age", "faithful", "tribe", "finish_reason", "error"], rows[0]);
        var validator = JsonSchema.FromText(Person);
        foreach (var row in rows.Skip(1))
        {
            using var document = JsonDocument.Parse(row[2]);
            var json = document.RootElement;
            Assert.True(validator.Evaluate(json).IsValid, $"JsonSchema.Net rejects {row[2]}");
            Assert.Equal(json.GetProperty("name").GetString(), row[3]);
            Assert.Equal(json.GetProperty("age").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture), row[4]);
            Assert.Equal(json.GetProperty("faithful").GetBoolean() ? "true" : "false", row[5]);
            Assert.Equal(json.TryGetProperty("tribe", out var tribe) && tribe.ValueKind == JsonValueKind.String ? tribe.GetString() : "", row[6]);
            Assert.Contains(row[7], new[] { "constraint", "eos" });
            Assert.Equal("", row[8]);
        }
    }

    [Fact]
    public void Json_columns_in_jsonl_keep_numbers_and_booleans_as_json_values()
    {
        var folder = Fixtures.TempFolder("cli-schema-jsonl");
        var schema = Write(folder, "person.json", Person);
        var output = Path.Combine(folder, "out.jsonl");
        var (code, _, stderr) = CliProcess.Run(Generate(Prompts(folder), output, "--json-schema", schema, "--json-columns", "--format", "jsonl"));
        Assert.True(code == 0, stderr);
        foreach (var line in File.ReadLines(output))
        {
            using var row = JsonDocument.Parse(line);
            var root = row.RootElement;
            using var completion = JsonDocument.Parse(root.GetProperty("completion").GetString()!);
            Assert.Equal(JsonValueKind.Number, root.GetProperty("age").ValueKind);
            Assert.Equal(completion.RootElement.GetProperty("age").GetInt32(), root.GetProperty("age").GetInt32());
            Assert.Equal(completion.RootElement.GetProperty("faithful").ValueKind, root.GetProperty("faithful").ValueKind);
            Assert.Equal(JsonValueKind.String, root.GetProperty("name").ValueKind);
        }
    }

    [Fact]
    public void A_row_whose_output_is_not_a_whole_object_gets_empty_json_columns_and_says_why_in_the_error_column()
    {
        var folder = Fixtures.TempFolder("cli-schema-short");
        var schema = Write(folder, "person.json", Person);
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run(Generate(Prompts(folder), output, "--json-schema", schema, "--json-columns", "--max-new-tokens", "4"));
        Assert.True(code == 2, stderr);
        var rows = CliFiles.ParseCsv(output);
        for (int r = 1; r < rows.Count; r++)
        {
            Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(rows[r][2]).Dispose());
            Assert.Equal(["", "", "", ""], rows[r][3..7]);
            Assert.Equal("length", rows[r][7]);
            Assert.Equal($"line {r + 1}: the completion is not a complete JSON object (finish_reason length), so its --json-columns are empty", rows[r][8]);
        }
    }

    [Fact]
    public void Choices_from_the_command_line_or_a_file_are_used_as_given_and_make_the_same_job()
    {
        var folder = Fixtures.TempFolder("cli-choices");
        var input = Prompts(folder);
        var fromList = Path.Combine(folder, "list.csv");
        var (code, _, stderr) = CliProcess.Run(Generate(input, fromList, "--choices", " LORD, God,and,\"quoted\""));
        Assert.True(code == 0, stderr);
        var rows = CliFiles.ParseCsv(fromList);
        Assert.All(rows.Skip(1), row => Assert.Contains(row[2], new[] { " LORD", " God", "and", "\"quoted\"" }));
        Assert.All(rows.Skip(1), row => Assert.Contains(row[3], new[] { "constraint", "eos" }));

        // With a file, a choice may hold a comma; a BOM and CRLF line ends are read as such.
        var file = Path.Combine(folder, "choices.txt");
        File.WriteAllBytes(file, [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(" yea, verily\r\n nay\r\n")]);
        var fromFile = Path.Combine(folder, "file.csv");
        Assert.Equal(0, CliProcess.Run(Generate(input, fromFile, "--choices-file", file)).ExitCode);
        Assert.All(CliFiles.ParseCsv(fromFile).Skip(1), row => Assert.Contains(row[2], new[] { " yea, verily", " nay" }));

        // The manifest records the choices, not where they came from: a file with the same choices resumes a --choices job.
        var stopped = Path.Combine(folder, "stopped.csv");
        var withEmpty = Write(folder, "empty-row.csv", "id,prompt\n1,In the beginning\n2,\n3,And God said\n");
        Assert.Equal(2, CliProcess.Run([.. Generate(withEmpty, stopped, "--choices", " yea, verily, nay"), "--fail-fast"]).ExitCode);
        var list = Write(folder, "same.txt", " yea\n verily\n nay\n");
        var resumed = CliProcess.Run([.. Generate(withEmpty, stopped, "--choices-file", list), "--resume"]);
        Assert.True(resumed.ExitCode == 2, resumed.Stderr);
        Assert.Equal(4, CliFiles.ParseCsv(stopped).Count);
    }

    [Theory]
    [InlineData("--regex", "(And|But) [a-z]+", "--regex was (And|But) [a-z]+, now (And|For) [a-z]+")]
    [InlineData("--choices", " yea, nay", "--choices was [\" yea\",\" nay\"], now [\" yea\",\" nay\",\" no\"]")]
    [InlineData("--json-schema", "", "--json-schema was {\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"}},\"required\":[\"a\"]}, now not given")]
    public void Resume_refuses_a_different_constraint_naming_it(string option, string value, string expected)
    {
        var folder = Fixtures.TempFolder("cli-constraint-resume");
        var input = Write(folder, "in.csv", "id,prompt\n1,In the beginning\n2,\n3,And God said\n");
        var output = Path.Combine(folder, "out.csv");
        var schema = Write(folder, "s.json", "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"boolean\"}}, \"required\": [\"a\"]}");
        string[] first = option == "--json-schema" ? ["--json-schema", schema] : [option, value];
        string[] second = option switch
        {
            "--regex" => ["--regex", "(And|For) [a-z]+"],
            "--choices" => ["--choices", " yea, nay, no"],
            _ => [],
        };
        Assert.Equal(2, CliProcess.Run([.. Generate(input, output, first), "--fail-fast"]).ExitCode);
        var before = CliFiles.Snapshot(folder);
        var (code, _, stderr) = CliProcess.Run([.. Generate(input, output, second), "--resume"]);
        Assert.Equal(1, code);
        Assert.Contains(expected, stderr);
        CliFiles.AssertUnchanged(before, folder);
    }

    [Theory]
    [InlineData("two-kinds", "give one of --choices, --choices-file, --regex and --json-schema, not --choices and --regex.")]
    [InlineData("empty-choice", "--choices: choice 2 is empty.")]
    [InlineData("repeated-choice", "--choices: choice 3 repeats 'a' (as choice 1 does).")]
    [InlineData("empty-choices", "--choices is empty; give choices separated by commas.")]
    [InlineData("choices-file-missing", "--choices-file: the file '{folder}/none.txt' does not exist.")]
    [InlineData("choices-file-blank-line", "--choices-file: '{folder}/blank.txt' line 2 is empty.")]
    [InlineData("choices-file-repeat", "--choices-file: '{folder}/repeat.txt' line 3 repeats ' a' (as line 1 does).")]
    [InlineData("choices-file-empty", "--choices-file: '{folder}/empty.txt' is empty; write one choice per line.")]
    [InlineData("choices-file-not-utf8", "--choices-file: '{folder}/latin1.txt' is not valid UTF-8 (the byte at offset 2 cannot start a character)")]
    [InlineData("choices-file-folder", "--choices-file: '{folder}' is a folder; give a file with one choice per line.")]
    [InlineData("choices-file-empty-name", "--choices-file is empty; give the path of a file with one choice per line.")]
    [InlineData("schema-folder", "--json-schema: '{folder}' is a folder; give a JSON schema file.")]
    [InlineData("schema-empty-name", "--json-schema is empty; give the path of a JSON schema file.")]
    [InlineData("regex-backreference", "--regex: a backreference (\\1) at position 5 is not supported")]
    [InlineData("regex-word-boundary", "--regex: a word boundary (\\b) at position 0 is not supported")]
    [InlineData("regex-unclosed", "--regex: the group opened at position 0 is not closed.")]
    [InlineData("regex-empty", "--regex is empty; give a pattern.")]
    [InlineData("schema-keyword", "--json-schema '{folder}/unique.json': keyword 'uniqueItems' (true) at /properties/a is not supported")]
    [InlineData("schema-not-json", "--json-schema: '{folder}/broken.json' is not valid JSON at line 2, column 20: ',' is an invalid start of a property name")]
    [InlineData("schema-missing", "--json-schema: the file '{folder}/none.json' does not exist.")]
    [InlineData("columns-without-schema", "--json-columns needs --json-schema: the columns are the top-level properties the schema declares.")]
    [InlineData("columns-of-a-string", "--json-columns: the schema '{folder}/string.json' has type \"string\"; its top level must be \"object\", so there are no columns to write.")]
    [InlineData("columns-of-no-properties", "--json-columns: the schema '{folder}/bare.json' declares no top-level properties, so there are no columns to write.")]
    [InlineData("column-is-an-input-column", "the input already has a column 'prompt'; the output adds it (--json-columns): rename one of them.")]
    [InlineData("column-is-an-added-column", "the output would have the column 'finish_reason' twice (--json-columns and the finish_reason column): choose another name.")]
    public void A_malformed_or_unsupported_constraint_is_refused_in_one_line_naming_the_option(string scenario, string expected)
    {
        var folder = Fixtures.TempFolder("cli-constraint-bad");
        var input = Prompts(folder);
        var output = Path.Combine(folder, "out.csv");
        string Schema(string name, string text) => Write(folder, name, text);
        string[] extra = scenario switch
        {
            "two-kinds" => ["--choices", "a,b", "--regex", "a"],
            "empty-choice" => ["--choices", "a,,b"],
            "repeated-choice" => ["--choices", "a,b,a"],
            "empty-choices" => ["--choices", ""],
            "choices-file-missing" => ["--choices-file", Path.Combine(folder, "none.txt")],
            "choices-file-blank-line" => ["--choices-file", Write(folder, "blank.txt", "a\n\nb\n")],
            "choices-file-repeat" => ["--choices-file", Write(folder, "repeat.txt", " a\n b\n a\n")],
            "choices-file-empty" => ["--choices-file", Write(folder, "empty.txt", "")],
            "choices-file-not-utf8" => ["--choices-file", WriteBytes(folder, "latin1.txt", [(byte)'a', (byte)'\n', 0xE9, (byte)'\n'])],
            "choices-file-folder" => ["--choices-file", folder],
            "choices-file-empty-name" => ["--choices-file", ""],
            "schema-folder" => ["--json-schema", folder],
            "schema-empty-name" => ["--json-schema", ""],
            "regex-backreference" => ["--regex", "(a|b)\\1"],
            "regex-word-boundary" => ["--regex", "\\bAnd"],
            "regex-unclosed" => ["--regex", "(And"],
            "regex-empty" => ["--regex", ""],
            "schema-keyword" => ["--json-schema", Schema("unique.json", "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"uniqueItems\":true}}}")],
            "schema-not-json" => ["--json-schema", Schema("broken.json", "{\n  \"type\": \"object\",,\n}")],
            "schema-missing" => ["--json-schema", Path.Combine(folder, "none.json")],
            "columns-without-schema" => ["--regex", "a", "--json-columns"],
            "columns-of-a-string" => ["--json-schema", Schema("string.json", "{\"type\":\"string\"}"), "--json-columns"],
            "columns-of-no-properties" => ["--json-schema", Schema("bare.json", "{\"type\":\"object\"}"), "--json-columns"],
            "column-is-an-input-column" => ["--json-schema", Schema("p.json", "{\"properties\":{\"prompt\":{\"type\":\"string\"}},\"required\":[\"prompt\"]}"), "--json-columns"],
            "column-is-an-added-column" => ["--json-schema", Schema("f.json", "{\"properties\":{\"finish_reason\":{\"type\":\"string\"}}}"), "--json-columns"],
            _ => throw new ArgumentException(scenario),
        };
        var (code, stdout, stderr) = CliProcess.Run(Generate(input, output, extra));
        Assert.Equal(1, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("mlnetgpt: error: ", lines[0]);
        Assert.Contains(expected.Replace("{folder}", folder), lines[0]);
        Assert.Equal("", stdout);
        Assert.False(File.Exists(output));
        Assert.False(File.Exists(output + ".partial"));
    }

    private static string WriteBytes(string folder, string name, byte[] bytes)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Help_names_the_constraint_options_and_the_constraint_finish_reason()
    {
        var help = CliProcess.Run("generate", "--help").Stdout;
        foreach (var option in new[] { "--choices", "--choices-file", "--regex", "--json-schema", "--json-columns", "--shard" })
            Assert.Contains(option, help);
        Assert.Contains("finish_reason  eos, stop_string, length, or constraint", help);
    }
}
