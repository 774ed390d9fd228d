namespace MLNetGpt;

/// <summary>How likely the model finds a text (optionally after a prompt).</summary>
public sealed class ScoreResult
{
    internal ScoreResult(double logLikelihood, int tokenCount, bool truncated)
    {
        LogLikelihood = logLikelihood;
        TokenCount = tokenCount;
        Truncated = truncated;
    }

    /// <summary>Sum of the natural-log probabilities of the scored tokens (&lt;= 0).</summary>
    public double LogLikelihood { get; }

    /// <summary>Number of text tokens scored.</summary>
    public int TokenCount { get; }

    /// <summary><c>exp(-LogLikelihood / TokenCount)</c>; NaN when no token was scored.</summary>
    public double Perplexity => TokenCount == 0 ? double.NaN : Math.Exp(-LogLikelihood / TokenCount);

    /// <summary>Mean negative log-likelihood per token, in nats; NaN when no token was scored.</summary>
    public double MeanNegativeLogLikelihood => TokenCount == 0 ? double.NaN : -LogLikelihood / TokenCount;

    /// <summary>Whether the start of prompt + text was cut to fit the context window (only the kept tokens are scored).</summary>
    public bool Truncated { get; }
}
