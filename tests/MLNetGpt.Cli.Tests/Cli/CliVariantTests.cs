using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>--variant picks an onnx-community folder's precision for every command, and is part of the job.</summary>
public sealed class CliVariantTests
{
    private static readonly string Model = Fixtures.Folder("tiny-onnx-community");

    private static string Input(string folder)
    {
        var path = Path.Combine(folder, "in.csv");
        File.WriteAllText(path, "id,prompt\n1,In the beginning\n2,And God said\n3,Blessed are the meek\n");
        return path;
    }

    [Fact]
    public void Info_lists_the_variants_and_the_one_opened()
    {
        var (code, stdout, stderr) = CliProcess.Run("info", "--model", Model, "--variant", "q4");
        Assert.True(code == 0, stderr);
        Assert.Contains("fp32, q4; opened: q4", stdout);
        Assert.Contains("onnx/model_q4.onnx", stdout);
    }

    [Fact]
    public void Generate_runs_the_asked_variant_and_a_resume_with_another_is_refused_naming_it()
    {
        var folder = Fixtures.TempFolder("cli-variant");
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run("generate", Input(folder), "-o", output, "--model", Model, "--variant", "q4", "--max-new-tokens", "4", "--greedy", "--quiet");
        Assert.True(code == 0, stderr);
        Assert.Equal(4, File.ReadAllLines(output).Length);

        // A job stopped by --fail-fast at its empty prompt, then resumed with another variant.
        var input = Path.Combine(folder, "stops.csv");
        File.WriteAllText(input, "id,prompt\n1,one\n2,two\n3,\n4,four\n");
        var stopped = Path.Combine(folder, "stopped.csv");
        var first = CliProcess.Run("generate", input, "-o", stopped, "--model", Model, "--variant", "q4", "--max-new-tokens", "3", "--greedy", "--quiet", "--fail-fast");
        Assert.True(first.ExitCode == 2, first.Stderr);
        var partial = File.ReadAllBytes(stopped + ".partial");
        var resumed = CliProcess.Run("generate", input, "-o", stopped, "--model", Model, "--variant", "fp32", "--max-new-tokens", "3", "--greedy", "--quiet", "--resume");
        Assert.Equal(1, resumed.ExitCode);
        Assert.Contains("--variant was q4, now fp32", resumed.Stderr);
        Assert.Equal(partial, File.ReadAllBytes(stopped + ".partial"));
    }

    [Fact]
    public void A_variant_the_folder_lacks_is_refused_listing_the_ones_it_has()
    {
        var folder = Fixtures.TempFolder("cli-variant-missing");
        var (code, _, stderr) = CliProcess.Run("generate", Input(folder), "-o", Path.Combine(folder, "out.csv"), "--model", Model, "--variant", "fp16", "--quiet");
        Assert.Equal(1, code);
        Assert.Contains("no 'fp16' variant under onnx/", stderr);
        Assert.Contains("fp32, q4", stderr);
    }

    [Fact]
    public void An_empty_variant_is_refused()
    {
        var folder = Fixtures.TempFolder("cli-variant-empty");
        var (code, _, stderr) = CliProcess.Run("generate", Input(folder), "-o", Path.Combine(folder, "out.csv"), "--model", Model, "--variant", " ");
        Assert.Equal(1, code);
        Assert.Contains("--variant is empty", stderr);
    }
}
