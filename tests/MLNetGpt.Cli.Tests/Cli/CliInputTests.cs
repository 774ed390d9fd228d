using System.Diagnostics;
using System.Text;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>
/// Input and output problems the batch job finds before it generates anything: CSV structure, encoding,
/// output paths, a model that does not load. Nothing is generated or written for a job that is refused.
/// </summary>
public sealed class CliInputTests
{
    private static readonly string Model = Fixtures.Folder("tiny-gpt2-a");

    private static (int ExitCode, string Stdout, string Stderr) Generate(string input, string output, params string[] extra) =>
        CliProcess.Run(["generate", input, "-o", output, "--model", Model, "--max-new-tokens", "2", "--seed", "1", "--quiet", .. extra]);

    private static void AssertNothingWritten(string output)
    {
        var (partial, manifest, lockFile) = CliFiles.Beside(output);
        Assert.False(File.Exists(output), "no output");
        Assert.False(File.Exists(partial), "no partial output: nothing was generated");
        Assert.False(File.Exists(manifest), "no job manifest");
        Assert.False(File.Exists(lockFile), "no lock left behind");
    }

    [Fact]
    public void A_row_with_more_fields_than_the_header_is_refused_naming_the_line_and_both_counts()
    {
        var folder = Fixtures.TempFolder("cli-wide-row");
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "id,prompt\n1,first\n2,\"second\nspans two lines\"\n3,third, with a comma\n4,fourth\n");
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = Generate(input, output);
        Assert.Equal(1, code);
        Assert.Contains("line 5", stderr);
        Assert.Contains("3 fields", stderr);
        Assert.Contains("header has 2", stderr);
        AssertNothingWritten(output);
    }

    [Fact]
    public void Carriage_return_line_endings_are_read_as_rows_and_kept_in_the_output()
    {
        var folder = Fixtures.TempFolder("cli-cr");
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "id,prompt\r1,hello there\r2,\"two\rlines\"\r3,world\r");
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = Generate(input, output);
        Assert.True(code == 0, stderr);
        var text = File.ReadAllText(output);
        Assert.StartsWith("id,prompt,completion,finish_reason,error\r1,hello there,", text);
        Assert.Contains("\r2,\"two\rlines\",", text);
        Assert.Contains("\r3,world,", text);
        Assert.DoesNotContain("error\r\n", text);
        Assert.EndsWith("\r", text);
    }

    [Fact]
    public void Invalid_utf8_is_reported_on_its_physical_line_with_its_byte_offset()
    {
        var folder = Fixtures.TempFolder("cli-utf8");
        var input = Path.Combine(folder, "in.csv");
        var bytes = new List<byte>(Encoding.UTF8.GetBytes("id,prompt\n1,a\n2,\"b\nc\"\n3,d\n4,e\n5,caf"));
        long offset = bytes.Count;
        bytes.Add(0xE9);   // Latin-1 'é': not UTF-8
        bytes.AddRange(Encoding.UTF8.GetBytes("\n6,f\n"));
        File.WriteAllBytes(input, bytes.ToArray());
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = Generate(input, output);
        Assert.Equal(1, code);
        Assert.Contains("line 7", stderr);
        Assert.Contains($"byte offset {offset}", stderr);
        Assert.Contains("0xE9", stderr);
        AssertNothingWritten(output);
    }

    [Fact]
    public void Invalid_utf8_far_into_the_file_is_found_before_any_row_is_generated()
    {
        var folder = Fixtures.TempFolder("cli-utf8-late");
        var input = Path.Combine(folder, "in.csv");
        var text = new StringBuilder("id,prompt\n");
        for (int i = 2; i <= 5000; i++) text.Append(i).Append(",row ").Append(i).Append('\n');
        var bytes = new List<byte>(Encoding.UTF8.GetBytes(text.ToString() + "5001,bad "));
        long offset = bytes.Count;
        bytes.Add(0xFF);
        bytes.AddRange(Encoding.UTF8.GetBytes("\n5002,after\n"));
        File.WriteAllBytes(input, bytes.ToArray());
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = Generate(input, output);
        Assert.Equal(1, code);
        Assert.Contains("line 5001", stderr);
        Assert.Contains($"byte offset {offset}", stderr);
        AssertNothingWritten(output);
    }

    [Theory]
    [InlineData("output-is-folder", "is a folder")]
    [InlineData("output-unwritable", "cannot be written")]
    [InlineData("partial-is-folder", "is a folder")]
    [InlineData("manifest-is-folder", "is a folder")]
    [InlineData("lock-is-folder", "is a folder")]
    [InlineData("shard-manifest-is-folder", "is a folder, but mlnetgpt keeps a shard's manifest there")]
    public void Output_path_problems_are_found_before_anything_is_generated(string problem, string expected)
    {
        var folder = Fixtures.TempFolder("cli-output-path");
        var input = CliFiles.MakeInput(folder, 20);
        var output = Path.Combine(folder, "out.csv");
        var (partial, manifest, lockFile) = CliFiles.Beside(output);
        string named = problem switch
        {
            "output-is-folder" => output,
            "output-unwritable" => output,
            "partial-is-folder" => partial,
            "manifest-is-folder" => manifest,
            "shard-manifest-is-folder" => output + ".job.json",
            _ => lockFile,
        };
        bool immutable = false;
        if (problem == "output-unwritable")
        {
            File.WriteAllText(output, "an earlier result\n");
            immutable = MakeUnwritable(output);
        }
        else
        {
            Directory.CreateDirectory(named);
        }
        try
        {
            var (code, _, stderr) = Generate(input, output);
            Assert.Equal(1, code);
            Assert.Contains(named, stderr);
            Assert.Contains(expected, stderr);
            if (problem != "partial-is-folder") Assert.False(File.Exists(partial) || Directory.Exists(partial), "nothing was generated");
            else Assert.Empty(Directory.GetFileSystemEntries(partial));
        }
        finally
        {
            if (immutable) Process.Start("chattr", ["-i", output])!.WaitForExit();
        }
    }

    /// <summary>
    /// Makes a file that this process cannot open for writing: read-only for an ordinary user; for root,
    /// whom permissions do not stop, the immutable attribute (chattr +i). Returns whether chattr was used.
    /// </summary>
    private static bool MakeUnwritable(string path)
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("this test makes a file unwritable the Linux way");
        if (Environment.UserName != "root")
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead);
            return false;
        }
        using var chattr = Process.Start(new ProcessStartInfo("chattr", ["+i", path]) { RedirectStandardError = true })!;
        chattr.WaitForExit();
        Assert.True(chattr.ExitCode == 0, "running as root, this test needs chattr +i (an ext4-like file system) to make a file unwritable: " + chattr.StandardError.ReadToEnd());
        return true;
    }

    [Fact]
    public void A_model_that_fails_to_load_leaves_nothing_behind()
    {
        var folder = Fixtures.TempFolder("cli-bad-model");
        var model = Fixtures.CopyOf("tiny-gpt2-a");
        File.WriteAllBytes(Path.Combine(model, "model.onnx"), Encoding.ASCII.GetBytes("not an ONNX model"));
        var input = CliFiles.MakeInput(folder, 5);
        var output = Path.Combine(folder, "out.csv");
        var (code, _, stderr) = CliProcess.Run("generate", input, "-o", output, "--model", model, "--quiet");
        Assert.Equal(1, code);
        Assert.StartsWith("mlnetgpt: error: ", stderr);
        AssertNothingWritten(output);
    }
}
