using System.Numerics;
using System.Runtime.InteropServices;

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
        var vectors = MemoryMarshal.Cast<float, Vector<float>>(scores);
        for (int v = 0; v < vectors.Length; v++) vectors[v] *= inverse;
        for (int i = vectors.Length * Vector<float>.Count; i < scores.Length; i++) scores[i] *= inverse;
    }

    /// <summary>
    /// Hugging Face <c>TopKLogitsWarper</c>: keeps every token whose score is at least the k-th
    /// largest, with k raised to <paramref name="minTokensToKeep"/> (ties at the boundary are all kept).
    /// </summary>
    public static void ApplyTopK(Span<float> scores, int k, float[] scratch, int minTokensToKeep = 1)
    {
        if (k <= 0) return;
        k = Math.Max(k, minTokensToKeep);
        if (k >= scores.Length) return;
        float threshold = KthLargest(scores, k, scratch);
        RemoveBelow(scores, threshold);
    }

    /// <summary>
    /// Hugging Face <c>TopPLogitsWarper</c>, to the same boundary: tokens are taken from the least
    /// likely up, and removed while their cumulative probability is at most <c>1 - top_p</c> (that
    /// difference taken in double precision from the decimal value of <paramref name="topP"/> and
    /// rounded to single precision, as PyTorch compares it with a float32 tensor); the
    /// <paramref name="minTokensToKeep"/> most likely tokens are never removed.
    /// </summary>
    public static void ApplyTopP(Span<float> scores, float topP, ref int[]? order, ref float[]? keys, int minTokensToKeep = 1)
    {
        if (topP >= 1f) return;
        int n = SortDescending(scores, ref order, ref keys, out float max);
        if (n == 0) return;
        double total = 0;
        for (int i = 0; i < n; i++) total += Math.Exp(keys![i] - max);
        double decimalTopP = double.Parse(topP.ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);
        double threshold = (float)(1.0 - decimalTopP);
        int keep = Math.Min(Math.Max(1, minTokensToKeep), n);
        double cumulative = 0;
        // Walk up from the least likely token; stop at the first one that stays.
        for (int i = n - 1; i >= keep; i--)
        {
            cumulative += Math.Exp(keys![i] - max) / total;
            if (cumulative > threshold) break;
            scores[order![i]] = float.NegativeInfinity;
        }
    }

    /// <summary>
    /// Hugging Face <c>MinPLogitsWarper</c>: removes tokens whose probability is below
    /// <paramref name="minP"/> times the most likely token's probability, never the
    /// <paramref name="minTokensToKeep"/> most likely ones.
    /// </summary>
    public static void ApplyMinP(Span<float> scores, float minP, float[]? scratch = null, int minTokensToKeep = 1)
    {
        if (minP <= 0f) return;
        float max = Max(scores);
        if (float.IsNegativeInfinity(max) || float.IsNaN(max)) return;
        // p_i / p_max = exp(s_i - max) < min_p  <=>  s_i < max + ln(min_p)
        float threshold = max + MathF.Log(minP);
        if (minTokensToKeep > 1 && minTokensToKeep < scores.Length)
            threshold = Math.Min(threshold, KthLargest(scores, minTokensToKeep, scratch ?? new float[minTokensToKeep]));
        RemoveBelow(scores, threshold);
    }

    /// <summary>
    /// Hugging Face <c>TypicalLogitsWarper</c> (typical decoding): tokens are ordered by how far their surprise
    /// (-log p) lies from the distribution's entropy, closest first; the shortest such prefix whose probabilities
    /// reach <paramref name="mass"/> is kept, with every token as close as its last one, and everything farther is
    /// removed. The first <paramref name="minTokensToKeep"/> tokens of that order are never removed.
    /// </summary>
    public static void ApplyTypicalP(Span<float> scores, float mass, ref int[]? order, ref float[]? keys, int minTokensToKeep = 1)
    {
        if (mass >= 1f) return;
        float max = Max(scores);
        if (float.IsNegativeInfinity(max) || float.IsNaN(max)) return;
        double total = 0;
        foreach (float s in scores)
            if (s != float.NegativeInfinity) total += Math.Exp(s - max);
        double logTotal = max + Math.Log(total);
        double entropy = 0;
        foreach (float s in scores)
            if (s != float.NegativeInfinity) entropy -= Math.Exp(s - logTotal) * (s - logTotal);
        if (order is null || order.Length < scores.Length)
        {
            order = new int[scores.Length];
            keys = new float[scores.Length];
        }
        int n = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            if (scores[i] == float.NegativeInfinity) continue;
            keys![n] = (float)Math.Abs(logTotal - scores[i] - entropy);
            order[n++] = i;
        }
        Array.Sort(keys!, order, 0, n);
        // The first position whose cumulative probability reaches the mass (the last one if none does).
        int last = 0;
        double cumulative = Math.Exp(scores[order[0]] - logTotal);
        while (cumulative < mass && last < n - 1) cumulative += Math.Exp(scores[order[++last]] - logTotal);
        float threshold = keys![last];
        for (int i = Math.Min(Math.Max(1, minTokensToKeep), n); i < n; i++)
            if (keys[i] > threshold) scores[order[i]] = float.NegativeInfinity;
    }

    /// <summary>Index of the largest score (the first one on ties), as greedy decoding takes.</summary>
    public static int ArgMax(ReadOnlySpan<float> scores)
    {
        // Vectorised: the largest value, then its first index; NaN or all -inf take the scalar path.
        if (scores.Length >= 4 * Vector<float>.Count)
        {
            float max = Max(scores);
            if (!float.IsNaN(max) && max != float.NegativeInfinity) return FirstIndexOf(scores, max);
        }
        return ArgMaxScalar(scores);
    }

    private static int FirstIndexOf(ReadOnlySpan<float> scores, float value)
    {
        var vectors = MemoryMarshal.Cast<float, Vector<float>>(scores);
        var target = new Vector<float>(value);
        int width = Vector<float>.Count;
        for (int v = 0; v < vectors.Length; v++)
        {
            if (!Vector.EqualsAny(vectors[v], target)) continue;
            for (int i = v * width; ; i++)
                if (scores[i] == value) return i;
        }
        for (int i = vectors.Length * width; i < scores.Length; i++)
            if (scores[i] == value) return i;
        return ArgMaxScalar(scores);
    }

    private static int ArgMaxScalar(ReadOnlySpan<float> scores)
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
        float max = Max(scores);
        if (float.IsNaN(max))
        {
            max = float.NegativeInfinity;
            foreach (float s in scores) if (s > max) max = s;
        }
        // After top-k/top-p most scores are -inf: whole vectors of them are skipped.
        var vectors = MemoryMarshal.Cast<float, Vector<float>>(scores);
        var removed = new Vector<float>(float.NegativeInfinity);
        int width = Vector<float>.Count;
        double total = 0;
        for (int v = 0; v < vectors.Length; v++)
        {
            if (Vector.EqualsAll(vectors[v], removed)) continue;
            for (int i = v * width; i < (v + 1) * width; i++)
                if (scores[i] != float.NegativeInfinity) total += Math.Exp(scores[i] - max);
        }
        for (int i = vectors.Length * width; i < scores.Length; i++)
            if (scores[i] != float.NegativeInfinity) total += Math.Exp(scores[i] - max);
        double target = uniform * total, running = 0;
        int last = -1;
        for (int i = 0; i < scores.Length; i++)
        {
            if (i % width == 0 && i / width < vectors.Length && Vector.EqualsAll(vectors[i / width], removed))
            {
                i += width - 1;
                continue;
            }
            if (scores[i] == float.NegativeInfinity) continue;
            running += Math.Exp(scores[i] - max);
            last = i;
            if (running > target) return i;
        }
        return last >= 0 ? last : ArgMax(scores);
    }

    /// <summary>The largest score; NaN when a NaN is present (callers then fall back to scalar code).</summary>
    internal static float Max(ReadOnlySpan<float> scores)
    {
        var vectors = MemoryMarshal.Cast<float, Vector<float>>(scores);
        var best = new Vector<float>(float.NegativeInfinity);
        var ordered = Vector<int>.AllBitsSet;    // lanes stay all-ones while no NaN was seen
        foreach (var v in vectors)
        {
            best = Vector.Max(best, v);
            ordered &= Vector.Equals(v, v);
        }
        if (!Vector.EqualsAll(ordered, Vector<int>.AllBitsSet)) return float.NaN;
        float max = float.NegativeInfinity;
        for (int i = 0; i < Vector<float>.Count; i++) max = Math.Max(max, best[i]);
        for (int i = vectors.Length * Vector<float>.Count; i < scores.Length; i++)
        {
            if (float.IsNaN(scores[i])) return float.NaN;
            if (scores[i] > max) max = scores[i];
        }
        return max;
    }

    /// <summary>Sets every score below <paramref name="threshold"/> to -inf (NaN scores are left as they are).</summary>
    private static void RemoveBelow(Span<float> scores, float threshold)
    {
        var vectors = MemoryMarshal.Cast<float, Vector<float>>(scores);
        var limit = new Vector<float>(threshold);
        var removed = new Vector<float>(float.NegativeInfinity);
        for (int v = 0; v < vectors.Length; v++)
            vectors[v] = Vector.ConditionalSelect(Vector.LessThan(vectors[v], limit), removed, vectors[v]);
        for (int i = vectors.Length * Vector<float>.Count; i < scores.Length; i++)
            if (scores[i] < threshold) scores[i] = float.NegativeInfinity;
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

    /// <summary>
    /// The k-th largest score, duplicates counted: a min-heap of the k largest seen so far, so
    /// one pass over the scores with a single comparison for almost every element.
    /// </summary>
    private static float KthLargest(ReadOnlySpan<float> scores, int k, float[] scratch)
    {
        var heap = scratch.AsSpan(0, k);
        int start = 0, count = 0;
        // Fill the heap with the first k non-NaN scores.
        for (; start < scores.Length && count < k; start++)
        {
            if (float.IsNaN(scores[start])) continue;
            heap[count] = scores[start];
            SiftUp(heap, count++);
        }
        if (count < k) return float.NegativeInfinity;   // fewer than k comparable scores: keep them all
        float root = heap[0];
        int width = Vector<float>.Count;
        int i = start;
        // Whole vectors with nothing above the heap's root (almost all of them) are skipped.
        for (; i + width <= scores.Length; i += width)
        {
            var chunk = new Vector<float>(scores.Slice(i, width));
            if (!Vector.GreaterThanAny(chunk, new Vector<float>(root))) continue;
            for (int j = i; j < i + width; j++)
            {
                if (!(scores[j] > root)) continue;
                heap[0] = scores[j];
                SiftDown(heap, 0);
                root = heap[0];
            }
        }
        for (; i < scores.Length; i++)
        {
            if (!(scores[i] > root)) continue;
            heap[0] = scores[i];
            SiftDown(heap, 0);
            root = heap[0];
        }
        return root;
    }

    private static void SiftUp(Span<float> heap, int index)
    {
        while (index > 0)
        {
            int parent = (index - 1) >> 1;
            if (heap[parent] <= heap[index]) return;
            (heap[parent], heap[index]) = (heap[index], heap[parent]);
            index = parent;
        }
    }

    private static void SiftDown(Span<float> heap, int index)
    {
        while (true)
        {
            int left = 2 * index + 1, smallest = index;
            if (left < heap.Length && heap[left] < heap[smallest]) smallest = left;
            if (left + 1 < heap.Length && heap[left + 1] < heap[smallest]) smallest = left + 1;
            if (smallest == index) return;
            (heap[smallest], heap[index]) = (heap[index], heap[smallest]);
            index = smallest;
        }
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
        var vectors = MemoryMarshal.Cast<float, Vector<float>>(scores);
        var removed = new Vector<float>(float.NegativeInfinity);
        int width = Vector<float>.Count;
        for (int i = 0; i < scores.Length; i++)
        {
            if (i % width == 0 && i / width < vectors.Length && Vector.EqualsAll(vectors[i / width], removed))
            {
                i += width - 1;   // a whole vector of removed tokens
                continue;
            }
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
