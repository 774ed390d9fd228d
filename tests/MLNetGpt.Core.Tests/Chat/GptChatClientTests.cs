using System.Text.Json;
using Json.Schema;
using Microsoft.Extensions.AI;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary>
/// <see cref="GptChatClient"/> on the tiny-chatml fixture: each mapped <see cref="ChatOptions"/> value gives what
/// <see cref="GptModel"/> generates from the same rendered prompt under the equivalent <see cref="GenerationOptions"/>
/// (and something else without it, so the mapping is shown to matter), streaming agrees with the whole response,
/// and structured outputs, cancellation, usage and service lookup behave as documented.
/// </summary>
public sealed class GptChatClientTests : IDisposable
{
    private static readonly ChatMessage[] Question = [new(ChatRole.System, "You are a helpful assistant."), new(ChatRole.User, "What is the capital of France?")];
    private readonly GptModel _model = GptModel.Open(HfConversation.ChatFixtureFolder);

    public void Dispose() => _model.Dispose();

    /// <summary>What the model generates for the conversation's rendered prompt, tokenized as the client does (no BOS added).</summary>
    private GenerationResult Reference(GenerationOptions options, IEnumerable<ChatMessage>? messages = null)
    {
        var text = _model.ChatTemplate!.Render(messages ?? Question);
        return _model.GenerateTokens([_model.Tokenizer.EncodeToIds(text).ToArray()], options)[0];
    }

    private async Task<ChatResponse> Ask(ChatOptions options, IEnumerable<ChatMessage>? messages = null)
    {
        using var client = new GptChatClient(_model);
        return await client.GetResponseAsync(messages ?? Question, options);
    }

    private async Task AssertSameAsReference(ChatOptions chat, GenerationOptions equivalent, GenerationOptions without)
    {
        var response = await Ask(chat);
        var expected = Reference(equivalent);
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(expected.TokenIds.Count, (int)response.Usage!.OutputTokenCount!.Value);
        Assert.NotEqual(Reference(without).Text, response.Text);
    }

    [Fact]
    public async Task Temperature_is_the_sampling_temperature_and_turns_sampling_on()
    {
        await AssertSameAsReference(new ChatOptions { Temperature = 1.5f, Seed = 3, MaxOutputTokens = 16 },
            new GenerationOptions { Temperature = 1.5f, DoSample = true, Seed = 3, MaxNewTokens = 16 },
            new GenerationOptions { Seed = 3, MaxNewTokens = 16 });
    }

    [Fact]
    public async Task Temperature_zero_is_greedy_decoding()
    {
        var response = await Ask(new ChatOptions { Temperature = 0f, TopK = 5, Seed = 3, MaxOutputTokens = 16 });
        Assert.Equal(Reference(new GenerationOptions { DoSample = false, MaxNewTokens = 16 }).Text, response.Text);
    }

    [Fact]
    public async Task TopP_is_nucleus_sampling()
    {
        await AssertSameAsReference(new ChatOptions { TopP = 0.3f, Seed = 4, MaxOutputTokens = 16 },
            new GenerationOptions { TopP = 0.3f, DoSample = true, Seed = 4, MaxNewTokens = 16 },
            new GenerationOptions { DoSample = true, Seed = 4, MaxNewTokens = 16 });
    }

    [Fact]
    public async Task TopK_is_top_k_sampling()
    {
        await AssertSameAsReference(new ChatOptions { TopK = 2, Seed = 5, MaxOutputTokens = 16 },
            new GenerationOptions { TopK = 2, DoSample = true, Seed = 5, MaxNewTokens = 16 },
            new GenerationOptions { DoSample = true, Seed = 5, MaxNewTokens = 16 });
    }

    [Fact]
    public async Task Seed_is_the_sampling_seed()
    {
        await AssertSameAsReference(new ChatOptions { Temperature = 1f, Seed = 11, MaxOutputTokens = 16 },
            new GenerationOptions { DoSample = true, Seed = 11, MaxNewTokens = 16 },
            new GenerationOptions { DoSample = true, Seed = 12, MaxNewTokens = 16 });
    }

    [Fact]
    public async Task MaxOutputTokens_is_max_new_tokens_and_a_cut_reply_finishes_for_length()
    {
        var response = await Ask(new ChatOptions { MaxOutputTokens = 3, Temperature = 1f, Seed = 2 });
        var expected = Reference(new GenerationOptions { MaxNewTokens = 3, DoSample = true, Seed = 2 });
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(3, response.Usage!.OutputTokenCount);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
    }

    [Fact]
    public async Task StopSequences_are_stop_strings_cut_from_the_reply()
    {
        var free = Reference(new GenerationOptions { MaxNewTokens = 24 });
        string stop = free.Text.Substring(free.Text.Length / 2, 1);
        var response = await Ask(new ChatOptions { StopSequences = [stop], MaxOutputTokens = 24 });
        var expected = Reference(new GenerationOptions { StopStrings = [stop], MaxNewTokens = 24 });
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(FinishReason.StopString, expected.FinishReason);
        Assert.DoesNotContain(stop, response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.NotEqual(free.Text, response.Text);
    }

    [Fact]
    public async Task Usage_counts_the_rendered_prompt_tokens_and_the_generated_ones()
    {
        var response = await Ask(new ChatOptions { MaxOutputTokens = 7, Temperature = 1f, Seed = 9 });
        int promptTokens = _model.Tokenizer.EncodeToIds(_model.ChatTemplate!.Render(Question)).Count;
        Assert.Equal(promptTokens, response.Usage!.InputTokenCount);
        Assert.Equal(response.Usage.InputTokenCount + response.Usage.OutputTokenCount, response.Usage.TotalTokenCount);
        Assert.Equal(((GenerationResult)response.RawRepresentation!).TokenIds.Count, response.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task Streaming_and_whole_responses_give_the_same_text_finish_reason_and_usage_for_a_seed()
    {
        using var client = new GptChatClient(_model);
        foreach (var seed in new[] { 1, 2, 3 })
        {
            var options = new ChatOptions { Temperature = 1.2f, Seed = seed, MaxOutputTokens = 20 };
            var whole = await client.GetResponseAsync(Question, options);
            var updates = new List<ChatResponseUpdate>();
            await foreach (var update in client.GetStreamingResponseAsync(Question, options)) updates.Add(update);
            var streamed = updates.ToChatResponse();
            Assert.Equal(whole.Text, streamed.Text);
            Assert.Equal(whole.FinishReason, streamed.FinishReason);
            Assert.Equal(whole.Usage!.OutputTokenCount, streamed.Usage!.OutputTokenCount);
            Assert.Equal(whole.Usage.InputTokenCount, streamed.Usage.InputTokenCount);
            Assert.True(updates.Count > 2, "the reply came in one piece: nothing was streamed");
            Assert.All(updates, u => Assert.Equal(ChatRole.Assistant, u.Role));
        }
    }

    [Fact]
    public async Task Defaults_and_a_raw_representation_factory_supply_the_controls_ChatOptions_lacks()
    {
        using var client = new GptChatClient(_model, new GenerationOptions { RepetitionPenalty = 3f, MaxNewTokens = 16 });
        var withDefaults = await client.GetResponseAsync(Question);
        Assert.Equal(Reference(new GenerationOptions { RepetitionPenalty = 3f, MaxNewTokens = 16 }).Text, withDefaults.Text);
        var perRequest = await client.GetResponseAsync(Question, new ChatOptions
        {
            RawRepresentationFactory = _ => new GenerationOptions { MinP = 0.5f, DoSample = true, Seed = 8 },
        });
        Assert.Equal(Reference(new GenerationOptions { MinP = 0.5f, DoSample = true, Seed = 8, RepetitionPenalty = 3f, MaxNewTokens = 16 }).Text, perRequest.Text);
        var e = await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(Question, new ChatOptions { RawRepresentationFactory = _ => "min_p=0.5" }));
        Assert.StartsWith("ChatOptions.RawRepresentationFactory returned a String; this client takes a GenerationOptions (or null).", e.Message);
    }

    [Fact]
    public async Task A_JSON_schema_response_format_yields_JSON_that_validates_against_the_schema()
    {
        const string schemaText = """{"type":"object","properties":{"city":{"type":"string","maxLength":10},"population":{"type":"integer","minimum":0,"maximum":99999}},"required":["city","population"],"additionalProperties":false}""";
        var schema = JsonSchema.FromText(schemaText);
        using var document = JsonDocument.Parse(schemaText);
        for (int seed = 0; seed < 8; seed++)
        {
            var response = await Ask(new ChatOptions
            {
                ResponseFormat = ChatResponseFormat.ForJsonSchema(document.RootElement.Clone(), "city"), Temperature = 1f, Seed = seed, MaxOutputTokens = 60,
            });
            using var reply = JsonDocument.Parse(response.Text);
            var evaluation = schema.Evaluate(reply.RootElement);
            Assert.True(evaluation.IsValid, $"seed {seed}: '{response.Text}' does not validate");
            Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        }
    }

    [Fact]
    public async Task A_JSON_response_format_without_a_schema_yields_JSON_values()
    {
        var kinds = new HashSet<JsonValueKind>();
        for (int seed = 0; seed < 12; seed++)
        {
            var response = await Ask(new ChatOptions { ResponseFormat = ChatResponseFormat.Json, Temperature = 1f, Seed = seed, MaxOutputTokens = 40 });
            using var reply = JsonDocument.Parse(response.Text);   // throws if it is not JSON
            kinds.Add(reply.RootElement.ValueKind);
        }
        Assert.True(kinds.Count >= 2, "every reply had the same kind of JSON value: " + string.Join(", ", kinds));
    }

    [Fact]
    public async Task A_schema_outside_the_supported_subset_is_refused_naming_the_keyword()
    {
        using var document = JsonDocument.Parse("""{"type":"object","properties":{"a":{"dependencies":{}}}}""");
        var e = await Assert.ThrowsAsync<ArgumentException>(() => Ask(new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(document.RootElement.Clone()) }));
        Assert.StartsWith("ChatOptions.ResponseFormat's schema cannot be enforced: JSON schema: keyword 'dependencies' at /properties/a is not supported", e.Message);
    }

    [Theory]
    [InlineData("FrequencyPenalty")]
    [InlineData("PresencePenalty")]
    public async Task OpenAI_style_additive_penalties_are_refused_unless_zero(string option)
    {
        var options = new ChatOptions { MaxOutputTokens = 4 };
        typeof(ChatOptions).GetProperty(option)!.SetValue(options, 0f);
        await Ask(options);
        typeof(ChatOptions).GetProperty(option)!.SetValue(options, 0.5f);
        var e = await Assert.ThrowsAsync<NotSupportedException>(() => Ask(options));
        Assert.StartsWith($"ChatOptions.{option} (0.5) is not supported: it is OpenAI's additive penalty", e.Message);
    }

    [Fact]
    public async Task Option_values_out_of_range_are_refused_naming_the_ChatOptions_property()
    {
        var t = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Ask(new ChatOptions { Temperature = -1f }));
        Assert.Equal("ChatOptions.Temperature", t.ParamName);
        Assert.StartsWith("ChatOptions.Temperature is out of range: temperature must be a finite number >= 0 (0 means greedy).", t.Message);
        var m = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Ask(new ChatOptions { MaxOutputTokens = 0 }));
        Assert.Equal("ChatOptions.MaxOutputTokens", m.ParamName);
        var s = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Ask(new ChatOptions { Seed = 1L << 40 }));
        Assert.StartsWith("ChatOptions.Seed must fit in 32 bits (-2147483648 to 2147483647), the seeds GenerationOptions takes; it is 1099511627776.", s.Message);
    }

    [Fact]
    public async Task ModelId_is_checked_against_the_folder_name_and_conversation_state_is_refused()
    {
        await Ask(new ChatOptions { ModelId = "tiny-chatml", MaxOutputTokens = 2 });
        var e = await Assert.ThrowsAsync<ArgumentException>(() => Ask(new ChatOptions { ModelId = "gpt-4o" }));
        Assert.StartsWith("ChatOptions.ModelId is 'gpt-4o', but this client serves the model 'tiny-chatml' only; leave ModelId null or set it to 'tiny-chatml'.", e.Message);
        var c = await Assert.ThrowsAsync<NotSupportedException>(() => Ask(new ChatOptions { ConversationId = "abc" }));
        Assert.Equal("ChatOptions.ConversationId ('abc') is not supported: the client keeps no conversations; send the whole history with each request.", c.Message);
        var t = await Assert.ThrowsAsync<NotSupportedException>(() => Ask(new ChatOptions { ContinuationToken = ResponseContinuationToken.FromBytes(new byte[] { 1 }) }));
        Assert.Equal("ChatOptions.ContinuationToken is not supported: responses are never left running in the background.", t.Message);
    }

    [Fact]
    public async Task A_message_with_a_lone_surrogate_is_refused_before_anything_runs()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => Ask(new ChatOptions(), [new ChatMessage(ChatRole.User, "bad \ud800 text")]));
        Assert.StartsWith("The rendered chat prompt is not valid Unicode: a lone surrogate (U+D800) at index ", e.Message);
        Assert.Contains("(a message holds a lone surrogate)", e.Message);
    }

    [Fact]
    public void Instructions_join_the_leading_system_message_or_become_one()
    {
        using var client = new GptChatClient(_model);
        var joined = client.Prepare(Question, new ChatOptions { Instructions = "Be brief." }).Text;
        Assert.StartsWith("<|im_start|>system\nBe brief.\n\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n", joined);
        var added = client.Prepare([new ChatMessage(ChatRole.User, "Hi")], new ChatOptions { Instructions = "Be brief." }).Text;
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", added);
    }

    [Fact]
    public void AdditionalProperties_reach_the_template_as_variables()
    {
        var folder = HfConversation.FixtureWithConfig(c => c["chat_template"] = "{{ 'think' if enable_thinking else 'plain' }}:{{ messages[-1].content }}");
        using var model = GptModel.Open(folder);
        using var client = new GptChatClient(model);
        var options = new ChatOptions { AdditionalProperties = new AdditionalPropertiesDictionary { ["enable_thinking"] = true } };
        Assert.Equal("think:Hi", client.Prepare([new ChatMessage(ChatRole.User, "Hi")], options).Text);
        Assert.Equal("plain:Hi", client.Prepare([new ChatMessage(ChatRole.User, "Hi")], new ChatOptions { AdditionalProperties = new() { ["enable_thinking"] = false } }).Text);
    }

    [Fact]
    public async Task A_cancelled_token_stops_a_whole_and_a_streamed_response()
    {
        using var client = new GptChatClient(_model);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetResponseAsync(Question, new ChatOptions { MaxOutputTokens = 200 }, cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync(Question, new ChatOptions { MaxOutputTokens = 200 }, cancelled.Token)) { }
        });

        using var midway = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync(Question, new ChatOptions { MaxOutputTokens = 200, Temperature = 1f, Seed = 1 }, midway.Token))
            {
                if (++seen == 2) midway.Cancel();
            }
        });
        Assert.Equal(2, seen);
    }

    [Fact]
    public void GetService_returns_the_metadata_the_model_and_the_client_and_nothing_for_a_key()
    {
        using var client = new GptChatClient(_model);
        var metadata = client.GetService<ChatClientMetadata>()!;
        Assert.Equal("MLNetGpt", metadata.ProviderName);
        Assert.Equal("tiny-chatml", metadata.DefaultModelId);
        Assert.True(metadata.ProviderUri!.IsFile);
        Assert.Same(_model, client.GetService<GptModel>());
        Assert.Same(client, client.GetService<IChatClient>());
        Assert.Null(client.GetService<GptModel>("key"));
        Assert.Null(client.GetService<string>());
        Assert.Throws<ArgumentNullException>(() => client.GetService(null!));
    }

    [Fact]
    public async Task A_client_over_a_model_leaves_it_open_and_one_that_opened_its_model_disposes_it()
    {
        new GptChatClient(_model).Dispose();
        Assert.NotEmpty(_model.Generate("x", new GenerationOptions { MaxNewTokens = 1 }).TokenIds);
        var owning = GptChatClient.Open(HfConversation.ChatFixtureFolder);
        var model = owning.Model;
        var reply = await owning.GetResponseAsync("Hello", new ChatOptions { MaxOutputTokens = 3 });
        Assert.NotNull(reply.Usage);
        owning.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.Generate("x"));
    }
}
