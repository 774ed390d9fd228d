namespace MLNetGpt;

/// <summary>What happens to a prompt longer than the model's context window.</summary>
public enum PromptOverflow
{
    /// <summary>
    /// Keep the prompt's last tokens, leaving room for up to <c>max_new_tokens</c> (at most half the
    /// window), and log a warning.
    /// </summary>
    TruncateLeft,

    /// <summary>Throw an <see cref="ArgumentException"/> naming the prompt and its length.</summary>
    Error,
}
