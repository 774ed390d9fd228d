using System.Runtime.CompilerServices;
using System.Text.Json;
using Microsoft.Extensions.AI;
using MLNetGpt.Chat;
using MLNetGpt.Generation;

namespace MLNetGpt;

/// <summary>
/// A Microsoft.Extensions.AI <see cref="IChatClient"/> over a <see cref="GptModel"/>: each request's messages (and
/// tools) go through the model's own chat template, the rendered prompt is generated from, and the reply comes
/// back as one assistant message with its text, the tool calls read out of it, the finish reason and token usage.
/// </summary>
/// <remarks>
/// <para>Thread-safe: the client keeps no state between requests, and any number may run at once: they join the
/// model's shared batch (see <see cref="GptModel"/>), so concurrent requests cost little more than one. It never
/// remembers a conversation: send the whole history with every request.</para>
/// <para><see cref="ChatOptions"/> map onto <see cref="GenerationOptions"/> as docs/chat.md tables them:
/// <c>Temperature</c>, <c>TopP</c>, <c>TopK</c>, <c>MaxOutputTokens</c> (max_new_tokens), <c>StopSequences</c>
/// (stop strings), <c>Seed</c>, <c>ResponseFormat</c> (JSON, with or without a schema, as an
/// <see cref="OutputConstraint"/>), <c>Tools</c> (rendered through the template's <c>tools</c> variable),
/// <c>Instructions</c> (a system message) and <c>AdditionalProperties</c> (further template variables, such as
/// <c>enable_thinking</c>). Controls without a <see cref="ChatOptions"/> property (min_p, repetition_penalty, ...)
/// come from the client's default <see cref="GenerationOptions"/>, or per request from a
/// <see cref="ChatOptions.RawRepresentationFactory"/> that returns a <see cref="GenerationOptions"/>.
/// <c>FrequencyPenalty</c> and <c>PresencePenalty</c> (OpenAI's additive penalties) have no exact counterpart and
/// are refused when not zero, as are a required tool mode, a conversation id and a continuation token.</para>
/// </remarks>
/// <example>
/// <code>
/// using IChatClient client = GptChatClient.Open("models/my-chat-model");
/// var response = await client.GetResponseAsync("What is the capital of France?", new ChatOptions { MaxOutputTokens = 64 });
/// Console.WriteLine(response.Text);
/// </code>
/// </example>
public sealed class GptChatClient : IChatClient
{
    /// <summary>The provider name in <see cref="Metadata"/>.</summary>
    public const string ProviderName = "MLNetGpt";

    private readonly bool _ownsModel;
    private readonly GenerationOptions _defaults;
    private readonly string? _templateName;
    private readonly ChatTemplateFiles _templates;

    /// <summary>A client over <paramref name="model"/>, which it does not own (dispose the model yourself, after the client's last use).</summary>
    /// <param name="model">A model whose folder has a chat template.</param>
    /// <param name="defaults">Decoding controls for every request; <see cref="ChatOptions"/> values replace them per request. Null: the model's defaults.</param>
    /// <param name="chatTemplateName">The template to use (see <see cref="GptModelInfo.ChatTemplateNames"/>); null: <c>tool_use</c> for requests with tools when the folder has it, else <c>default</c>.</param>
    /// <exception cref="ArgumentException">The model has no chat template, or none named <paramref name="chatTemplateName"/>.</exception>
    public GptChatClient(GptModel model, GenerationOptions? defaults = null, string? chatTemplateName = null)
        : this(model, defaults, chatTemplateName, ownsModel: false)
    {
    }

    private GptChatClient(GptModel model, GenerationOptions? defaults, string? chatTemplateName, bool ownsModel)
    {
        ArgumentNullException.ThrowIfNull(model);
        _templates = model.ChatTemplates ?? throw new ArgumentException(
            $"The model folder '{model.Info.Folder}' has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja), " +
            "so it cannot be driven as a chat model; use GptModel.Generate with plain prompts.", nameof(model));
        if (chatTemplateName is not null) _templates.Choose(chatTemplateName, withTools: false);
        Model = model;
        _defaults = defaults?.Clone() ?? new GenerationOptions();
        _templateName = chatTemplateName;
        _ownsModel = ownsModel;
        Metadata = new ChatClientMetadata(ProviderName, new Uri(Path.TrimEndingDirectorySeparator(model.Info.Folder) + Path.DirectorySeparatorChar), ModelId);
    }

    /// <summary>Opens the model folder and returns a client that owns it (disposing the client disposes the model).</summary>
    /// <exception cref="GptModelException">The folder cannot be opened.</exception>
    /// <exception cref="ArgumentException">The folder has no chat template, or none named <paramref name="chatTemplateName"/>.</exception>
    public static GptChatClient Open(string modelFolder, GptModelOptions? modelOptions = null, GenerationOptions? defaults = null, string? chatTemplateName = null)
    {
        var model = GptModel.Open(modelFolder, modelOptions);
        try
        {
            return new GptChatClient(model, defaults, chatTemplateName, ownsModel: true);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The model the client generates with.</summary>
    public GptModel Model { get; }

    /// <summary>The provider (<c>MLNetGpt</c>), the model folder as a file URI, and the model id (the folder's name).</summary>
    public ChatClientMetadata Metadata { get; }

    private string ModelId => Path.GetFileName(Path.TrimEndingDirectorySeparator(Model.Info.Folder));

    /// <inheritdoc/>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var request = await PrepareAsync(messages, options, cancellationToken).ConfigureAwait(false);
        var result = await Model.Engine.GenerateAsync(request.Prompt, request.Settings, cancellationToken).ConfigureAwait(false);
        string text = result.Text;
        IReadOnlyList<ParsedToolCall> calls = [];
        if (request.Splitter is { } splitter)
        {
            string before = splitter.Feed(text);
            var (rest, parsed) = splitter.Finish();
            (text, calls) = (before + rest, parsed);
        }
        var contents = new List<AIContent>();
        if (text.Length > 0) contents.Add(new TextContent(text));
        contents.AddRange(ToContents(calls, options));
        string responseId = NewId("chatcmpl");
        var message = new ChatMessage(ChatRole.Assistant, contents) { MessageId = responseId, CreatedAt = request.CreatedAt };
        return new ChatResponse(message)
        {
            ResponseId = responseId,
            ModelId = ModelId,
            CreatedAt = request.CreatedAt,
            FinishReason = FinishReasonOf(result, calls.Count > 0),
            Usage = UsageOf(result),
            RawRepresentation = result,
        };
    }

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = await PrepareAsync(messages, options, cancellationToken).ConfigureAwait(false);
        string responseId = NewId("chatcmpl");
        GenerationResult? result = null;
        ChatResponseUpdate Update(IList<AIContent> contents) => new(ChatRole.Assistant, contents)
        {
            ResponseId = responseId, MessageId = responseId, ModelId = ModelId, CreatedAt = request.CreatedAt,
        };
        await foreach (var piece in Model.Engine.StreamAsync(request.Prompt, request.Settings, r => result = r, cancellationToken).ConfigureAwait(false))
        {
            string text = request.Splitter is { } splitter ? splitter.Feed(piece) : piece;
            if (text.Length > 0) yield return Update([new TextContent(text)]);
        }
        var final = result ?? throw new InvalidOperationException("The decode loop ended without a result.");
        var contents = new List<AIContent>();
        IReadOnlyList<ParsedToolCall> calls = [];
        if (request.Splitter is { } last)
        {
            var (rest, parsed) = last.Finish();
            if (rest.Length > 0) contents.Add(new TextContent(rest));
            calls = parsed;
        }
        contents.AddRange(ToContents(calls, options));
        contents.Add(new UsageContent(UsageOf(final)));
        var end = Update(contents);
        end.FinishReason = FinishReasonOf(final, calls.Count > 0);
        end.RawRepresentation = final;
        yield return end;
    }

    /// <summary>
    /// Returns the <see cref="ChatClientMetadata"/>, the <see cref="GptModel"/>, or this client when asked for a type
    /// it is; null for anything else and for any <paramref name="serviceKey"/>.
    /// </summary>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        if (serviceType == typeof(GptModel)) return Model;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Disposes the model when the client opened it (<see cref="Open"/>); otherwise does nothing.</summary>
    public void Dispose()
    {
        if (_ownsModel) Model.Dispose();
    }

    /// <summary>The rendered, tokenized prompt of a request, its decoding settings, and how tool calls will be read.</summary>
    internal sealed record Request(string Text, PreparedPrompt Prompt, DecodingSettings Settings, ToolCallSplitter? Splitter, ChatTemplate Template, DateTimeOffset CreatedAt);

    /// <summary>
    /// Renders the template and compiles the response format off the caller's thread: a request returns its task at once,
    /// and a cancelled token ends the wait when it fires, whatever the render or the compile is doing (both also look
    /// at the token themselves and stop soon after).
    /// </summary>
    private static Task<Request> PrepareAsync(GptChatClient client, IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellationToken) =>
        Task.Run(() => client.Prepare(messages, options, cancellationToken), cancellationToken).WaitAsync(cancellationToken);

    private Task<Request> PrepareAsync(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellationToken) =>
        PrepareAsync(this, messages, options, cancellationToken);

    internal Request Prepare(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var conversation = WithInstructions(messages.ToList(), options?.Instructions);
        var tools = ToolsOf(options);
        var entry = _templates.Choose(_templateName, withTools: tools.Count > 0);
        var template = new ChatTemplate(entry, _templates, Model.TemplateLimits);
        ToolCallFormat? format = null;
        if (tools.Count > 0)
        {
            if (!template.ReadsTools)
                throw new NotSupportedException($"The {template} does not read the 'tools' variable, so the model would never see the {tools.Count} tool(s) of ChatOptions.Tools; " +
                    "this model's template has no tool support.");
            format = ToolCallFormat.For(template.Text);
        }
        IReadOnlyDictionary<string, object?>? variables = options?.AdditionalProperties;
        string text = template.RenderValues(ChatTemplateInput.Messages(conversation), ChatTemplateInput.Tools(tools), addGenerationPrompt: true, variables, now: null,
            cancellationToken);

        var generation = ChatOptionsMapping.ToGenerationOptions(options, BaseOptions(options), ModelId, cancellationToken);
        if (options?.ToolMode is RequiredChatToolMode required && tools.Count > 0)
            generation.Constraint = RequiredCall(tools, required, format, template, options, cancellationToken);
        var settings = Model.Engine.Resolve(generation);
        try
        {
            PromptPreparer.EnsureValidUnicode(text, "The rendered chat prompt");
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException(e.Message + " (a message holds a lone surrogate)", nameof(messages), e);
        }
        // As transformers tokenizes apply_chat_template's output: add_special_tokens=False, so no BOS beyond what the template wrote.
        var ids = Model.Tokenizer.EncodeToIds(text).ToArray();
        var prompt = Model.Engine.Prompts.FromIds(ids, 0, settings);
        return new Request(text, prompt, settings, format is null ? null : new ToolCallSplitter(format), template, DateTimeOffset.UtcNow);
    }

    private GenerationOptions BaseOptions(ChatOptions? options)
    {
        if (options?.RawRepresentationFactory?.Invoke(this) is not { } raw) return _defaults;
        return raw is GenerationOptions given ? given.WithDefaults(_defaults)
            : throw new ArgumentException($"ChatOptions.RawRepresentationFactory returned a {raw.GetType().Name}; this client takes a GenerationOptions (or null).", nameof(options));
    }

    private static List<ChatMessage> WithInstructions(List<ChatMessage> messages, string? instructions)
    {
        if (string.IsNullOrEmpty(instructions)) return messages;
        // Templates that take one system message only (many do) see the instructions joined to it rather than a second one.
        if (messages.Count > 0 && messages[0].Role == ChatRole.System && messages[0].Contents.All(c => c is TextContent))
        {
            var merged = new ChatMessage(ChatRole.System, instructions + "\n\n" + messages[0].Text) { AdditionalProperties = messages[0].AdditionalProperties };
            return [merged, .. messages.Skip(1)];
        }
        return [new ChatMessage(ChatRole.System, instructions), .. messages];
    }

    private static List<AITool> ToolsOf(ChatOptions? options)
    {
        if (options?.Tools is not { Count: > 0 } tools) return [];
        switch (options.ToolMode)
        {
            case null or AutoChatToolMode or RequiredChatToolMode { RequiredFunctionName: null }: return tools.ToList();
            case NoneChatToolMode: return [];
            case RequiredChatToolMode { RequiredFunctionName: { } name }:
                if (!tools.Any(t => t.Name == name))
                    throw new ArgumentException($"ChatOptions.ToolMode requires the tool '{name}', which is not among ChatOptions.Tools ({string.Join(", ", tools.Select(t => t.Name))}).", nameof(options));
                return tools.ToList();
            default:
                throw new NotSupportedException($"ChatOptions.ToolMode {options.ToolMode} is not supported: the model chooses whether to call a tool " +
                    "(use ChatToolMode.Auto, or ChatToolMode.None to hide the tools).");
        }
    }

    /// <summary>
    /// The output a required tool call is held to: one call, in the template's tool-call format, of a required tool (any
    /// declared function, or the named one) whose arguments follow the tool's parameter schema.
    /// </summary>
    private static OutputConstraint RequiredCall(List<AITool> tools, RequiredChatToolMode mode, ToolCallFormat? format, ChatTemplate template, ChatOptions options,
        CancellationToken cancellationToken)
    {
        if (format is null)
            throw new NotSupportedException($"ChatOptions.ToolMode requires a tool call, but the {template} shows none of the known tool-call formats "
                + $"({ToolCallFormat.Hermes.Name}, {ToolCallFormat.Mistral.Name}), so the call cannot be written in the model's own form.");
        if (options.ResponseFormat is ChatResponseFormatJson)
            throw new ArgumentException("ChatOptions.ToolMode requires a tool call and ChatOptions.ResponseFormat asks for JSON: only one can shape the output.", nameof(options));
        var candidates = tools.OfType<AIFunctionDeclaration>().Where(t => mode.RequiredFunctionName is null || t.Name == mode.RequiredFunctionName).ToList();
        if (candidates.Count == 0)
            throw new ArgumentException("ChatOptions.ToolMode requires a tool call, but ChatOptions.Tools holds no function declaration to call.", nameof(options));
        var calls = candidates.Select(t =>
            $"{{\"type\":\"object\",\"properties\":{{\"name\":{{\"const\":{JsonSerializer.Serialize(t.Name)}}},\"arguments\":{(t.JsonSchema.ValueKind == JsonValueKind.Object ? t.JsonSchema.GetRawText() : "{\"type\":\"object\"}")}}},"
            + "\"required\":[\"name\",\"arguments\"],\"additionalProperties\":false}");
        string schema = candidates.Count == 1 ? calls.First() : "{\"anyOf\":[" + string.Join(",", calls) + "]}";
        try
        {
            return OutputConstraint.ToolCall(schema, format.RequiredCall.Before, format.RequiredCall.After, cancellationToken);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"ChatOptions.ToolMode requires a tool call, but a tool's parameter schema cannot be enforced: {e.Message}", nameof(options), e);
        }
    }

    private static IEnumerable<AIContent> ToContents(IReadOnlyList<ParsedToolCall> calls, ChatOptions? options)
    {
        var kept = options?.AllowMultipleToolCalls == false ? calls.Take(1) : calls;
        foreach (var call in kept)
            yield return new FunctionCallContent(NewId("call"), call.Name, call.Arguments)
            {
                Exception = call.Error is null ? null : new InvalidOperationException($"The tool call of '{call.Name}' could not be read: {call.Error}."),
            };
    }

    private static ChatFinishReason FinishReasonOf(GenerationResult result, bool calledTools) =>
        calledTools ? ChatFinishReason.ToolCalls
        : result.FinishReason == FinishReason.Length ? ChatFinishReason.Length
        : ChatFinishReason.Stop;

    private static UsageDetails UsageOf(GenerationResult result) => new()
    {
        InputTokenCount = result.PromptTokenCount,
        OutputTokenCount = result.TokenIds.Count,
        TotalTokenCount = result.PromptTokenCount + result.TokenIds.Count,
    };

    private static string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():N}";
}
