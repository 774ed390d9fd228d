namespace MLNetGpt;

/// <summary>
/// Options of <c>GenerateText</c>: prompt text to generated text, as the chain TokenizeText →
/// GenerateTokens → DecodeTokens (each stage also usable alone). The intermediate token columns
/// stay in the output, named by <see cref="PromptTokensColumnName"/> and <see cref="TokensColumnName"/>.
/// </summary>
public sealed class GenerateTextOptions : GenerationStageOptions
{
    /// <summary>The output text column (the continuation, without the prompt).</summary>
    public required string OutputColumnName { get; set; }

    /// <summary>The prompt text column; <see langword="null"/> means <see cref="OutputColumnName"/>.</summary>
    public string? InputColumnName { get; set; }

    /// <summary>The prompt token-id column; default <c>{OutputColumnName}_PromptTokens</c>.</summary>
    public string? PromptTokensColumnName { get; set; }

    /// <summary>The generated token-id column; default <c>{OutputColumnName}_Tokens</c>.</summary>
    public string? TokensColumnName { get; set; }
}
