namespace MLNetGpt.Generation;

/// <summary>
/// Prompt heads that several prompts share (the fixed text of a template, instructions, few-shot
/// examples), each with the decoder state after it for one row. A prompt that starts with a stored
/// head is prefilled from a copy of that state, so the head is computed once per loop instead of
/// once per row. Heads are found as the longest common token prefix of the prompts admitted
/// together, or of a new prompt and a recent one.
/// </summary>
/// <remarks>
/// Results equal those without the cache as far as the arithmetic allows: the head's keys and
/// values are computed once for one row instead of inside each row's padded batch, the same kind of
/// difference batching itself makes (and that seeded results are independent of).
/// </remarks>
internal sealed class PrefixCache : IDisposable
{
    /// <summary>Shorter shared heads do not pay for the extra step and the copies.</summary>
    public const int MinimumHead = 16;

    private const int MaxEntries = 4;
    private const int MaxRecentPrompts = 8;

    private readonly List<Entry> _entries = [];
    private readonly List<int[]> _recent = [];

    /// <summary>Heads computed so far (tests and benchmarks).</summary>
    public int HeadsComputed { get; private set; }

    /// <summary>Rows that started from a stored head (tests and benchmarks).</summary>
    public int RowsServed { get; private set; }

    /// <summary>A stored head that every prompt of the group starts with and extends, or null.</summary>
    public Entry? Find(IReadOnlyList<int[]> prompts)
    {
        Entry? best = null;
        foreach (var entry in _entries)
            if (prompts.All(p => p.Length > entry.Tokens.Length && p.AsSpan().StartsWith(entry.Tokens)) && (best is null || entry.Tokens.Length > best.Tokens.Length))
                best = entry;
        if (best is not null)
        {
            _entries.Remove(best);
            _entries.Add(best);     // most recently used last
        }
        return best;
    }

    /// <summary>
    /// The head worth computing for <paramref name="prompts"/>: their longest common token prefix when
    /// several are admitted together, or a single prompt's common prefix with a recent prompt; it
    /// leaves every prompt at least one token of its own. Null when no head is long enough.
    /// </summary>
    public int[]? NewHead(IReadOnlyList<int[]> prompts)
    {
        int[]? head = null;
        if (prompts.Count > 1)
        {
            int common = prompts.Skip(1).Aggregate(prompts[0].Length, (n, p) => Math.Min(n, prompts[0].AsSpan(0, n).CommonPrefixLength(p)));
            int length = Math.Min(common, prompts.Min(p => p.Length) - 1);
            if (length >= MinimumHead) head = prompts[0][..length];
        }
        else
        {
            var prompt = prompts[0];
            foreach (var recent in _recent)
            {
                int length = Math.Min(prompt.AsSpan().CommonPrefixLength(recent), prompt.Length - 1);
                if (length >= MinimumHead && (head is null || length > head.Length)) head = prompt[..length];
            }
        }
        foreach (var prompt in prompts)
        {
            _recent.Add(prompt);
            if (_recent.Count > MaxRecentPrompts) _recent.RemoveAt(0);
        }
        return head;
    }

    /// <summary>Stores a computed head (the cache takes ownership of <paramref name="state"/>).</summary>
    public Entry Add(int[] tokens, IKvCache state)
    {
        HeadsComputed++;
        var entry = new Entry(tokens, state);
        _entries.Add(entry);
        if (_entries.Count > MaxEntries)
        {
            _entries[0].State.Dispose();
            _entries.RemoveAt(0);
        }
        return entry;
    }

    public void Served(int rows) => RowsServed += rows;

    public void Dispose()
    {
        foreach (var entry in _entries) entry.State.Dispose();
        _entries.Clear();
    }

    /// <summary>A head's tokens and the decoder state after them, for one row.</summary>
    internal sealed record Entry(int[] Tokens, IKvCache State);
}
