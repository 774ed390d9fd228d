namespace MLNetGpt;

/// <summary>What was generated for one prompt.</summary>
public sealed class GenerationResult
{
    internal GenerationResult(string text, int[] tokenIds, FinishReason finishReason, float[]? logProbabilities,
        int promptTokenCount, bool promptTruncated)
    {
        Text = text;
        TokenIds = tokenIds;
        FinishReason = finishReason;
        LogProbabilities = logProbabilities;
        PromptTokenCount = promptTokenCount;
        PromptTruncated = promptTruncated;
    }

    /// <summary>The generated text, without the prompt, the end-of-sequence token or a matched stop string.</summary>
    public string Text { get; }

    /// <summary>
    /// The generated token ids, without the end-of-sequence token. When a stop string ended generation,
    /// the tokens that formed it are included (cut the decoded text at the stop string, as
    /// <see cref="Text"/> is).
    /// </summary>
    public IReadOnlyList<int> TokenIds { get; }

    /// <summary>Why generation stopped.</summary>
    public FinishReason FinishReason { get; }

    /// <summary>
    /// Natural-log probability of each token in <see cref="TokenIds"/> under the model's raw
    /// distribution (before temperature, top-k/p or penalties); <see langword="null"/> unless
    /// <see cref="GenerationOptions.ReturnLogProbabilities"/> was set.
    /// </summary>
    public IReadOnlyList<float>? LogProbabilities { get; }

    /// <summary>Number of prompt tokens the model saw (after any truncation).</summary>
    public int PromptTokenCount { get; }

    /// <summary>Whether the prompt was cut from the left to fit the context window.</summary>
    public bool PromptTruncated { get; }
}
