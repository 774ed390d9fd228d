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
        Optional(owner, key) ?? throw Error($"{where}.{key} is missing.");

    public string RequiredString(JsonElement owner, string key, string where) =>
        String(Required(owner, key, where), $"{where}.{key}");

    public string String(JsonElement value, string where) =>
        value.ValueKind == JsonValueKind.String ? value.GetString()! : throw Error($"{where} must be a string, but is {Describe(value)}.");

    public string? OptionalString(JsonElement owner, string key, string where) =>
        Optional(owner, key) is { } value ? String(value, $"{where}.{key}") : null;

    public bool OptionalBool(JsonElement owner, string key, string where, bool fallback)
    {
        if (Optional(owner, key) is not { } value) return fallback;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error($"{where}.{key} must be true or false, but is {Describe(value)}."),
        };
    }

    public int OptionalInt(JsonElement owner, string key, string where, int fallback)
    {
        if (Optional(owner, key) is not { } value) return fallback;
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int result) && result >= 0
            ? result
            : throw Error($"{where}.{key} must be a non-negative integer, but is {Describe(value)}.");
    }

    public char Character(JsonElement owner, string key, string where)
    {
        string text = RequiredString(owner, key, where);
        return text.Length == 1 ? text[0] : throw Error($"{where}.{key} must be one character, but is \"{text}\".");
    }

    /// <summary>A <c>{"String": "..."}</c> pattern; regular-expression patterns are refused with the pattern shown.</summary>
    public string LiteralPattern(JsonElement owner, string where)
    {
        var pattern = Required(owner, "pattern", where);
        if (Optional(pattern, "String") is { } literal) return String(literal, $"{where}.pattern.String");
        if (Optional(pattern, "Regex") is { } regex)
            throw Error($"{where}.pattern is the regular expression {regex.GetRawText()}; only literal {{\"String\": ...}} patterns are supported here.");
        throw Error($"{where}.pattern must be {{\"String\": ...}}, but is {Describe(pattern)}.");
    }

    /// <summary>A step's <c>type</c>, checked against the kinds the caller supports.</summary>
    public string StepType(JsonElement step, string where, string kind, IReadOnlyList<string> supported)
    {
        if (step.ValueKind != JsonValueKind.Object) throw Error($"{where} must be a JSON object, but is {Describe(step)}.");
        string type = RequiredString(step, "type", where);
        if (!supported.Contains(type))
            throw Error($"{where}.type is '{type}', a {kind} this SentencePiece-style BPE loader does not support; supported: {string.Join(", ", supported)}.");
        return type;
    }

    public static string Describe(JsonElement value)
    {
        string raw = value.GetRawText();
        return raw.Length > 60 ? raw[..57] + "..." : raw;
    }
}
