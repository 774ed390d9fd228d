using System.Text.Json;
using Microsoft.Extensions.AI;

namespace MLNetGpt.Chat;

/// <summary>
/// Microsoft.Extensions.AI messages and tools in the shape Hugging Face chat templates read (transformers'
/// conventions): <c>{"role", "content"}</c> messages, an assistant's calls under <c>tool_calls</c> as
/// <c>{"id", "type": "function", "function": {"name", "arguments": {...}}}</c>, each function result as its own
/// <c>{"role": "tool", "tool_call_id", "name", "content"}</c> message, and tools as
/// <c>{"type": "function", "function": {"name", "description", "parameters", "return"}}</c>.
/// </summary>
/// <remarks>Values are plain lists and ordered dictionaries: each render converts them afresh, so a template that pops from a list never changes the caller's next render.</remarks>
internal static class ChatTemplateInput
{
    // Microsoft.Extensions.AI's options (its type resolvers), writing compact JSON as a wire format would.
    private static readonly JsonSerializerOptions Json = CompactOptions();

    private static readonly string[] CoreKeys = ["role", "content", "reasoning_content", "tool_calls", "tool_call_id", "name"];

    public static List<object?> Messages(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var result = new List<object?>();
        var callNames = new Dictionary<string, string>(StringComparer.Ordinal);
        int index = 0;
        foreach (var message in messages)
        {
            if (message is null) throw new ArgumentNullException(nameof(messages), $"messages[{index}] is null.");
            string where = $"messages[{index}] ({message.Role.Value})";
            var text = new System.Text.StringBuilder();
            var reasoning = new System.Text.StringBuilder();
            var calls = new List<FunctionCallContent>();
            var results = new List<FunctionResultContent>();
            foreach (var content in message.Contents)
            {
                switch (content)
                {
                    case TextContent t: text.Append(t.Text); break;
                    case TextReasoningContent r: reasoning.Append(r.Text); break;
                    case FunctionCallContent c: calls.Add(c); break;
                    case FunctionResultContent r: results.Add(r); break;
                    case UsageContent: break;   // bookkeeping of an earlier response, nothing a model reads
                    default:
                        throw new NotSupportedException($"{where} holds {content.GetType().Name}, which chat templates cannot take; " +
                            "supported: TextContent, TextReasoningContent, FunctionCallContent, FunctionResultContent.");
                }
            }
            if (results.Count > 0)
            {
                if (text.Length > 0 || calls.Count > 0)
                    throw new ArgumentException($"{where} mixes FunctionResultContent with text or calls; a tool message holds results only.", nameof(messages));
                foreach (var r in results)
                {
                    var tool = new OrderedStringDictionary();
                    tool.Set("role", "tool");
                    tool.Set("tool_call_id", r.CallId);
                    if (callNames.TryGetValue(r.CallId, out var name)) tool.Set("name", name);
                    tool.Set("content", ResultText(r));
                    result.Add(tool);
                }
            }
            else
            {
                var entry = new OrderedStringDictionary();
                entry.Set("role", message.Role.Value);
                entry.Set("content", text.ToString());
                if (reasoning.Length > 0) entry.Set("reasoning_content", reasoning.ToString());
                if (calls.Count > 0)
                {
                    var list = new List<object?>();
                    foreach (var call in calls)
                    {
                        callNames[call.CallId] = call.Name;
                        var function = new OrderedStringDictionary();
                        function.Set("name", call.Name);
                        function.Set("arguments", Arguments(call.Arguments, $"{where}: the arguments of '{call.Name}'"));
                        var item = new OrderedStringDictionary();
                        item.Set("id", call.CallId);
                        item.Set("type", "function");
                        item.Set("function", function);
                        list.Add(item);
                    }
                    entry.Set("tool_calls", list);
                }
                if (message.AdditionalProperties is { } extra)
                {
                    foreach (var (key, value) in extra)
                    {
                        if (CoreKeys.Contains(key))
                            throw new ArgumentException($"{where}: AdditionalProperties['{key}'] would replace the message's own '{key}'.", nameof(messages));
                        entry.Set(key, Value(value, $"{where}: AdditionalProperties['{key}']"));
                    }
                }
                result.Add(entry);
            }
            index++;
        }
        return result;
    }

    /// <summary>The tools' JSON-schema declarations, or null (the template then sees <c>tools</c> as none).</summary>
    public static List<object?>? Tools(IEnumerable<AITool>? tools)
    {
        if (tools is null) return null;
        var result = new List<object?>();
        int index = 0;
        foreach (var tool in tools)
        {
            if (tool is not AIFunctionDeclaration declaration)
                throw new NotSupportedException($"tools[{index}] is {tool?.GetType().Name ?? "null"}; only function declarations (AIFunctionDeclaration, such as AIFunction) can be rendered into a chat template.");
            var function = new OrderedStringDictionary();
            function.Set("name", declaration.Name);
            function.Set("description", declaration.Description ?? "");
            function.Set("parameters", JinjaValues.FromJson(declaration.JsonSchema));
            if (declaration.ReturnJsonSchema is { } returns) function.Set("return", JinjaValues.FromJson(returns));
            var entry = new OrderedStringDictionary();
            entry.Set("type", "function");
            entry.Set("function", function);
            result.Add(entry);
            index++;
        }
        return result.Count == 0 ? null : result;
    }

    /// <summary>A function result as the text a tool message carries: strings as they are, anything else as JSON.</summary>
    public static string ResultText(FunctionResultContent result) => result.Result switch
    {
        null when result.Exception is { } e => $"Error: {e.Message}",
        null => "",
        string s => s,
        JsonElement { ValueKind: JsonValueKind.String } s => s.GetString()!,
        JsonElement json => json.GetRawText(),
        var other => JsonSerializer.Serialize(other, Json.GetTypeInfo(other.GetType())),
    };

    private static JsonSerializerOptions CompactOptions()
    {
        var options = new JsonSerializerOptions(AIJsonUtilities.DefaultOptions) { WriteIndented = false };
        options.MakeReadOnly();
        return options;
    }

    private static OrderedStringDictionary Arguments(IDictionary<string, object?>? arguments, string where)
    {
        var result = new OrderedStringDictionary();
        if (arguments is null) return result;
        foreach (var (key, value) in arguments) result.Set(key, Value(value, $"{where}['{key}']"));
        return result;
    }

    /// <summary>Values the template engine takes as they are; any other object as its JSON (as a serializer would send it).</summary>
    private static object? Value(object? value, string where)
    {
        switch (value)
        {
            case null or string or bool or int or long or short or byte or sbyte or ushort or uint or ulong or double or float or decimal or JsonElement:
                return value;
            default:
                try
                {
                    return JinjaValues.FromJson(JsonSerializer.SerializeToElement(value, Json.GetTypeInfo(value.GetType())));
                }
                catch (Exception e) when (e is NotSupportedException or JsonException or InvalidOperationException)
                {
                    throw new ArgumentException($"{where}: a {value.GetType().Name} cannot be written as JSON for the template ({e.Message}).", e);
                }
        }
    }
}
