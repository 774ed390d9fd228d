using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetGpt.Chat;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary>
/// The shared corpus's conversations, given as Microsoft.Extensions.AI messages and function declarations to
/// <see cref="ChatTemplate.Render"/> of a folder holding the corpus template: the library's conversion to
/// transformers' message shape (tool calls, tool results, tools as JSON schemas) must give Python Jinja2's text.
/// </summary>
public sealed class ChatMessageCorpusTests
{
    [SharedDataFact(ChatTemplateCorpus.Folder)]
    public void Corpus_conversations_given_as_chat_messages_render_as_Python_Jinja2_rendered_them()
    {
        var folders = new Dictionary<string, string>();
        int compared = 0, withTools = 0, withCalls = 0;
        var failures = new List<string>();
        foreach (var name in ChatTemplateCorpus.CaseNames())
        {
            using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(ChatTemplateCorpus.CasesFolder, name)));
            var root = document.RootElement;
            var messages = HfConversation.TryMessages(root.GetProperty("messages"));
            var hasTools = root.TryGetProperty("tools", out var toolsJson) && toolsJson.ValueKind != JsonValueKind.Null;
            var tools = hasTools ? HfConversation.TryTools(toolsJson) : null;
            if (messages is null || (hasTools && tools is null)) continue;

            string templateName = root.GetProperty("template").GetString()!;
            if (!folders.TryGetValue(templateName, out var folder))
            {
                folder = Fixtures.TempFolder("corpus-template");
                var config = new JsonObject { ["chat_template"] = File.ReadAllText(Path.Combine(ChatTemplateCorpus.TemplatesFolder, templateName)) };
                File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ToJsonString());
                folders[templateName] = folder;
            }
            var files = ChatTemplateFiles.Read(folder)!;
            var template = new ChatTemplate(files.Default!, files);
            // The corpus passes bos/eos as the case gives them (null: not passed), then its extra keyword arguments.
            var variables = new Dictionary<string, object?>();
            foreach (var token in new[] { "bos_token", "eos_token" })
                if (root.TryGetProperty(token, out var value) && value.ValueKind == JsonValueKind.String) variables[token] = value.GetString();
            if (root.TryGetProperty("extra", out var extra))
                foreach (var p in extra.EnumerateObject()) variables[p.Name] = p.Value.Clone();

            var actual = template.RenderValues(ChatTemplateInput.Messages(messages), ChatTemplateInput.Tools(tools),
                root.GetProperty("add_generation_prompt").GetBoolean(), variables, () => ChatTemplateCorpus.Now);
            string expected = root.GetProperty("expected").GetString()!;
            compared++;
            if (tools is not null) withTools++;
            if (messages.Any(m => m.Contents.Any(c => c is Microsoft.Extensions.AI.FunctionCallContent))) withCalls++;
            if (actual != expected) failures.Add($"{name}: {ChatTemplateCorpus.Difference(expected, actual)}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {compared} differ:\n" + string.Join("\n", failures));
        // Guards against the converter silently skipping most of the corpus.
        Assert.True(compared >= 180, $"only {compared} cases were convertible");
        Assert.True(withCalls >= 20, $"only {withCalls} cases with tool calls were compared");
        Assert.True(withTools >= 25, $"only {withTools} cases with tools were compared");
    }
}
