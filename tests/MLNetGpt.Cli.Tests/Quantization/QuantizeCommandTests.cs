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

        var (exit, stdout, stderr) = CliProcess.Run("quantize", Fixtures.Folder("tiny-gpt2-b"), output, "--bits", "8", "--block-size", "64", "--symmetric", "--accuracy-level", "0");

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
        Assert.Equal($"mlnetgpt: error: IN: the model folder '{input}' does not exist.", stderr.TrimEnd());
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
}
