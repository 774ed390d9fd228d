using System.Diagnostics;
using System.Text.Json;

namespace MLNetGpt.Bench;

/// <summary>
/// Shared by the bench and its runner processes (GenAiRunner, LlamaRunner), which link this file:
/// the statistics every subject is summarised with, and the one JSON line a runner prints.
/// </summary>
internal static class Stats
{
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public static double Percentile(IEnumerable<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        double rank = p * (sorted.Length - 1);
        int low = (int)Math.Floor(rank), high = (int)Math.Ceiling(rank);
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
    }

    /// <summary>A runner's result, in the shape the bench reads as a Measurement: rates per timed run, prefill and step times in milliseconds.</summary>
    public static void PrintMeasurement(string subject, List<double> tokensPerSecond, List<double> rowsPerSecond, List<double> prefillMs, List<double> stepMs) =>
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            Subject = subject,
            TokensPerSecond = tokensPerSecond,
            RowsPerSecond = rowsPerSecond,
            TimeToFirstTokenMs = Percentile(prefillMs, 0.5),
            StepP50Ms = Percentile(stepMs, 0.5),
            StepP95Ms = Percentile(stepMs, 0.95),
            PeakWorkingSetBytes = Process.GetCurrentProcess().PeakWorkingSet64,
        }));
}
