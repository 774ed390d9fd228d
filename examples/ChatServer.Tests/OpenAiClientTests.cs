using System.ClientModel;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using MLNetGpt;
using OpenAI;
using OpenAI.Chat;
using Xunit;
using AI = Microsoft.Extensions.AI;

namespace MLNetGpt.Examples.ChatServer.Tests;

/// <summary>
/// The sample server, started on a loopback port, driven by the official OpenAI .NET client: every answer equals what
/// the library answers for the same request (the same model folder, the same options), whole or streamed, also with
/// sixteen streams at once sharing the model's batch.
/// </summary>
public sealed class OpenAiClientTests : IAsyncLifetime
{
    private static readonly string Folder = FindFixture("tiny-chatml");
    private WebApplication _app = null!;
    private ChatClient _client = null!;
    private Uri _address = null!;

    public async Task InitializeAsync()
    {
        _app = ChatServerApp.Create(["--model", Folder, "--urls", "http://127.0.0.1:0"]);
        await _app.StartAsync();
        _address = new Uri(_app.Urls.First());
        _client = new ChatClient("tiny-chatml", new ApiKeyCredential("not-checked"), new OpenAIClientOptions { Endpoint = new Uri(_address, "/v1") });
    }

    public async Task DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static string FindFixture(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "Fixtures", name);
            if (File.Exists(Path.Combine(candidate, "model.onnx"))) return candidate;
        }
        throw new DirectoryNotFoundException($"tests/Fixtures/{name} was not found above {AppContext.BaseDirectory}");
    }

    /// <summary>Request i: a conversation and its options, as the OpenAI client and as the library take them.</summary>
    private static (ChatMessage[] OpenAi, ChatCompletionOptions OpenAiOptions, AI.ChatMessage[] Library, AI.ChatOptions LibraryOptions) Request(int i)
    {
        string system = "You are a helpful assistant.", user = $"Question {i}: what comes after {i * 7}?";
        float? temperature = i % 4 == 0 ? 0f : 0.6f + i * 0.05f;
        var stops = i % 3 == 0 ? new[] { "e" } : [];
        var openAiOptions = new ChatCompletionOptions { MaxOutputTokenCount = 12 + i % 5, Temperature = temperature, Seed = i, TopP = i % 2 == 0 ? 0.9f : null };
        foreach (var stop in stops) openAiOptions.StopSequences.Add(stop);
        var libraryOptions = new AI.ChatOptions
        {
            MaxOutputTokens = 12 + i % 5, Temperature = temperature, Seed = i, TopP = i % 2 == 0 ? 0.9f : null, StopSequences = stops.Length > 0 ? stops : null,
        };
        return ([new SystemChatMessage(system), new UserChatMessage(user)], openAiOptions,
            [new(AI.ChatRole.System, system), new(AI.ChatRole.User, user)], libraryOptions);
    }

    [Fact]
    public async Task Sixteen_concurrent_streams_through_the_OpenAI_client_each_answer_what_the_library_answers()
    {
        using var library = GptChatClient.Open(Folder);
        var expected = new List<string>();
        for (int i = 0; i < 16; i++)
        {
            var (_, _, messages, options) = Request(i);
            expected.Add((await library.GetResponseAsync(messages, options)).Text);
        }
        Assert.True(expected.Distinct().Count() > 8, "the requests should give different answers");

        var streams = Enumerable.Range(0, 16).Select(async i =>
        {
            var (messages, options, _, _) = Request(i);
            var text = new StringBuilder();
            int updates = 0;
            ChatFinishReason? finish = null;
            await foreach (var update in _client.CompleteChatStreamingAsync(messages, options))
            {
                foreach (var part in update.ContentUpdate) text.Append(part.Text);
                finish ??= update.FinishReason;
                updates++;
            }
            Assert.NotNull(finish);
            return (Text: text.ToString(), Updates: updates);
        }).ToArray();
        var answers = await Task.WhenAll(streams);
        Assert.Equal(expected, answers.Select(a => a.Text));
        Assert.All(answers.Where(a => a.Text.Length > 4), a => Assert.True(a.Updates > 2, "a streamed answer came in one piece"));
    }

    [Fact]
    public async Task A_whole_response_equals_the_library_s_with_its_finish_reason_and_usage()
    {
        using var library = GptChatClient.Open(Folder);
        var (messages, options, libraryMessages, libraryOptions) = Request(5);
        var expected = await library.GetResponseAsync(libraryMessages, libraryOptions);
        ChatCompletion completion = await _client.CompleteChatAsync(messages, options);
        Assert.Equal(expected.Text, completion.Content[0].Text);
        Assert.Equal(expected.FinishReason == AI.ChatFinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(expected.Usage!.InputTokenCount, completion.Usage.InputTokenCount);
        Assert.Equal(expected.Usage.OutputTokenCount, completion.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task A_bad_request_is_answered_400_with_an_OpenAI_error_naming_the_field()
    {
        using var http = new HttpClient { BaseAddress = _address };
        var cases = new (string Body, string Expected)[]
        {
            ("{\"messages\": []}", "'messages' must be a non-empty array"),
            ("{\"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}", "messages[0].role 'wizard'"),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"n\": 2}", "'n' is 2"),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": \"hot\"}", "'temperature' must be a number"),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"frequency_penalty\": 0.5}", "FrequencyPenalty"),
            ("not json", "not valid JSON"),
        };
        foreach (var (body, expected) in cases)
        {
            var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            string text = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains("\"error\"", text);
            Assert.Contains(expected, text);
        }
    }
}
