using System.Text.Json;
using MLNetGpt.Models;

namespace MLNetGpt.Chat;

/// <summary>
/// The chat templates and special tokens a model folder declares, found where Hugging Face transformers looks:
/// <c>chat_template</c> in tokenizer_config.json (a string, or a list of <c>{"name", "template"}</c> objects),
/// <c>chat_template.jinja</c> beside it (which replaces the configuration's templates), and
/// <c>additional_chat_templates/NAME.jinja</c> (named templates beside the default). The special tokens come
/// from tokenizer_config.json, with special_tokens_map.json's values winning where both name one.
/// </summary>
internal sealed class ChatTemplateFiles
{
    public const string DefaultName = "default";
    public const string ToolUseName = "tool_use";
    public const string TemplateFile = "chat_template.jinja";
    public const string AdditionalFolder = "additional_chat_templates";
    private const string TokenizerConfigFile = "tokenizer_config.json";
    private const string SpecialTokensMapFile = "special_tokens_map.json";

    /// <summary>The special tokens transformers passes to templates (its SPECIAL_TOKENS_ATTRIBUTES), in its order.</summary>
    private static readonly string[] SingleTokenKeys = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];
    private const string AdditionalTokensKey = "additional_special_tokens";

    private ChatTemplateFiles(string folder, IReadOnlyList<ChatTemplateEntry> templates, IReadOnlyDictionary<string, string> specialTokens, IReadOnlyList<string> additional)
    {
        Folder = folder;
        Templates = templates;
        SpecialTokens = specialTokens;
        AdditionalSpecialTokens = additional;
    }

    public string Folder { get; }

    /// <summary>Every template, in the order the files give them (never empty).</summary>
    public IReadOnlyList<ChatTemplateEntry> Templates { get; }

    /// <summary>bos_token, eos_token, ... as their text; a token the files set to null or leave out is absent.</summary>
    public IReadOnlyDictionary<string, string> SpecialTokens { get; }

    /// <summary>additional_special_tokens as text (empty when none are declared).</summary>
    public IReadOnlyList<string> AdditionalSpecialTokens { get; }

    public IReadOnlyList<string> Names => Templates.Select(t => t.Name).ToArray();

    /// <summary>The template used when none is named: <c>default</c>, or the only one.</summary>
    public ChatTemplateEntry? Default => Find(DefaultName) ?? (Templates.Count == 1 ? Templates[0] : null);

    public ChatTemplateEntry? Find(string name) => Templates.FirstOrDefault(t => t.Name == name);

    /// <summary>
    /// The template for a request, chosen as transformers' get_chat_template chooses: the one named, else
    /// <c>tool_use</c> when tools are given and it exists, else the default.
    /// </summary>
    /// <exception cref="ArgumentException">The name is not one of the folder's, or no name was given and the folder has several templates but no default.</exception>
    public ChatTemplateEntry Choose(string? name, bool withTools)
    {
        if (name is not null)
            return Find(name) ?? throw new ArgumentException(
                $"The model folder '{Folder}' has no chat template named '{name}'; it has {Describe(Names)}.", nameof(name));
        if (withTools && Find(ToolUseName) is { } toolUse) return toolUse;
        return Default ?? throw new ArgumentException(
            $"The model folder '{Folder}' has several chat templates ({Describe(Names)}) and none named '{DefaultName}'; choose one by name.", nameof(name));
    }

    private static string Describe(IEnumerable<string> names) => string.Join(", ", names.Select(n => $"'{n}'"));

    /// <summary>The folder's templates, or null when it declares none.</summary>
    /// <exception cref="GptModelException">A file is not valid JSON, or a value has the wrong shape (the message names the file, the key, what was expected and what is there).</exception>
    public static ChatTemplateFiles? Read(string folder, ModelFiles? files = null)
    {
        // Every file is read through the folder's policy: a template that is a link out of the folder is refused.
        files ??= ModelFiles.For(folder);
        var config = JsonConfig.LoadIfExists(files, TokenizerConfigFile);
        var templates = new List<ChatTemplateEntry>();
        if (files.Exists(TemplateFile))
            templates.Add(new ChatTemplateEntry(DefaultName, files.ReadSmallText(TemplateFile), TemplateFile));
        else if (config?.Find("chat_template") is { } declared)
            templates.AddRange(FromConfig(config, declared));
        string additional = Path.Combine(folder, AdditionalFolder);
        if (Directory.Exists(additional))
        {
            foreach (var file in Directory.GetFiles(additional, "*.jinja").OrderBy(f => f, StringComparer.Ordinal))
            {
                string name = Path.GetFileNameWithoutExtension(file);
                if (templates.Any(t => t.Name == name))
                    throw new GptModelException($"{file} names the chat template '{name}', which {templates.First(t => t.Name == name).Source} already defines.");
                string relative = $"{AdditionalFolder}/{Path.GetFileName(file)}";
                templates.Add(new ChatTemplateEntry(name, files.ReadSmallText(relative), relative));
            }
        }
        if (templates.Count == 0) return null;

        var (tokens, extra) = ReadSpecialTokens(config, JsonConfig.LoadIfExists(files, SpecialTokensMapFile));
        return new ChatTemplateFiles(folder, templates, tokens, extra);
    }

    private static IEnumerable<ChatTemplateEntry> FromConfig(JsonConfig config, JsonElement declared)
    {
        if (declared.ValueKind == JsonValueKind.String) return [new ChatTemplateEntry(DefaultName, declared.GetString()!, TokenizerConfigFile)];
        const string expected = "a template string or a list of {\"name\": ..., \"template\": ...} objects";
        if (declared.ValueKind != JsonValueKind.Array)
            throw new GptModelException($"{config.Path}: 'chat_template' must be {expected}, but is {Short(declared)}.");
        var result = new List<ChatTemplateEntry>();
        int index = 0;
        foreach (var item in declared.EnumerateArray())
        {
            string where = $"{config.Path}: 'chat_template[{index}]'";
            if (item.ValueKind != JsonValueKind.Object
                || !item.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
                || !item.TryGetProperty("template", out var text) || text.ValueKind != JsonValueKind.String)
                throw new GptModelException($"{where} must be an object with a string 'name' and a string 'template', but is {Short(item)}.");
            if (result.Any(t => t.Name == name.GetString()))
                throw new GptModelException($"{where} repeats the template name '{name.GetString()}'.");
            result.Add(new ChatTemplateEntry(name.GetString()!, text.GetString()!, $"{TokenizerConfigFile} (chat_template '{name.GetString()}')"));
            index++;
        }
        if (result.Count == 0) throw new GptModelException($"{config.Path}: 'chat_template' is an empty list; expected {expected}.");
        return result;
    }

    private static (Dictionary<string, string> Tokens, List<string> Additional) ReadSpecialTokens(JsonConfig? config, JsonConfig? map)
    {
        var tokens = new Dictionary<string, string>(StringComparer.Ordinal);
        var additional = new List<string>();
        foreach (var source in new[] { config, map })
        {
            if (source is null) continue;
            foreach (var key in SingleTokenKeys)
            {
                if (source.Find(key) is not { } value) continue;   // absent or null: the other file's value (or none) stands
                tokens[key] = TokenText(value, source, key);
            }
            if (source.Find(AdditionalTokensKey) is { } list)
            {
                if (list.ValueKind != JsonValueKind.Array)
                    throw new GptModelException($"{source.Path}: '{AdditionalTokensKey}' must be a list of tokens, but is {Short(list)}.");
                additional = list.EnumerateArray().Select((item, i) => TokenText(item, source, $"{AdditionalTokensKey}[{i}]")).ToList();
            }
        }
        // Keep transformers' attribute order, whichever file each value came from.
        var ordered = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var key in SingleTokenKeys)
            if (tokens.TryGetValue(key, out var text)) ordered[key] = text;
        return (ordered, additional);
    }

    /// <summary>A token written as a string or as an AddedToken object (<c>{"content": "...", ...}</c>).</summary>
    private static string TokenText(JsonElement value, JsonConfig source, string key)
    {
        if (value.ValueKind == JsonValueKind.String) return value.GetString()!;
        if (value.ValueKind == JsonValueKind.Object && value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
            return content.GetString()!;
        throw new GptModelException($"{source.Path}: '{key}' must be a token string or an object with a string 'content', but is {Short(value)}.");
    }

    private static string Short(JsonElement value)
    {
        string raw = value.GetRawText();
        return raw.Length > 60 ? raw[..57] + "..." : raw;
    }
}

/// <summary>One chat template of a folder: its name, its Jinja source and the file (and entry) it came from; parsed on first use.</summary>
internal sealed class ChatTemplateEntry
{
    private readonly Lazy<JinjaTemplate> _parsed;

    private static readonly TemplateLimits UnlimitedLength = TemplateLimits.Default with { MaxTemplateLength = long.MaxValue };

    public ChatTemplateEntry(string name, string text, string source)
    {
        Name = name;
        Text = text;
        Source = source;
        // The length budget is the caller's (ChatTemplate checks it before a render asks for the parse).
        _parsed = new Lazy<JinjaTemplate>(() => JinjaTemplate.Parse(text, UnlimitedLength), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public string Name { get; }

    public string Text { get; }

    /// <summary>The file, relative to the model folder, e.g. <c>chat_template.jinja</c> or <c>tokenizer_config.json</c>.</summary>
    public string Source { get; }

    /// <summary>The parsed template (a <see cref="TemplateException"/> for a syntax error is thrown on every use).</summary>
    public JinjaTemplate Parsed => _parsed.Value;
}
