using System.Text.Json;
using Microsoft.Extensions.AI;
using MLNetGpt.Chat;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary>
/// Tools through the chat client: declarations rendered by the template, the model's Hermes-style
/// <c>&lt;tool_call&gt;</c> output (scripted here with an output constraint, since the fixture's weights are random)
/// read back as <see cref="FunctionCallContent"/>, and results rendered into the next prompt as Jinja2 renders them.
/// </summary>
public sealed class ToolCallTests : IDisposable
{
    private const string Call = """<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>""";
    private static readonly ChatMessage[] Question =
        [new(ChatRole.System, "You are a careful assistant who answers briefly."), new(ChatRole.User, "What is the weather in Paris?")];
    private readonly GptModel _model = GptModel.Open(HfConversation.ChatFixtureFolder);

    public void Dispose() => _model.Dispose();

    private static AITool Weather()
    {
        using var schema = JsonDocument.Parse("""{"type": "object", "properties": {"city": {"type": "string", "description": "The city."}}, "required": ["city"]}""");
        return AIFunctionFactory.CreateDeclaration("get_weather", "Get the weather in a city.", schema.RootElement.Clone());
    }

    /// <summary>Options whose output is scripted: the model can only write one of <paramref name="outputs"/>.</summary>
    private static ChatOptions Scripted(params string[] outputs) => new()
    {
        Tools = [Weather()],
        MaxOutputTokens = 120,
        RawRepresentationFactory = _ => new GenerationOptions { Constraint = OutputConstraint.Choices(outputs) },
    };

    private async Task<(ChatResponse Whole, ChatResponse Streamed)> Both(ChatOptions options)
    {
        using var client = new GptChatClient(_model);
        var whole = await client.GetResponseAsync(Question, options);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(Question, options)) updates.Add(u);
        return (whole, updates.ToChatResponse());
    }

    private static FunctionCallContent[] Calls(ChatResponse response) =>
        response.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().ToArray();

    [Fact]
    public async Task A_tool_call_in_the_output_becomes_a_function_call_with_its_arguments_whole_and_streamed()
    {
        var (whole, streamed) = await Both(Scripted(Call));
        foreach (var response in new[] { whole, streamed })
        {
            var call = Assert.Single(Calls(response));
            Assert.Equal("get_weather", call.Name);
            Assert.Equal("Paris", ((JsonElement)call.Arguments!["city"]!).GetString());
            Assert.Null(call.Exception);
            Assert.StartsWith("call-", call.CallId);
            Assert.Equal("", response.Text);
            Assert.Equal(ChatFinishReason.ToolCalls, response.FinishReason);
        }
    }

    [Fact]
    public async Task Text_before_a_call_stays_reply_text_and_several_calls_are_all_read()
    {
        string output = "Let me check. " + Call + "\n" + Call.Replace("Paris", "Rome");
        var (whole, streamed) = await Both(Scripted(output));
        foreach (var response in new[] { whole, streamed })
        {
            Assert.Equal("Let me check. ", response.Text);
            Assert.Equal(["Paris", "Rome"], Calls(response).Select(c => ((JsonElement)c.Arguments!["city"]!).GetString()));
        }
        var one = await new GptChatClient(_model).GetResponseAsync(Question, new ChatOptions
        {
            Tools = [Weather()], AllowMultipleToolCalls = false, MaxOutputTokens = 120,
            RawRepresentationFactory = _ => new GenerationOptions { Constraint = OutputConstraint.Choices([output]) },
        });
        Assert.Equal("Paris", ((JsonElement)Assert.Single(Calls(one)).Arguments!["city"]!).GetString());
    }

    [Fact]
    public async Task A_call_whose_arguments_are_not_an_object_carries_the_reason_and_a_block_that_is_not_JSON_stays_text()
    {
        var (bad, _) = await Both(Scripted("""<tool_call>{"name": "get_weather", "arguments": 5}</tool_call>"""));
        var call = Assert.Single(Calls(bad));
        Assert.Equal("The tool call of 'get_weather' could not be read: the arguments of 'get_weather' must be a JSON object, but are Number.", call.Exception!.Message);

        var (whole, streamed) = await Both(Scripted("<tool_call>the weather</tool_call>"));
        foreach (var response in new[] { whole, streamed })
        {
            Assert.Empty(Calls(response));
            Assert.Equal("<tool_call>the weather</tool_call>", response.Text);
            Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        }
    }

    [Fact]
    public async Task A_tool_result_goes_back_through_the_template_as_a_tool_message_as_Python_Jinja2_renders_it()
    {
        using var client = new GptChatClient(_model);
        var response = await client.GetResponseAsync(Question, Scripted(Call));
        var call = Assert.Single(Calls(response));
        // The golden conversation's call id is call_1; the response's own id goes back with the result.
        var history = Question.Concat(response.Messages)
            .Append(new ChatMessage(ChatRole.Tool, [new FunctionResultContent(call.CallId, """{"temperature": 22, "unit": "celsius"}""")])).ToList();
        var next = client.Prepare(history, new ChatOptions { Tools = [Weather()] }).Text;
        var golden = HfConversation.Golden().Single(c => c.Name == "tool-call");
        Assert.Equal(golden.Rendered, next);

        // A result object is written as JSON, as a serializer would send it.
        var withObject = Question.Concat(response.Messages)
            .Append(new ChatMessage(ChatRole.Tool, [new FunctionResultContent(call.CallId, new Dictionary<string, object?> { ["temperature"] = 22 })])).ToList();
        var rendered = client.Prepare(withObject, new ChatOptions { Tools = [Weather()] }).Text;
        Assert.True(rendered.Contains("<tool_response>{\"temperature\":22}</tool_response>"), rendered);
    }

    [Fact]
    public void Tool_modes_and_templates_without_tool_support_are_handled_as_documented()
    {
        using var client = new GptChatClient(_model);
        var none = client.Prepare(Question, new ChatOptions { Tools = [Weather()], ToolMode = ChatToolMode.None }).Text;
        Assert.DoesNotContain("Tools you may call", none);
        Assert.Contains("Tools you may call", client.Prepare(Question, new ChatOptions { Tools = [Weather()], ToolMode = ChatToolMode.Auto }).Text);
        Assert.Contains("Tools you may call", client.Prepare(Question, new ChatOptions { Tools = [Weather()], ToolMode = ChatToolMode.RequireAny }).Text);

        var folder = HfConversation.FixtureWithConfig(c => c["chat_template"] = "{% for m in messages %}{{ m.content }}{% endfor %}");
        using var plain = GptModel.Open(folder);
        var e = Assert.Throws<NotSupportedException>(() => new GptChatClient(plain).Prepare(Question, new ChatOptions { Tools = [Weather()] }));
        Assert.Equal("The chat template 'default' (tokenizer_config.json) does not read the 'tools' variable, so the model would never see the 1 tool(s) of ChatOptions.Tools; this model's template has no tool support.", e.Message);
    }

    private static AITool Time()
    {
        using var schema = JsonDocument.Parse("""{"type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}, "hours": {"type": "integer", "minimum": 0, "maximum": 23}}, "required": ["zone"], "additionalProperties": false}""");
        return AIFunctionFactory.CreateDeclaration("get_time", "Get the time in a zone.", schema.RootElement.Clone());
    }

    [Fact]
    public async Task RequireAny_always_calls_a_tool_with_arguments_that_parse_and_follow_its_schema()
    {
        using var client = new GptChatClient(_model);
        var names = new HashSet<string>();
        for (int seed = 0; seed < 6; seed++)
        {
            var response = await client.GetResponseAsync(Question, new ChatOptions
            {
                Tools = [Weather(), Time()], ToolMode = ChatToolMode.RequireAny, Temperature = 1f, Seed = seed, MaxOutputTokens = 120,
            });
            var call = Assert.Single(Calls(response));
            Assert.Null(call.Exception);
            Assert.Equal(ChatFinishReason.ToolCalls, response.FinishReason);
            names.Add(call.Name);
            if (call.Name == "get_weather") Assert.Equal(JsonValueKind.String, ((JsonElement)call.Arguments!["city"]!).ValueKind);
            else Assert.Contains(((JsonElement)call.Arguments!["zone"]!).GetString(), new[] { "UTC", "CET" });
        }
        Assert.NotEmpty(names);
    }

    [Fact]
    public async Task RequireSpecific_always_calls_the_named_tool()
    {
        using var client = new GptChatClient(_model);
        for (int seed = 0; seed < 6; seed++)
        {
            var response = await client.GetResponseAsync(Question, new ChatOptions
            {
                Tools = [Weather(), Time()], ToolMode = ChatToolMode.RequireSpecific("get_time"), Temperature = 1f, Seed = seed, MaxOutputTokens = 120,
            });
            var call = Assert.Single(Calls(response));
            Assert.Equal("get_time", call.Name);
            Assert.Null(call.Exception);
            int hours = call.Arguments!.TryGetValue("hours", out var h) ? ((JsonElement)h!).GetInt32() : 0;
            Assert.InRange(hours, 0, 23);
        }
    }

    [Fact]
    public void RequireSpecific_of_a_tool_that_is_not_offered_is_refused_naming_it()
    {
        using var client = new GptChatClient(_model);
        var e = Assert.Throws<ArgumentException>(() => client.Prepare(Question, new ChatOptions { Tools = [Weather()], ToolMode = ChatToolMode.RequireSpecific("nope") }));
        Assert.StartsWith("ChatOptions.ToolMode requires the tool 'nope', which is not among ChatOptions.Tools (get_weather).", e.Message);
    }

    [Fact]
    public void Without_tools_a_tool_call_in_the_output_is_left_as_text()
    {
        using var client = new GptChatClient(_model);
        Assert.Null(client.Prepare(Question, new ChatOptions()).Splitter);
        Assert.NotNull(client.Prepare(Question, new ChatOptions { Tools = [Weather()] }).Splitter);
    }

    public static IEnumerable<object[]> SplitOutputs() =>
    [
        [Call],
        ["Sure. " + Call],
        ["Sure. <tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call> and <tool_call>{\"name\": \"b\"}</tool_call>"],
        ["a < b and <tool < tool_call"],
        ["<tool_call>{\"name\": \"a\", \"arguments\": {\"x\": 1}}"],
        ["no calls at all <tool_cal"],
    ];

    [Theory]
    [MemberData(nameof(SplitOutputs))]
    public void Fed_in_pieces_of_any_size_the_splitter_gives_what_it_gives_for_the_whole_text(string output)
    {
        var whole = new ToolCallSplitter(ToolCallFormat.Hermes);
        string wholeText = whole.Feed(output);
        var (wholeRest, wholeCalls) = whole.Finish();
        for (int size = 1; size <= 7; size++)
        {
            var split = new ToolCallSplitter(ToolCallFormat.Hermes);
            var text = new System.Text.StringBuilder();
            for (int i = 0; i < output.Length; i += size) text.Append(split.Feed(output.Substring(i, Math.Min(size, output.Length - i))));
            var (rest, calls) = split.Finish();
            Assert.Equal(wholeText + wholeRest, text + rest);
            Assert.Equal(wholeCalls.Select(c => c.Name), calls.Select(c => c.Name));
        }
    }

    [Fact]
    public void Hermes_blocks_and_Mistral_arrays_are_read_with_their_names_and_arguments()
    {
        var (text, calls) = ToolCallFormat.Hermes.Parse("<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 2}\"}\n</tool_call>\n");
        Assert.Equal("", text);
        Assert.Equal(2, ((JsonElement)Assert.Single(calls).Arguments!["x"]!).GetInt32());

        var (_, bad) = ToolCallFormat.Hermes.Parse("<tool_call>{\"name\": \"f\", \"arguments\": \"{x\"}</tool_call>");
        Assert.StartsWith("the arguments of 'f' are a string that is not JSON (", Assert.Single(bad).Error);

        var (mText, mCalls) = ToolCallFormat.Mistral.Parse("[TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {\"x\": 1}}, {\"name\": \"g\", \"parameters\": {}}] done");
        Assert.Equal(" done", mText);
        Assert.Equal(["f", "g"], mCalls.Select(c => c.Name));
        Assert.Equal(ToolCallFormat.Mistral, ToolCallFormat.For("{{ '[TOOL_CALLS] ' + tools | tojson }}"));
        Assert.Equal(ToolCallFormat.Hermes, ToolCallFormat.For(File.ReadAllText(Path.Combine(HfConversation.ChatFixtureFolder, "tokenizer_config.json"))));
        Assert.Null(ToolCallFormat.For("{{ messages }}"));
        var (kept, none) = ToolCallFormat.Mistral.Parse("[TOOL_CALLS] not json");
        Assert.Equal("[TOOL_CALLS] not json", kept);
        Assert.Empty(none);
    }
}
