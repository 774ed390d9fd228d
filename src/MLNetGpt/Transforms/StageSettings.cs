using System.Text;
using System.Text.Json;

namespace MLNetGpt.Transforms;

/// <summary>
/// A stage's saved settings as one JSON object with snake_case keys (decoding options nested under
/// <c>generation</c> with Hugging Face's names). A key that is missing means the default, so a
/// setting added later reads as its default from older zips; an unknown key means the zip comes
/// from a newer format and is refused with its name.
/// </summary>
internal sealed class StageSettingsWriter
{
    private readonly MemoryStream _buffer = new();
    private readonly Utf8JsonWriter _writer;

    public StageSettingsWriter()
    {
        _writer = new Utf8JsonWriter(_buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        _writer.WriteStartObject();
    }

    public StageSettingsWriter String(string key, string? value)
    {
        if (value is not null) _writer.WriteString(key, value);
        return this;
    }

    public StageSettingsWriter Int(string key, int? value)
    {
        if (value is int v) _writer.WriteNumber(key, v);
        return this;
    }

    public StageSettingsWriter Bool(string key, bool value)
    {
        _writer.WriteBoolean(key, value);
        return this;
    }

    public StageSettingsWriter Strings(string key, IReadOnlyList<string>? values)
    {
        if (values is null) return this;
        _writer.WriteStartArray(key);
        foreach (var v in values) _writer.WriteStringValue(v);
        _writer.WriteEndArray();
        return this;
    }

    public StageSettingsWriter Ints(string key, IReadOnlyList<int>? values)
    {
        if (values is null) return this;
        _writer.WriteStartArray(key);
        foreach (var v in values) _writer.WriteNumberValue(v);
        _writer.WriteEndArray();
        return this;
    }

    public StageSettingsWriter Generation(string key, GenerationOptions options)
    {
        _writer.WritePropertyName(key);
        GenerationControls.Write(options, _writer);
        return this;
    }

    /// <summary>A device override as <c>cpu</c> or <c>cuda:N</c> plus its fallback flag; nothing for "the MLContext's".</summary>
    public StageSettingsWriter Device(GptDevice? device)
    {
        if (device is null) return this;
        _writer.WriteString("device", device.ToString());
        _writer.WriteBoolean("fallback_to_cpu", device.FallbackToCpu);
        return this;
    }

    public override string ToString()
    {
        _writer.WriteEndObject();
        _writer.Flush();
        return Encoding.UTF8.GetString(_buffer.ToArray());
    }
}

/// <summary>Reads what <see cref="StageSettingsWriter"/> wrote; errors name the stage and the key.</summary>
internal sealed class StageSettingsReader
{
    private readonly string _stage;
    private readonly Dictionary<string, JsonElement> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    public StageSettingsReader(string json, string stage)
    {
        _stage = stage;
        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw Error($"the settings are a JSON {document.RootElement.ValueKind}, not an object");
            foreach (var property in document.RootElement.EnumerateObject()) _values[property.Name] = property.Value.Clone();
        }
        catch (JsonException e)
        {
            throw Error($"the settings are not valid JSON ({e.Message})");
        }
    }

    public string? String(string key) => Take(key) is { } e ? e.ValueKind == JsonValueKind.String ? e.GetString() : throw Wrong(key, "a string", e) : null;

    public string RequiredString(string key) => String(key) ?? throw Error($"the required setting '{key}' is missing");

    public int? Int(string key) => Take(key) is { } e ? e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) ? v : throw Wrong(key, "an integer", e) : null;

    public bool Bool(string key, bool fallback) => Take(key) is { } e
        ? e.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Wrong(key, "true or false", e) }
        : fallback;

    public string[]? Strings(string key)
    {
        if (Take(key) is not { } e) return null;
        if (e.ValueKind != JsonValueKind.Array) throw Wrong(key, "a list of strings", e);
        return e.EnumerateArray().Select(item => item.ValueKind == JsonValueKind.String ? item.GetString()! : throw Wrong(key, "a list of strings", e)).ToArray();
    }

    public int[]? Ints(string key)
    {
        if (Take(key) is not { } e) return null;
        if (e.ValueKind != JsonValueKind.Array) throw Wrong(key, "a list of integers", e);
        return e.EnumerateArray().Select(item => item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int v) && v >= 0 ? v : throw Wrong(key, "a list of token ids", e)).ToArray();
    }

    public GenerationOptions Generation(string key)
    {
        if (Take(key) is not { } e) return new GenerationOptions();
        try
        {
            return GenerationControls.Read(e, $"{_stage} in the saved pipeline: '{key}'", UnknownKeys.Refuse);
        }
        catch (FormatException ex)
        {
            throw new FormatException(ex.Message + " (the pipeline may have been saved by a newer MLNetGpt)", ex);
        }
    }

    public GptDevice? Device()
    {
        if (String("device") is not { } text)
        {
            Take("fallback_to_cpu");
            return null;
        }
        GptDevice parsed;
        try
        {
            parsed = GptDevice.Parse(text);
        }
        catch (FormatException e)
        {
            throw Error($"'device' is not valid: {e.Message}");
        }
        bool fallback = Bool("fallback_to_cpu", true);
        return parsed.GpuDeviceId is int id ? GptDevice.Cuda(id, fallback) : GptDevice.Cpu;
    }

    /// <summary>Refuses keys nobody read: they come from a newer format this version does not understand.</summary>
    public void EnsureAllRead()
    {
        var unknown = _values.Keys.Where(k => !_read.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw Error($"unknown setting(s) {string.Join(", ", unknown.Select(k => $"'{k}'"))}; the pipeline may have been saved by a newer MLNetGpt");
    }

    private JsonElement? Take(string key)
    {
        _read.Add(key);
        return _values.TryGetValue(key, out var e) && e.ValueKind != JsonValueKind.Null ? e : null;
    }

    private FormatException Wrong(string key, string expected, JsonElement actual) => Error($"'{key}' must be {expected}, but is {actual.GetRawText()}");

    private FormatException Error(string message) => new($"{_stage} in the saved pipeline: {message}.");
}
