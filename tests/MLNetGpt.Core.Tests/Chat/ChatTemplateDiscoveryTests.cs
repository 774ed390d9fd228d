using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using MLNetGpt.Chat;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary>
/// Finding a folder's chat templates and special tokens where transformers finds them, and rendering them as
/// Python Jinja2 does (references: the fixture's golden-chat.json and the shared corpus, both rendered by Jinja2).
/// </summary>
public sealed class ChatTemplateDiscoveryTests
{
    private static readonly ChatMessage[] Hello = [new(ChatRole.User, "Hello")];

    [Fact]
    public void The_fixture_template_renders_each_golden_conversation_as_Python_Jinja2_did()
    {
        using var model = GptModel.Open(HfConversation.ChatFixtureFolder);
        var template = model.ChatTemplate!;
        foreach (var c in HfConversation.Golden())
        {
            var actual = template.Render(c.Messages, c.AddGenerationPrompt, c.Tools);
            Assert.True(actual == c.Rendered, $"{c.Name}: {ChatTemplateCorpus.Difference(c.Rendered, actual)}");
        }
    }

    [Fact]
    public void A_rendered_prompt_tokenizes_to_the_ids_of_a_Hugging_Face_tokenizer_without_added_special_tokens()
    {
        using var model = GptModel.Open(HfConversation.ChatFixtureFolder);
        foreach (var c in HfConversation.Golden())
            Assert.Equal(c.Ids, model.Tokenizer.EncodeToIds(c.Rendered).ToArray());
    }

    [Fact]
    public void A_string_chat_template_in_tokenizer_config_is_the_default_and_its_AddedToken_eos_is_read_as_text()
    {
        using var model = GptModel.Open(HfConversation.ChatFixtureFolder);
        Assert.True(model.Info.HasChatTemplate);
        Assert.Equal(["default"], model.Info.ChatTemplateNames);
        Assert.Equal("default", model.Info.ChatTemplateName);
        Assert.Equal("tokenizer_config.json", model.ChatTemplate!.Source);
        // The fixture writes eos_token as {"content": "<|im_end|>", ..., "__type": "AddedToken"} and bos_token as null.
        Assert.Equal("<|im_end|>", model.ChatTemplate.SpecialTokens["eos_token"]);
        Assert.Equal("<|endoftext|>", model.ChatTemplate.SpecialTokens["pad_token"]);
        Assert.False(model.ChatTemplate.SpecialTokens.ContainsKey("bos_token"));
    }

    [Fact]
    public void A_token_the_files_leave_out_or_set_to_null_is_undefined_in_the_template_as_in_transformers()
    {
        var folder = HfConversation.FixtureWithConfig(c => c["chat_template"] = "{{ bos_token is defined }}|{{ eos_token }}|{{ pad_token }}");
        using var model = GptModel.Open(folder);
        Assert.Equal("False|<|im_end|>|<|endoftext|>", model.ChatTemplate!.Render(Hello));
    }

    [Fact]
    public void A_list_of_named_templates_gives_the_default_and_each_name_and_tools_pick_tool_use()
    {
        var folder = HfConversation.FixtureWithConfig(c => c["chat_template"] = new JsonArray(
            new JsonObject { ["name"] = "default", ["template"] = "plain:{{ messages[0].content }}" },
            new JsonObject { ["name"] = "tool_use", ["template"] = "tools:{{ tools | length }}:{{ messages[0].content }}" }));
        using var model = GptModel.Open(folder);
        Assert.Equal(["default", "tool_use"], model.Info.ChatTemplateNames);
        Assert.Equal("plain:Hello", model.ChatTemplate!.Render(Hello));
        Assert.Equal("tool_use", model.GetChatTemplate("tool_use").Name);
        Assert.Equal("tokenizer_config.json (chat_template 'tool_use')", model.GetChatTemplate("tool_use").Source);
        using var client = new GptChatClient(model);
        var tool = AIFunctionFactory.CreateDeclaration("f", "A function.", System.Text.Json.JsonDocument.Parse("""{"type":"object","properties":{}}""").RootElement);
        Assert.Equal("tools:1:Hello", client.Prepare(Hello, new ChatOptions { Tools = [tool] }).Text);
        Assert.Equal("plain:Hello", client.Prepare(Hello, new ChatOptions()).Text);
    }

    [Fact]
    public void Several_named_templates_without_a_default_give_no_ChatTemplate_and_the_client_asks_for_a_name()
    {
        var folder = HfConversation.FixtureWithConfig(c => c["chat_template"] = new JsonArray(
            new JsonObject { ["name"] = "rag", ["template"] = "a" }, new JsonObject { ["name"] = "short", ["template"] = "b" }));
        using var model = GptModel.Open(folder);
        Assert.True(model.Info.HasChatTemplate);
        Assert.Null(model.ChatTemplate);
        Assert.Null(model.Info.ChatTemplateName);
        using var client = new GptChatClient(model);
        var e = Assert.Throws<ArgumentException>(() => client.Prepare(Hello, null));
        Assert.StartsWith($"The model folder '{model.Info.Folder}' has several chat templates ('rag', 'short') and none named 'default'; choose one by name.", e.Message);
        using var named = new GptChatClient(model, chatTemplateName: "short");
        Assert.Equal("b", named.Prepare(Hello, null).Text);
    }

    [Fact]
    public void A_template_name_the_folder_lacks_is_refused_listing_the_names_it_has()
    {
        using var model = GptModel.Open(HfConversation.ChatFixtureFolder);
        var e = Assert.Throws<ArgumentException>(() => model.GetChatTemplate("tool_use"));
        Assert.StartsWith($"The model folder '{model.Info.Folder}' has no chat template named 'tool_use'; it has 'default'.", e.Message);
        Assert.Throws<ArgumentException>(() => new GptChatClient(model, chatTemplateName: "tool_use"));
    }

    [Fact]
    public void Chat_template_jinja_beside_the_config_replaces_the_config_template_and_additional_templates_join_by_file_name()
    {
        var folder = Fixtures.CopyOf(HfConversation.ChatFixture);
        File.WriteAllText(Path.Combine(folder, "chat_template.jinja"), "file:{{ messages[0].content }}");
        Directory.CreateDirectory(Path.Combine(folder, "additional_chat_templates"));
        File.WriteAllText(Path.Combine(folder, "additional_chat_templates", "terse.jinja"), "terse:{{ messages[0].content }}");
        using var model = GptModel.Open(folder);
        Assert.Equal(["default", "terse"], model.Info.ChatTemplateNames);
        Assert.Equal("chat_template.jinja", model.ChatTemplate!.Source);
        Assert.Equal("file:Hello", model.ChatTemplate.Render(Hello));
        Assert.Equal("additional_chat_templates/terse.jinja", model.GetChatTemplate("terse").Source);
        Assert.Equal("terse:Hello", model.GetChatTemplate("terse").Render(Hello));
    }

    [Fact]
    public void Special_tokens_map_json_wins_over_tokenizer_config_and_takes_AddedToken_objects()
    {
        var folder = HfConversation.FixtureWithConfig(c => c["chat_template"] = "{{ bos_token }}{{ eos_token }}{{ additional_special_tokens | join(',') }}");
        File.WriteAllText(Path.Combine(folder, "special_tokens_map.json"),
            """{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "additional_special_tokens": [{"content": "<a>"}, "<b>"]}""");
        using var model = GptModel.Open(folder);
        Assert.Equal("<s></s><a>,<b>", model.ChatTemplate!.Render(Hello));
        Assert.Equal("<s>", model.ChatTemplate.SpecialTokens["bos_token"]);
    }

    [Fact]
    public void A_folder_without_a_chat_template_has_none_and_a_chat_client_over_it_is_refused_naming_the_folder()
    {
        using var model = GptModel.Open(Fixtures.DefaultModel);
        Assert.False(model.Info.HasChatTemplate);
        Assert.Empty(model.Info.ChatTemplateNames);
        Assert.Null(model.ChatTemplate);
        var e = Assert.Throws<ArgumentException>(() => new GptChatClient(model));
        Assert.StartsWith($"The model folder '{model.Info.Folder}' has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja)", e.Message);
    }

    [Theory]
    [InlineData("""{"chat_template": 42}""", "'chat_template' must be a template string or a list of {\"name\": ..., \"template\": ...} objects, but is 42.")]
    [InlineData("""{"chat_template": [{"name": "a"}]}""", "'chat_template[0]' must be an object with a string 'name' and a string 'template', but is {\"name\": \"a\"}.")]
    [InlineData("""{"chat_template": [{"name": "a", "template": "x"}, {"name": "a", "template": "y"}]}""", "'chat_template[1]' repeats the template name 'a'.")]
    [InlineData("""{"chat_template": []}""", "'chat_template' is an empty list; expected a template string or a list of {\"name\": ..., \"template\": ...} objects.")]
    [InlineData("""{"chat_template": "x", "eos_token": 7}""", "'eos_token' must be a token string or an object with a string 'content', but is 7.")]
    [InlineData("""{"chat_template": "x", "additional_special_tokens": "<a>"}""", "'additional_special_tokens' must be a list of tokens, but is \"<a>\".")]
    public void A_malformed_template_entry_is_refused_naming_the_file_the_key_and_what_is_there(string config, string expected)
    {
        var folder = Fixtures.TempFolder("chat-config");
        string path = Path.Combine(folder, "tokenizer_config.json");
        File.WriteAllText(path, config);
        var e = Assert.Throws<GptModelException>(() => ChatTemplateFiles.Read(folder));
        Assert.Equal($"{path}: {expected}", e.Message);
    }

    [Fact]
    public void A_template_that_does_not_parse_fails_on_first_use_naming_the_template_its_file_and_the_line()
    {
        var folder = HfConversation.FixtureWithConfig(c => c["chat_template"] = "line one\n{% for m in messages %}{{ m.content }}");
        using var model = GptModel.Open(folder);   // opening a model never fails for a broken chat template
        var e = Assert.Throws<ChatTemplateException>(() => model.ChatTemplate!.Render(Hello));
        Assert.StartsWith($"The chat template 'default' (tokenizer_config.json in '{model.Info.Folder}') does not parse: ", e.Message);
        Assert.Equal(2, e.Line);
        Assert.False(e.RaisedByTemplate);
    }

    [Fact]
    public void A_template_that_raises_gives_its_own_message_and_says_the_template_refused()
    {
        using var model = GptModel.Open(HfConversation.ChatFixtureFolder);
        ChatMessage[] twoSystems = [new(ChatRole.System, "a"), new(ChatRole.User, "b"), new(ChatRole.System, "c")];
        var e = Assert.Throws<ChatTemplateException>(() => model.ChatTemplate!.Render(twoSystems));
        Assert.Equal($"The chat template 'default' (tokenizer_config.json in '{model.Info.Folder}') refused the conversation: Only the first message may be a system message.", e.Message);
        Assert.True(e.RaisedByTemplate);
        Assert.Equal("default", e.TemplateName);
    }

    [Fact]
    public void Content_a_template_cannot_take_and_variables_that_would_replace_the_render_arguments_are_refused_naming_them()
    {
        using var model = GptModel.Open(HfConversation.ChatFixtureFolder);
        var template = model.ChatTemplate!;
        var image = new ChatMessage(ChatRole.User, [new TextContent("look"), new DataContent(new byte[] { 1 }, "image/png")]);
        var e1 = Assert.Throws<NotSupportedException>(() => template.Render([image]));
        Assert.Equal("messages[0] (user) holds DataContent, which chat templates cannot take; supported: TextContent, TextReasoningContent, FunctionCallContent, FunctionResultContent.", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => template.Render(Hello, variables: new Dictionary<string, object?> { ["messages"] = "x" }));
        Assert.StartsWith("variables['messages'] would replace the template's own 'messages'; pass it through the parameter of that name.", e2.Message);
        var mixed = new ChatMessage(ChatRole.Tool, [new TextContent("x"), new FunctionResultContent("c1", "r")]);
        var e3 = Assert.Throws<ArgumentException>(() => template.Render([mixed]));
        Assert.StartsWith("messages[0] (tool) mixes FunctionResultContent with text or calls; a tool message holds results only.", e3.Message);
        var e4 = Assert.Throws<NotSupportedException>(() => template.Render(Hello, tools: [new HostedWebSearchTool()]));
        Assert.Equal("tools[0] is HostedWebSearchTool; only function declarations (AIFunctionDeclaration, such as AIFunction) can be rendered into a chat template.", e4.Message);
    }

    [Fact]
    public void An_additional_template_that_repeats_a_name_is_refused_naming_both_files()
    {
        var folder = Fixtures.CopyOf(HfConversation.ChatFixture);
        Directory.CreateDirectory(Path.Combine(folder, "additional_chat_templates"));
        string file = Path.Combine(folder, "additional_chat_templates", "default.jinja");
        File.WriteAllText(file, "x");
        var e = Assert.Throws<GptModelException>(() => ChatTemplateFiles.Read(folder));
        Assert.Equal($"{file} names the chat template 'default', which tokenizer_config.json already defines.", e.Message);
    }

    [Fact]
    public void A_null_message_and_message_properties_that_would_replace_its_own_keys_are_refused_naming_them()
    {
        using var model = GptModel.Open(HfConversation.ChatFixtureFolder);
        var template = model.ChatTemplate!;
        var e1 = Assert.Throws<ArgumentNullException>(() => template.Render([new ChatMessage(ChatRole.User, "a"), null!]));
        Assert.StartsWith("messages[1] is null.", e1.Message);
        var clash = new ChatMessage(ChatRole.User, "a") { AdditionalProperties = new() { ["role"] = "system" } };
        var e2 = Assert.Throws<ArgumentException>(() => template.Render([clash]));
        Assert.StartsWith("messages[0] (user): AdditionalProperties['role'] would replace the message's own 'role'.", e2.Message);
        var extra = new ChatMessage(ChatRole.User, "a") { AdditionalProperties = new() { ["thinking"] = "deep" } };
        var folder = HfConversation.FixtureWithConfig(c => c["chat_template"] = "{{ messages[0].thinking }}|{{ messages[0] | tojson }}");
        using var other = GptModel.Open(folder);
        Assert.Equal("deep|{\"role\": \"user\", \"content\": \"a\", \"thinking\": \"deep\"}", other.ChatTemplate!.Render([extra]));
    }
}
