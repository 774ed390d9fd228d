using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tokenization;
using MLNetGpt.Transforms;

[assembly: LoadableClass(typeof(MLNetGpt.TokenizeTextTransformer), null, typeof(SignatureLoadModel),
    "MLNetGpt Tokenize Text", MLNetGpt.TokenizeTextTransformer.LoaderSignature)]

namespace MLNetGpt;

/// <summary>Options of <c>TokenizeText</c>: text to token ids with a model folder's tokenizer (or a named encoding).</summary>
public sealed class TokenizeTextOptions
{
    private int? _maxTokens;

    /// <summary>The output column (variable-length Vector&lt;Int32&gt;).</summary>
    public required string OutputColumnName { get; set; }

    /// <summary>The input text column; <see langword="null"/> means <see cref="OutputColumnName"/>.</summary>
    public string? InputColumnName { get; set; }

    /// <summary>The model folder whose tokenizer to use. Set this or <see cref="Encoding"/>.</summary>
    public string? ModelFolder { get; set; }

    /// <summary>A named encoding (<c>gpt2</c>, <c>r50k_base</c>, <c>cl100k_base</c>, <c>o200k_base</c>) instead of a folder.</summary>
    public string? Encoding { get; set; }

    /// <summary>Keep at most this many tokens per row (&gt; 0); <see langword="null"/> keeps all.</summary>
    public int? MaxTokens
    {
        get => _maxTokens;
        set => _maxTokens = value is null || value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(MaxTokens), value, "MaxTokens must be greater than 0.");
    }

    /// <summary>When cutting to <see cref="MaxTokens"/>, drop tokens from the start (the default, as prompts want their end) or from the end.</summary>
    public bool TruncateFromStart { get; set; } = true;

    /// <summary>
    /// Encode with the special tokens transformers' <c>tokenizer(text)</c> adds for the folder
    /// (<c>add_special_tokens=True</c>): the tokenizer.json post-processor's template, such as Llama 3.1's
    /// <c>&lt;|begin_of_text|&gt;</c>, or tokenizer_config.json's <c>add_bos_token</c> / <c>add_eos_token</c>
    /// (docs/tokenization.md gives the rule). <see langword="null"/> (the default) does what transformers
    /// does: true for plain text, false with <see cref="Chat"/> (a chat prompt is tokenized as rendered).
    /// A named encoding adds none. Generation from text adds them the same way.
    /// </summary>
    public bool? AddSpecialTokens { get; set; }

    /// <summary>
    /// The older, narrower form of <see cref="AddSpecialTokens"/>: prepend only the model's
    /// beginning-of-sequence token id (config.json's <c>bos_token_id</c>) to every row, or add nothing.
    /// <see langword="null"/> (the default) leaves the choice to <see cref="AddSpecialTokens"/>; setting both is refused.
    /// </summary>
    public bool? AddBeginningOfSequence { get; set; }

    /// <summary>How a saved pipeline keeps the tokenizer files.</summary>
    public ModelStorage Storage { get; set; } = ModelStorage.Reference;

    /// <summary>
    /// Treat each row's text as a user message and tokenize the prompt the model's chat template renders for it
    /// (with <see cref="SystemPrompt"/> first, and the assistant turn's header at the end), as transformers'
    /// <c>apply_chat_template(..., add_generation_prompt=True)</c> does; special tokens are then not added
    /// unless <see cref="AddSpecialTokens"/> asks for them (the template writes BOS when the model wants it,
    /// and a prompt that already starts with the tokens to add does not get them twice).
    /// Needs <see cref="ModelFolder"/> with a chat template. Default false.
    /// </summary>
    public bool Chat { get; set; }

    /// <summary>With <see cref="Chat"/>: a system message rendered before every row's user message; null or empty: none.</summary>
    public string? SystemPrompt { get; set; }

    /// <summary>With <see cref="Chat"/>: the folder's chat template to use (see <see cref="GptModelInfo.ChatTemplateNames"/>); null: the default.</summary>
    public string? ChatTemplateName { get; set; }
}

/// <summary>Estimator for <see cref="TokenizeTextTransformer"/>; nothing is trained.</summary>
public sealed class TokenizeTextEstimator : GptEstimatorBase<TokenizeTextTransformer>
{
    private readonly TokenizeTextOptions _options;

    internal TokenizeTextEstimator(IHostEnvironment env, TokenizeTextOptions options) : base(env)
    {
        _options = options;
        _ = new TokenizeTextTransformer(env, options);   // validates the options and the tokenizer now
    }

    private protected override string StageName => "TokenizeText";

    internal override IEnumerable<(string Name, InputKind Kind)> InputColumns => [(_options.InputColumnName ?? _options.OutputColumnName, InputKind.Text)];

    internal override IEnumerable<(string Name, DataViewType Type)> OutputColumns => [(_options.OutputColumnName, new VectorDataViewType(NumberDataViewType.Int32))];

    private protected override TokenizeTextTransformer CreateTransformer() => new(Environment, _options);
}

/// <summary>Text to token ids. Empty text gives an empty vector (or just the special tokens).</summary>
public sealed class TokenizeTextTransformer : GptTransformerBase
{
    internal const string LoaderSignature = "MLNetGptTokenizeText";
    private readonly ModelSource _source;
    private readonly Tokenizer _tokenizer;
    private readonly int[] _prefix;
    private readonly int[] _suffix;
    private readonly ChatTemplate? _chatTemplate;

    internal TokenizeTextTransformer(IHostEnvironment env, TokenizeTextOptions options) : base(env, nameof(TokenizeTextTransformer))
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrEmpty(options.OutputColumnName)) throw new ArgumentException("OutputColumnName is required.", nameof(options));
        if ((options.ModelFolder is null) == (options.Encoding is null))
            throw new ArgumentException("TokenizeText needs exactly one of ModelFolder and Encoding.", nameof(options));
        if (!options.Chat && (options.SystemPrompt is not null || options.ChatTemplateName is not null))
            throw new ArgumentException($"{(options.SystemPrompt is not null ? "SystemPrompt" : "ChatTemplateName")} is set, but Chat is false; set Chat = true to render rows through the chat template.", nameof(options));
        if (options.Chat && options.ModelFolder is null)
            throw new ArgumentException($"Chat needs ModelFolder (a folder with a chat template), not the encoding '{options.Encoding}'.", nameof(options));
        OutputColumnName = options.OutputColumnName;
        InputColumnName = options.InputColumnName ?? options.OutputColumnName;
        MaxTokens = options.MaxTokens;
        TruncateFromStart = options.TruncateFromStart;
        if (options.AddSpecialTokens is not null && options.AddBeginningOfSequence is not null)
            throw new ArgumentException("Set AddSpecialTokens or the older AddBeginningOfSequence, not both.", nameof(options));
        _source = options.ModelFolder is not null ? ModelSource.ForFolder(options.ModelFolder, options.Storage) : ModelSource.ForEncoding(options.Encoding!);
        _tokenizer = _source.GetTokenizer();
        if (options.AddBeginningOfSequence is bool prependBos)
        {
            var (bos, _) = _source.Folder is not null ? Models.ModelFolder.ReadBos(_source.Folder) : (null, false);
            _prefix = !prependBos ? []
                : [bos ?? throw new ArgumentException($"AddBeginningOfSequence is set, but {_source} defines no bos_token_id.", nameof(options))];
            _suffix = [];
            AddSpecialTokens = prependBos;
        }
        else
        {
            // A chat prompt is tokenized as transformers tokenizes apply_chat_template's text: without special tokens added.
            AddSpecialTokens = options.AddSpecialTokens ?? !options.Chat;
            var template = AddSpecialTokens ? _source.GetSpecialTokens() : SpecialTokenTemplate.None;
            _prefix = template.Prefix.ToArray();
            _suffix = template.Suffix.ToArray();
        }
        Chat = options.Chat;
        if (Chat)
        {
            SystemPrompt = string.IsNullOrEmpty(options.SystemPrompt) ? null : options.SystemPrompt;
            ChatTemplateName = options.ChatTemplateName;
            _chatTemplate = OpenChatTemplate(_source.Folder!, ChatTemplateName);
        }
    }

    // Saved-format history (ModelVerWritten):
    //   0x00010001  MLNetGpt 0.1.0: binary settings (LegacyOptionsFormat), model source.
    //   0x00010002  JSON settings (StageSettings), model source.
    //   0x00010003  JSON settings gain "chat", "system_prompt" and "chat_template" (written only for chat stages).
    //   0x00010004  "prepend_bos_token_id" gives way to "add_special_tokens" with the ids added before and
    //               after the text ("special_prefix", "special_suffix"), resolved when the stage was made.
    private const uint VersionBinary = 0x00010001;
    private const uint VersionJson = 0x00010002;
    private const uint VersionChat = 0x00010003;
    private const uint VersionSpecialTokens = 0x00010004;

    private TokenizeTextTransformer(IHostEnvironment env, ModelLoadContext ctx) : base(env, nameof(TokenizeTextTransformer))
    {
        ctx.CheckAtModel(GetVersionInfo());
        var r = ctx.Reader;
        if (ctx.Header.ModelVerWritten == VersionBinary)
        {
            // string output, string input, int? max tokens, bool truncate from start, int? BOS id to prepend
            OutputColumnName = r.ReadString();
            InputColumnName = r.ReadString();
            MaxTokens = LegacyOptionsFormat.ReadInt(r);
            TruncateFromStart = r.ReadBoolean();
            _prefix = LegacyOptionsFormat.ReadInt(r) is int bos ? [bos] : [];
            _suffix = [];
            AddSpecialTokens = _prefix.Length > 0;
        }
        else
        {
            var s = new StageSettingsReader(r.ReadString(), StageName);
            OutputColumnName = s.RequiredString("output_column");
            InputColumnName = s.RequiredString("input_column");
            MaxTokens = s.Int("max_tokens");
            if (MaxTokens is < 1) throw new FormatException($"TokenizeText in the saved pipeline: 'max_tokens' must be 1 or more, but is {MaxTokens}.");
            TruncateFromStart = s.Bool("truncate_from_start", true);
            if (ctx.Header.ModelVerWritten < VersionSpecialTokens)
            {
                _prefix = s.Int("prepend_bos_token_id") is int bos ? [bos] : [];
                _suffix = [];
                AddSpecialTokens = _prefix.Length > 0;
            }
            else
            {
                AddSpecialTokens = s.Bool("add_special_tokens", false);
                _prefix = s.Ints("special_prefix") ?? [];
                _suffix = s.Ints("special_suffix") ?? [];
            }
            bool chat = s.Bool("chat", false);
            SystemPrompt = s.String("system_prompt");
            ChatTemplateName = s.String("chat_template");
            s.EnsureAllRead();
            if (!chat && (SystemPrompt is not null || ChatTemplateName is not null))
                throw new FormatException("TokenizeText in the saved pipeline: 'system_prompt' and 'chat_template' need 'chat': true.");
            Chat = chat;
        }
        _source = ModelSource.Load(ctx, Warn);
        _tokenizer = _source.GetTokenizer();
        if (Chat)
        {
            if (_source.Folder is null) throw new FormatException("TokenizeText in the saved pipeline: 'chat' needs a model folder, but the stage names an encoding.");
            _chatTemplate = OpenChatTemplate(_source.Folder, ChatTemplateName);
        }
    }

    private static ChatTemplate OpenChatTemplate(string folder, string? name)
    {
        var files = MLNetGpt.Chat.ChatTemplateFiles.Read(folder)
            ?? throw new ArgumentException($"Chat is set, but the model folder '{folder}' has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja).");
        return ChatTemplate.WithDefaultLimits(files.Choose(name, withTools: false), files);
    }

    /// <summary>The output column.</summary>
    public string OutputColumnName { get; }

    /// <summary>The input text column.</summary>
    public string InputColumnName { get; }

    /// <summary>The most tokens kept per row, or null.</summary>
    public int? MaxTokens { get; }

    /// <summary>Whether truncation drops tokens from the start.</summary>
    public bool TruncateFromStart { get; }

    /// <summary>Whether special tokens are added (transformers' add_special_tokens).</summary>
    public bool AddSpecialTokens { get; }

    /// <summary>Whether a special token is put in front of every row (the model's BOS, for most models).</summary>
    public bool AddBeginningOfSequence => AddSpecialTokens && _prefix.Length > 0;

    /// <summary>Whether rows are rendered through the model's chat template as user messages before tokenizing.</summary>
    public bool Chat { get; }

    /// <summary>The system message before every row's user message (chat stages), or null.</summary>
    public string? SystemPrompt { get; }

    /// <summary>The chat template chosen by name, or null for the folder's default.</summary>
    public string? ChatTemplateName { get; }

    private protected override string StageName => "TokenizeText";

    internal override IReadOnlyList<(string Name, InputKind Kind)> InputColumns => [(InputColumnName, InputKind.Text)];

    internal override IReadOnlyList<(string Name, DataViewType Type)> OutputColumns => [(OutputColumnName, new VectorDataViewType(NumberDataViewType.Int32))];

    internal override int LookAhead => 1;   // cheap per row: read only what the consumer asks for

    internal override RowStreamMapper CreateMapper() => new Mapper(this);

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "GPTTOKNZ", verWrittenCur: VersionSpecialTokens, verReadableCur: VersionSpecialTokens, verWeCanReadBack: VersionBinary,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(TokenizeTextTransformer).Assembly.FullName);

    private protected override void SaveModel(ModelSaveContext ctx)
    {
        ctx.SetVersionInfo(GetVersionInfo());
        var settings = new StageSettingsWriter()
            .String("output_column", OutputColumnName)
            .String("input_column", InputColumnName)
            .Int("max_tokens", MaxTokens)
            .Bool("truncate_from_start", TruncateFromStart)
            .Bool("add_special_tokens", AddSpecialTokens)
            .Ints("special_prefix", AddSpecialTokens ? _prefix : [])
            .Ints("special_suffix", AddSpecialTokens ? _suffix : []);
        if (Chat) settings.Bool("chat", true).String("system_prompt", SystemPrompt).String("chat_template", ChatTemplateName);
        ctx.Writer.Write(settings.ToString());
        _source.Save(ctx, tokenizerOnly: true);
    }


    internal int[] Tokenize(string text, long row, CancellationToken cancellationToken = default)
    {
        try
        {
            Generation.PromptPreparer.EnsureValidUnicode(text, Describe(row, InputColumnName));
        }
        catch (ArgumentException e)
        {
            throw new InvalidOperationException(e.Message, e);
        }
        if (_chatTemplate is not null) text = RenderChat(text, row, cancellationToken);
        var ids = _tokenizer.EncodeToIds(text);
        int[] prefix = AddSpecialTokens ? _prefix : [], suffix = AddSpecialTokens ? _suffix : [];
        // A chat template that writes the special tokens itself gets no second copy.
        if (_chatTemplate is not null && prefix.Length > 0 && ids.Take(prefix.Length).SequenceEqual(prefix)) prefix = [];
        IEnumerable<int> kept = ids;
        // Room for the special tokens is kept, as transformers' truncation does with add_special_tokens.
        int budget = Math.Max(0, (MaxTokens ?? int.MaxValue) - prefix.Length - suffix.Length);
        if (ids.Count > budget) kept = TruncateFromStart ? ids.Skip(ids.Count - budget) : ids.Take(budget);
        return [.. prefix, .. kept, .. suffix];
    }

    /// <summary>The prompt the chat template renders for one row: the system prompt, the row as the user's message, the assistant header.</summary>
    internal string RenderChat(string text, long row, CancellationToken cancellationToken = default)
    {
        var messages = new List<Microsoft.Extensions.AI.ChatMessage>();
        if (SystemPrompt is not null) messages.Add(new(Microsoft.Extensions.AI.ChatRole.System, SystemPrompt));
        messages.Add(new(Microsoft.Extensions.AI.ChatRole.User, text));
        try
        {
            // The cursor's token: a cursor disposed (or a job stopped) mid-render ends the render too.
            return _chatTemplate!.RenderValues(MLNetGpt.Chat.ChatTemplateInput.Messages(messages), tools: null, addGenerationPrompt: true,
                variables: null, now: null, cancellationToken);
        }
        catch (ChatTemplateException e)
        {
            throw new InvalidOperationException($"{Describe(row, InputColumnName)}: {e.Message}", e);
        }
    }

    private sealed class Mapper(TokenizeTextTransformer owner) : BatchRowMapper(256)
    {
        protected override object?[][] MapBatch(IReadOnlyList<RowInput> rows, CancellationToken cancellationToken)
        {
            var outputs = new object?[rows.Count][];
            for (int i = 0; i < rows.Count; i++)
                outputs[i] = [ToVector(owner.Tokenize((string)rows[i].Values[0]!, rows[i].Index, cancellationToken))];
            return outputs;
        }
    }

    internal static VBuffer<int> ToVector(int[] ids) => new(ids.Length, ids);
}
