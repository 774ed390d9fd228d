namespace MLNetGpt.Generation;

/// <summary>
/// Builds the token ids, attention mask and positions of one forward step for a batch, from each
/// row's cache columns and its new tokens. Shared by generation (prefill and decode) and scoring.
/// </summary>
internal static class BatchInputs
{
    /// <summary>
    /// A step that adds up to <paramref name="length"/> tokens per row on top of a cache of
    /// <c>masks[r].Width</c> columns (equal for every row). Row r's new tokens are right-aligned in the
    /// step (padding before them) and start at position <paramref name="firstPositions"/>[r]. The
    /// masks are extended with the new columns.
    /// </summary>
    public static StepInput Extend(IReadOnlyList<ColumnMask> masks, IReadOnlyList<ReadOnlyMemory<int>> tokens,
        IReadOnlyList<int> firstPositions, int length, int padId, int logitsToKeep)
    {
        int batch = masks.Count;
        int cached = batch == 0 ? 0 : masks[0].Width;
        var ids = new long[batch * length];
        var positions = new long[batch * length];
        var mask = new long[batch * (cached + length)];
        for (int r = 0; r < batch; r++)
        {
            var row = tokens[r].Span;
            int pad = length - row.Length;
            if (pad < 0) throw new ArgumentException($"Row {r} has {row.Length} new tokens; the step holds {length}.", nameof(tokens));
            masks[r].CopyTo(mask.AsSpan(r * (cached + length), cached));
            for (int c = 0; c < length; c++)
            {
                bool real = c >= pad;
                ids[r * length + c] = real ? row[c - pad] : padId;
                positions[r * length + c] = real ? firstPositions[r] + c - pad : 0;
                mask[r * (cached + length) + cached + c] = real ? 1 : 0;
            }
            masks[r].Append(false, pad);
            masks[r].Append(true, row.Length);
        }
        return new StepInput(ids, batch, length, mask, positions, logitsToKeep);
    }

    /// <summary>
    /// Chunks of a left-padded prefill: every row right-aligned in <paramref name="width"/> columns,
    /// cut into steps of at most <paramref name="chunk"/> columns. Yields, per chunk, each row's
    /// tokens in it and their first position.
    /// </summary>
    public static IEnumerable<(int Length, ReadOnlyMemory<int>[] Tokens, int[] FirstPositions)> PrefillChunks(
        IReadOnlyList<int[]> rows, int width, int chunk)
    {
        for (int start = 0; start < width; start += chunk)
        {
            int length = Math.Min(chunk, width - start);
            var tokens = new ReadOnlyMemory<int>[rows.Count];
            var first = new int[rows.Count];
            for (int r = 0; r < rows.Count; r++)
            {
                int pad = width - rows[r].Length;
                int from = Math.Max(0, start - pad), to = Math.Max(0, start + length - pad);
                tokens[r] = rows[r].AsMemory(from, to - from);
                first[r] = from;
            }
            yield return (length, tokens, first);
        }
    }
}
