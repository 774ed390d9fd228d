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
/// The one list of decoding controls. Each entry names a <see cref="GenerationOptions"/> property
/// with its JSON key (Hugging Face's where it has one), how the value reads and writes as JSON, and
/// whether Hugging Face's <c>generation_config.json</c> defines it. Merging defaults, persistence,
/// reading model configuration and describing options all walk this list, so a new control is one
/// property plus one entry here.
/// </summary>
internal static class GenerationControls
{
    internal sealed record Control(
        string Key,
        Func<GenerationOptions, object?> Get,
        Action<GenerationOptions, object?> Set,
        Func<JsonElement, object> Parse,
        Action<Utf8JsonWriter, object> Write,
        bool InGenerationConfig);

    public static readonly IReadOnlyList<Control> All =
    [
        Int("max_new_tokens", o => o.MaxNewTokens, (o, v) => o.MaxNewTokens = v, config: true),
        Int("min_new_tokens", o => o.MinNewTokens, (o, v) => o.MinNewTokens = v, config: true),
        Int("max_length", o => o.MaxLength, (o, v) => o.MaxLength = v, config: true),
        Bool("do_sample", o => o.DoSample, (o, v) => o.DoSample = v, config: true),
        Float("temperature", o => o.Temperature, (o, v) => o.Temperature = v, config: true),
        Int("top_k", o => o.TopK, (o, v) => o.TopK = v, config: true),
        Float("top_p", o => o.TopP, (o, v) => o.TopP = v, config: true),
        Float("min_p", o => o.MinP, (o, v) => o.MinP = v, config: true),
        Int("min_tokens_to_keep", o => o.MinTokensToKeep, (o, v) => o.MinTokensToKeep = v, config: false),
        Float("repetition_penalty", o => o.RepetitionPenalty, (o, v) => o.RepetitionPenalty = v, config: true),
        Int("no_repeat_ngram_size", o => o.NoRepeatNgramSize, (o, v) => o.NoRepeatNgramSize = v, config: true),
        // The folder's EOS ids are read with the special tokens; generation_config.json's entry is not a decoding default here.
        new("eos_token_id", o => o.EosTokenIds, (o, v) => o.EosTokenIds = (IReadOnlyList<int>?)v, ParseIntList,
            (w, v) => WriteIntList(w, (IReadOnlyList<int>)v), InGenerationConfig: false),
        new("stop_strings", o => o.StopStrings, (o, v) => o.StopStrings = (IReadOnlyList<string>?)v, ParseStringList,
            (w, v) => WriteStringList(w, (IReadOnlyList<string>)v), InGenerationConfig: true),
        Int("seed", o => o.Seed, (o, v) => o.Seed = v, config: false),
        Bool("return_log_probabilities", o => o.ReturnLogProbabilities, (o, v) => o.ReturnLogProbabilities = v, config: false),
        new("prompt_overflow", o => o.PromptOverflow, (o, v) => o.PromptOverflow = (PromptOverflow?)v, ParseOverflow,
            (w, v) => w.WriteStringValue(OverflowName((PromptOverflow)v)), InGenerationConfig: false),
        Bool("include_eos_token", o => o.IncludeEosToken, (o, v) => o.IncludeEosToken = v, config: false),
        Bool("prefix_caching", o => o.PrefixCaching, (o, v) => o.PrefixCaching = v, config: false),
        Bool("skip_special_tokens", o => o.SkipSpecialTokens, (o, v) => o.SkipSpecialTokens = v, config: false),
        Bool("clean_up_tokenization_spaces", o => o.CleanUpTokenizationSpaces, (o, v) => o.CleanUpTokenizationSpaces = v, config: false),
        // vLLM's names inside: {"guided_choice": [...]}, {"guided_regex": "..."} or {"guided_json": {...}}.
        new("constraint", o => o.Constraint, (o, v) => o.Constraint = (OutputConstraint?)v,
            e => OutputConstraint.FromJson(e.GetRawText(), "'constraint'"),
            (w, v) => { using var doc = JsonDocument.Parse(((OutputConstraint)v).ToJson()); doc.RootElement.WriteTo(w); }, InGenerationConfig: false),
    ];

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
        {
            if (control.Get(options) is not { } value) continue;
            using var buffer = new MemoryStream();
            using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                control.Write(writer, value);
            result.Add((control.Key, System.Text.Encoding.UTF8.GetString(buffer.ToArray())));
        }
        return result;
    }

    private static Control Int(string key, Func<GenerationOptions, int?> get, Action<GenerationOptions, int?> set, bool config) =>
        new(key, o => get(o), (o, v) => set(o, (int?)v), e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int i) ? i
                : throw new FormatException("expected an integer"),
            (w, v) => w.WriteNumberValue((int)v), config);

    private static Control Float(string key, Func<GenerationOptions, float?> get, Action<GenerationOptions, float?> set, bool config) =>
        new(key, o => get(o), (o, v) => set(o, (float?)v), e => e.ValueKind == JsonValueKind.Number ? e.GetSingle()
                : throw new FormatException("expected a number"),
            (w, v) => w.WriteNumberValue((float)v), config);

    private static Control Bool(string key, Func<GenerationOptions, bool?> get, Action<GenerationOptions, bool?> set, bool config) =>
        new(key, o => get(o), (o, v) => set(o, (bool?)v), e => e.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new FormatException("expected true or false"),
            },
            (w, v) => w.WriteBooleanValue((bool)v), config);

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
