using System.Text.Json;

namespace MLNetGpt;

/// <summary>
/// Decoding controls, named and defaulted as in Hugging Face's <c>GenerationConfig</c>. Every
/// property left <see langword="null"/> takes the model folder's <c>generation_config.json</c> value,
/// then the library default given in its documentation. Setters validate and throw
/// <see cref="ArgumentOutOfRangeException"/> naming the option.
/// </summary>
/// <remarks>
/// <para>Instances are plain settings; share one across threads only when nobody mutates it.</para>
/// <para>
/// <see cref="ToJson"/> and <see cref="FromJson"/> write and read the set options as a JSON object
/// with Hugging Face's names (<c>max_new_tokens</c>, <c>do_sample</c>, <c>top_p</c>, ...; MLNetGpt's own
/// options use the same style: <c>seed</c>, <c>return_log_probabilities</c>, <c>prompt_overflow</c>,
/// <c>include_eos_token</c>, <c>prefix_caching</c>, <c>prompt_lookup_num_tokens</c>). A missing key means "unset".
/// </para>
/// </remarks>
public sealed class GenerationOptions
{
    private int? _maxNewTokens;
    private int? _minNewTokens;
    private float? _temperature;
    private int? _topK;
    private float? _topP;
    private float? _minP;
    private float? _typicalP;
    private float? _repetitionPenalty;
    private int? _noRepeatNgramSize;
    private int? _maxLength;
    private int? _minTokensToKeep;
    private IReadOnlyList<int>? _eosTokenIds;
    private IReadOnlyList<string>? _stopStrings;
    private int? _promptLookupNumTokens;

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
    /// When sampling, typical decoding (Hugging Face's <c>typical_p</c>, Meister et al. 2022): keep the tokens whose
    /// surprise (-log p) is closest to the distribution's entropy, fewest first, until their probabilities reach this
    /// mass, in (0, 1]. Applied after min-p. Default 1 (disabled).
    /// </summary>
    public float? TypicalP
    {
        get => _typicalP;
        set => _typicalP = value is null || (value > 0 && value <= 1) ? value
            : throw new ArgumentOutOfRangeException(nameof(TypicalP), value, "typical_p must be in (0, 1].");
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
    /// The most tokens in prompt plus output (&gt; 0), as Hugging Face's <c>max_length</c> and ONNX
    /// Runtime GenAI's <c>search.max_length</c>. When both are set, <see cref="MaxNewTokens"/> wins
    /// (as in Hugging Face). Default: unset (only <see cref="MaxNewTokens"/> and the context window limit).
    /// </summary>
    public int? MaxLength
    {
        get => _maxLength;
        set => _maxLength = value is null || value > 0 ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxLength), value, "max_length must be greater than 0.");
    }

    /// <summary>
    /// The fewest tokens top-k, top-p and min-p may leave (&gt;= 1), as the <c>min_tokens_to_keep</c>
    /// of Hugging Face's warpers. Default 1.
    /// </summary>
    public int? MinTokensToKeep
    {
        get => _minTokensToKeep;
        set => _minTokensToKeep = value is null || value >= 1 ? value
            : throw new ArgumentOutOfRangeException(nameof(MinTokensToKeep), value, "min_tokens_to_keep must be 1 or more.");
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

    /// <summary>
    /// Keep the end-of-sequence token that ended a sequence in <see cref="GenerationResult.TokenIds"/>
    /// (as Hugging Face returns it). Its text is never part of <see cref="GenerationResult.Text"/>.
    /// Default false.
    /// </summary>
    public bool? IncludeEosToken { get; set; }

    /// <summary>
    /// Restricts the output to one of a list of strings, to a regular expression, or to JSON that
    /// validates against a schema (see <see cref="OutputConstraint"/>): at every step only tokens that
    /// keep the output completable are allowed, the end-of-sequence token only where the output is
    /// complete, and generation ends when nothing more can be added (<see cref="FinishReason.Constraint"/>).
    /// The output always completes within <see cref="MaxNewTokens"/> when the tokenizer can spell every
    /// byte alone (byte-level BPE) and the shortest valid output fits. Default: unconstrained.
    /// </summary>
    public OutputConstraint? Constraint { get; set; }

    /// <summary>
    /// Prefill a prompt head shared by several waiting prompts once and start each of them from a
    /// copy of its key/value cache. Results are identical either way; only speed differs. Default
    /// true (used where the backend supports it and the shared head is long enough to pay).
    /// </summary>
    public bool? PrefixCaching { get; set; }

    /// <summary>
    /// Leave special tokens (end-of-sequence, chat markers) out of the generated text, as transformers'
    /// <c>decode(..., skip_special_tokens=True)</c>. Default true, as transformers' text-generation pipeline
    /// returns completions.
    /// </summary>
    public bool? SkipSpecialTokens { get; set; }

    /// <summary>
    /// Apply transformers' <c>clean_up_tokenization</c> to the generated text (no space before
    /// <c>. ? ! ,</c> and the contractions <c>n't 'm 's 've 're</c>). Default true, as transformers'
    /// text-generation pipeline returns completions.
    /// </summary>
    public bool? CleanUpTokenizationSpaces { get; set; }

    /// <summary>
    /// Prompt-lookup speculative decoding (Hugging Face's <c>prompt_lookup_num_tokens</c>): the most tokens (0 to 10)
    /// proposed per step by matching the last 1 to 3 tokens against the prompt and the output so far; one forward
    /// pass verifies them. A proposal is kept only where it equals the token that decoding chooses anyway, so greedy
    /// and seeded results are the same with or without it; only speed differs. The engine adapts the number
    /// proposed to the measured acceptance and to what a longer step costs on this model, and proposes nothing
    /// where that does not pay; it applies to batches of up to 4 rows on the CPU. 0 turns it off.
    /// Default: see docs/serving.md.
    /// </summary>
    public int? PromptLookupNumTokens
    {
        get => _promptLookupNumTokens;
        set => _promptLookupNumTokens = value is null || (value >= 0 && value <= MaxPromptLookupTokens) ? value
            : throw new ArgumentOutOfRangeException(nameof(PromptLookupNumTokens), value, $"prompt_lookup_num_tokens must be in [0, {MaxPromptLookupTokens}] (0 turns it off).");
    }

    /// <summary>The largest <see cref="PromptLookupNumTokens"/>: a verification step feeds at most this many tokens after the last one.</summary>
    public const int MaxPromptLookupTokens = 10;

    /// <summary>Returns a copy whose unset properties are taken from <paramref name="fallback"/>.</summary>
    public GenerationOptions WithDefaults(GenerationOptions? fallback)
    {
        var result = Clone();
        if (fallback is null) return result;
        foreach (var control in GenerationControls.All)
            if (control.Get(result) is null && control.Get(fallback) is { } value) control.Set(result, value);
        return result;
    }

    /// <summary>Returns a shallow copy.</summary>
    public GenerationOptions Clone() => (GenerationOptions)MemberwiseClone();

    /// <summary>The set options as a JSON object with Hugging Face's names; unset options are left out.</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
            GenerationControls.Write(this, writer);
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Reads options written by <see cref="ToJson"/> (or written by hand with the same names).</summary>
    /// <exception cref="FormatException">The text is not a JSON object, a key is unknown, or a value has the wrong type or range; the message names the key.</exception>
    public static GenerationOptions FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"The generation options are not valid JSON: {e.Message}", e);
        }
        using (document)
            return GenerationControls.Read(document.RootElement, "the generation options", unknownKeys: UnknownKeys.Refuse);
    }
}
