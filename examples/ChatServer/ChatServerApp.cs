using Microsoft.Extensions.AI;

namespace MLNetGpt.Examples.ChatServer;

/// <summary>
/// The app: one <see cref="GptChatClient"/> (one model, one shared generation loop) behind OpenAI's
/// <c>POST /v1/chat/completions</c> (whole responses and server-sent events) and <c>GET /v1/models</c>.
/// Concurrent requests join the model's batch; a client that disconnects cancels its request, whose row then leaves
/// the batch before the next step.
/// </summary>
public static class ChatServerApp
{
    /// <summary>
    /// Builds the app. Settings come from the command line or the environment as usual for ASP.NET Core:
    /// <c>--model FOLDER</c> (a model folder with a chat template; required), <c>--max-batch-size N</c>,
    /// <c>--max-queued-requests N</c>, <c>--urls</c>.
    /// </summary>
    public static WebApplication Create(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        string folder = builder.Configuration["model"]
            ?? throw new ArgumentException("Give the model folder with --model FOLDER (a folder with a chat template, such as tests/Fixtures/tiny-chatml).");
        var options = new GptModelOptions { Log = message => Console.Error.WriteLine($"mlnetgpt: {message}") };
        if (builder.Configuration["max-batch-size"] is { } batch) options.MaxBatchSize = int.Parse(batch, System.Globalization.CultureInfo.InvariantCulture);
        if (builder.Configuration["max-queued-requests"] is { } queued) options.MaxQueuedRequests = int.Parse(queued, System.Globalization.CultureInfo.InvariantCulture);
        var client = GptChatClient.Open(folder, options);
        builder.Services.AddSingleton(client);
        builder.Services.AddSingleton<IChatClient>(client);

        var app = builder.Build();
        string modelId = client.Metadata.DefaultModelId ?? "mlnetgpt";
        app.MapPost("/v1/chat/completions", (HttpContext context, IChatClient chat) => ChatCompletions.HandleAsync(context, chat, modelId));
        app.MapGet("/v1/models", () => Results.Json(new
        {
            @object = "list",
            data = new[] { new { id = modelId, @object = "model", created = 0, owned_by = "mlnetgpt" } },
        }));
        return app;
    }
}
