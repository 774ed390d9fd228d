namespace MLNetGpt;

/// <summary>Why a sequence stopped growing.</summary>
public enum FinishReason
{
    /// <summary>The model produced an end-of-sequence token (not included in the output).</summary>
    Eos,

    /// <summary>A stop string appeared in the output (cut from <see cref="GenerationResult.Text"/>).</summary>
    StopString,

    /// <summary><c>max_new_tokens</c> were generated, or the context window is full.</summary>
    Length,

    /// <summary>The output constraint (<see cref="GenerationOptions.Constraint"/>) is complete: nothing more can be added to it.</summary>
    Constraint,
}
