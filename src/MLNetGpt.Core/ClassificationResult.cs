namespace MLNetGpt;

/// <summary>How likely each label is as the continuation of one prompt, and the most likely one.</summary>
public sealed class ClassificationResult
{
    internal ClassificationResult(IReadOnlyList<string> labels, double[] logLikelihoods, int[] tokenCounts, bool lengthNormalized,
        IReadOnlyList<string>? labelWarnings = null)
    {
        Labels = labels;
        LogLikelihoods = logLikelihoods;
        TokenCounts = tokenCounts;
        // The labels' scores (sums, or means per token) as a distribution over the label set.
        var scores = logLikelihoods.Select((ll, i) => lengthNormalized ? ll / Math.Max(1, tokenCounts[i]) : ll).ToArray();
        double max = scores.Max();
        var weights = scores.Select(s => Math.Exp(s - max)).ToArray();
        double total = weights.Sum();
        Probabilities = weights.Select(w => (float)(w / total)).ToArray();
        Index = Array.IndexOf(scores, max);
        var tied = Enumerable.Range(0, scores.Length).Where(i => scores[i] == max).ToArray();
        var warnings = new List<string>(labelWarnings ?? []);
        if (tied.Length > 1)
            warnings.Add($"the labels {string.Join(" and ", tied.Select(i => $"'{labels[i]}'"))} tie at probability {Probabilities[Index]:0.####}: " +
                $"the model cannot tell them apart here, and '{labels[Index]}' is reported only because it comes first");
        Tied = tied.Length > 1;
        Warnings = warnings;
    }

    /// <summary>Whether the best score is shared by two or more labels (then <see cref="Index"/> is merely the first of them).</summary>
    public bool Tied { get; }

    /// <summary>
    /// Why this answer may mean nothing, in words: labels the model cannot tell apart (the same token ids, or tokens all
    /// unknown to its vocabulary) and ties. Empty when there is nothing to say.
    /// </summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>The label set, in the order given.</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>The most likely label's position in <see cref="Labels"/> (the first on ties).</summary>
    public int Index { get; }

    /// <summary>The most likely label.</summary>
    public string Label => Labels[Index];

    /// <summary>Each label's natural-log likelihood as the prompt's continuation (the sum over its tokens).</summary>
    public IReadOnlyList<double> LogLikelihoods { get; }

    /// <summary>Each label's token count.</summary>
    public IReadOnlyList<int> TokenCounts { get; }

    /// <summary>The labels' likelihoods normalised over the label set (softmax of the log-likelihoods, or of their per-token means when length-normalised).</summary>
    public IReadOnlyList<float> Probabilities { get; }
}
