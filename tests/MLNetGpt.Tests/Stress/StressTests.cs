using System.Diagnostics;
using System.Text;
using MLNetGpt.Tests.Chat;
using MLNetGpt.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace MLNetGpt.Tests.Stress;

/// <summary>
/// Ten thousand random cases each of damaged real chat templates, random regexes and random JSON schemas, run in a
/// child process with a 256 KB stack and a 1 GiB heap limit: a stack overflow or a runaway allocation would end the
/// child (a failed exit code here), never the test host. Every case must render or compile, or be refused with the
/// engine's own error (a template error, a spent budget, an ArgumentException naming the constraint). Seeded, so a
/// failure names a case that can be run again.
/// </summary>
public sealed class StressTests(ITestOutputHelper output)
{
    private const int Seed = 20_261_207;
    private const int Cases = 10_000;

    private (int ExitCode, string Stdout, string Stderr) RunChild(string kind)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        info.ArgumentList.Add(typeof(StressProgram).Assembly.Location);
        foreach (var arg in new[] { "stress", kind, Seed.ToString(System.Globalization.CultureInfo.InvariantCulture), Cases.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            info.ArgumentList.Add(arg);
        info.Environment["DOTNET_GCHeapHardLimit"] = "0x40000000";     // 1 GiB: past it the child fails, visibly
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(20)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"the {kind} stress did not finish in 20 minutes");
        }
        process.WaitForExit();
        var result = (process.ExitCode, stdout.Result, stderr.Result);
        output.WriteLine(result.Item2);
        output.WriteLine(result.Item3);
        return result;
    }

    [SharedDataFact(ChatTemplateCorpus.Folder)]
    public void Ten_thousand_mutated_real_chat_templates_each_render_or_are_refused_and_the_process_survives()
    {
        var (code, stdout, stderr) = RunChild("templates");
        Assert.True(code == 0, $"exit code {code}\n{stdout}\n{stderr}");
        Assert.StartsWith($"templates: {Cases} cases", stdout);
    }

    [Fact]
    public void Ten_thousand_random_regexes_each_compile_or_are_refused_and_the_process_survives()
    {
        var (code, stdout, stderr) = RunChild("regexes");
        Assert.True(code == 0, $"exit code {code}\n{stdout}\n{stderr}");
        Assert.StartsWith($"regexes: {Cases} cases", stdout);
    }

    [Fact]
    public void Ten_thousand_random_json_schemas_each_compile_or_are_refused_and_the_process_survives()
    {
        var (code, stdout, stderr) = RunChild("schemas");
        Assert.True(code == 0, $"exit code {code}\n{stdout}\n{stderr}");
        Assert.StartsWith($"schemas: {Cases} cases", stdout);
    }
}
