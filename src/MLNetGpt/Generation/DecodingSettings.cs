namespace MLNetGpt.Generation;

/// <summary><see cref="GenerationOptions"/> with every default filled in, for one call.</summary>
internal sealed class DecodingSettings
{
    /// <summary>Used when neither the caller nor the model sets max_new_tokens or max_length (Hugging Face's default).</summary>
    public const int DefaultMaxNewTokens = 20;

    /// <summary>max_new_tokens, or null when only <see cref="MaxLength"/> limits the output.</summary>
    public int? MaxNewTokens { get; private init; }

    /// <summary>max_length (prompt plus output), when it is the limit in force.</summary>
    public int? MaxLength { get; private init; }

    public int MinNewTokens { get; private init; }
    public bool Sample { get; private init; }
    public float Temperature { get; private init; }
    public int TopK { get; private init; }
    public float TopP { get; private init; }
    public float MinP { get; private init; }
    public int MinTokensToKeep { get; private init; }
    public float RepetitionPenalty { get; private init; }
    public int NoRepeatNgramSize { get; private init; }
    public int[] EosTokenIds { get; private init; } = [];
    public string[] StopStrings { get; private init; } = [];
    public int? Seed { get; private init; }
    public bool LogProbabilities { get; private init; }
    public PromptOverflow PromptOverflow { get; private init; }
    public bool IncludeEosToken { get; private init; }
    public bool PrefixCaching { get; private init; }
    public bool SkipSpecialTokens { get; private init; }
    public bool CleanUpTokenizationSpaces { get; private init; }
    public OutputConstraint? Constraint { get; private init; }

    /// <summary>Library defaults, as Hugging Face's GenerationConfig (the output limit is resolved separately).</summary>
    public static readonly GenerationOptions LibraryDefaults = new()
    {
        MinNewTokens = 0,
        DoSample = false,
        Temperature = 1f,
        TopK = 50,
        TopP = 1f,
        MinP = 0f,
        MinTokensToKeep = 1,
        RepetitionPenalty = 1f,
        NoRepeatNgramSize = 0,
        ReturnLogProbabilities = false,
        PromptOverflow = MLNetGpt.PromptOverflow.TruncateLeft,
        IncludeEosToken = false,
        PrefixCaching = true,
        // transformers' text-generation pipeline decodes completions with both.
        SkipSpecialTokens = true,
        CleanUpTokenizationSpaces = true,
    };

    public static DecodingSettings Resolve(GenerationOptions? options, GptModelInfo model)
    {
        var given = options ?? new GenerationOptions();
        var o = given.WithDefaults(model.Defaults).WithDefaults(LibraryDefaults);
        float temperature = o.Temperature!.Value;
        // The caller's own limit wins over the model's; within one source max_new_tokens wins over
        // max_length, as in Hugging Face.
        (int? maxNew, int? maxLength) = given.MaxNewTokens is int n ? (n, null)
            : given.MaxLength is int l ? (null, l)
            : model.Defaults.MaxNewTokens is int mn ? (mn, null)
            : model.Defaults.MaxLength is int ml ? ((int?)null, (int?)ml)
            : (DefaultMaxNewTokens, null);
        return new DecodingSettings
        {
            MaxNewTokens = maxNew,
            MaxLength = maxLength,
            MinNewTokens = o.MinNewTokens!.Value,
            Sample = o.DoSample!.Value && temperature > 0,
            Temperature = temperature,
            TopK = o.TopK!.Value,
            TopP = o.TopP!.Value,
            MinP = o.MinP!.Value,
            MinTokensToKeep = o.MinTokensToKeep!.Value,
            RepetitionPenalty = o.RepetitionPenalty!.Value,
            NoRepeatNgramSize = o.NoRepeatNgramSize!.Value,
            EosTokenIds = (o.EosTokenIds ?? model.EosTokenIds).ToArray(),
            StopStrings = (o.StopStrings ?? []).ToArray(),
            Seed = o.Seed,
            LogProbabilities = o.ReturnLogProbabilities!.Value,
            PromptOverflow = o.PromptOverflow!.Value,
            IncludeEosToken = o.IncludeEosToken!.Value,
            PrefixCaching = o.PrefixCaching!.Value,
            SkipSpecialTokens = o.SkipSpecialTokens!.Value,
            CleanUpTokenizationSpaces = o.CleanUpTokenizationSpaces!.Value,
            Constraint = o.Constraint,
        };
    }

    /// <summary>The most tokens a prompt of <paramref name="promptLength"/> tokens may gain (at least 1).</summary>
    public int NewTokenLimit(int promptLength) => MaxNewTokens ?? Math.Max(1, MaxLength!.Value - promptLength);

    /// <summary>Room to keep for the output when a prompt must be cut to fit the context window.</summary>
    public int ReservedForOutput(int contextLength) => Math.Min(MaxNewTokens ?? DefaultMaxNewTokens, contextLength / 2);

    /// <summary>Whether choosing a token needs the sequence's earlier tokens.</summary>
    public bool NeedsHistory => RepetitionPenalty != 1f || NoRepeatNgramSize > 0;

    /// <summary>Whether a plain argmax of the raw logits is the whole choice.</summary>
    public bool IsPlainGreedy => !Sample && !NeedsHistory && MinNewTokens == 0;
}
