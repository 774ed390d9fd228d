using System.Text.Json;

namespace MLNetGpt.Bench;

/// <summary>One measured configuration.</summary>
internal sealed record Workload(string Model, int Batch, int PromptTokens, int NewTokens, int Rows, int Runs, int Threads);

/// <summary>What one subject measured for one workload (medians over runs, with the spread).</summary>
internal sealed class Measurement
{
    public string Subject { get; set; } = "";
    public double[] TokensPerSecond { get; set; } = [];
    public double[] RowsPerSecond { get; set; } = [];
    public double? TimeToFirstTokenMs { get; set; }
    public double? StepP50Ms { get; set; }
    public double? StepP95Ms { get; set; }
    public long PeakWorkingSetBytes { get; set; }
    /// <summary>The 1-minute load average when each process of this measurement started (one per round).</summary>
    public double[] LoadAverage { get; set; } = [];
    public string? Error { get; set; }

    public static readonly JsonSerializerOptions Json = new() { WriteIndented = false };
}

/// <summary>Deterministic prompts of an exact token length, cut from KJV-like text.</summary>
internal static class Prompts
{
    private const string Text =
        "In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon the face of the deep. " +
        "And the Spirit of God moved upon the face of the waters. And God said, Let there be light: and there was light. And God saw the light, that it was good: " +
        "and God divided the light from the darkness. And God called the light Day, and the darkness he called Night. And the evening and the morning were the first day. " +
        "And God said, Let there be a firmament in the midst of the waters, and let it divide the waters from the waters. And God made the firmament, and divided the " +
        "waters which were under the firmament from the waters which were above the firmament: and it was so. And God called the firmament Heaven. And the evening " +
        "and the morning were the second day. And God said, Let the waters under the heaven be gathered together unto one place, and let the dry land appear: and it was so.";

    public static int[][] Make(GptModel model, int rows, int length)
    {
        var ids = model.Tokenizer.EncodeToIds(string.Concat(Enumerable.Repeat(Text + " ", 8)));
        var prompts = new int[rows][];
        for (int r = 0; r < rows; r++)
        {
            int start = (r * 37) % Math.Max(1, ids.Count - length);
            prompts[r] = ids.Skip(start).Take(length).ToArray();
        }
        return prompts;
    }
}
