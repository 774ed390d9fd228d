using Microsoft.ML.OnnxRuntime;

namespace MLNetGpt.Generation;

/// <summary>Runs rows' new tokens through the decoder on top of their cached state, in chunks where needed.</summary>
internal static class StepRunner
{
    // Logits of one step are at most this many floats (128 MB); longer inputs go in chunks.
    public const long LogitsBudget = 32L << 20;

    /// <summary>
    /// Runs the new tokens of every row on top of <paramref name="cache"/> (which it takes over), rows
    /// right-aligned, positions from <paramref name="basePositions"/>; returns the last step's logits
    /// and the grown state. With <paramref name="lastLogitsOnly"/> only the last position's logits are
    /// asked for (where the graph allows) and long inputs go in chunks that bound the logits buffer;
    /// otherwise every position's logits come back from one step.
    /// </summary>
    public static (LogitsBuffer Last, IKvCache Cache) Extend(DecoderBackend backend, RunOptions runOptions, IKvCache cache, ColumnMask[] masks,
        int[][] newTokens, int[] basePositions, int padId, bool lastLogitsOnly, CancellationToken cancellationToken, out int steps)
    {
        var graph = backend.Graph;
        int batch = newTokens.Length, width = Math.Max(1, newTokens.Max(t => t.Length));
        bool keepsLogits = graph.LogitsToKeep is not null && backend.HonoursLogitsToKeep && (cache.Width > 0 || graph.PrefillHasLogitsToKeep);
        int chunk = !lastLogitsOnly || keepsLogits ? width : (int)Math.Clamp(LogitsBudget / ((long)batch * graph.VocabularySize), 1, width);
        LogitsBuffer? last = null;
        steps = 0;
        try
        {
            foreach (var (length, tokens, first) in BatchInputs.PrefillChunks(newTokens, width, chunk))
            {
                cancellationToken.ThrowIfCancellationRequested();
                for (int r = 0; r < batch; r++) first[r] += basePositions[r];
                var input = BatchInputs.Extend(masks, tokens, first, length, padId, logitsToKeep: lastLogitsOnly ? 1 : 0);
                var (logits, present) = backend.Step(input, cache, runOptions);
                steps++;
                cache.Dispose();
                cache = present;
                last?.Dispose();
                last = logits;
            }
            return (last!, cache);
        }
        catch
        {
            last?.Dispose();
            cache.Dispose();
            throw;
        }
    }
}
