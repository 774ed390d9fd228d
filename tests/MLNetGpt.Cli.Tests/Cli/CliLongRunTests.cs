using System.Text;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>Long batch runs of the real tool: flat memory, interruption and resume.</summary>
public sealed class CliLongRunTests
{
    private static readonly string Model = Fixtures.Folder("tiny-gpt2-b");

    private static string MakeInput(string folder, int rows)
    {
        var path = Path.Combine(folder, $"in-{rows}.csv");
        var text = new StringBuilder("id,prompt\n");
        for (int i = 0; i < rows; i++) text.Append(i).Append(",\"row ").Append(i % 97).Append(", the end\"\n");
        File.WriteAllText(path, text.ToString());
        return path;
    }

    private static long PeakWorkingSet(string stderr)
    {
        var line = stderr.Split('\n').Single(l => l.StartsWith("mlnetgpt: peak working set: ", StringComparison.Ordinal));
        return long.Parse(line.Split(": ")[2].Split(' ')[0]);
    }

    [Fact]
    public void Peak_memory_does_not_grow_with_the_row_count()
    {
        var folder = Fixtures.TempFolder("cli-memory");
        long Run(int rows)
        {
            var (code, _, stderr) = CliProcess.Run("generate", MakeInput(folder, rows), "-o", Path.Combine(folder, $"out-{rows}.csv"), "--model", Model,
                "--max-new-tokens", "1", "--batch-size", "32", "--greedy", "--quiet", "--report-memory");
            Assert.True(code == 0, stderr);
            Assert.Equal(rows + 1, File.ReadAllLines(Path.Combine(folder, $"out-{rows}.csv")).Length);
            return PeakWorkingSet(stderr);
        }
        long small = Run(2_000), large = Run(20_000);
        // Ten times the rows may not cost more than a small, constant margin (GC and allocator noise).
        Assert.True(large < small * 1.2 + 32L * 1024 * 1024, $"peak working set {small / 1048576} MB at 2,000 rows, {large / 1048576} MB at 20,000 rows");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_interrupted_or_crashed_run_resumes_to_the_same_output_as_an_uninterrupted_one(bool crash)
    {
        var folder = Fixtures.TempFolder("cli-resume");
        var input = MakeInput(folder, 400);
        string[] Args(string output) => ["generate", input, "-o", output, "--model", Model, "--max-new-tokens", "12", "--batch-size", "4",
            "--temperature", "0.9", "--seed", "7", "--stop", "x", "--quiet"];

        var reference = Path.Combine(folder, "reference.csv");
        var full = CliProcess.Run(Args(reference));
        Assert.True(full.ExitCode == 0, full.Stderr);

        var output = Path.Combine(folder, "resumed.csv");
        var partial = output + ".partial";
        using (var run = CliProcess.Start(Args(output)))
        {
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (!run.HasExited && DateTime.UtcNow < deadline && (!File.Exists(partial) || CountLines(partial) < 60)) Thread.Sleep(50);
            Assert.False(run.HasExited, "the run finished before it could be interrupted");
            if (crash) run.Crash();
            else run.Interrupt();
            var (code, _, stderr) = run.WaitForExit(TimeSpan.FromMinutes(2));
            if (!crash)
            {
                Assert.Equal(130, code);
                Assert.Contains("--resume", stderr);
            }
        }
        Assert.False(File.Exists(output), "an interrupted run must not leave a complete-looking output");
        long rowsBefore = CountLines(partial) - 1;
        Assert.InRange(rowsBefore, 1, 399);

        var resumed = CliProcess.Run([.. Args(output), "--resume"]);
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal(File.ReadAllBytes(reference), File.ReadAllBytes(output));
        Assert.False(File.Exists(partial));
    }

    [Fact]
    public void Resume_without_an_interrupted_run_is_a_usage_error()
    {
        var folder = Fixtures.TempFolder("cli-resume-none");
        var (code, _, stderr) = CliProcess.Run("generate", MakeInput(folder, 3), "-o", Path.Combine(folder, "out.csv"), "--model", Model, "--resume");
        Assert.Equal(1, code);
        Assert.Contains("no interrupted run to continue", stderr);
    }

    private static long CountLines(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        long lines = 0;
        int b;
        while ((b = stream.ReadByte()) >= 0) if (b == '\n') lines++;
        return lines;
    }
}
