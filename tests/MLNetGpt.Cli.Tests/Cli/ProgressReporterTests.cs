using MLNetGpt.Cli.Batch;
using Spectre.Console.Testing;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>The live progress bar, driven through Spectre's test console as a terminal would show it.</summary>
public sealed class ProgressReporterTests
{
    private static TestConsole Terminal() => new TestConsole().Interactive().EmitAnsiSequences();

    [Fact]
    public void The_live_bar_reaches_its_maximum_only_when_every_row_is_done()
    {
        using var bar = new ProgressReporter.Live("generate", total: 10, resumed: 0, Terminal());
        bar.Row(failed: false, tokens: 3);
        Assert.Equal((10.0, 1.0), bar.Bar);
        for (int i = 0; i < 8; i++) bar.Row(false, 3);
        Assert.Equal((10.0, 9.0), bar.Bar);
        bar.Row(false, 3);
        Assert.Equal((10.0, 10.0), bar.Bar);
    }

    [Fact]
    public void A_resumed_job_s_bar_counts_only_the_rows_left()
    {
        using var bar = new ProgressReporter.Live("generate", total: 10, resumed: 4, Terminal());
        bar.Row(false, 1);
        Assert.Equal((6.0, 1.0), bar.Bar);
        Assert.Equal("5/10 rows (50.0%)", bar.Count());
    }
}
