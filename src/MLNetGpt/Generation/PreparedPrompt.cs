namespace MLNetGpt.Generation;

/// <summary>A tokenized prompt ready for the loop; <c>Index</c> identifies it in the results.</summary>
internal readonly record struct PreparedPrompt(int Index, int[] Ids, bool Truncated);
