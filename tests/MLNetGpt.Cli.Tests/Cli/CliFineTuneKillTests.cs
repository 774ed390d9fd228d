using System.Diagnostics;
using System.Text;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>
/// <c>mlnetgpt finetune</c> as a real process with the real training graph: killed with SIGKILL after a periodic
/// checkpoint, then run again with <c>--resume</c>, it writes the same weights as a run that was never interrupted.
/// </summary>
public sealed class CliFineTuneKillTests
{
    private static readonly string[] Flags =
    [
        "--model", FineTuneKit.Model, "--steps", "60", "--batch-size", "2", "--sequence-length", "16", "--learning-rate", "0.003",
        "--warmup-steps", "3", "--checkpoint-every", "3", "--threads", "1", "--seed", "7", "--quiet",
    ];

    private static string TrainingCsv(string folder)
    {
        var text = new StringBuilder("text\n");
        foreach (var t in FineTuneKit.Texts.Concat(FineTuneKit.Held)) text.Append('"').Append(t.Replace("\"", "\"\"")).Append("\"\n");
        string path = Path.Combine(folder, "train.csv");
        File.WriteAllText(path, text.ToString());
        return path;
    }

    /// <summary>The written model's weights: every ONNX file of the folder, by name.</summary>
    private static Dictionary<string, byte[]> Weights(string folder) =>
        Directory.EnumerateFiles(folder).Where(f => Path.GetFileName(f).Contains(".onnx", StringComparison.Ordinal))
            .ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);

    [LinuxFact]
    public void Killed_with_sigkill_after_a_checkpoint_then_resumed_it_writes_the_weights_of_an_uninterrupted_run_byte_for_byte()
    {
        string folder = Fixtures.TempFolder("cli-kill9");
        string train = TrainingCsv(folder);

        string output = Path.Combine(folder, "tuned");
        string checkpoint = Path.Combine(output + ".checkpoint", TrainingCheckpoint.FileName);
        using (var run = CliProcess.Start(["finetune", train, "-o", output, .. Flags]))
        {
            var clock = Stopwatch.StartNew();
            while (!File.Exists(checkpoint) && !run.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(5);
            Assert.True(File.Exists(checkpoint), $"no checkpoint appeared; the tool {(run.HasExited ? "exited" : "still runs")}. stderr: {run.Stderr}");
            Assert.False(run.HasExited, "the fine-tune ended before it could be killed");
            run.Crash();   // SIGKILL: nothing more is written
            run.WaitForExit(TimeSpan.FromMinutes(1));
        }
        Assert.False(Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any(), "a killed run left a tuned model behind");
        Assert.True(File.Exists(checkpoint));

        var resumed = CliProcess.Run(["finetune", train, "-o", output, "--resume", .. Flags]);
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        var report = FineTuneReport.FromJson(File.ReadAllText(Path.Combine(output, "finetune_report.json")));
        Assert.True(report.ResumedFromStep is >= 3 and < 60, $"resumed from step {report.ResumedFromStep}");
        Assert.Equal(60, report.StepsRun);

        string straight = Path.Combine(folder, "straight");
        var uninterrupted = CliProcess.Run(["finetune", train, "-o", straight, .. Flags]);
        Assert.True(uninterrupted.ExitCode == 0, uninterrupted.Stderr);

        var expected = Weights(straight);
        var actual = Weights(output);
        Assert.NotEmpty(expected);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, bytes) in expected) Assert.True(bytes.AsSpan().SequenceEqual(actual[name]), $"{name} differs from the uninterrupted run's");
        Assert.False(Weights(FineTuneKit.Model)["model.onnx"].AsSpan().SequenceEqual(expected["model.onnx"]), "training changed no weight");
    }
}
