namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// What the decode loop needs of an output constraint joined to a vocabulary: per state, the tokens
/// that may come next (end-of-sequence ids only where the output is complete), the state a token
/// leads to, and whether the output must end. Implementations are thread-safe.
/// </summary>
internal interface ITokenConstraint
{
    /// <summary>The state before any token.</summary>
    int Start { get; }

    /// <summary>The tokens allowed in <paramref name="state"/> with <paramref name="remainingTokens"/> left, this one included.</summary>
    TokenSet Allowed(int state, int remainingTokens);

    /// <summary>The state after <paramref name="token"/> (negative when the token is not allowed).</summary>
    int Advance(int state, int token);

    /// <summary>Whether the output is complete in <paramref name="state"/>.</summary>
    bool IsAccepting(int state);

    /// <summary>Whether the output is complete and nothing may follow: the row must end.</summary>
    bool IsFinal(int state);
}
