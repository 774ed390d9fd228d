using System.Text.Json;
using Microsoft.Extensions.AI;

namespace MLNetGpt.Examples.ChatServer;

/// <summary>
/// An OpenAI chat completions request body, read into Microsoft.Extensions.AI's shapes: <c>messages</c> (text content,
/// as a string or text parts), <c>max_tokens</c> / <c>max_completion_tokens</c>, <c>temperature</c>, <c>top_p</c>,
/// <c>top_k</c> (vLLM's extension), <c>seed</c>, <c>stop</c>, <c>frequency_penalty</c>, <c>presence_penalty</c>,
/// <c>response_format</c> (<c>text</c>, <c>json_object</c>, <c>json_schema</c>), <c>stream</c> and
/// <c>stream_options.include_usage</c>. <c>model</c> is not checked (the server has one model); <c>n</c> must be 1.
/// </summary>
internal sealed record ChatRequest(List<ChatMessage> Messages, ChatOptions Options, bool Stream, bool IncludeUsage)
{
    /// <exception cref="FormatException">The body is not a request this server understands; the message names the field.</exception>
    public static async Task<ChatRequest> ReadAsync(HttpRequest http, int maxBytes, CancellationToken cancellation)
    {
        if (http.ContentLength > maxBytes) throw new FormatException($"The request body has {http.ContentLength} bytes; at most {maxBytes} are accepted.");
        JsonDocument document;
        try
        {
            using var limited = new MemoryStream();
            await http.Body.CopyToAsync(limited, cancellation);
            if (limited.Length > maxBytes) throw new FormatException($"The request body has more than {maxBytes} bytes.");
            document = JsonDocument.Parse(limited.ToArray(), new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException e)
        {
            throw new FormatException($"The request body is not valid JSON: {e.Message}", e);
        }
        using (document) return Read(document.RootElement);
    }

    private static ChatRequest Read(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new FormatException("The request body must be a JSON object.");
        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
            throw new FormatException("'messages' must be a non-empty array.");
        var list = new List<ChatMessage>();
        int index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            string where = $"messages[{index++}]";
            string role = String(message, "role") ?? throw new FormatException($"{where}.role is missing.");
            var chatRole = role switch
            {
                "system" or "developer" => ChatRole.System,
                "user" => ChatRole.User,
                "assistant" => ChatRole.Assistant,
                "tool" => ChatRole.Tool,
                _ => throw new FormatException($"{where}.role '{role}' is not system, developer, user, assistant or tool."),
            };
            list.Add(new ChatMessage(chatRole, Content(message, where)));
        }

        var options = new ChatOptions
        {
            MaxOutputTokens = Int(root, "max_completion_tokens") ?? Int(root, "max_tokens"),
            Temperature = Float(root, "temperature"),
            TopP = Float(root, "top_p"),
            TopK = Int(root, "top_k"),
            Seed = Long(root, "seed"),
            FrequencyPenalty = Float(root, "frequency_penalty"),
            PresencePenalty = Float(root, "presence_penalty"),
            StopSequences = Stops(root),
            ResponseFormat = Format(root),
        };
        if (Int(root, "n") is int n && n != 1) throw new FormatException($"'n' is {n}; this server answers with one choice.");
        bool stream = root.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        bool usage = root.TryGetProperty("stream_options", out var so) && so.ValueKind == JsonValueKind.Object
            && so.TryGetProperty("include_usage", out var iu) && iu.ValueKind == JsonValueKind.True;
        return new ChatRequest(list, options, stream, usage);
    }

    private static string Content(JsonElement message, string where)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null) return "";
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array) throw new FormatException($"{where}.content must be a string or an array of text parts.");
        var text = new System.Text.StringBuilder();
        int part = 0;
        foreach (var item in content.EnumerateArray())
        {
            if (String(item, "type") != "text") throw new FormatException($"{where}.content[{part}] is not a text part; this server reads text only.");
            text.Append(String(item, "text"));
            part++;
        }
        return text.ToString();
    }

    private static ChatResponseFormat? Format(JsonElement root)
    {
        if (!root.TryGetProperty("response_format", out var format) || format.ValueKind == JsonValueKind.Null) return null;
        return String(format, "type") switch
        {
            "text" => ChatResponseFormat.Text,
            "json_object" => ChatResponseFormat.Json,
            "json_schema" when format.TryGetProperty("json_schema", out var spec) && spec.TryGetProperty("schema", out var schema) =>
                ChatResponseFormat.ForJsonSchema(schema.Clone(), String(spec, "name"), String(spec, "description")),
            var other => throw new FormatException($"'response_format.type' is '{other}'; expected text, json_object or json_schema with a schema."),
        };
    }

    private static List<string>? Stops(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null) return null;
        if (stop.ValueKind == JsonValueKind.String) return [stop.GetString()!];
        if (stop.ValueKind == JsonValueKind.Array)
            return stop.EnumerateArray().Select(s => s.ValueKind == JsonValueKind.String ? s.GetString()! : throw new FormatException("'stop' must hold strings.")).ToList();
        throw new FormatException("'stop' must be a string or an array of strings.");
    }

    private static string? String(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static int? Int(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number)) return number;
        throw new FormatException($"'{name}' must be a 32-bit integer, not {value.GetRawText()}.");
    }

    private static long? Long(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long number)) return number;
        throw new FormatException($"'{name}' must be an integer, not {value.GetRawText()}.");
    }

    private static float? Float(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return value.ValueKind == JsonValueKind.Number ? value.GetSingle() : throw new FormatException($"'{name}' must be a number, not {value.GetRawText()}.");
    }
}
