using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Generation;

/// <summary>One row of a batch as it is generated: its tokens, random stream, text and cache columns.</summary>
internal sealed class Sequence
{
    public Sequence(PreparedPrompt prompt, DecodingSettings settings, Tokenizer tokenizer, bool streaming, Models.PaddingSide padding = Models.PaddingSide.Left)
    {
        Prompt = prompt;
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
    public bool Done => Finish is not null;
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
