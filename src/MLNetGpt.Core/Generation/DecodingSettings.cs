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

    /// <summary>The call's options with every unset control taken from the model's defaults, then the library's.</summary>
    public GenerationOptions Options { get; private init; } = new();

    public int MinNewTokens => Options.MinNewTokens!.Value;
    public bool Sample => Options.DoSample!.Value && Temperature > 0;
    public float Temperature => Options.Temperature!.Value;
    public int TopK => Options.TopK!.Value;
    public float TopP => Options.TopP!.Value;
    public float MinP => Options.MinP!.Value;
    public int MinTokensToKeep => Options.MinTokensToKeep!.Value;
    public float RepetitionPenalty => Options.RepetitionPenalty!.Value;
    public int NoRepeatNgramSize => Options.NoRepeatNgramSize!.Value;
    public int[] EosTokenIds { get; private init; } = [];
    public string[] StopStrings { get; private init; } = [];
    public int? Seed => Options.Seed;
    public bool LogProbabilities => Options.ReturnLogProbabilities!.Value;
    public PromptOverflow PromptOverflow => Options.PromptOverflow!.Value;
    public bool IncludeEosToken => Options.IncludeEosToken!.Value;
    public bool PrefixCaching => Options.PrefixCaching!.Value;
    public bool SkipSpecialTokens => Options.SkipSpecialTokens!.Value;
    public bool CleanUpTokenizationSpaces => Options.CleanUpTokenizationSpaces!.Value;
    public int PromptLookupNumTokens => Options.PromptLookupNumTokens!.Value;
    public OutputConstraint? Constraint => Options.Constraint;

    /// <summary>Library defaults, as Hugging Face's GenerationConfig, from the list of controls (the output limit is resolved separately).</summary>
    public static readonly GenerationOptions LibraryDefaults = GenerationControls.LibraryDefaults();

    /// <summary>Resolves a call's options once: the caller's, then the model's defaults, then the library's.</summary>
    public static DecodingSettings Resolve(GenerationOptions? options, GptModelInfo model)
    {
        var given = options ?? new GenerationOptions();
        var resolved = given.WithDefaults(model.ModelDefaults).WithDefaults(LibraryDefaults);
        // The caller's own limit wins over the model's; within one source max_new_tokens wins over
        // max_length, as in Hugging Face.
        (int? maxNew, int? maxLength) = given.MaxNewTokens is int n ? (n, null)
            : given.MaxLength is int l ? (null, l)
            : model.ModelDefaults.MaxNewTokens is int mn ? (mn, null)
            : model.ModelDefaults.MaxLength is int ml ? ((int?)null, (int?)ml)
            : (DefaultMaxNewTokens, null);
        return new DecodingSettings
        {
            Options = resolved,
            MaxNewTokens = maxNew,
            MaxLength = maxLength,
            EosTokenIds = (resolved.EosTokenIds ?? model.EosTokenIds).ToArray(),
            StopStrings = (resolved.StopStrings ?? []).ToArray(),
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
