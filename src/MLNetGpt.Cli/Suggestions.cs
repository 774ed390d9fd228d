namespace MLNetGpt.Cli;

/// <summary>"Did you mean" for mistyped commands and options.</summary>
internal static class Suggestions
{
    /// <summary>The candidate closest to <paramref name="typed"/> by edit distance, if it is close (at most a third of its length, and 3).</summary>
    public static string? Closest(string typed, IEnumerable<string> candidates)
    {
        var best = candidates.Select(c => (Candidate: c, Distance: Distance(typed, c))).OrderBy(c => c.Distance).FirstOrDefault();
        if (best.Candidate is null) return null;
        bool prefix = best.Candidate.StartsWith(typed, StringComparison.Ordinal) && typed.TrimStart('-').Length >= 3;
        return prefix || best.Distance <= Math.Min(3, Math.Max(1, best.Candidate.Length / 3)) ? best.Candidate : null;
    }

    /// <summary>Levenshtein distance with adjacent transpositions (optimal string alignment).</summary>
    internal static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        }
        return d[a.Length, b.Length];
    }
}
