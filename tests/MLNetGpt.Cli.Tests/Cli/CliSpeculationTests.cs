using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>
/// --draft-model and --prompt-lookup-num-tokens: speculative decoding changes no output, so a resumed job may change
/// them, and a draft folder that does not exist is refused naming it.
/// </summary>
public sealed class CliSpeculationTests
{
    private static readonly string Model = Fixtures.Folder("tiny-gpt2-a");

    private static string[] Args(string input, string output, params string[] extra) =>
        ["generate", input, "-o", output, "--model", Model, "--max-new-tokens", "12", "--temperature", "0.9", "--top-k", "20",
            "--seed", "5", "--batch-size", "2", "--quiet", .. extra];

    [Fact]
    public void Generate_with_a_draft_model_or_prompt_lookup_writes_the_same_file_as_without()
    {
        var folder = Fixtures.TempFolder("cli-speculation");
        var input = CliFiles.MakeInput(folder, 12);
        var plain = Path.Combine(folder, "plain.csv");
        var drafted = Path.Combine(folder, "drafted.csv");
        var lookup = Path.Combine(folder, "lookup.csv");
        var first = CliProcess.Run(Args(input, plain));
        var second = CliProcess.Run(Args(input, drafted, "--draft-model", Fixtures.Folder("tiny-gpt2-a-pair")));
        var third = CliProcess.Run(Args(input, lookup, "--prompt-lookup-num-tokens", "10"));
        Assert.True(first.ExitCode is 0 or 2, first.Stderr);
        Assert.Equal(first.ExitCode, second.ExitCode);
        Assert.Equal(first.ExitCode, third.ExitCode);
        Assert.Equal(File.ReadAllText(plain), File.ReadAllText(drafted));
        Assert.Equal(File.ReadAllText(plain), File.ReadAllText(lookup));
    }

    [Fact]
    public void A_resume_may_turn_prompt_lookup_on_because_it_changes_no_result()
    {
        var folder = Fixtures.TempFolder("cli-speculation-resume");
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "id,prompt\n1,one\n2,two\n3,three\n4,\n5,five\n6,six\n");
        var reference = Path.Combine(folder, "reference.csv");
        var output = Path.Combine(folder, "out.csv");
        CliProcess.Run(Args(input, reference));
        var stopped = CliProcess.Run(Args(input, output, "--fail-fast"));
        Assert.True(stopped.ExitCode == 2, stopped.Stderr);
        var resumed = CliProcess.Run(Args(input, output, "--resume", "--prompt-lookup-num-tokens", "4"));
        Assert.True(resumed.ExitCode == 2, resumed.Stderr);     // the empty prompt is recorded as a row error
        Assert.DoesNotContain("differs", resumed.Stderr);
        Assert.Equal(File.ReadAllText(reference), File.ReadAllText(output));
    }

    [Fact]
    public void A_draft_model_folder_that_does_not_exist_is_refused_naming_it()
    {
        var folder = Fixtures.TempFolder("cli-speculation-missing");
        var input = CliFiles.MakeInput(folder, 2);
        var missing = Path.Combine(folder, "no-such-model");
        var (code, _, stderr) = CliProcess.Run(Args(input, Path.Combine(folder, "out.csv"), "--draft-model", missing));
        Assert.Equal(1, code);
        Assert.Contains("--draft-model: the folder", stderr);
        Assert.Contains("no-such-model", stderr);
    }

    [Fact]
    public void Help_lists_the_speculation_options()
    {
        var (code, stdout, _) = CliProcess.Run("generate", "--help");
        Assert.Equal(0, code);
        Assert.Contains("--prompt-lookup-num-tokens", stdout);
        Assert.Contains("--draft-model", stdout);
    }
}
