namespace MLNetGpt;

/// <summary>
/// Decoding controls, named and defaulted as in Hugging Face's <c>GenerationConfig</c>. Every
/// property left <see langword="null"/> takes the model folder's <c>generation_config.json</c> value,
/// then the library default given in its documentation. Setters validate and throw
/// <see cref="ArgumentOutOfRangeException"/> naming the option.
/// </summary>
/// <remarks>Instances are plain settings; share one across threads only when nobody mutates it.</remarks>
public sealed class GenerationOptions
{
    private int? _maxNewTokens;
    private int? _minNewTokens;
    private float? _temperature;
    private int? _topK;
    private float? _topP;
    private float? _minP;
    private float? _repetitionPenalty;
    private int? _noRepeatNgramSize;
    private IReadOnlyList<int>? _eosTokenIds;
    private IReadOnlyList<string>? _stopStrings;

    /// <summary>The most tokens to generate per prompt (&gt; 0). Default: the model's, else 20.</summary>
    public int? MaxNewTokens
    {
        get => _maxNewTokens;
        set => _maxNewTokens = value is null || value > 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), value, "max_new_tokens must be greater than 0.");
    }

    /// <summary>Tokens to generate before an end-of-sequence token may end a sequence (&gt;= 0). Default 0.</summary>
    public int? MinNewTokens
    {
        get => _minNewTokens;
        set => _minNewTokens = value is null || value >= 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(MinNewTokens), value, "min_new_tokens must be 0 or more.");
    }

    /// <summary>
    /// Sample from the distribution (<see langword="true"/>) or take the most likely token
    /// (<see langword="false"/>, greedy). Default: the model's <c>do_sample</c>, else greedy.
    /// </summary>
    public bool? DoSample { get; set; }

    /// <summary>
    /// Divides the logits before sampling (&gt;= 0). 0 means greedy decoding even when
    /// <see cref="DoSample"/> is set. Default 1.
    /// </summary>
    public float? Temperature
    {
        get => _temperature;
        set => _temperature = value is null || (value >= 0 && float.IsFinite(value.Value)) ? value
            : throw new ArgumentOutOfRangeException(nameof(Temperature), value, "temperature must be a finite number >= 0 (0 means greedy).");
    }

    /// <summary>When sampling, keep only the k most likely tokens (&gt;= 0; 0 disables). Default 50.</summary>
    public int? TopK
    {
        get => _topK;
        set => _topK = value is null || value >= 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(TopK), value, "top_k must be 0 (disabled) or more.");
    }

    /// <summary>
    /// When sampling, keep the smallest set of most likely tokens whose probabilities add up to at
    /// least this value, in (0, 1]. Default 1 (disabled).
    /// </summary>
    public float? TopP
    {
        get => _topP;
        set => _topP = value is null || (value > 0 && value <= 1) ? value
            : throw new ArgumentOutOfRangeException(nameof(TopP), value, "top_p must be in (0, 1].");
    }

    /// <summary>
    /// When sampling, drop tokens whose probability is below <c>min_p</c> times the top token's
    /// probability, in [0, 1]. Default 0 (disabled).
    /// </summary>
    public float? MinP
    {
        get => _minP;
        set => _minP = value is null || (value >= 0 && value <= 1) ? value
            : throw new ArgumentOutOfRangeException(nameof(MinP), value, "min_p must be in [0, 1].");
    }

    /// <summary>
    /// Penalises tokens already present in the prompt or the output (&gt; 0; 1 disables; &gt; 1
    /// discourages repetition): positive logits are divided by it, negative ones multiplied. Default 1.
    /// </summary>
    public float? RepetitionPenalty
    {
        get => _repetitionPenalty;
        set => _repetitionPenalty = value is null || (value > 0 && float.IsFinite(value.Value)) ? value
            : throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), value, "repetition_penalty must be a finite number > 0.");
    }

    /// <summary>Forbids repeating any n-gram of this size already present in prompt + output (&gt;= 0; 0 disables). Default 0.</summary>
    public int? NoRepeatNgramSize
    {
        get => _noRepeatNgramSize;
        set => _noRepeatNgramSize = value is null || value >= 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(NoRepeatNgramSize), value, "no_repeat_ngram_size must be 0 (disabled) or more.");
    }

    /// <summary>
    /// Token ids that end a sequence (several are allowed). Default: the model's <c>eos_token_id</c>.
    /// An empty list disables end-of-sequence stopping.
    /// </summary>
    public IReadOnlyList<int>? EosTokenIds
    {
        get => _eosTokenIds;
        set => _eosTokenIds = value is null || value.All(id => id >= 0) ? value?.ToArray()
            : throw new ArgumentOutOfRangeException(nameof(EosTokenIds), "eos_token_id values must be 0 or more.");
    }

    /// <summary>
    /// Texts that end generation when they appear in the output, even across token boundaries. The
    /// stop text itself is cut from <see cref="GenerationResult.Text"/>.
    /// </summary>
    public IReadOnlyList<string>? StopStrings
    {
        get => _stopStrings;
        set => _stopStrings = value is null || value.All(s => !string.IsNullOrEmpty(s)) ? value?.ToArray()
            : throw new ArgumentOutOfRangeException(nameof(StopStrings), "stop strings must be non-empty.");
    }

    /// <summary>
    /// Seed for sampling. Each prompt draws from its own random stream derived from the seed and the
    /// prompt's tokens, so a seeded result never depends on the batch size or on the other prompts
    /// in its batch. <see langword="null"/>: a different stream on every call.
    /// </summary>
    public int? Seed { get; set; }

    /// <summary>Also return each generated token's log-probability under the model (before any sampling control). Default false.</summary>
    public bool? ReturnLogProbabilities { get; set; }

    /// <summary>What to do with a prompt that does not fit the context window. Default <see cref="PromptOverflow.TruncateLeft"/>.</summary>
    public PromptOverflow? PromptOverflow { get; set; }

    /// <summary>Returns a copy whose unset properties are taken from <paramref name="fallback"/>.</summary>
    public GenerationOptions WithDefaults(GenerationOptions? fallback)
    {
        if (fallback is null) return Clone();
        return new GenerationOptions
        {
            _maxNewTokens = _maxNewTokens ?? fallback._maxNewTokens,
            _minNewTokens = _minNewTokens ?? fallback._minNewTokens,
            DoSample = DoSample ?? fallback.DoSample,
            _temperature = _temperature ?? fallback._temperature,
            _topK = _topK ?? fallback._topK,
            _topP = _topP ?? fallback._topP,
            _minP = _minP ?? fallback._minP,
            _repetitionPenalty = _repetitionPenalty ?? fallback._repetitionPenalty,
            _noRepeatNgramSize = _noRepeatNgramSize ?? fallback._noRepeatNgramSize,
            _eosTokenIds = _eosTokenIds ?? fallback._eosTokenIds,
            _stopStrings = _stopStrings ?? fallback._stopStrings,
            Seed = Seed ?? fallback.Seed,
            ReturnLogProbabilities = ReturnLogProbabilities ?? fallback.ReturnLogProbabilities,
            PromptOverflow = PromptOverflow ?? fallback.PromptOverflow,
        };
    }

    /// <summary>Returns a shallow copy.</summary>
    public GenerationOptions Clone() => (GenerationOptions)MemberwiseClone();
}

/// <summary>What happens to a prompt longer than the model's context window.</summary>
public enum PromptOverflow
{
    /// <summary>
    /// Keep the prompt's last tokens, leaving room for up to <c>max_new_tokens</c> (at most half the
    /// window), and log a warning.
    /// </summary>
    TruncateLeft,

    /// <summary>Throw an <see cref="ArgumentException"/> naming the prompt and its length.</summary>
    Error,
}
