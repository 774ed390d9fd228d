using System.Buffers;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace MLNetGpt.Examples.ChatServer;

/// <summary>
/// OpenAI's chat completions endpoint over an <see cref="IChatClient"/>: the request body read into messages and
/// <see cref="ChatOptions"/>, the answer written as one <c>chat.completion</c> object or, with <c>"stream": true</c>,
/// as server-sent events of <c>chat.completion.chunk</c> objects ending with <c>data: [DONE]</c>.
/// </summary>
internal static class ChatCompletions
{
    /// <summary>Bodies larger than this are refused before they are parsed.</summary>
    private const int MaxBodyBytes = 4 << 20;

    public static async Task HandleAsync(HttpContext context, IChatClient chat, string modelId)
    {
        var cancellation = context.RequestAborted;
        ChatRequest request;
        try
        {
            request = await ChatRequest.ReadAsync(context.Request, MaxBodyBytes, cancellation);
        }
        catch (FormatException e)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, e.Message, "invalid_request_error");
            return;
        }
        try
        {
            if (request.Stream) await StreamAsync(context, chat, request, modelId, cancellation);
            else await CompleteAsync(context, chat, request, modelId, cancellation);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            // The caller went away; its request already left the batch.
        }
        catch (Exception e) when (!context.Response.HasStarted && e is ArgumentException or NotSupportedException)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, e.Message, "invalid_request_error");
        }
        catch (GptModelException e) when (!context.Response.HasStarted && e.Message.Contains("queue", StringComparison.Ordinal))
        {
            // The model's queue of waiting requests is full (GptModelOptions.MaxQueuedRequests).
            await ErrorAsync(context, StatusCodes.Status429TooManyRequests, e.Message, "rate_limit_error");
        }
    }

    private static async Task CompleteAsync(HttpContext context, IChatClient chat, ChatRequest request, string modelId, CancellationToken cancellation)
    {
        var response = await chat.GetResponseAsync(request.Messages, request.Options, cancellation);
        context.Response.ContentType = "application/json";
        await using var json = new Utf8JsonWriter(context.Response.Body);
        json.WriteStartObject();
        Header(json, response.ResponseId, "chat.completion", modelId, response.CreatedAt);
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", 0);
        json.WriteStartObject("message");
        json.WriteString("role", "assistant");
        json.WriteString("content", response.Text);
        json.WriteEndObject();
        json.WriteNull("logprobs");
        json.WriteString("finish_reason", FinishReason(response.FinishReason));
        json.WriteEndObject();
        json.WriteEndArray();
        Usage(json, response.Usage);
        json.WriteEndObject();
    }

    private static async Task StreamAsync(HttpContext context, IChatClient chat, ChatRequest request, string modelId, CancellationToken cancellation)
    {
        var updates = chat.GetStreamingResponseAsync(request.Messages, request.Options, cancellation).GetAsyncEnumerator(cancellation);
        try
        {
            // The first update comes after the prefill: an error before it (a refused option, a full queue) is still an HTTP status.
            bool any = await updates.MoveNextAsync();
            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
            string id = any ? updates.Current.ResponseId ?? "chatcmpl" : "chatcmpl";
            var created = any ? updates.Current.CreatedAt : DateTimeOffset.UtcNow;
            await EventAsync(context, json => Chunk(json, id, modelId, created, role: "assistant", content: "", finish: null), cancellation);
            UsageDetails? usage = null;
            ChatFinishReason? finish = null;
            while (any)
            {
                var update = updates.Current;
                finish ??= update.FinishReason;
                foreach (var content in update.Contents)
                    if (content is UsageContent u) usage = u.Details;
                if (update.Text.Length > 0)
                    await EventAsync(context, json => Chunk(json, id, modelId, created, role: null, content: update.Text, finish: null), cancellation);
                any = await updates.MoveNextAsync();
            }
            await EventAsync(context, json => Chunk(json, id, modelId, created, role: null, content: null, finish: FinishReason(finish)), cancellation);
            if (request.IncludeUsage)
                await EventAsync(context, json =>
                {
                    json.WriteStartObject();
                    Header(json, id, "chat.completion.chunk", modelId, created);
                    json.WriteStartArray("choices");
                    json.WriteEndArray();
                    Usage(json, usage);
                    json.WriteEndObject();
                }, cancellation);
            await context.Response.WriteAsync("data: [DONE]\n\n", cancellation);
            await context.Response.Body.FlushAsync(cancellation);
        }
        finally
        {
            await updates.DisposeAsync();
        }
    }

    private static void Chunk(Utf8JsonWriter json, string id, string modelId, DateTimeOffset? created, string? role, string? content, string? finish)
    {
        json.WriteStartObject();
        Header(json, id, "chat.completion.chunk", modelId, created);
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", 0);
        json.WriteStartObject("delta");
        if (role is not null) json.WriteString("role", role);
        if (content is not null) json.WriteString("content", content);
        json.WriteEndObject();
        json.WriteNull("logprobs");
        if (finish is null) json.WriteNull("finish_reason");
        else json.WriteString("finish_reason", finish);
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteEndObject();
    }

    /// <summary>Writes one server-sent event (<c>data: JSON</c> and a blank line) and sends it at once.</summary>
    private static async Task EventAsync(HttpContext context, Action<Utf8JsonWriter> write, CancellationToken cancellation)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        buffer.Write("data: "u8);
        using (var json = new Utf8JsonWriter(buffer)) write(json);
        buffer.Write("\n\n"u8);
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, cancellation);
        await context.Response.Body.FlushAsync(cancellation);
    }

    private static void Header(Utf8JsonWriter json, string? id, string kind, string modelId, DateTimeOffset? created)
    {
        json.WriteString("id", id ?? "chatcmpl");
        json.WriteString("object", kind);
        json.WriteNumber("created", (created ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds());
        json.WriteString("model", modelId);
    }

    private static void Usage(Utf8JsonWriter json, UsageDetails? usage)
    {
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", usage?.InputTokenCount ?? 0);
        json.WriteNumber("completion_tokens", usage?.OutputTokenCount ?? 0);
        json.WriteNumber("total_tokens", usage?.TotalTokenCount ?? 0);
        json.WriteEndObject();
    }

    private static string FinishReason(ChatFinishReason? reason) =>
        reason == ChatFinishReason.Length ? "length"
        : reason == ChatFinishReason.ToolCalls ? "tool_calls"
        : reason == ChatFinishReason.ContentFilter ? "content_filter"
        : "stop";

    private static async Task ErrorAsync(HttpContext context, int status, string message, string type)
    {
        context.Response.StatusCode = status;
        await context.Response.WriteAsJsonAsync(new { error = new { message, type, param = (string?)null, code = (string?)null } });
    }
}
