using MLNetGpt.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace MLNetGpt.Tests.Cli;

/// <summary>
/// The batch job as something that cannot lose work: SIGKILL at any moment followed by --resume,
/// a resume that refuses to continue a different job, and one writer per output.
/// </summary>
public sealed class CliResumeTests(ITestOutputHelper log)
{
    private static readonly string Model = Fixtures.Folder("tiny-gpt2-a");

    // The moments of the resume repair a timer cannot hit reliably; the tool kills itself there with SIGKILL
    // when MLNETGPT_KILL_AT names one of them.
    private static readonly string[] RepairMoments = ["resume-scanned", "resume-truncated", "manifest-written"];

    private static string[] Args(string input, string output, params string[] extra) =>
        ["generate", input, "-o", output, "--model", Model, "--max-new-tokens", "6", "--temperature", "0.9", "--top-k", "20",
            "--seed", "5", "--batch-size", "4", "--quiet", .. extra];

    /// <summary>The arguments with one option's value replaced (or the option added).</summary>
    private static string[] With(string[] args, string option, string? value = null)
    {
        int at = Array.IndexOf(args, option);
        if (at < 0) return value is null ? [.. args, option] : [.. args, option, value];
        var copy = args.ToArray();
        copy[at + 1] = value!;
        return copy;
    }

    [Fact]
    public void Twenty_sigkills_during_generation_and_during_the_resume_repair_each_followed_by_resume_give_the_uninterrupted_output()
    {
        var folder = Fixtures.TempFolder("cli-kill");
        var input = CliFiles.MakeInput(folder, 360);
        var reference = Path.Combine(folder, "reference.csv");
        var full = CliProcess.Run(Args(input, reference));
        Assert.True(full.ExitCode == 2, full.Stderr);   // the empty prompts are recorded as row errors

        var output = Path.Combine(folder, "out.csv");
        var (partial, manifest, lockFile) = CliFiles.Beside(output);
        long headerBytes = File.ReadLines(reference).First().Length + 1;
        // Moments and cut sizes come from seeded generators; how many polls a wait takes does not change them.
        var moments = new Random(20261201);
        var cuts = new Random(7);
        var pauses = new Random(11);
        int kills = 0, repairKills = 0, generationKills = 0, torn = 0;
        while (kills < 20)
        {
            bool resume = File.Exists(partial);
            var args = resume ? [.. Args(input, output), "--resume"] : Args(input, output);
            if (resume && kills % 3 == 1)
            {
                string moment = RepairMoments[repairKills++ % RepairMoments.Length];
                var killed = CliProcess.Run(new Dictionary<string, string> { ["MLNETGPT_KILL_AT"] = moment }, args);
                Assert.True(killed.ExitCode == 137, $"expected SIGKILL at {moment}, got exit {killed.ExitCode}: {killed.Stderr}");
                log.WriteLine($"kill {++kills}: at {moment}, partial {CliFiles.CountLines(partial)} lines");
                continue;
            }
            long target = CliFiles.CountLines(partial) + moments.Next(2, 24);
            long floor = Math.Max(File.Exists(partial) ? new FileInfo(partial).Length : 0, headerBytes);
            using (var run = CliProcess.Start(args))
            {
                var deadline = DateTime.UtcNow.AddMinutes(1);
                while (!run.HasExited && DateTime.UtcNow < deadline && CliFiles.CountLines(partial) < target) Thread.Sleep(pauses.Next(1, 15));
                Assert.False(run.HasExited, $"the run ended before kill {kills + 1}: {run.Stderr}");
                run.Crash();
                run.WaitForExit(TimeSpan.FromMinutes(1));
            }
            kills++;
            if (generationKills++ % 3 == 2)
            {
                // A kill in the middle of a write leaves the first bytes of a row: cut the file inside its last row.
                // Only bytes this run wrote are cut: what the partial held before it are finished rows, which a kill cannot damage.
                var length = new FileInfo(partial).Length;
                long cut = Math.Min(cuts.Next(1, 40), length - floor - 1);
                if (cut > 0)
                {
                    using (var stream = new FileStream(partial, FileMode.Open, FileAccess.Write)) stream.SetLength(length - cut);
                    torn++;
                }
            }
            log.WriteLine($"kill {kills}: during generation, partial {CliFiles.CountLines(partial)} lines");
        }
        Assert.True(repairKills >= 6 && torn >= 4, $"{repairKills} repair kills, {torn} torn rows");

        var finish = CliProcess.Run([.. Args(input, output), "--resume"]);
        Assert.True(finish.ExitCode == 2, finish.Stderr);
        Assert.Equal(File.ReadAllBytes(reference), File.ReadAllBytes(output));
        Assert.False(File.Exists(partial));
        Assert.False(File.Exists(manifest));
        Assert.False(File.Exists(lockFile));
    }

    /// <summary>An output partial of 5 rows: the sixth row's prompt is empty and --fail-fast stops there.</summary>
    private static (string Folder, string Input, string Output) StoppedJob(string label, string[] extra)
    {
        var folder = Fixtures.TempFolder(label);
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "id,prompt\n1,one\n2,two\n3,three\n4,four\n5,five\n6,\n7,seven\n8,eight\n9,nine\n");
        var output = Path.Combine(folder, "out.csv");
        var stopped = CliProcess.Run([.. Args(input, output), "--fail-fast", .. extra]);
        Assert.True(stopped.ExitCode == 2, stopped.Stderr);
        Assert.Equal(6, CliFiles.CountLines(CliFiles.Beside(output).Partial));
        return (folder, input, output);
    }

    [Theory]
    [InlineData("changed-cell", "the input")]
    [InlineData("deleted-rows", "the input")]
    [InlineData("added-rows", "the input")]
    [InlineData("seed", "--seed was 5, now 6")]
    [InlineData("greedy", "--greedy")]
    [InlineData("temperature", "--temperature was 0.9, now 0.7")]
    [InlineData("max-new-tokens", "--max-new-tokens was 6, now 7")]
    [InlineData("typical-p", "--typical-p was not given, now 0.5")]
    [InlineData("format", "--format was csv, now jsonl")]
    [InlineData("output-column", "--output-column was completion, now answer")]
    public void Resume_refuses_another_job_naming_the_difference_and_leaves_the_partial_untouched(string change, string expected)
    {
        var (folder, input, output) = StoppedJob("cli-resume-diff", []);
        string[] args = Args(input, output, "--resume");
        switch (change)
        {
            case "changed-cell": File.WriteAllText(input, File.ReadAllText(input).Replace("2,two", "2,TWO")); break;
            case "deleted-rows": File.WriteAllText(input, File.ReadAllText(input).Replace("2,two\n3,three\n", "")); break;
            case "added-rows": File.AppendAllText(input, "10,ten\n"); break;
            case "seed": args = With(args, "--seed", "6"); break;
            case "greedy": args = With(args, "--greedy"); break;
            case "temperature": args = With(args, "--temperature", "0.7"); break;
            case "max-new-tokens": args = With(args, "--max-new-tokens", "7"); break;
            case "typical-p": args = With(args, "--typical-p", "0.5"); break;
            case "format": args = With(args, "--format", "jsonl"); break;
            case "output-column": args = With(args, "--output-column", "answer"); break;
        }
        var before = CliFiles.Snapshot(folder);
        var (code, _, stderr) = CliProcess.Run(args);
        Assert.Equal(1, code);
        Assert.Contains("--resume: the job differs from the one in", stderr);
        Assert.Contains(expected, stderr);
        CliFiles.AssertUnchanged(before, folder);
    }

    [Fact]
    public void Resume_names_every_field_that_differs_at_once()
    {
        var (folder, input, output) = StoppedJob("cli-resume-diffs", []);
        File.AppendAllText(input, "10,ten\n");
        var before = CliFiles.Snapshot(folder);
        var (code, _, stderr) = CliProcess.Run(With(With(Args(input, output, "--resume"), "--seed", "6"), "--max-new-tokens", "7"));
        Assert.Equal(1, code);
        Assert.Contains("the input", stderr);
        Assert.Contains("--seed was 5, now 6", stderr);
        Assert.Contains("--max-new-tokens was 6, now 7", stderr);
        CliFiles.AssertUnchanged(before, folder);
    }

    [Fact]
    public void Resume_of_the_same_job_continues_after_a_fail_fast_stop_and_batch_size_and_threads_may_change()
    {
        var (_, input, output) = StoppedJob("cli-resume-same", []);
        var reference = Path.Combine(Path.GetDirectoryName(output)!, "reference.csv");
        Assert.Equal(2, CliProcess.Run(Args(input, reference)).ExitCode);
        var resumed = CliProcess.Run(With(With(Args(input, output, "--resume"), "--batch-size", "3"), "--threads", "1"));
        Assert.True(resumed.ExitCode == 2, resumed.Stderr);
        Assert.Equal(File.ReadAllBytes(reference), File.ReadAllBytes(output));
    }

    [Fact]
    public void Resume_refuses_a_partial_without_its_job_manifest()
    {
        var (folder, input, output) = StoppedJob("cli-resume-nomanifest", []);
        File.Delete(CliFiles.Beside(output).Manifest);
        var before = CliFiles.Snapshot(folder);
        var (code, _, stderr) = CliProcess.Run(Args(input, output, "--resume"));
        Assert.Equal(1, code);
        Assert.Contains("has no job manifest", stderr);
        CliFiles.AssertUnchanged(before, folder);
    }

    [Fact]
    public void Resume_refuses_a_partial_whose_finished_rows_were_edited()
    {
        var (folder, input, output) = StoppedJob("cli-resume-edited", []);
        var partial = CliFiles.Beside(output).Partial;
        File.WriteAllText(partial, File.ReadAllText(partial).Replace("2,two,", "2,TWO,"));
        var before = CliFiles.Snapshot(folder);
        var (code, _, stderr) = CliProcess.Run(Args(input, output, "--resume"));
        Assert.Equal(1, code);
        Assert.Contains("finished rows were changed", stderr);
        CliFiles.AssertUnchanged(before, folder);
    }

    [Fact]
    public void Resume_after_the_job_completed_says_there_is_nothing_to_continue_and_that_the_output_exists()
    {
        var folder = Fixtures.TempFolder("cli-resume-done");
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "id,prompt\n1,one\n");
        var output = Path.Combine(folder, "out.csv");
        Assert.Equal(0, CliProcess.Run(Args(input, output)).ExitCode);
        var (code, _, stderr) = CliProcess.Run(Args(input, output, "--resume"));
        Assert.Equal(1, code);
        Assert.Contains("there is no interrupted run to continue", stderr);
        Assert.Contains($"'{output}' does, so the job may have completed", stderr);
    }

    [Fact]
    public void A_run_without_resume_refuses_to_discard_an_interrupted_partial()
    {
        var (folder, input, output) = StoppedJob("cli-fresh-over-partial", []);
        var before = CliFiles.Snapshot(folder);
        var (code, _, stderr) = CliProcess.Run(Args(input, output));
        Assert.Equal(1, code);
        Assert.Contains("holds 5 rows of an interrupted run", stderr);
        Assert.Contains("--resume", stderr);
        CliFiles.AssertUnchanged(before, folder);
    }

    [Fact]
    public void A_second_run_on_the_same_output_is_refused_naming_the_first_and_a_stale_lock_is_taken_over_with_a_warning()
    {
        var folder = Fixtures.TempFolder("cli-lock");
        var input = CliFiles.MakeInput(folder, 1200);
        var output = Path.Combine(folder, "out.csv");
        var (partial, _, lockFile) = CliFiles.Beside(output);
        int firstId;
        using (var first = CliProcess.Start(Args(input, output)))
        {
            firstId = first.Id;
            var deadline = DateTime.UtcNow.AddMinutes(1);
            while (!first.HasExited && DateTime.UtcNow < deadline && CliFiles.CountLines(partial) < 20) Thread.Sleep(20);
            Assert.False(first.HasExited, first.Stderr);

            var second = CliProcess.Run(Args(input, output));
            Assert.Equal(1, second.ExitCode);
            Assert.Contains($"pid {firstId}", second.Stderr);
            Assert.Contains("started", second.Stderr);
            var resumeToo = CliProcess.Run(Args(input, output, "--resume"));
            Assert.Equal(1, resumeToo.ExitCode);
            Assert.Contains($"pid {firstId}", resumeToo.Stderr);
            Assert.False(first.HasExited, "the first run must not be disturbed");
            first.Crash();
            first.WaitForExit(TimeSpan.FromMinutes(1));
        }
        Assert.True(File.Exists(lockFile), "a killed run leaves its lock behind");

        var taken = CliProcess.Run(Args(input, output, "--resume"));
        Assert.True(taken.ExitCode == 2, taken.Stderr);
        Assert.Contains("mlnetgpt: warning: ", taken.Stderr);
        Assert.Contains($"pid {firstId}", taken.Stderr);
        Assert.Contains("no longer running", taken.Stderr);
        Assert.Equal(CliFiles.ParseCsv(input).Count, CliFiles.ParseCsv(output).Count);
        Assert.False(File.Exists(lockFile));
    }

    [Fact]
    public void An_input_that_changes_while_the_job_runs_stops_the_job_before_its_output_is_moved_into_place()
    {
        var folder = Fixtures.TempFolder("cli-input-changes");
        var input = CliFiles.MakeInput(folder, 1200);
        var output = Path.Combine(folder, "out.csv");
        var partial = CliFiles.Beside(output).Partial;
        using var run = CliProcess.Start(Args(input, output));
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (!run.HasExited && DateTime.UtcNow < deadline && CliFiles.CountLines(partial) < 20) Thread.Sleep(20);
        Assert.False(run.HasExited, run.Stderr);
        File.AppendAllText(input, "1200,a row added while the job ran,n0\n");
        var (code, _, stderr) = run.WaitForExit(TimeSpan.FromMinutes(2));
        Assert.Equal(1, code);
        Assert.Contains($"the input '{input}' changed while the job ran", stderr);
        Assert.False(File.Exists(output));
        Assert.True(File.Exists(partial));
        var resumed = CliProcess.Run(Args(input, output, "--resume"));
        Assert.Equal(1, resumed.ExitCode);
        Assert.Contains("the input", resumed.Stderr);
    }

    [Fact]
    public void Resume_memory_does_not_grow_with_the_size_of_the_partial()
    {
        var folder = Fixtures.TempFolder("cli-resume-memory");
        long PeakOfResume(int rows)
        {
            var input = Path.Combine(folder, $"in-{rows}.csv");
            var notes = new string('n', 4000);
            using (var writer = new StreamWriter(input))
            {
                writer.Write("id,prompt,notes\n");
                for (int i = 0; i < rows; i++) writer.Write($"{i},row {i % 97},{notes}\n");
                writer.Write($"{rows},,last\n");   // an empty prompt: --fail-fast stops just before the end
            }
            var output = Path.Combine(folder, $"out-{rows}.csv");
            string[] args = ["generate", input, "-o", output, "--model", Model, "--max-new-tokens", "1", "--greedy", "--batch-size", "32", "--quiet"];
            Assert.Equal(2, CliProcess.Run([.. args, "--fail-fast"]).ExitCode);
            Assert.True(new FileInfo(CliFiles.Beside(output).Partial).Length > rows * 4000L);
            var resumed = CliProcess.Run([.. args, "--resume", "--report-memory"]);
            Assert.True(resumed.ExitCode == 2, resumed.Stderr);
            var line = resumed.Stderr.Split('\n').Single(l => l.StartsWith("mlnetgpt: peak working set: ", StringComparison.Ordinal));
            return long.Parse(line.Split(": ")[2].Split(' ')[0]);
        }
        long small = PeakOfResume(200), large = PeakOfResume(10_000);
        // A 40 MB partial may not cost more than a small, constant margin over a 0.8 MB one (GC and allocator noise).
        Assert.True(large < small * 1.2 + 32L * 1024 * 1024, $"peak working set {small / 1048576} MB with a 0.8 MB partial, {large / 1048576} MB with a 40 MB one");
    }
}
