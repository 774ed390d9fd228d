using System.Text.Json;

namespace MLNetGpt.Tokenization;

/// <summary>
/// Reads values out of one tokenizer.json; every error names the file, the JSON path of the value
/// (such as <c>model.merges[12]</c>), what was expected and what is there.
/// </summary>
internal sealed class TokenizerJson
{
    public TokenizerJson(string path) => Path = path;

    public string Path { get; }

    public GptModelException Error(string message) => new($"{Path}: {message}");

    /// <summary>The property, or null when it is absent or JSON null.</summary>
    public static JsonElement? Optional(JsonElement owner, string key) =>
        owner.ValueKind == JsonValueKind.Object && owner.TryGetProperty(key, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public JsonElement Required(JsonElement owner, string key, string where) =>
        Optional(owner, key) ?? throw Error($"{Join(where, key)} is missing.");

    public string RequiredString(JsonElement owner, string key, string where) =>
        String(Required(owner, key, where), Join(where, key));

    public string String(JsonElement value, string where) =>
        value.ValueKind == JsonValueKind.String ? value.GetString()! : throw Error($"{where} must be a string, but is {Describe(value)}.");

    public string? OptionalString(JsonElement owner, string key, string where) =>
        Optional(owner, key) is { } value ? String(value, Join(where, key)) : null;

    public bool RequiredBool(JsonElement owner, string key, string where) =>
        Bool(Required(owner, key, where), Join(where, key));

    public bool OptionalBool(JsonElement owner, string key, string where, bool fallback) =>
        Optional(owner, key) is { } value ? Bool(value, Join(where, key)) : fallback;

    private bool Bool(JsonElement value, string where) => value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Error($"{where} must be true or false, but is {Describe(value)}."),
    };

    public int OptionalInt(JsonElement owner, string key, string where, int fallback) =>
        Optional(owner, key) is { } value ? Id(value, Join(where, key)) : fallback;

    /// <summary>A non-negative integer that fits an id (below 2^31).</summary>
    public int Id(JsonElement value, string where) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int result) && result >= 0
            ? result
            : throw Error($"{where} must be a non-negative integer below 2^31, but is {Describe(value)}.");

    public double Number(JsonElement value, string where) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double result) && double.IsFinite(result)
            ? result
            : throw Error($"{where} must be a number, but is {Describe(value)}.");

    /// <summary>The elements of an array property.</summary>
    public JsonElement.ArrayEnumerator Array(JsonElement owner, string key, string where)
    {
        var list = Required(owner, key, where);
        if (list.ValueKind != JsonValueKind.Array) throw Error($"{Join(where, key)} must be an array, but is {Describe(list)}.");
        return list.EnumerateArray();
    }

    public char Character(JsonElement owner, string key, string where)
    {
        string text = RequiredString(owner, key, where);
        return text.Length == 1 ? text[0] : throw Error($"{Join(where, key)} must be one character, but is \"{text}\".");
    }

    /// <summary>A <c>{"String": "..."}</c> or <c>{"Regex": "..."}</c> pattern; a regex that has no .NET translation is refused naming it.</summary>
    public TokenizerPattern Pattern(JsonElement owner, string where)
    {
        var pattern = Required(owner, "pattern", where);
        if (Optional(pattern, "String") is { } literal) return TokenizerPattern.Literal(String(literal, $"{where}.pattern.String"));
        if (Optional(pattern, "Regex") is { } regex)
        {
            string text = String(regex, $"{where}.pattern.Regex");
            try
            {
                return TokenizerPattern.FromRegex(OnigRegex.Create(text));
            }
            catch (FormatException e)
            {
                throw Error($"{where}.pattern.Regex \"{text}\" cannot be used: {e.Message}.");
            }
        }
        throw Error($"{where}.pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, but is {Describe(pattern)}.");
    }

    /// <summary>A step's <c>type</c>, checked against the kinds the loader supports.</summary>
    public string StepType(JsonElement step, string where, string kind, IReadOnlyList<string> supported)
    {
        if (step.ValueKind != JsonValueKind.Object) throw Error($"{where} must be a JSON object, but is {Describe(step)}.");
        string type = RequiredString(step, "type", where);
        if (!supported.Contains(type))
            throw Error($"{where}.type is '{type}', a {kind} that is not supported (supported: {string.Join(", ", supported)}).");
        return type;
    }

    public static string Describe(JsonElement value)
    {
        string raw = value.GetRawText();
        return raw.Length > 60 ? raw[..57] + "..." : raw;
    }

    private static string Join(string where, string key) => where.Length == 0 ? key : $"{where}.{key}";
}
