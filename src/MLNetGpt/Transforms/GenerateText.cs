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

    /// <summary>
    /// Answer each row as a chat model: the prompt column becomes the user's message, rendered with
    /// <see cref="SystemPrompt"/> through the model's chat template (see <see cref="TokenizeTextOptions.Chat"/>), so
    /// that the model replies in its own format and stops at its end-of-turn token. Default false.
    /// </summary>
    public bool Chat { get; set; }

    /// <summary>With <see cref="Chat"/>: the system message of every conversation; null or empty: none.</summary>
    public string? SystemPrompt { get; set; }

    /// <summary>With <see cref="Chat"/>: the chat template to use by name; null: the folder's default.</summary>
    public string? ChatTemplateName { get; set; }
}
