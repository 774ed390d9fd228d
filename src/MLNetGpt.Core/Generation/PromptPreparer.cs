using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Generation;

/// <summary>
/// Turns prompts and texts into token ids the way the model expects them: the special tokens
/// transformers adds for the folder (<see cref="Tokenization.SpecialTokenRule"/>: the tokenizer.json
/// post-processor, or tokenizer_config.json's add_bos_token / add_eos_token), ids checked against the
/// vocabulary, and prompts that do not fit the context window cut or refused as <see cref="PromptOverflow"/> says.
/// </summary>
internal sealed class PromptPreparer(Tokenizer tokenizer, GptModelInfo info, Tokenization.SpecialTokenTemplate specialTokens, Action<string> log, int contextLimit)
{
    public PromptPreparer(Tokenizer tokenizer, GptModelInfo info, Tokenization.SpecialTokenTemplate specialTokens, Action<string> log)
        : this(tokenizer, info, specialTokens, log, info.ContextLength)
    {
    }

    /// <summary>The special tokens a text prompt gets (transformers' add_special_tokens=True).</summary>
    public Tokenization.SpecialTokenTemplate SpecialTokens => specialTokens;

    /// <summary>A text prompt, tokenized with the special tokens the model's tokenizer adds.</summary>
    public PreparedPrompt FromText(string text, int index, DecodingSettings settings)
    {
        if (text is null) throw new ArgumentNullException(nameof(text), $"Prompt {index} is null.");
        EnsureValidUnicode(text, $"Prompt {index}");
        return FromIds(WithSpecialTokens(tokenizer.EncodeToIds(text)), index, settings);
    }

    /// <summary>A prompt given as token ids (used as given; an empty prompt starts from BOS).</summary>
    public PreparedPrompt FromIds(int[] ids, int index, DecodingSettings settings)
    {
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)info.VocabularySize)
                throw new ArgumentOutOfRangeException(nameof(ids), ids[i], $"Prompt {index}: token id {ids[i]} at position {i} is outside the vocabulary (0..{info.VocabularySize - 1}).");
        if (ids.Length == 0)
        {
            ids = info.BosTokenId is int bos ? [bos]
                : throw new ArgumentException($"Prompt {index} is empty and the model defines no bos_token_id to start from.", nameof(ids));
        }
        bool truncated = false;
        if (ids.Length >= contextLimit)
        {
            string window = contextLimit == info.ContextLength ? $"the context window holds {contextLimit}" : $"a request may hold {contextLimit} (GptModelOptions.MaxTokensPerRequest)";
            if (settings.PromptOverflow == PromptOverflow.Error)
                throw new ArgumentException($"Prompt {index} has {ids.Length} tokens; {window} " +
                    "(prompt plus generated tokens). Shorten it or use PromptOverflow.TruncateLeft.", nameof(ids));
            int keep = contextLimit - settings.ReservedForOutput(contextLimit);
            string limit = contextLimit == info.ContextLength ? $"the context window of {contextLimit}" : $"a request may hold ({contextLimit}, GptModelOptions.MaxTokensPerRequest)";
            log($"Prompt {index} has {ids.Length} tokens, more than {limit}; keeping its last {keep} tokens.");
            ids = ids[^keep..];
            truncated = true;
        }
        return new PreparedPrompt(index, ids, truncated);
    }

    /// <summary>A text to score, optionally after a prompt whose tokens are not scored.</summary>
    public ScoreRequest ForScore(string text, string? prompt, int index)
    {
        if (text is null) throw new ArgumentNullException(nameof(text), $"Text {index} is null.");
        EnsureValidUnicode(text, $"Text {index}");
        if (prompt is not null) EnsureValidUnicode(prompt, $"Prompt {index}");
        var head = new List<int>();
        // The prompt takes the tokens a prompt gets before its text; the scored text continues it.
        if (prompt is not null) head.AddRange(specialTokens.Prefix.Concat(tokenizer.EncodeToIds(prompt)));
        else if (info.BosTokenId is int bos) head.Add(bos);
        var body = tokenizer.EncodeToIds(text);
        var ids = head.Concat(body).ToArray();
        int first = head.Count;
        bool truncated = false;
        if (ids.Length > info.ContextLength)
        {
            int cut = ids.Length - info.ContextLength;
            ids = ids[cut..];
            first = Math.Max(0, first - cut);
            truncated = true;
            log($"Text {index}: prompt + text have {ids.Length + cut} tokens, more than the context window of {info.ContextLength}; scoring the last {info.ContextLength}.");
        }
        return new ScoreRequest(ids, first, truncated);
    }

    /// <summary>Text ids with the special tokens the model's tokenizer adds (as transformers' <c>tokenizer(text)</c>).</summary>
    public int[] WithSpecialTokens(IReadOnlyList<int> ids) => specialTokens.Apply(ids, addSpecialTokens: true);

    /// <summary>Refuses text that cannot be encoded as UTF-8 (a lone surrogate), naming where it is.</summary>
    public static void EnsureValidUnicode(string text, string what)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }
            if (char.IsSurrogate(c))
                throw new ArgumentException($"{what} is not valid Unicode: a lone surrogate (U+{(int)c:X4}) at index {i} cannot be encoded as UTF-8.");
        }
    }
}
