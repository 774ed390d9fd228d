namespace MLNetGpt.Generation;

/// <summary>
/// A tokenized prompt ready for the loop; <c>Index</c> identifies it in the results. A row's own
/// <c>Constraint</c> replaces the call's (<see cref="GenerationOptions.Constraint"/>) for that row.
/// </summary>
internal readonly record struct PreparedPrompt(int Index, int[] Ids, bool Truncated, OutputConstraint? Constraint = null);
