using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>Answers that are right by the rules but likely not what was wanted are counted and explained at the end of a job.</summary>
public sealed class CliNotesTests
{
    [Fact]
    public void Greedy_completions_the_model_ends_at_once_are_counted_and_the_option_that_changes_it_is_named()
    {
        var folder = Fixtures.TempFolder("cli-notes-empty");
        var input = Path.Combine(folder, "in.csv");
        // Whole verses: the default model's greedy choice after a finished verse is to end the text.
        File.WriteAllText(input, "prompt\n\"In the beginning God created the heaven and the earth.\"\n\"And God said, Let there be light: and there was light.\"\n" +
            "\"Jesus wept.\"\n");
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run("generate", input, "-o", output, "--greedy", "--max-new-tokens", "8", "--quiet");
        Assert.True(code == 0, stderr);
        var rows = CliFiles.ParseCsv(output).Skip(1).ToList();
        int empty = rows.Count(r => r[1].Length == 0 && r[2] == "eos");
        Assert.True(empty > 0, "the default model should end some whole verses at once");
        Assert.Contains($"mlnetgpt: warning: {empty} of 3 completions are empty: the model ended them at once with its end-of-sequence token " +
            "(finish_reason eos). --min-new-tokens N makes it write at least N tokens first", stderr);

        var longer = Path.Combine(folder, "min.csv");
        var again = CliProcess.Run("generate", input, "-o", longer, "--greedy", "--max-new-tokens", "8", "--min-new-tokens", "2", "--quiet");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.DoesNotContain("completions are empty", again.Stderr);
        Assert.All(CliFiles.ParseCsv(longer).Skip(1), r => Assert.NotEqual("", r[1]));
    }

    [Fact]
    public void Labels_the_model_cannot_tell_apart_are_warned_about_and_tied_rows_are_counted()
    {
        var folder = Fixtures.TempFolder("cli-notes-ties");
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "text\nThis program is free software\nPermission is hereby granted\n");
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run("classify", input, "-o", output, "--labels", " GPL, Apache, Mozilla", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Contains("mlnetgpt: warning: ClassifyText: the labels ' GPL', ' Apache', ' Mozilla' are the same to this model", stderr);
        Assert.Contains("mlnetgpt: warning: 2 of 2 rows have two or more labels tied for the best probability", stderr);
    }
}
