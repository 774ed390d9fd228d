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

    /// <summary>Reads a configuration file of a model folder, through the folder's file policy.</summary>
    /// <exception cref="GptModelException">The file is missing, leads outside the folder, is too large or is not a JSON object.</exception>
    public static JsonConfig Load(ModelFiles files, string relative) =>
        Parse(System.IO.Path.Combine(files.Folder, relative), files.ReadSmallFile(relative));

    /// <summary>As <see cref="Load(ModelFiles, string)"/>, or null when the folder has no such file.</summary>
    public static JsonConfig? LoadIfExists(ModelFiles files, string relative) => files.Exists(relative) ? Load(files, relative) : null;

    /// <summary>Reads a configuration file by path (at most <see cref="ModelFiles.MaxConfigurationBytes"/>).</summary>
    public static JsonConfig Load(string path) => Parse(path, ModelFiles.ReadSmallFile(path, path));

    private static JsonConfig Parse(string path, byte[] bytes)
    {
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

    /// <summary>
    /// The first of the keys present, as an integer of 1 or more: counts and sizes (layers, heads, positions). A value
    /// of 0 or less is refused here, naming the key and the value, rather than meeting the generator as an empty window.
    /// </summary>
    public int? Positive(params string[] keys)
    {
        foreach (var key in keys)
        {
            if (Find(key) is not { } value) continue;
            if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int result) && result > 0) return result;
            throw new GptModelException($"{Path}: '{key}' must be a positive integer, but is {Short(value)}.");
        }
        return null;
    }

    /// <summary>A token id: an integer of 0 or more.</summary>
    public int? Id(string key)
    {
        if (Find(key) is not { } value) return null;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int result) && result >= 0) return result;
        throw new GptModelException($"{Path}: '{key}' must be a token id (an integer of 0 or more), but is {Short(value)}.");
    }

    private static string Short(JsonElement value)
    {
        string raw = value.GetRawText();
        return raw.Length > 60 ? raw[..57] + "..." : raw;
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
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int single) && single >= 0) return [single];
        if (value.ValueKind == JsonValueKind.Array)
        {
            var list = new List<int>();
            foreach (var item in value.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int id) || id < 0)
                    throw new GptModelException($"{Path}: '{key}' must hold token ids (integers of 0 or more), but holds {Short(item)}.");
                list.Add(id);
            }
            return list.ToArray();
        }
        throw new GptModelException($"{Path}: '{key}' must be a token id or a list of them (integers of 0 or more), but is {Short(value)}.");
    }
}
