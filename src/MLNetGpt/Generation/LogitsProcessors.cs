namespace MLNetGpt.Generation;

/// <summary>
/// The decoding controls as operations on one sequence's logits, with Hugging Face semantics:
/// a removed token's score becomes negative infinity. Each is exact and separately testable.
/// </summary>
internal static class LogitsProcessors
{
    /// <summary>
    /// Hugging Face <c>RepetitionPenaltyLogitsProcessor</c>: every id present in <paramref name="history"/>
    /// (prompt and output) has its score divided by the penalty when positive, multiplied when negative.
    /// </summary>
    public static void ApplyRepetitionPenalty(Span<float> scores, ReadOnlySpan<int> history, float penalty, HashSet<int> scratch)
    {
        if (penalty == 1f) return;
        scratch.Clear();
        foreach (int id in history)
        {
            if ((uint)id >= (uint)scores.Length || !scratch.Add(id)) continue;
            float s = scores[id];
            scores[id] = s < 0 ? s * penalty : s / penalty;
        }
    }

    /// <summary>
    /// Hugging Face <c>NoRepeatNGramLogitsProcessor</c>: bans every token that would complete an
    /// n-gram already present in <paramref name="history"/>.
    /// </summary>
    public static void ApplyNoRepeatNgram(Span<float> scores, ReadOnlySpan<int> history, int n)
    {
        if (n <= 0 || history.Length + 1 < n) return;
        var prefix = history[(history.Length - (n - 1))..];   // the n-1 most recent tokens
        for (int start = 0; start + n <= history.Length; start++)
        {
            if (history.Slice(start, n - 1).SequenceEqual(prefix))
            {
                int banned = history[start + n - 1];
                if ((uint)banned < (uint)scores.Length) scores[banned] = float.NegativeInfinity;
            }
        }
    }

    /// <summary>Hugging Face <c>MinNewTokensLengthLogitsProcessor</c>: end-of-sequence ids are banned until enough tokens exist.</summary>
    public static void SuppressEos(Span<float> scores, IReadOnlyList<int> eosIds)
    {
        foreach (int id in eosIds)
            if ((uint)id < (uint)scores.Length) scores[id] = float.NegativeInfinity;
    }

    /// <summary>Divides every score by the temperature (&gt; 0).</summary>
    public static void ApplyTemperature(Span<float> scores, float temperature)
    {
        if (temperature == 1f) return;
        float inverse = 1f / temperature;
        for (int i = 0; i < scores.Length; i++) scores[i] *= inverse;
    }

    /// <summary>
    /// Hugging Face <c>TopKLogitsWarper</c>: keeps every token whose score is at least the k-th
    /// largest (ties at the boundary are all kept).
    /// </summary>
    public static void ApplyTopK(Span<float> scores, int k, float[] scratch)
    {
        if (k <= 0 || k >= scores.Length) return;
        float threshold = KthLargest(scores, k, scratch);
        for (int i = 0; i < scores.Length; i++)
            if (scores[i] < threshold) scores[i] = float.NegativeInfinity;
    }

    /// <summary>
    /// Hugging Face <c>TopPLogitsWarper</c>: keeps the smallest set of most likely tokens whose
    /// probabilities sum to at least <paramref name="topP"/>; always keeps the most likely token.
    /// </summary>
    public static void ApplyTopP(Span<float> scores, float topP, ref int[]? order, ref float[]? keys)
    {
        if (topP >= 1f) return;
        int n = SortDescending(scores, ref order, ref keys, out float max);
        if (n == 0) return;
        double total = 0;
        for (int i = 0; i < n; i++) total += Math.Exp(keys![i] - max);
        // Hugging Face removes, in ascending order, tokens whose cumulative probability is <= 1 - top_p.
        // Walking from the top, a token is kept while the probability mass above it is < top_p.
        double above = 0;
        int kept = 0;
        for (; kept < n; kept++)
        {
            if (kept > 0 && above >= topP * total) break;
            above += Math.Exp(keys![kept] - max);
        }
        for (int i = kept; i < n; i++) scores[order![i]] = float.NegativeInfinity;
    }

    /// <summary>
    /// Hugging Face <c>MinPLogitsWarper</c>: removes tokens whose probability is below
    /// <paramref name="minP"/> times the most likely token's probability.
    /// </summary>
    public static void ApplyMinP(Span<float> scores, float minP)
    {
        if (minP <= 0f) return;
        float max = float.NegativeInfinity;
        foreach (float s in scores) if (s > max) max = s;
        if (float.IsNegativeInfinity(max)) return;
        // p_i / p_max = exp(s_i - max) < min_p  <=>  s_i < max + ln(min_p)
        float threshold = max + MathF.Log(minP);
        for (int i = 0; i < scores.Length; i++)
            if (scores[i] < threshold) scores[i] = float.NegativeInfinity;
    }

    /// <summary>Index of the largest score (the first one on ties), as greedy decoding takes.</summary>
    public static int ArgMax(ReadOnlySpan<float> scores)
    {
        int best = 0;
        float bestScore = float.NegativeInfinity;
        for (int i = 0; i < scores.Length; i++)
        {
            if (scores[i] > bestScore)
            {
                bestScore = scores[i];
                best = i;
            }
        }
        return best;
    }

    /// <summary>Draws an index from softmax(scores) using <paramref name="uniform"/> in [0, 1).</summary>
    public static int Sample(ReadOnlySpan<float> scores, double uniform)
    {
        float max = float.NegativeInfinity;
        foreach (float s in scores) if (s > max) max = s;
        double total = 0;
        for (int i = 0; i < scores.Length; i++)
            if (scores[i] != float.NegativeInfinity) total += Math.Exp(scores[i] - max);
        double target = uniform * total, running = 0;
        int last = -1;
        for (int i = 0; i < scores.Length; i++)
        {
            if (scores[i] == float.NegativeInfinity) continue;
            running += Math.Exp(scores[i] - max);
            last = i;
            if (running > target) return i;
        }
        return last >= 0 ? last : ArgMax(scores);
    }

    /// <summary>log softmax(scores)[index] over the whole vocabulary.</summary>
    public static float LogProbability(ReadOnlySpan<float> scores, int index)
    {
        float max = float.NegativeInfinity;
        foreach (float s in scores) if (s > max) max = s;
        double total = 0;
        foreach (float s in scores) total += Math.Exp(s - max);
        return (float)(scores[index] - max - Math.Log(total));
    }

    private static float KthLargest(ReadOnlySpan<float> scores, int k, float[] scratch)
    {
        var copy = scratch.AsSpan(0, scores.Length);
        scores.CopyTo(copy);
        // Quickselect for the k-th largest value.
        int left = 0, right = copy.Length - 1, target = k - 1;
        while (left < right)
        {
            float pivot = copy[(left + right) >>> 1];
            int i = left, j = right;
            while (i <= j)
            {
                while (copy[i] > pivot) i++;
                while (copy[j] < pivot) j--;
                if (i <= j)
                {
                    (copy[i], copy[j]) = (copy[j], copy[i]);
                    i++;
                    j--;
                }
            }
            if (target <= j) right = j;
            else if (target >= i) left = i;
            else break;
        }
        return copy[target];
    }

    /// <summary>Sorts the finite scores descending into keys/order; returns how many there are.</summary>
    private static int SortDescending(ReadOnlySpan<float> scores, ref int[]? order, ref float[]? keys, out float max)
    {
        if (order is null || order.Length < scores.Length)
        {
            order = new int[scores.Length];
            keys = new float[scores.Length];
        }
        int n = 0;
        max = float.NegativeInfinity;
        for (int i = 0; i < scores.Length; i++)
        {
            if (scores[i] == float.NegativeInfinity) continue;
            keys![n] = -scores[i];
            order[n++] = i;
            if (scores[i] > max) max = scores[i];
        }
        Array.Sort(keys!, order, 0, n);
        for (int i = 0; i < n; i++) keys![i] = -keys[i];
        return n;
    }
}
