using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using MLNetGpt.Tests.Infrastructure;

namespace MLNetGpt.Tests.Chat;

/// <summary>
/// Conversations written in Hugging Face's message shape (the corpus cases, the fixture's golden-chat.json) turned
/// into Microsoft.Extensions.AI messages and tools, where the shape is the one the library writes back (so that a
/// rendering through the library can be compared with Python Jinja2's rendering of the original).
/// </summary>
internal static class HfConversation
{
    public const string ChatFixture = "tiny-chatml";

    public static string ChatFixtureFolder => Fixtures.Folder(ChatFixture);

    public sealed record GoldenConversation(string Name, List<ChatMessage> Messages, List<AITool>? Tools, bool AddGenerationPrompt, string Rendered, int[] Ids);

    public static IReadOnlyList<GoldenConversation> Golden()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(ChatFixtureFolder, "golden-chat.json")));
        return document.RootElement.GetProperty("conversations").EnumerateArray().Select(c => new GoldenConversation(
            c.GetProperty("name").GetString()!,
            TryMessages(c.GetProperty("messages")) ?? throw new InvalidOperationException("golden-chat.json holds a message the converter does not take"),
            c.TryGetProperty("tools", out var tools) ? TryTools(tools) : null,
            c.GetProperty("add_generation_prompt").GetBoolean(),
            c.GetProperty("rendered").GetString()!,
            c.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray())).ToList();
    }

    /// <summary>The messages, or null when one of them has a shape the library would not write back identically.</summary>
    public static List<ChatMessage>? TryMessages(JsonElement messages)
    {
        var result = new List<ChatMessage>();
        var callNames = new Dictionary<string, string>();
        foreach (var m in messages.EnumerateArray())
        {
            var keys = m.EnumerateObject().Select(p => p.Name).ToArray();
            string role = m.GetProperty("role").GetString()!;
            if (role == "tool")
            {
                if (!keys.SequenceEqual(["role", "tool_call_id", "name", "content"]) || m.GetProperty("content").ValueKind != JsonValueKind.String) return null;
                string id = m.GetProperty("tool_call_id").GetString()!;
                if (!callNames.TryGetValue(id, out var name) || name != m.GetProperty("name").GetString()) return null;
                result.Add(new ChatMessage(ChatRole.Tool, [new FunctionResultContent(id, m.GetProperty("content").GetString())]));
                continue;
            }
            if (!m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String) return null;
            string text = m.GetProperty("content").GetString()!;
            if (keys.SequenceEqual(["role", "content"]))
            {
                result.Add(new ChatMessage(new ChatRole(role), text));
                continue;
            }
            if (!keys.SequenceEqual(["role", "content", "tool_calls"]) || role != "assistant") return null;
            var contents = new List<AIContent>();
            if (text.Length > 0) contents.Add(new TextContent(text));
            foreach (var call in m.GetProperty("tool_calls").EnumerateArray())
            {
                if (!call.EnumerateObject().Select(p => p.Name).SequenceEqual(["id", "type", "function"])) return null;
                var function = call.GetProperty("function");
                if (!function.EnumerateObject().Select(p => p.Name).SequenceEqual(["name", "arguments"]) || function.GetProperty("arguments").ValueKind != JsonValueKind.Object) return null;
                string id = call.GetProperty("id").GetString()!, name = function.GetProperty("name").GetString()!;
                callNames[id] = name;
                var arguments = function.GetProperty("arguments").EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
                contents.Add(new FunctionCallContent(id, name, arguments));
            }
            result.Add(new ChatMessage(ChatRole.Assistant, contents));
        }
        return result;
    }

    /// <summary>Hugging Face tool dictionaries as function declarations, or null when one has keys the library would not write back.</summary>
    public static List<AITool>? TryTools(JsonElement tools)
    {
        if (tools.ValueKind == JsonValueKind.Null) return null;
        var result = new List<AITool>();
        foreach (var tool in tools.EnumerateArray())
        {
            if (!tool.EnumerateObject().Select(p => p.Name).SequenceEqual(["type", "function"])) return null;
            var f = tool.GetProperty("function");
            var keys = f.EnumerateObject().Select(p => p.Name).ToArray();
            if (!keys.SequenceEqual(["name", "description", "parameters"]) && !keys.SequenceEqual(["name", "description", "parameters", "return"])) return null;
            result.Add(AIFunctionFactory.CreateDeclaration(f.GetProperty("name").GetString()!, f.GetProperty("description").GetString(),
                f.GetProperty("parameters").Clone(), f.TryGetProperty("return", out var returns) ? returns.Clone() : null));
        }
        return result;
    }

    /// <summary>A copy of the chat fixture whose tokenizer_config.json is changed by <paramref name="edit"/>.</summary>
    public static string FixtureWithConfig(Action<JsonObject> edit)
    {
        var folder = Fixtures.CopyOf(ChatFixture);
        string path = Path.Combine(folder, "tokenizer_config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(config);
        File.WriteAllText(path, config.ToJsonString());
        return folder;
    }
}
