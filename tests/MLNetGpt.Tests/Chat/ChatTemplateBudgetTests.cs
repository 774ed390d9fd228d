using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.Extensions.AI;
using MLNetGpt.Chat;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary>
/// The render budget as users meet it: a model folder's hostile template through <see cref="GptChatClient"/> and
/// <see cref="ChatTemplate"/>, the error that names the template, its file, the line, the budget and the setting, the
/// setting itself, cancellation of a request while its template renders or its response format compiles, and the
/// margin by which every real template in the corpus stays inside the defaults.
/// </summary>
public sealed class ChatTemplateBudgetTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly ChatMessage[] Hello = [new(ChatRole.User, "Hello")];

    /// <summary>10^10 loop steps: hours of work without a budget.</summary>
    private const string Endless = "{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}";

    private static string Load() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";

    private static string FolderWithTemplate(string template) => HfConversation.FixtureWithConfig(c => c["chat_template"] = template);

    [Fact]
    public async Task A_template_that_spends_its_step_budget_is_refused_naming_the_template_file_line_budget_and_setting()
    {
        var folder = FolderWithTemplate(Endless);
        using var client = GptChatClient.Open(folder);
        var e = await Assert.ThrowsAsync<ChatTemplateException>(() => client.GetResponseAsync(Hello));
        Assert.Equal($"The chat template 'default' (tokenizer_config.json in '{folder}') was stopped: the template ran past its budget of " +
            "10,000,000 steps (statements, expressions, loop iterations and calls) (line 2, column 4); raise GptModelOptions.ChatTemplateLimits.MaxSteps to allow more",
            e.Message);
        Assert.Equal(2, e.Line);
        Assert.False(e.RaisedByTemplate);
    }

    [Fact]
    public void An_amplifying_template_is_refused_by_the_value_budget_naming_the_setting_that_raises_it()
    {
        using var model = GptModel.Open(FolderWithTemplate("{{ ''.ljust(2000000000) }}"));
        var e = Assert.Throws<ChatTemplateException>(() => model.ChatTemplate!.Render(Hello));
        Assert.Contains("would be 2,000,000,000 characters long, more than the 16,777,216 one value may hold (line 1, column 4); " +
            "raise GptModelOptions.ChatTemplateLimits.MaxValueLength to allow more", e.Message);
    }

    [Fact]
    public void The_budget_is_the_one_the_model_was_opened_with_and_a_larger_one_lets_a_long_render_finish()
    {
        var folder = FolderWithTemplate("{% for i in range(3000) %}{{ i % 10 }}{% endfor %}{{ messages[0].content }}");
        var options = new GptModelOptions { ChatTemplateLimits = new ChatTemplateLimits { MaxSteps = 5_000 } };
        using var small = GptModel.Open(folder, options);
        options.ChatTemplateLimits.MaxSteps = 1_000_000;           // read when the model opened: no effect on it
        var e = Assert.Throws<ChatTemplateException>(() => small.ChatTemplate!.Render(Hello));
        Assert.Contains("budget of 5,000 steps", e.Message);
        using var large = GptModel.Open(folder, options);
        Assert.EndsWith("Hello", large.ChatTemplate!.Render(Hello));
        Assert.EndsWith("Hello", large.GetChatTemplate("default").Render(Hello));
    }

    [Fact]
    public void A_template_longer_than_the_template_budget_is_refused_before_it_is_parsed()
    {
        using var model = GptModel.Open(FolderWithTemplate(new string('x', 2_000_000)));
        var e = Assert.Throws<ChatTemplateException>(() => model.ChatTemplate!.Render(Hello));
        Assert.Contains("the template is 2,000,000 characters long, more than the 1,048,576 accepted; raise GptModelOptions.ChatTemplateLimits.MaxTemplateLength", e.Message);
        using var raised = GptModel.Open(model.Info.Folder, new GptModelOptions { ChatTemplateLimits = new ChatTemplateLimits { MaxTemplateLength = 4_000_000 } });
        Assert.Equal(2_000_000, raised.ChatTemplate!.Render(Hello).Length);
    }

    [Fact]
    public void The_limits_refuse_values_outside_their_ranges_naming_the_property_and_null_is_refused()
    {
        var limits = new ChatTemplateLimits();
        Assert.Equal((10_000_000L, 16_777_216L, 16_777_216L, 268_435_456L, 1_048_576L),
            (limits.MaxSteps, limits.MaxOutputLength, limits.MaxValueLength, limits.MaxAllocation, limits.MaxTemplateLength));
        Assert.Equal("MaxSteps", Assert.Throws<ArgumentOutOfRangeException>(() => limits.MaxSteps = 999).ParamName);
        Assert.Equal("MaxOutputLength", Assert.Throws<ArgumentOutOfRangeException>(() => limits.MaxOutputLength = 1_000_000_001).ParamName);
        Assert.Equal("MaxValueLength", Assert.Throws<ArgumentOutOfRangeException>(() => limits.MaxValueLength = 1_023).ParamName);
        Assert.Equal("MaxAllocation", Assert.Throws<ArgumentOutOfRangeException>(() => limits.MaxAllocation = 0).ParamName);
        Assert.Equal("MaxTemplateLength", Assert.Throws<ArgumentOutOfRangeException>(() => limits.MaxTemplateLength = -1).ParamName);
        Assert.Throws<ArgumentNullException>(() => new GptModelOptions { ChatTemplateLimits = null! });
        limits.MaxSteps = long.MaxValue;
        var copy = limits.Clone();
        limits.MaxSteps = 1_000;
        Assert.Equal(long.MaxValue, copy.MaxSteps);
    }

    private static GptChatClient EndlessClient()
    {
        var options = new GptModelOptions { ChatTemplateLimits = new ChatTemplateLimits { MaxSteps = long.MaxValue } };
        return GptChatClient.Open(FolderWithTemplate(Endless), options);
    }

    [Fact]
    public async Task Cancelling_a_request_while_its_template_renders_ends_it_with_operation_canceled_long_before_the_render_would()
    {
        using var client = EndlessClient();
        using var cancellation = new CancellationTokenSource();
        var request = client.GetResponseAsync(Hello, cancellationToken: cancellation.Token);
        Assert.False(request.IsCompleted);                       // the render runs off the caller's thread
        await Task.Delay(200);
        var clock = Stopwatch.StartNew();
        cancellation.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        // Without cancellation the render takes hours; the bound is generous for a loaded machine.
        output.WriteLine($"returned {clock.Elapsed.TotalMilliseconds:F1} ms after the cancellation (load {Load()})");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"returned {clock.ElapsedMilliseconds} ms after the cancellation");
    }

    [Fact]
    public async Task Cancelling_a_streaming_request_while_its_template_renders_ends_it_with_operation_canceled()
    {
        using var client = EndlessClient();
        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync(Hello, cancellationToken: cancellation.Token)) { }
        });
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"returned {clock.ElapsedMilliseconds} ms after the call");
    }

    [Fact]
    public async Task Cancelling_a_request_while_its_response_format_compiles_ends_it_with_operation_canceled()
    {
        using var client = GptChatClient.Open(HfConversation.ChatFixtureFolder);
        // An enum of 40,000 strings, just under the text limit: compiling takes a second or more (and may be refused in
        // the end, its automaton being too large), so the cancellation 50 ms in lands while it runs. (Not 40,000 anyOf
        // branches: those are refused at once, past the 64 alternatives a schema may expand to.)
        var schema = JsonDocument.Parse("{\"enum\":[" + string.Join(",", Enumerable.Range(0, 40_000).Select(i => $"\"v{i:D10}\"")) + "]}").RootElement;
        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            client.GetResponseAsync(Hello, new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema) }, cancellation.Token));
        output.WriteLine($"returned {clock.Elapsed.TotalMilliseconds:F1} ms after the call, the cancellation at 50 ms (load {Load()})");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"returned {clock.ElapsedMilliseconds} ms after the call");
    }

    public sealed class TextRow
    {
        public string Text { get; set; } = "";
    }

    [Fact]
    public void The_tokenize_stage_stops_a_render_at_its_budget_and_when_its_cursor_token_is_cancelled()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new TextRow { Text = "Hello" } });
        var stage = ml.Transforms.Text.TokenizeText(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Text", ModelFolder = FolderWithTemplate(Endless), Chat = true })
            .Fit(data);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => stage.Tokenize("Hello", 0, cancelled.Token));
        var e = Assert.Throws<InvalidOperationException>(() => stage.Tokenize("Hello", 0));
        Assert.StartsWith("TokenizeText: row 0 of column 'Text': The chat template 'default'", e.Message);
        Assert.Contains("ran past its budget of 10,000,000 steps", e.Message);
    }

    [Fact]
    public async Task A_response_format_whose_pattern_nests_ten_thousand_groups_is_refused_naming_chat_options()
    {
        using var client = GptChatClient.Open(HfConversation.ChatFixtureFolder);
        var pattern = string.Concat(Enumerable.Repeat("(", 10_000)) + "a" + string.Concat(Enumerable.Repeat(")", 10_000));
        var schema = JsonSerializer.SerializeToElement(new { type = "string", pattern });
        var e = await Assert.ThrowsAsync<ArgumentException>(() =>
            client.GetResponseAsync(Hello, new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema) }));
        Assert.StartsWith("ChatOptions.ResponseFormat's schema cannot be enforced: JSON schema: pattern at /pattern: groups nest more than 100 levels deep", e.Message);
    }

    /// <summary>The corpus cases, and each multi-turn case grown to a thousand and more messages.</summary>
    private static IEnumerable<(string Name, string Source, JinjaTemplate Template, IReadOnlyDictionary<string, object?> Variables)> CorpusRenders()
    {
        foreach (var name in ChatTemplateCorpus.CaseNames())
        {
            var c = ChatTemplateCorpus.Load(name);
            var template = JinjaTemplate.Parse(c.Template);
            yield return (name, c.Template, template, c.Variables);
            var messages = (List<object?>)c.Variables["messages"]!;
            var roles = messages.Select(m => (string)((IReadOnlyDictionary<string, object?>)m!)["role"]!).ToList();
            int user = roles.FindIndex(r => r == "user");
            if (user < 0 || user + 1 >= roles.Count || roles[user + 1] != "assistant" || roles.Any(r => r is not ("system" or "user" or "assistant"))) continue;
            var grown = messages.Take(user).Concat(Enumerable.Repeat(new[] { messages[user], messages[user + 1] }, 500).SelectMany(p => p)).Concat(messages.Skip(user)).ToList();
            yield return (name + " x1000", c.Template, template, new Dictionary<string, object?>(c.Variables) { ["messages"] = grown });
        }
    }

    [SharedDataFact(ChatTemplateCorpus.Folder)]
    public void Every_corpus_template_renders_within_a_fiftieth_of_each_default_budget_even_with_a_thousand_messages()
    {
        var defaults = TemplateLimits.Default;
        int rendered = 0;
        foreach (var (name, source, template, variables) in CorpusRenders())
        {
            var state = new RenderState(() => ChatTemplateCorpus.Now);
            string text;
            try
            {
                text = template.Render(variables, state);
            }
            catch (TemplateException e) when (e.Kind == TemplateErrorKind.Raised && name.EndsWith(" x1000", StringComparison.Ordinal))
            {
                continue;    // a template that refuses long conversations of its own accord
            }
            rendered++;
            Assert.True(state.Steps * 50 < defaults.MaxSteps, $"{name}: {state.Steps:N0} steps");
            Assert.True(state.Allocated * 50 < defaults.MaxAllocation, $"{name}: {state.Allocated:N0} allocated");
            Assert.True(text.Length * 50L < defaults.MaxOutputLength, $"{name}: {text.Length:N0} characters");
            Assert.True(state.MaxEvaluationDepthSeen * 50 < TemplateLimits.MaxEvaluationDepth, $"{name}: depth {state.MaxEvaluationDepthSeen}");
            Assert.True(source.Length * 50L < defaults.MaxTemplateLength, $"{name}: {source.Length:N0} characters of source");
        }
        Assert.True(rendered > 300, $"only {rendered} renders");
    }

    [SharedDataFact(ChatTemplateCorpus.Folder)]
    public void Every_corpus_template_nests_less_than_a_fifth_of_the_source_nesting_limit()
    {
        foreach (var file in Directory.GetFiles(ChatTemplateCorpus.TemplatesFolder, "*.jinja"))
        {
            JinjaParser.Parse(File.ReadAllText(file), out var deepest);
            Assert.True(deepest * 5 <= TemplateLimits.MaxSourceNesting, $"{Path.GetFileName(file)}: {deepest} levels");
        }
    }
}
