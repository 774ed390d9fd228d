namespace MLNetGpt.Generation;

/// <summary>
/// A tokenized prompt ready for the loop; <c>Index</c> identifies it in the results. A row's own
/// <c>Constraint</c> replaces the call's (<see cref="GenerationOptions.Constraint"/>) for that row; its own
/// <c>Settings</c> replace the loop's (rows of different callers share one batch); <c>Stream</c> asks for its text
/// pieces as they are generated.
/// </summary>
internal readonly record struct PreparedPrompt(int Index, int[] Ids, bool Truncated, OutputConstraint? Constraint = null,
    DecodingSettings? Settings = null, bool Stream = false);
