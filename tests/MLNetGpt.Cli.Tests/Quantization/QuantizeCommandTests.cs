using MLNetGpt.Models.Onnx;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Quantization;

/// <summary><c>mlnetgpt quantize</c>, run as a process.</summary>
public sealed class QuantizeCommandTests
{
    [Fact]
    public void Quantize_writes_the_folder_prints_the_numbers_and_reports_progress_on_stderr()
    {
        string output = Path.Combine(Fixtures.TempFolder("cli"), "int8");

        var (exit, stdout, stderr) = CliProcess.Run("quantize", Fixtures.Folder("tiny-gpt2-b"), output, "--bits", "8", "--block-size", "64", "--symmetric", "--accuracy-level", "0", "--verbose");

        Assert.True(exit == 0, stderr);
        Assert.Contains("settings                    8 bits, block size 64, symmetric, accuracy level 0", stdout);
        Assert.Contains("MatMuls rewritten           13", stdout);
        Assert.Contains("MatMuls left as they were   6", stdout);
        Assert.Contains("mlnetgpt: model.onnx: quantizing to 8 bits, block size 64", stderr);
        Assert.Contains("mlnetgpt: model.onnx: left /blocks.0/MatMul as it was: B is computed by Concat", stderr);
        var model = OnnxModelFile.Load(Path.Combine(output, "model.onnx"));
        var node = model.AllNodes().First(n => n.OpType == "MatMulNBits");
        Assert.Equal(8, node.Attribute.Single(a => a.Name == "bits").I);
        Assert.Equal(3, node.Input.Count);   // symmetric: no zero points
    }

    [Theory]
    [InlineData("--bits", "5", "mlnetgpt: error: --bits: Bits must be 4 or 8, not 5.")]
    [InlineData("--block-size", "24", "mlnetgpt: error: --block-size: BlockSize must be a power of two of at least 16 (16, 32, 64, ...), not 24.")]
    [InlineData("--accuracy-level", "7", "mlnetgpt: error: --accuracy-level: AccuracyLevel must be 0, 1, 2, 3 or 4, not 7.")]
    public void A_bad_setting_exits_1_with_one_line_naming_the_option(string option, string value, string message)
    {
        string output = Path.Combine(Fixtures.TempFolder("cli-bad"), "out");
        string[] args = option == "--bits"
            ? ["quantize", Fixtures.Folder("tiny-gpt2-b"), output, option, value]
            : ["quantize", Fixtures.Folder("tiny-gpt2-b"), output, "--bits", "4", option, value];

        var (exit, stdout, stderr) = CliProcess.Run(args);

        Assert.Equal(1, exit);
        Assert.Equal(message, stderr.TrimEnd());
        Assert.Empty(stdout);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void A_non_empty_output_folder_exits_1_with_one_line_naming_it()
    {
        string output = Fixtures.TempFolder("cli-occupied");
        File.WriteAllText(Path.Combine(output, "x.txt"), "x");

        var (exit, _, stderr) = CliProcess.Run("quantize", Fixtures.Folder("tiny-gpt2-b"), output, "--bits", "4");

        Assert.Equal(1, exit);
        Assert.Equal($"mlnetgpt: error: The output folder '{output}' is not empty; choose a new or empty folder.", stderr.TrimEnd());
    }

    [Fact]
    public void Missing_bits_is_a_usage_error()
    {
        var (exit, _, stderr) = CliProcess.Run("quantize", Fixtures.Folder("tiny-gpt2-b"), Path.Combine(Fixtures.TempFolder("cli-nobits"), "out"));
        Assert.Equal(1, exit);
        Assert.StartsWith("mlnetgpt: error: ", stderr);
        Assert.Contains("--bits", stderr);
        Assert.Single(stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public void A_missing_input_folder_exits_1_with_one_line_naming_it()
    {
        string input = Path.Combine(Fixtures.TempFolder("cli-missing"), "nothing");
        var (exit, _, stderr) = CliProcess.Run("quantize", input, Path.Combine(Fixtures.TempFolder("cli-out"), "out"), "--bits", "8");
        Assert.Equal(1, exit);
        Assert.Equal($"mlnetgpt: error: IN: the folder '{input}' does not exist ('default' names the built-in model).", stderr.TrimEnd());
    }

    [Fact]
    public void A_folder_without_a_model_exits_1_with_one_line()
    {
        string input = Fixtures.TempFolder("cli-no-onnx");
        var (exit, _, stderr) = CliProcess.Run("quantize", input, Path.Combine(Fixtures.TempFolder("cli-out"), "out"), "--bits", "4");
        Assert.Equal(1, exit);
        Assert.StartsWith($"mlnetgpt: error: The folder '{input}' holds no ONNX model to quantize", stderr);
        Assert.Single(stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public void The_word_default_names_the_built_in_model_and_a_normal_run_prints_a_short_summary()
    {
        string output = Path.Combine(Fixtures.TempFolder("cli-quantize-default"), "kjv-q8");
        var (exit, stdout, stderr) = CliProcess.Run("quantize", "default", output, "--bits", "8");
        Assert.True(exit == 0, stderr);
        var lines = stderr.TrimEnd().Split('\n').Select(l => l.TrimEnd()).ToArray();
        Assert.Equal(3, lines.Length);
        Assert.Equal("mlnetgpt: model.onnx: quantizing to 8 bits, block size 32", lines[0]);
        Assert.StartsWith("mlnetgpt: model.onnx: 25 of 37 MatMuls quantized, 9,158,767 -> ", lines[1]);
        Assert.Equal($"mlnetgpt: Wrote 5 files to {output}", lines[2]);
        Assert.DoesNotContain("as it was", stderr);
        Assert.Contains("MatMuls left as they were   12: 12 because B is computed by Concat, not a constant weight", stdout);
        using var quantized = GptModel.Open(output);
        Assert.Equal(50257, quantized.Info.VocabularySize);

        var verbose = CliProcess.Run("quantize", "default", Path.Combine(Fixtures.TempFolder("cli-quantize-verbose"), "q"), "--bits", "8", "--verbose");
        Assert.Contains("left /blocks.0/MatMul as it was: B is computed by Concat '/blocks.0/Concat_3', not a constant weight", verbose.Stderr);
        Assert.Contains("quantized /blocks.0/c_attn/MatMul (1 of 37 MatMuls so far)", verbose.Stderr);
    }

    [Fact]
    public void Quantize_help_shows_how_to_name_the_built_in_model_and_its_own_exit_codes()
    {
        var help = CliProcess.Run("quantize", "--help").Stdout;
        Assert.Contains("mlnetgpt quantize default kjv-q4 --bits 4", help);
        Assert.Contains("or 'default' for the built-in model", help);
        Assert.Contains("Exit codes: 0 success, 1 bad usage or model (nothing is written), 130 interrupted", help);
        Assert.DoesNotContain("some rows failed", help);
    }
}
