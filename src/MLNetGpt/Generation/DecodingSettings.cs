namespace MLNetGpt.Generation;

/// <summary><see cref="GenerationOptions"/> with every default filled in, for one call.</summary>
internal sealed class DecodingSettings
{
    public int MaxNewTokens { get; private init; }
    public int MinNewTokens { get; private init; }
    public bool Sample { get; private init; }
    public float Temperature { get; private init; }
    public int TopK { get; private init; }
    public float TopP { get; private init; }
    public float MinP { get; private init; }
    public float RepetitionPenalty { get; private init; }
    public int NoRepeatNgramSize { get; private init; }
    public int[] EosTokenIds { get; private init; } = [];
    public string[] StopStrings { get; private init; } = [];
    public int? Seed { get; private init; }
    public bool LogProbabilities { get; private init; }
    public PromptOverflow PromptOverflow { get; private init; }

    /// <summary>Library defaults, as Hugging Face's GenerationConfig.</summary>
    public static readonly GenerationOptions LibraryDefaults = new()
    {
        MaxNewTokens = 20,
        MinNewTokens = 0,
        DoSample = false,
        Temperature = 1f,
        TopK = 50,
        TopP = 1f,
        MinP = 0f,
        RepetitionPenalty = 1f,
        NoRepeatNgramSize = 0,
        ReturnLogProbabilities = false,
        PromptOverflow = MLNetGpt.PromptOverflow.TruncateLeft,
    };

    public static DecodingSettings Resolve(GenerationOptions? options, GptModelInfo model)
    {
        var o = (options ?? new GenerationOptions()).WithDefaults(model.Defaults).WithDefaults(LibraryDefaults);
        float temperature = o.Temperature!.Value;
        return new DecodingSettings
        {
            MaxNewTokens = o.MaxNewTokens!.Value,
            MinNewTokens = o.MinNewTokens!.Value,
            Sample = o.DoSample!.Value && temperature > 0,
            Temperature = temperature,
            TopK = o.TopK!.Value,
            TopP = o.TopP!.Value,
            MinP = o.MinP!.Value,
            RepetitionPenalty = o.RepetitionPenalty!.Value,
            NoRepeatNgramSize = o.NoRepeatNgramSize!.Value,
            EosTokenIds = (o.EosTokenIds ?? model.EosTokenIds).ToArray(),
            StopStrings = (o.StopStrings ?? []).ToArray(),
            Seed = o.Seed,
            LogProbabilities = o.ReturnLogProbabilities!.Value,
            PromptOverflow = o.PromptOverflow!.Value,
        };
    }

    /// <summary>Whether choosing a token needs the sequence's earlier tokens.</summary>
    public bool NeedsHistory => RepetitionPenalty != 1f || NoRepeatNgramSize > 0;

    /// <summary>Whether a plain argmax of the raw logits is the whole choice.</summary>
    public bool IsPlainGreedy => !Sample && !NeedsHistory && MinNewTokens == 0;
}
