using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Generation;

/// <summary>One row of a batch as it is generated: its settings, tokens, random stream, text and cache columns.</summary>
internal sealed class Sequence
{
    public Sequence(PreparedPrompt prompt, DecodingSettings settings, Tokenizer tokenizer, bool streaming, Models.PaddingSide padding, int contextLimit)
    {
        Prompt = prompt;
        Settings = settings;
        Streams = streaming;
        ContextLimit = contextLimit;
        Stops = new StopCriteria(settings, contextLimit);
        Limit = settings.NewTokenLimit(prompt.Ids.Length);
        Tokens = new List<int>(prompt.Ids.Length + Math.Min(Limit, 4096));
        Tokens.AddRange(prompt.Ids);
        Random = SequenceRandom.ForPrompt(settings.Seed, prompt.Ids);
        if (settings.LogProbabilities) LogProbabilities = [];
        if (streaming || settings.StopStrings.Length > 0)
            Text = new TextStreamer(tokenizer, settings.StopStrings, settings.SkipSpecialTokens, settings.CleanUpTokenizationSpaces);
        _skipSpecialTokens = settings.SkipSpecialTokens;
        _cleanUp = settings.CleanUpTokenizationSpaces;
        Mask = new ColumnMask(prompt.Ids.Length + 16, padding);
    }

    private readonly bool _skipSpecialTokens;
    private readonly bool _cleanUp;

    public PreparedPrompt Prompt { get; }

    /// <summary>The row's decoding controls (rows of one batch may differ).</summary>
    public DecodingSettings Settings { get; }

    /// <summary>When the row is finished (EOS, stop strings, its limits).</summary>
    public StopCriteria Stops { get; }

    /// <summary>Whether the row's text pieces are reported as they are generated.</summary>
    public bool Streams { get; }

    /// <summary>The most tokens (prompt and output) the row may hold: the context window, or less where the engine limits requests.</summary>
    public int ContextLimit { get; }

    /// <summary>Speculative decoding's state for the row (acceptance, the draft model's cache), once it speculated.</summary>
    public SpeculationState? Speculation { get; set; }

    /// <summary>The row's output constraint (compiled for the tokenizer) and where its automaton stands.</summary>
    public Constraints.ITokenConstraint? Constraint { get; init; }
    public int ConstraintState { get; set; }

    /// <summary>The most tokens this row may generate (max_new_tokens, or what max_length leaves).</summary>
    public int Limit { get; }

    /// <summary>Prompt and generated tokens (and the EOS token when it is kept).</summary>
    public List<int> Tokens { get; }

    /// <summary>Tokens generated so far.</summary>
    public int Generated => Tokens.Count - Prompt.Ids.Length;

    public List<float>? LogProbabilities { get; }
    public SequenceRandom Random { get; }

    /// <summary>Decoded text with stop-string detection; null when neither streaming nor stop strings need it.</summary>
    public TextStreamer? Text { get; }

    public FinishReason? Finish { get; set; }

    /// <summary>The caller gave up on the row (cancelled): it leaves the batch at the next step and is never reported.</summary>
    public bool Abandoned { get; set; }

    public bool Done => Finish is not null || Abandoned;
    public bool Reported { get; set; }

    /// <summary>Whether the EOS token that ended the row is the last of <see cref="Tokens"/> (include_eos_token).</summary>
    public bool EosKept { get; set; }

    /// <summary>Real (unpadded) tokens in the cache for this row.</summary>
    public int Cached { get; set; }

    /// <summary>Which cache columns are this row's tokens.</summary>
    public ColumnMask Mask { get; }

    /// <summary>Adds a generated token (and its log-probability when they are kept).</summary>
    public void Add(int token, float logProbability)
    {
        Tokens.Add(token);
        LogProbabilities?.Add(logProbability);
    }

    public GenerationResult ToResult(Tokenizer tokenizer)
    {
        var generated = Tokens.GetRange(Prompt.Ids.Length, Generated).ToArray();
        string text;
        if (Text is not null) text = Text.FinalText();
        else
        {
            int visible = EosKept ? generated.Length - 1 : generated.Length;
            text = visible <= 0 ? "" : Tokenization.TokenDecoding.Decode(tokenizer, generated.AsSpan(0, visible).ToArray(), _skipSpecialTokens, _cleanUp);
        }
        return new GenerationResult(text, generated, Finish!.Value, LogProbabilities?.ToArray(), Prompt.Ids.Length, Prompt.Truncated);
    }
}
