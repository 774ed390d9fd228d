using Microsoft.Extensions.AI;
using MLNetGpt.Chat;

namespace MLNetGpt;

/// <summary>
/// A model's Hugging Face chat template: the Jinja2 text (from tokenizer_config.json's <c>chat_template</c>,
/// <c>chat_template.jinja</c> or <c>additional_chat_templates/NAME.jinja</c>) that turns a conversation into the
/// prompt text the model was trained on. <see cref="Render"/> produces what transformers' <c>apply_chat_template</c>
/// produces for the same conversation, byte for byte.
/// </summary>
/// <remarks>
/// <para>Immutable and thread-safe: any number of renders may run at once. The template is parsed on first use,
/// so a template with a syntax error fails there (a <see cref="ChatTemplateException"/>), not when the model opens.</para>
/// <para>Messages reach the template in transformers' shape: <c>role</c> and <c>content</c> (the message's text
/// parts joined), <c>reasoning_content</c> from <see cref="TextReasoningContent"/>, an assistant's
/// <see cref="FunctionCallContent"/>s under <c>tool_calls</c>, each <see cref="FunctionResultContent"/> as a
/// <c>tool</c> message with <c>tool_call_id</c>, <c>name</c> and <c>content</c> (the result as text, or as JSON),
/// and a message's <see cref="ChatMessage.AdditionalProperties"/> as further keys of the message. See docs/chat.md.</para>
/// </remarks>
public sealed class ChatTemplate
{
    private readonly ChatTemplateEntry _entry;
    private readonly ChatTemplateFiles _files;
    private readonly TemplateLimits _limits;

    internal ChatTemplate(ChatTemplateEntry entry, ChatTemplateFiles files, TemplateLimits? limits = null)
    {
        _entry = entry;
        _files = files;
        _limits = limits ?? TemplateLimits.Default;
    }

    /// <summary>
    /// A template with the default render budget, for callers outside this assembly (the ML.NET stages): their calls
    /// must not name a template-engine type, so that they depend on MLNetGpt.Core alone.
    /// </summary>
    internal static ChatTemplate WithDefaultLimits(ChatTemplateEntry entry, ChatTemplateFiles files) => new(entry, files);

    /// <summary>The template's name: <c>default</c> for a folder's only or default template, else the name the folder gives it.</summary>
    public string Name => _entry.Name;

    /// <summary>The Jinja2 source text.</summary>
    public string Text => _entry.Text;

    /// <summary>Where the template came from, relative to the model folder (e.g. <c>tokenizer_config.json</c> or <c>chat_template.jinja</c>).</summary>
    public string Source => _entry.Source;

    /// <summary>
    /// The special tokens passed to the template (<c>bos_token</c>, <c>eos_token</c>, <c>unk_token</c>, <c>sep_token</c>,
    /// <c>pad_token</c>, <c>cls_token</c>, <c>mask_token</c>), as the folder declares them; a token it does not declare is
    /// absent, so the template sees it as undefined, as in transformers.
    /// </summary>
    public IReadOnlyDictionary<string, string> SpecialTokens => _files.SpecialTokens;

    /// <summary>Whether the template reads the <c>tools</c> variable at all (a template that does not cannot show tools to the model).</summary>
    internal bool ReadsTools => Text.Contains("tools", StringComparison.Ordinal);

    internal ChatTemplateEntry Entry => _entry;

    /// <summary>Renders a conversation into prompt text.</summary>
    /// <param name="messages">The conversation, oldest first.</param>
    /// <param name="addGenerationPrompt">End with the header of an assistant turn, so that the model writes the reply (transformers' <c>add_generation_prompt</c>).</param>
    /// <param name="tools">Function declarations shown to the model through the template's <c>tools</c> variable (as JSON schemas); null or empty: <c>tools</c> is none.</param>
    /// <param name="variables">Further template variables (transformers' extra keyword arguments, e.g. <c>enable_thinking</c> or <c>documents</c>); they may replace a special token. Values: strings, numbers, booleans, null, lists, string-keyed dictionaries, <see cref="System.Text.Json.JsonElement"/>.</param>
    /// <exception cref="ChatTemplateException">The template does not parse, fails, refuses the conversation, or spends its budget (see <see cref="GptModelOptions.ChatTemplateLimits"/>).</exception>
    /// <exception cref="ArgumentException">A message, tool or variable cannot be given to a template (the message names which and why).</exception>
    /// <exception cref="NotSupportedException">A message holds content other than text, reasoning, function calls and results, or a tool is not a function declaration.</exception>
    public string Render(IEnumerable<ChatMessage> messages, bool addGenerationPrompt = true, IEnumerable<AITool>? tools = null,
        IReadOnlyDictionary<string, object?>? variables = null) =>
        RenderValues(ChatTemplateInput.Messages(messages), ChatTemplateInput.Tools(tools), addGenerationPrompt, variables, now: null);

    /// <summary>Renders messages already in the template's shape (lists and string-keyed dictionaries).</summary>
    internal string RenderValues(IReadOnlyList<object?> messages, IReadOnlyList<object?>? tools, bool addGenerationPrompt,
        IReadOnlyDictionary<string, object?>? variables, Func<DateTime>? now, CancellationToken cancellationToken = default)
    {
        // The order of transformers' render call: messages, tools, documents, add_generation_prompt, special tokens, extra keyword arguments.
        var all = new OrderedStringDictionary();
        all.Set("messages", messages);
        all.Set("tools", tools);
        all.Set("documents", null);
        all.Set("add_generation_prompt", addGenerationPrompt);
        foreach (var (name, text) in _files.SpecialTokens) all.Set(name, text);
        if (_files.AdditionalSpecialTokens.Count > 0) all.Set("additional_special_tokens", _files.AdditionalSpecialTokens.ToList());
        if (variables is not null)
        {
            foreach (var (name, value) in variables)
            {
                if (name is "messages" or "tools" or "add_generation_prompt")
                    throw new ArgumentException($"variables['{name}'] would replace the template's own '{name}'; pass it through the parameter of that name.", nameof(variables));
                all.Set(name, value);
            }
        }
        try
        {
            if (Text.Length > _limits.MaxTemplateLength)
                throw TemplateException.LimitExceeded(nameof(TemplateLimits.MaxTemplateLength),
                    $"the template is {Text.Length:N0} characters long, more than the {_limits.MaxTemplateLength:N0} accepted");
            return _entry.Parsed.Render(all, now, _limits, cancellationToken);
        }
        catch (TemplateException e)
        {
            throw Wrap(e);
        }
    }

    /// <summary>The engine's error as the public one: the template, its file and folder, the line, and for a spent budget the setting that raises it.</summary>
    internal ChatTemplateException Wrap(TemplateException e)
    {
        bool raised = e.Kind == TemplateErrorKind.Raised;
        string what = raised ? "refused the conversation" : e.Kind == TemplateErrorKind.Syntax ? "does not parse"
            : e.Kind == TemplateErrorKind.Limit ? "was stopped" : "failed";
        string hint = e.Limit is { } limit ? $"; {ChatTemplateLimits.Hint(limit)}" : "";
        return new ChatTemplateException($"The chat template '{Name}' ({Source} in '{_files.Folder}') {what}: {e.Message}{hint}",
            Name, e.Line, e.Column, raised, e);
    }

    /// <inheritdoc/>
    public override string ToString() => $"chat template '{Name}' ({Source})";
}
