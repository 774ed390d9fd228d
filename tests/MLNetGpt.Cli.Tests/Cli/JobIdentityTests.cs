using System.CommandLine;
using MLNetGpt.Cli.Batch;
using MLNetGpt.Cli.Commands;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>
/// A batch job's identity covers every decoding control the command line offers that can change a result: the flags
/// and the manifest's entries both come from the library's list of controls, so changing any of them on --resume is
/// refused, named; a speed-only control (prompt lookup) may change.
/// </summary>
public sealed class JobIdentityTests
{
    public static TheoryData<string> CommandLineControls() => new(GenerationControls.CommandLine.Select(c => c.Key));

    public static TheoryData<string> ResultControls() => new(GenerationControls.CommandLine.Where(c => c.ChangesResults).Select(c => c.Key));

    public static TheoryData<string> SpeedControls() => new(GenerationControls.CommandLine.Where(c => !c.ChangesResults).Select(c => c.Key));

    // Two valid settings of a control, as command-line arguments.
    private static (string[] First, string[] Second) TwoSettings(GenerationControls.Control control) => control switch
    {
        { SwitchValue: not null } => ([], [control.Flag!]),
        _ when control.ValueType == typeof(int) => ([control.Flag!, "3"], [control.Flag!, "4"]),
        _ when control.ValueType == typeof(float) => ([control.Flag!, "0.5"], [control.Flag!, "0.75"]),
        _ when control.ValueType == typeof(IReadOnlyList<string>) => ([control.Flag!, "END"], [control.Flag!, "STOP"]),
        _ => throw new InvalidOperationException($"No test settings for {control.Key} ({control.ValueType})."),
    };

    private static JobManifest Job(string[] flags)
    {
        var command = new Command("generate");
        var generation = new CommandLine.GenerationFlags();
        generation.AddTo(command);
        var parsed = command.Parse(flags);
        Assert.Empty(parsed.Errors);
        var options = new Dictionary<string, string?>();
        JobIdentity.AddDecodingControls(options, generation.Read(parsed));
        return new JobManifest
        {
            Tool = "test",
            Command = "generate",
            Input = new InputIdentity("/in.csv", 1, new string('a', 64)),
            Model = new ModelIdentity("/model", []),
            Options = options,
            Output = new OutputShape("csv", ["prompt", "completion", "finish_reason", "error"], false, "\n"),
            Partial = new PartialPrefix(0, 0, ""),
        };
    }

    [Theory]
    [MemberData(nameof(SpeedControls))]
    public void A_changed_speed_only_control_is_the_same_job(string key)
    {
        var control = GenerationControls.All.Single(c => c.Key == key);
        var (first, second) = TwoSettings(control);
        Assert.Empty(Job(second).DifferencesFrom(Job(first)));
        Assert.Empty(Job(second).DifferencesFrom(Job([])));
    }

    [Theory]
    [MemberData(nameof(ResultControls))]
    public void A_changed_decoding_control_makes_another_job_and_the_difference_names_its_flag(string key)
    {
        var control = GenerationControls.All.Single(c => c.Key == key);
        var (first, second) = TwoSettings(control);
        var recorded = Job(first);
        Assert.Empty(Job(first).DifferencesFrom(recorded));
        var differences = Job(second).DifferencesFrom(recorded);
        Assert.True(differences.Count >= 1 && differences.All(d => d.StartsWith(control.Flag + " was", StringComparison.Ordinal) || d.StartsWith("--greedy was", StringComparison.Ordinal)),
            string.Join("; ", differences));
        Assert.Contains(differences, d => d.StartsWith(control.Flag + " was", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(CommandLineControls))]
    public void Every_decoding_flag_is_in_the_help_with_its_default(string key)
    {
        var control = GenerationControls.All.Single(c => c.Key == key);
        var command = new Command("generate");
        new CommandLine.GenerationFlags().AddTo(command);
        var option = command.Options.Single(o => o.Name == control.Flag);
        Assert.StartsWith(control.Help!, option.Description);
        if (control.SwitchValue is null && control.DefaultText is not "none") Assert.Contains("Default: ", option.Description);
        Assert.Equal(control.ImpliesSampling, option.Description!.Contains("implies sampling", StringComparison.Ordinal));
    }
}
