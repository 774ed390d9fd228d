using System.Globalization;
using System.Text;
using System.Text.Json;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>mlnetgpt classify: the ClassifyText stage over a CSV file, with every property of a batch job.</summary>
public sealed class CliClassifyTests
{
    private static readonly string[] Names = [" LORD", " God", " Israel", " Moses", " David", " Jesus"];

    /// <summary>The held-out KJV verses cut before a name, as a CSV file of prompt and name (quoted where .NET's writer would need it).</summary>
    private static (string Path, List<(string Prompt, string Name)> Rows) NextNames(string folder)
    {
        var rows = File.ReadLines(Path.Combine(Fixtures.Root, "kjv-next-name.tsv")).Where(l => !l.StartsWith('#'))
            .Select(l => l.Split('\t')).Select(p => (p[0], p[1])).ToList();
        var text = new StringBuilder("verse,name\n");
        foreach (var (prompt, name) in rows) text.Append('"').Append(prompt.Replace("\"", "\"\"")).Append("\",").Append(name).Append('\n');
        var path = Path.Combine(folder, "names.csv");
        File.WriteAllText(path, text.ToString());
        return (path, rows);
    }

    private static float Number(string text) => float.Parse(text, CultureInfo.InvariantCulture);

    [Fact]
    public void Classify_names_the_next_name_of_held_out_verses_as_the_engine_does_and_far_above_chance()
    {
        var folder = Fixtures.TempFolder("cli-classify");
        var (input, expected) = NextNames(folder);
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run("classify", input, "-o", output, "--text-column", "verse", "--labels", string.Join(",", Names),
            "--probabilities", "--quiet");
        Assert.True(code == 0, stderr);
        var rows = CliFiles.ParseCsv(output);
        Assert.Equal(["verse", "name", "label", "label_probability", "p_LORD", "p_God", "p_Israel", "p_Moses", "p_David", "p_Jesus", "error"], rows[0]);
        Assert.Equal(expected.Count + 1, rows.Count);

        using var model = GptModel.Open(Fixtures.DefaultModel);
        var engine = model.Classify(expected.Select(e => e.Prompt), Names);
        int correct = 0;
        for (int i = 0; i < expected.Count; i++)
        {
            var row = rows[i + 1];
            Assert.Equal(engine[i].Label, row[2]);
            Assert.Equal(engine[i].Probabilities[engine[i].Index], Number(row[3]), 5);
            for (int k = 0; k < Names.Length; k++) Assert.Equal(engine[i].Probabilities[k], Number(row[4 + k]), 5);
            Assert.Equal(Number(row[3]), Number(row[4 + Array.IndexOf(Names, row[2])]));
            Assert.Equal(1.0, row[4..10].Sum(p => (double)Number(p)), 4);
            Assert.Equal("", row[10]);
            if (row[2] == " " + expected[i].Name) correct++;
        }
        // Six names: chance is 1/6; the default model gets about 0.76.
        double accuracy = (double)correct / expected.Count;
        Assert.InRange(accuracy, 0.7, 1.0);
    }

    [Fact]
    public void A_template_builds_each_prompt_from_the_row_and_length_normalisation_follows_the_engine()
    {
        var folder = Fixtures.TempFolder("cli-classify-template");
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "speaker,words\nMoses,\"Let my people go, saith the\"\nDavid,The LORD is my\nPaul,\"Grace be unto you, and peace, from\"\n");
        var output = Path.Combine(folder, "out.jsonl");
        string[] labels = [" LORD", " shepherd and my rock", " God our Father"];
        var (code, _, stderr) = CliProcess.Run("classify", input, "-o", output, "--template", "{speaker} said: {words}", "--labels-file",
            Write(folder, "labels.txt", string.Join("\n", labels) + "\n"), "--length-normalized", "--format", "jsonl", "--quiet");
        Assert.True(code == 0, stderr);
        using var model = GptModel.Open(Fixtures.DefaultModel);
        var engine = model.Classify(["Moses said: Let my people go, saith the", "David said: The LORD is my", "Paul said: Grace be unto you, and peace, from"],
            labels, lengthNormalized: true);
        var lines = File.ReadAllLines(output);
        Assert.Equal(3, lines.Length);
        for (int i = 0; i < 3; i++)
        {
            using var row = JsonDocument.Parse(lines[i]);
            Assert.Equal(engine[i].Label, row.RootElement.GetProperty("label").GetString());
            Assert.Equal(JsonValueKind.Number, row.RootElement.GetProperty("label_probability").ValueKind);
            Assert.Equal(engine[i].Probabilities[engine[i].Index], row.RootElement.GetProperty("label_probability").GetSingle(), 5);
        }
    }

    [Fact]
    public void Rows_without_text_are_recorded_and_a_resume_with_other_labels_is_refused()
    {
        var folder = Fixtures.TempFolder("cli-classify-resume");
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "text\nAnd Moses said unto the\n\nThus saith the\n \nAnd the LORD spake unto\n");
        var output = Path.Combine(folder, "out.csv");
        string[] Args(string labels, params string[] extra) => ["classify", input, "-o", output, "--labels", labels, "--quiet", .. extra];
        var stopped = CliProcess.Run(Args(" LORD, people", "--fail-fast"));
        Assert.Equal(2, stopped.ExitCode);
        Assert.Contains("mlnetgpt: line 5: the text is empty", stopped.Stderr);

        var before = CliFiles.Snapshot(folder);
        var refused = CliProcess.Run(Args(" LORD, people, God", "--resume"));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("--labels was [\" LORD\",\" people\"], now [\" LORD\",\" people\",\" God\"]", refused.Stderr);
        CliFiles.AssertUnchanged(before, folder);

        var resumed = CliProcess.Run(Args(" LORD, people", "--resume"));
        Assert.True(resumed.ExitCode == 2, resumed.Stderr);
        var rows = CliFiles.ParseCsv(output);
        Assert.Equal(["text", "label", "label_probability", "error"], rows[0]);
        Assert.Equal(5, rows.Count);
        Assert.Equal("line 5: the text is empty", rows[3][3]);
        Assert.Equal("", rows[3][1]);
        Assert.Equal(" LORD", rows[2][1]);
    }

    [Fact]
    public void A_sharded_classification_one_row_per_batch_merges_to_the_unsharded_output()
    {
        var folder = Fixtures.TempFolder("cli-classify-shards");
        var (input, _) = NextNames(folder);
        // Probabilities' last digits depend on the rows a batch shares (as under another --batch-size); one row per batch shares none.
        string[] Args(string output) => ["classify", input, "-o", output, "--text-column", "verse", "--labels", string.Join(",", Names), "--quiet",
            "--batch-size", "1"];
        var whole = Path.Combine(folder, "whole.csv");
        Assert.Equal(0, CliProcess.Run(Args(whole)).ExitCode);
        var parts = Enumerable.Range(0, 2).Select(k => Path.Combine(folder, $"part{k}.csv")).ToList();
        for (int k = 0; k < 2; k++) Assert.Equal(0, CliProcess.Run([.. Args(parts[k]), "--shard", $"{k}/2"]).ExitCode);
        var merged = Path.Combine(folder, "merged.csv");
        Assert.Equal(0, CliProcess.Run(["merge", merged, .. parts]).ExitCode);
        Assert.Equal(File.ReadAllBytes(whole), File.ReadAllBytes(merged));
    }

    private static string Write(string folder, string name, string text)
    {
        var path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Theory]
    [InlineData("no-labels", "give the labels with --labels A,B,... or --labels-file FILE.")]
    [InlineData("one-label", "--labels: give at least two labels; there is one (' LORD').")]
    [InlineData("repeated-label", "--labels: label 3 repeats ' LORD' (as label 1 does).")]
    [InlineData("empty-label", "--labels: label 2 is empty.")]
    [InlineData("both-label-options", "give --labels or --labels-file, not both.")]
    [InlineData("labels-file-missing", "--labels-file: the file '{folder}/none.txt' does not exist.")]
    [InlineData("labels-file-blank-line", "--labels-file: '{folder}/blank.txt' line 2 is empty.")]
    [InlineData("text-and-template", "give --text-column or --template, not both.")]
    [InlineData("no-text-column", "name the text with --text-column or --template (the input has no 'text' column; columns: verse, name)")]
    [InlineData("unknown-text-column", "--text-column 'nope' is not a column of the input (columns: verse, name)")]
    [InlineData("label-column-taken", "the input already has a column 'label'; the output adds it (the label column): rename one of them.")]
    [InlineData("probability-columns-clash", "the output would have the column 'p_yes' twice (--probabilities (the label ' yes') and --probabilities (the label 'yes'))")]
    [InlineData("shard-out-of-range", "--shard 2/2: the shard index must be below the count (0 to 1).")]
    public void A_bad_classify_invocation_is_refused_in_one_line(string scenario, string expected)
    {
        var folder = Fixtures.TempFolder("cli-classify-bad");
        var input = Write(folder, "in.csv", scenario == "label-column-taken" ? "verse,label\nThus saith the,LORD\n" : "verse,name\nThus saith the,LORD\n");
        var output = Path.Combine(folder, "out.csv");
        string[] args = scenario switch
        {
            "no-labels" => ["--text-column", "verse"],
            "one-label" => ["--text-column", "verse", "--labels", " LORD"],
            "repeated-label" => ["--text-column", "verse", "--labels", " LORD, God, LORD"],
            "empty-label" => ["--text-column", "verse", "--labels", " LORD,, God"],
            "both-label-options" => ["--text-column", "verse", "--labels", " a, b", "--labels-file", Write(folder, "l.txt", "a\nb\n")],
            "labels-file-missing" => ["--text-column", "verse", "--labels-file", Path.Combine(folder, "none.txt")],
            "labels-file-blank-line" => ["--text-column", "verse", "--labels-file", Write(folder, "blank.txt", " a\n\n b\n")],
            "text-and-template" => ["--text-column", "verse", "--template", "{verse}", "--labels", " a, b"],
            "no-text-column" => ["--labels", " a, b"],
            "unknown-text-column" => ["--text-column", "nope", "--labels", " a, b"],
            "label-column-taken" => ["--text-column", "verse", "--labels", " a, b"],
            "probability-columns-clash" => ["--text-column", "verse", "--labels", " yes,yes", "--probabilities"],
            "shard-out-of-range" => ["--text-column", "verse", "--labels", " a, b", "--shard", "2/2"],
            _ => throw new ArgumentException(scenario),
        };
        var (code, stdout, stderr) = CliProcess.Run(["classify", input, "-o", output, .. args]);
        Assert.Equal(1, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("mlnetgpt: error: ", lines[0]);
        Assert.Contains(expected.Replace("{folder}", folder), lines[0]);
        Assert.Equal("", stdout);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void Help_lists_the_added_columns_and_says_that_a_leading_space_matters()
    {
        var help = CliProcess.Run("classify", "--help");
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("a leading space usually matters", help.Stdout);
        Assert.Contains("label_probability  its probability, normalised over the label set", help.Stdout);
        Assert.Contains("p_LABEL", help.Stdout);
        Assert.Contains("--shard", help.Stdout);
        Assert.Contains("130  interrupted", help.Stdout);
    }
}
