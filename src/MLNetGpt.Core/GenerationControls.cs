using System.Text.Json;

namespace MLNetGpt;

/// <summary>How a JSON reader treats keys it does not know.</summary>
internal enum UnknownKeys
{
    /// <summary>A configuration file written by other tools (generation_config.json): skip them.</summary>
    Ignore,

    /// <summary>Options written by MLNetGpt (persistence, <see cref="GenerationOptions.FromJson"/>): refuse them.</summary>
    Refuse,
}

/// <summary>
/// The one list of decoding controls. Each entry names a <see cref="GenerationOptions"/> property with its JSON key
/// (Hugging Face's where it has one), how the value reads and writes as JSON, whether Hugging Face's
/// <c>generation_config.json</c> defines it, its library default, and how the command line offers it (its flag,
/// help text and whether it implies sampling). Merging defaults, resolving a call's settings, persistence, reading
/// model configuration, describing options, the command line's flags and help, and a batch job's identity all walk
/// this list, so a new control is one property, one entry here, its logits processor and its tests.
/// </summary>
internal static class GenerationControls
{
    internal sealed record Control(
        string Key,
        Func<GenerationOptions, object?> Get,
        Action<GenerationOptions, object?> Set,
        Func<JsonElement, object> Parse,
        Action<Utf8JsonWriter, object> Write,
        bool InGenerationConfig)
    {
        /// <summary>The value a call uses when neither the caller nor the model sets it (null: none, or resolved elsewhere).</summary>
        public object? LibraryDefault { get; init; }

        /// <summary>The command-line flag (<c>--top-p</c>); null when the command line does not offer the control.</summary>
        public string? Flag { get; init; }

        /// <summary>For a switch (a flag without a value, such as <c>--greedy</c>): the value it sets. Null: the flag takes a value.</summary>
        public object? SwitchValue { get; init; }

        /// <summary>What the control does, in one line for the command line's help (its default is added from <see cref="LibraryDefault"/>).</summary>
        public string? Help { get; init; }

        /// <summary>How the default reads in help where <see cref="LibraryDefault"/> does not say it ("none (different every run)").</summary>
        public string? DefaultText { get; init; }

        /// <summary>Whether giving the control on the command line turns sampling on (a sampling warper means nothing under greedy decoding).</summary>
        public bool ImpliesSampling { get; init; }

        /// <summary>Whether the control can change a result (false for speed-only controls: a batch job's identity leaves them out, so a resume may change them).</summary>
        public bool ChangesResults { get; init; } = true;

        /// <summary>The CLR type of the value: int, float, bool, a list of ints or strings, or another type.</summary>
        public required Type ValueType { get; init; }

        /// <summary>The value as canonical JSON text (invariant, round-trip numbers), as job identities and descriptions show it.</summary>
        public string Text(object value)
        {
            using var buffer = new MemoryStream();
            using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                Write(writer, value);
            return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
        }
    }

    public static readonly IReadOnlyList<Control> All =
    [
        Int("max_new_tokens", o => o.MaxNewTokens, (o, v) => o.MaxNewTokens = v, config: true) with
            { Flag = "--max-new-tokens", Help = "Most tokens to generate per row (> 0)", DefaultText = "20" },
        Int("min_new_tokens", o => o.MinNewTokens, (o, v) => o.MinNewTokens = v, config: true) with
            { LibraryDefault = 0, Flag = "--min-new-tokens", Help = "Tokens before an end-of-sequence token may end a row" },
        Int("max_length", o => o.MaxLength, (o, v) => o.MaxLength = v, config: true),
        Bool("do_sample", o => o.DoSample, (o, v) => o.DoSample = v, config: true) with
            { LibraryDefault = false, Flag = "--greedy", SwitchValue = false, Help = "Greedy decoding, ignoring the model's sampling defaults" },
        Float("temperature", o => o.Temperature, (o, v) => o.Temperature = v, config: true) with
            { LibraryDefault = 1f, Flag = "--temperature", Help = "Sampling temperature (>= 0; 0 = greedy)", ImpliesSampling = true },
        Int("top_k", o => o.TopK, (o, v) => o.TopK = v, config: true) with
            { LibraryDefault = 50, Flag = "--top-k", Help = "Sample from the k most likely tokens (0 = off)", ImpliesSampling = true },
        Float("top_p", o => o.TopP, (o, v) => o.TopP = v, config: true) with
            { LibraryDefault = 1f, Flag = "--top-p", Help = "Nucleus sampling mass, in (0, 1]", DefaultText = "1 (off)", ImpliesSampling = true },
        Float("min_p", o => o.MinP, (o, v) => o.MinP = v, config: true) with
            { LibraryDefault = 0f, Flag = "--min-p", Help = "Drop tokens below min-p x the top probability, in [0, 1]", DefaultText = "0 (off)", ImpliesSampling = true },
        Float("typical_p", o => o.TypicalP, (o, v) => o.TypicalP = v, config: true) with
            { LibraryDefault = 1f, Flag = "--typical-p", Help = "Typical sampling mass, in (0, 1]: keep the tokens whose surprise is closest to the entropy", DefaultText = "1 (off)", ImpliesSampling = true },
        Int("min_tokens_to_keep", o => o.MinTokensToKeep, (o, v) => o.MinTokensToKeep = v, config: false) with { LibraryDefault = 1 },
        Float("repetition_penalty", o => o.RepetitionPenalty, (o, v) => o.RepetitionPenalty = v, config: true) with
            { LibraryDefault = 1f, Flag = "--repetition-penalty", Help = "> 1 discourages repeating tokens", DefaultText = "1 (off)" },
        Int("no_repeat_ngram_size", o => o.NoRepeatNgramSize, (o, v) => o.NoRepeatNgramSize = v, config: true) with
            { LibraryDefault = 0, Flag = "--no-repeat-ngram-size", Help = "Never repeat an n-gram of this size", DefaultText = "0 (off)" },
        // The folder's EOS ids are read with the special tokens; generation_config.json's entry is not a decoding default here.
        new("eos_token_id", o => o.EosTokenIds, (o, v) => o.EosTokenIds = (IReadOnlyList<int>?)v, ParseIntList,
            (w, v) => WriteIntList(w, (IReadOnlyList<int>)v), InGenerationConfig: false) { ValueType = typeof(IReadOnlyList<int>) },
        new("stop_strings", o => o.StopStrings, (o, v) => o.StopStrings = (IReadOnlyList<string>?)v, ParseStringList,
            (w, v) => WriteStringList(w, (IReadOnlyList<string>)v), InGenerationConfig: true)
        {
            ValueType = typeof(IReadOnlyList<string>), Flag = "--stop",
            Help = "Stop text (repeatable; \\n for a newline); it is cut from the output", DefaultText = "none",
        },
        Int("seed", o => o.Seed, (o, v) => o.Seed = v, config: false) with
            { Flag = "--seed", Help = "Seed: a row's output then depends only on the seed and its prompt", DefaultText = "none (different every run)" },
        Bool("return_log_probabilities", o => o.ReturnLogProbabilities, (o, v) => o.ReturnLogProbabilities = v, config: false) with { LibraryDefault = false },
        new("prompt_overflow", o => o.PromptOverflow, (o, v) => o.PromptOverflow = (PromptOverflow?)v, ParseOverflow,
            (w, v) => w.WriteStringValue(OverflowName((PromptOverflow)v)), InGenerationConfig: false)
            { ValueType = typeof(PromptOverflow), LibraryDefault = PromptOverflow.TruncateLeft },
        Bool("include_eos_token", o => o.IncludeEosToken, (o, v) => o.IncludeEosToken = v, config: false) with { LibraryDefault = false },
        Bool("prefix_caching", o => o.PrefixCaching, (o, v) => o.PrefixCaching = v, config: false) with { LibraryDefault = true, ChangesResults = false },
        // transformers' text-generation pipeline decodes completions with both.
        Bool("skip_special_tokens", o => o.SkipSpecialTokens, (o, v) => o.SkipSpecialTokens = v, config: false) with
            { LibraryDefault = true, Flag = "--keep-special-tokens", SwitchValue = false,
              Help = "Keep special tokens (such as <think> or <|eot_id|>) in the completion's text; by default they are left out, as transformers' text-generation pipeline does" },
        Bool("clean_up_tokenization_spaces", o => o.CleanUpTokenizationSpaces, (o, v) => o.CleanUpTokenizationSpaces = v, config: false) with { LibraryDefault = true },
        Int("prompt_lookup_num_tokens", o => o.PromptLookupNumTokens, (o, v) => o.PromptLookupNumTokens = v, config: true) with
        {
            LibraryDefault = 0, Flag = "--prompt-lookup-num-tokens", ChangesResults = false,
            Help = "Speculative decoding by prompt lookup: most tokens proposed per step, 0-10 (0 = off; outputs are identical either way)",
        },
        // vLLM's names inside: {"guided_choice": [...]}, {"guided_regex": "..."} or {"guided_json": {...}}. The command
        // line offers it through its own flags (--choices, --regex, --json-schema).
        new("constraint", o => o.Constraint, (o, v) => o.Constraint = (OutputConstraint?)v,
            e => OutputConstraint.FromJson(e.GetRawText(), "'constraint'"),
            (w, v) => { using var doc = JsonDocument.Parse(((OutputConstraint)v).ToJson()); doc.RootElement.WriteTo(w); }, InGenerationConfig: false)
            { ValueType = typeof(OutputConstraint) },
    ];

    /// <summary>The options every control's library default sets (the output limit is resolved separately).</summary>
    public static GenerationOptions LibraryDefaults()
    {
        var defaults = new GenerationOptions();
        foreach (var control in All)
            if (control.LibraryDefault is { } value) control.Set(defaults, value);
        return defaults;
    }

    /// <summary>The controls the command line offers, in list order.</summary>
    public static IEnumerable<Control> CommandLine => All.Where(c => c.Flag is not null);

    private static readonly Dictionary<string, Control> ByKey = All.ToDictionary(c => c.Key, StringComparer.Ordinal);

    /// <summary>Writes the set options as one JSON object.</summary>
    public static void Write(GenerationOptions options, Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        foreach (var control in All)
        {
            if (control.Get(options) is not { } value) continue;
            writer.WritePropertyName(control.Key);
            control.Write(writer, value);
        }
        writer.WriteEndObject();
    }

    /// <summary>
    /// Reads a JSON object of options. <paramref name="where"/> names the source in errors (a file
    /// path, "the saved pipeline"). With <see cref="UnknownKeys.Ignore"/> only the keys Hugging Face's
    /// <c>generation_config.json</c> defines are read (that file holds other settings too).
    /// </summary>
    /// <exception cref="FormatException">A value has the wrong type or is out of range, or (when refused) a key is unknown; the message names both.</exception>
    public static GenerationOptions Read(JsonElement element, string where, UnknownKeys unknownKeys)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new FormatException($"{where}: expected a JSON object of generation options, found {element.ValueKind}.");
        var options = new GenerationOptions();
        foreach (var property in element.EnumerateObject())
        {
            if (!ByKey.TryGetValue(property.Name, out var control) || (unknownKeys == UnknownKeys.Ignore && !control.InGenerationConfig))
            {
                if (unknownKeys == UnknownKeys.Ignore) continue;
                throw new FormatException($"{where}: '{property.Name}' is not a generation option (known: {string.Join(", ", All.Select(c => c.Key))}).");
            }
            if (property.Value.ValueKind == JsonValueKind.Null) continue;
            try
            {
                control.Set(options, control.Parse(property.Value));
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
            {
                string reason = e is ArgumentOutOfRangeException range ? range.Message.Split(" (Parameter", 2)[0].Split('\n')[0] : e.Message;
                throw new FormatException($"{where}: '{property.Name}' = {property.Value.GetRawText()} is not valid: {reason}", e);
            }
        }
        return options;
    }

    /// <summary>The set options as <c>key value</c> pairs for people (e.g. <c>mlnetgpt info</c>).</summary>
    public static IReadOnlyList<(string Key, string Value)> Describe(GenerationOptions options)
    {
        var result = new List<(string, string)>();
        foreach (var control in All)
            if (control.Get(options) is { } value) result.Add((control.Key, control.Text(value)));
        return result;
    }

    private static Control Int(string key, Func<GenerationOptions, int?> get, Action<GenerationOptions, int?> set, bool config) =>
        new(key, o => get(o), (o, v) => set(o, (int?)v), e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int i) ? i
                : throw new FormatException("expected an integer"),
            (w, v) => w.WriteNumberValue((int)v), config) { ValueType = typeof(int) };

    private static Control Float(string key, Func<GenerationOptions, float?> get, Action<GenerationOptions, float?> set, bool config) =>
        new(key, o => get(o), (o, v) => set(o, (float?)v), e => e.ValueKind == JsonValueKind.Number ? e.GetSingle()
                : throw new FormatException("expected a number"),
            (w, v) => w.WriteNumberValue((float)v), config) { ValueType = typeof(float) };

    private static Control Bool(string key, Func<GenerationOptions, bool?> get, Action<GenerationOptions, bool?> set, bool config) =>
        new(key, o => get(o), (o, v) => set(o, (bool?)v), e => e.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new FormatException("expected true or false"),
            },
            (w, v) => w.WriteBooleanValue((bool)v), config) { ValueType = typeof(bool) };

    private static object ParseIntList(JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int single)) return new[] { single };
        if (e.ValueKind != JsonValueKind.Array) throw new FormatException("expected an integer or a list of integers");
        return e.EnumerateArray().Select(item => item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int id) ? id
            : throw new FormatException($"expected integers, found {item.GetRawText()}")).ToArray();
    }

    private static object ParseStringList(JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.String) return new[] { e.GetString()! };
        if (e.ValueKind != JsonValueKind.Array) throw new FormatException("expected a string or a list of strings");
        return e.EnumerateArray().Select(item => item.ValueKind == JsonValueKind.String ? item.GetString()!
            : throw new FormatException($"expected strings, found {item.GetRawText()}")).ToArray();
    }

    private static void WriteIntList(Utf8JsonWriter writer, IReadOnlyList<int> values)
    {
        writer.WriteStartArray();
        foreach (int v in values) writer.WriteNumberValue(v);
        writer.WriteEndArray();
    }

    private static void WriteStringList(Utf8JsonWriter writer, IReadOnlyList<string> values)
    {
        writer.WriteStartArray();
        foreach (var v in values) writer.WriteStringValue(v);
        writer.WriteEndArray();
    }

    private static string OverflowName(PromptOverflow overflow) => overflow switch
    {
        PromptOverflow.TruncateLeft => "truncate_left",
        PromptOverflow.Error => "error",
        _ => throw new ArgumentOutOfRangeException(nameof(overflow), overflow, "Unknown prompt overflow."),
    };

    private static object ParseOverflow(JsonElement e) => e.ValueKind == JsonValueKind.String ? e.GetString() switch
        {
            "truncate_left" => PromptOverflow.TruncateLeft,
            "error" => PromptOverflow.Error,
            var other => throw new FormatException($"expected \"truncate_left\" or \"error\", found \"{other}\""),
        }
        : throw new FormatException("expected \"truncate_left\" or \"error\"");
}
