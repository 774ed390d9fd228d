using System.Text.Json;

namespace MLNetGpt.Models;

/// <summary>Reads one JSON configuration file; errors name the file and the key.</summary>
internal sealed class JsonConfig
{
    private readonly JsonElement _root;

    private JsonConfig(string path, JsonElement root)
    {
        Path = path;
        _root = root;
    }

    public string Path { get; }

    /// <summary>The whole JSON object.</summary>
    public JsonElement Root => _root;

    public string FileName => System.IO.Path.GetFileName(Path);

    public static JsonConfig Load(string path)
    {
        var bytes = File.ReadAllBytes(path);
        try
        {
            using var document = JsonDocument.Parse(bytes,
                new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new GptModelException($"{path} must hold a JSON object, but holds a {document.RootElement.ValueKind}.");
            return new JsonConfig(path, document.RootElement.Clone());
        }
        catch (JsonException e)
        {
            throw new GptModelException($"{path} is not valid JSON{Where(bytes, e)}: {Reason(e)}", e);
        }
    }

    // System.Text.Json counts lines from 0 and columns in bytes from 0; an editor counts both from 1, and columns in characters.
    private static string Where(byte[] bytes, JsonException e)
    {
        if (e.LineNumber is not long line || e.BytePositionInLine is not long position) return "";
        int start = 0;
        for (long seen = 0; seen < line && start < bytes.Length; start++)
            if (bytes[start] == (byte)'\n') seen++;
        if (start == 0 && bytes.AsSpan().StartsWith("\uFEFF"u8)) start = 3;
        int length = (int)Math.Clamp(position, 0, bytes.Length - start);
        int column = System.Text.Encoding.UTF8.GetCharCount(bytes, start, length) + 1;
        return $" at line {line + 1}, column {column}";
    }

    private static string Reason(JsonException e)
    {
        int at = e.Message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (at >= 0 ? e.Message[..at] : e.Message).Trim();
    }

    public static JsonConfig? LoadIfExists(string path) => File.Exists(path) ? Load(path) : null;

    /// <summary>The element at a dotted path such as <c>model.decoder.filename</c>, or null.</summary>
    public JsonElement? Find(string dottedPath)
    {
        var current = _root;
        foreach (var part in dottedPath.Split('.'))
        {
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(part, out current))
                return null;
        }
        return current.ValueKind == JsonValueKind.Null ? null : current;
    }

    /// <summary>"file: 'key'" for the first of <paramref name="keys"/> present (for messages), or null.</summary>
    public string? Where(params string[] keys)
    {
        foreach (var key in keys)
            if (Find(key) is not null) return $"{FileName}: '{key}'";
        return null;
    }

    /// <summary>The first of the keys present, as an integer.</summary>
    public int? Int(params string[] keys)
    {
        foreach (var key in keys)
        {
            if (Find(key) is not { } value) continue;
            if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int result)) return result;
            throw new GptModelException($"{Path}: '{key}' must be an integer, but is {value.GetRawText()}.");
        }
        return null;
    }

    public float? Float(string key)
    {
        if (Find(key) is not { } value) return null;
        if (value.ValueKind == JsonValueKind.Number) return value.GetSingle();
        throw new GptModelException($"{Path}: '{key}' must be a number, but is {value.GetRawText()}.");
    }

    public bool? Bool(string key)
    {
        if (Find(key) is not { } value) return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new GptModelException($"{Path}: '{key}' must be true or false, but is {value.GetRawText()}."),
        };
    }

    public string? String(string key)
    {
        if (Find(key) is not { } value) return null;
        return value.ValueKind == JsonValueKind.String ? value.GetString()
            : throw new GptModelException($"{Path}: '{key}' must be a string, but is {value.GetRawText()}.");
    }

    /// <summary>An integer or a list of integers (as <c>eos_token_id</c> may be).</summary>
    public int[]? IntList(string key)
    {
        if (Find(key) is not { } value) return null;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int single)) return [single];
        if (value.ValueKind == JsonValueKind.Array)
        {
            var list = new List<int>();
            foreach (var item in value.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int id))
                    throw new GptModelException($"{Path}: '{key}' must hold integers, but holds {item.GetRawText()}.");
                list.Add(id);
            }
            return list.ToArray();
        }
        throw new GptModelException($"{Path}: '{key}' must be an integer or a list of integers, but is {value.GetRawText()}.");
    }
}
