namespace MLNetGpt.Models;

/// <summary>
/// What the files of a model folder say, before any ONNX session exists: the layout, the ONNX
/// files, name patterns (ONNX Runtime GenAI), shapes and special tokens from the configuration,
/// and the decoding defaults.
/// </summary>
internal sealed class ModelFolder
{
    public const string OptimumDecoderFile = "model.onnx";
    public const string OptimumMergedFile = "decoder_model_merged.onnx";
    public const string OptimumPrefillFile = "decoder_model.onnx";
    public const string OptimumWithPastFile = "decoder_with_past_model.onnx";
    public const string GenAIConfigFile = "genai_config.json";
    public const string ConfigFile = "config.json";
    public const string GenerationConfigFile = "generation_config.json";

    public required string Folder { get; init; }
    public required ModelLayout Layout { get; init; }

    /// <summary>The file that runs prefill (and decode, except for the pair layout).</summary>
    public required string MainFile { get; init; }

    /// <summary>The decode file of the pair layout.</summary>
    public string? WithPastFile { get; init; }

    public int? LayerCount { get; init; }
    public int? HeadCount { get; init; }
    public int? KeyValueHeadCount { get; init; }
    public int? HeadSize { get; init; }
    public int? HiddenSize { get; init; }
    public int? VocabularySize { get; init; }
    public int? ContextLength { get; init; }
    public int[] EosTokenIds { get; init; } = [];
    public int? BosTokenId { get; init; }
    public int? PadTokenId { get; init; }

    /// <summary>tokenizer_config.json's <c>add_bos_token</c>: text prompts start with the BOS token.</summary>
    public bool AddBosToken { get; init; }

    public GenerationOptions Defaults { get; init; } = new();

    /// <summary>The chat templates and special tokens of the tokenizer files (null when the folder has no chat template).</summary>
    public Chat.ChatTemplateFiles? ChatTemplates { get; init; }

    /// <summary>
    /// Where each configured shape value came from, for messages ("config.json: 'n_layer'"), by
    /// <see cref="ShapeKey"/>; a value derived from others (head size from width and heads) says so.
    /// </summary>
    public IReadOnlyDictionary<ShapeKey, string> Sources { get; init; } = new Dictionary<ShapeKey, string>();

    /// <summary>Names the configuration entry a shape value came from.</summary>
    public string Source(ShapeKey key) => Sources.TryGetValue(key, out var where) ? where : "the configuration";

    /// <summary>The onnx-community precisions present under onnx/ (empty for other layouts), and the one opened.</summary>
    public IReadOnlyList<string> Variants { get; init; } = [];
    public string? Variant { get; init; }

    /// <summary>genai_config.json's <c>search.past_present_share_buffer</c>: the present caches may alias a max-length past.</summary>
    public bool ShareBuffer { get; init; }

    /// <summary>Graph names given by genai_config.json (null: discover them from the graph).</summary>
    public GraphNames? Names { get; init; }

    public IReadOnlyList<string> ModelFiles => WithPastFile is null ? [MainFile] : [MainFile, WithPastFile];

    /// <summary>The folder's file policy: every file above was found through it.</summary>
    public required ModelFiles Files { get; init; }

    /// <summary>
    /// Every file of the folder the model reads, relative and '/'-separated: the graphs, their external data, and the
    /// configurations, tokenizer files and chat templates present. What embedding or quantizing the model copies.
    /// </summary>
    public IReadOnlyList<string> UsedFiles { get; init; } = [];

    /// <param name="folder">The model folder.</param>
    /// <param name="variant">For the onnx-community layout: the precision to open (fp32, fp16, q4, ...); null picks one for the device.</param>
    /// <param name="onCuda">Whether the model is meant for CUDA (the default variant differs).</param>
    public static ModelFolder Open(string folder, string? variant = null, bool onCuda = false)
    {
        if (string.IsNullOrWhiteSpace(folder))
            throw new ArgumentException("The model folder path is empty.", nameof(folder));
        folder = Path.GetFullPath(folder);
        if (File.Exists(folder) && folder.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
            throw new GptModelException($"'{folder}' is an ONNX file; pass the folder that holds it with its config.json.");
        if (!Directory.Exists(folder))
            throw new GptModelException($"The model folder '{folder}' does not exist.");

        var files = Models.ModelFiles.For(folder);
        bool Has(string name) => files.Exists(name);
        bool addBos = JsonConfig.LoadIfExists(files, "tokenizer_config.json")?.Bool("add_bos_token") ?? false;
        if (Has(GenAIConfigFile)) return OpenGenAI(folder, files, addBos);

        ModelLayout layout;
        string main;
        string? withPast = null;
        var variants = OnnxCommunityVariants.Find(folder);
        string? chosen = null;
        if (variants.Count > 0 && !Has(OptimumMergedFile) && !Has(OptimumDecoderFile) && !Has(OptimumPrefillFile))
        {
            layout = ModelLayout.OnnxCommunity;
            chosen = OnnxCommunityVariants.Choose(variants, variant, onCuda, folder);
            main = variants[chosen];
            files.Require(main);
        }
        else if (Has(OptimumMergedFile))
        {
            layout = ModelLayout.OptimumMergedDecoder;
            main = OptimumMergedFile;
        }
        else if (Has(OptimumDecoderFile))
        {
            layout = ModelLayout.OptimumDecoder;
            main = OptimumDecoderFile;
        }
        else if (Has(OptimumPrefillFile))
        {
            if (!Has(OptimumWithPastFile))
                throw new GptModelException($"The model folder '{folder}' has {OptimumPrefillFile} but not {OptimumWithPastFile}; " +
                    "a decoder without a key/value cache is not supported (export it with --task text-generation-with-past).");
            layout = ModelLayout.OptimumDecoderPair;
            main = OptimumPrefillFile;
            withPast = OptimumWithPastFile;
        }
        else
        {
            throw new GptModelException($"The model folder '{folder}' has no model file: expected {OptimumDecoderFile}, " +
                $"{OptimumMergedFile}, {OptimumPrefillFile} + {OptimumWithPastFile}, {GenAIConfigFile}, or onnx/model*.onnx (onnx-community).");
        }

        if (!Has(ConfigFile))
            throw new GptModelException($"The model folder '{folder}' has {main} but no {ConfigFile}; it is needed for the context length and special tokens.");
        var config = JsonConfig.Load(files, ConfigFile);
        var generation = JsonConfig.LoadIfExists(files, GenerationConfigFile);

        int? heads = config.Positive("n_head", "num_attention_heads");
        int? hidden = config.Positive("n_embd", "hidden_size", "d_model");
        int? context = config.Positive("n_positions", "max_position_embeddings", "n_ctx", "seq_length");
        if (context is null)
            throw new GptModelException($"{config.Path} has no context length: set one of n_positions, max_position_embeddings or n_ctx.");
        int[] eos = generation?.IntList("eos_token_id") ?? config.IntList("eos_token_id") ?? [];
        var sources = new Dictionary<ShapeKey, string>();
        void Note(ShapeKey key, string? where)
        {
            if (where is not null) sources[key] = where;
        }
        Note(ShapeKey.Layers, config.Where("n_layer", "num_hidden_layers"));
        Note(ShapeKey.Heads, config.Where("n_head", "num_attention_heads"));
        Note(ShapeKey.KeyValueHeads, config.Where("num_key_value_heads", "n_kv_heads") ?? config.Where("n_head", "num_attention_heads"));
        Note(ShapeKey.HeadSize, config.Where("head_dim") ?? (heads is > 0 && hidden is > 0 ? $"{config.FileName}: hidden size / heads" : null));
        Note(ShapeKey.Vocabulary, config.Where("vocab_size"));
        Note(ShapeKey.Context, config.Where("n_positions", "max_position_embeddings", "n_ctx", "seq_length"));
        return new ModelFolder
        {
            Sources = sources,
            Variants = variants.Keys.ToArray(),
            Variant = chosen,
            Folder = folder,
            Layout = layout,
            MainFile = main,
            WithPastFile = withPast,
            LayerCount = config.Positive("n_layer", "num_hidden_layers"),
            HeadCount = heads,
            KeyValueHeadCount = config.Positive("num_key_value_heads", "n_kv_heads") ?? heads,
            HeadSize = config.Positive("head_dim") ?? (heads is > 0 && hidden is > 0 ? hidden / heads : null),
            HiddenSize = hidden,
            VocabularySize = config.Positive("vocab_size"),
            ContextLength = context,
            EosTokenIds = eos,
            BosTokenId = generation?.Id("bos_token_id") ?? config.Id("bos_token_id"),
            PadTokenId = generation?.Id("pad_token_id") ?? config.Id("pad_token_id"),
            AddBosToken = addBos,
            Defaults = generation is null ? new GenerationOptions() : ReadDefaults(generation, null),
            ChatTemplates = Chat.ChatTemplateFiles.Read(folder, files),
            Files = files,
            UsedFiles = Used(files, withPast is null ? [main] : [main, withPast]),
        };
    }

    /// <summary>
    /// The companions present, the graphs and each graph's external data, checked against the policy (an external
    /// data file that is a link leading out of the folder is refused here, before ONNX Runtime would follow it).
    /// </summary>
    private static IReadOnlyList<string> Used(ModelFiles files, IReadOnlyList<string> graphs)
    {
        var used = new List<string>(files.PresentCompanions());
        foreach (var graph in graphs)
        {
            string relative = graph.Replace('\\', '/');
            used.Add(relative);
            Onnx.OnnxModelFile model;
            try
            {
                model = Onnx.OnnxModelFile.Load(files.Require(relative));
            }
            catch (Exception e) when (e is GptModelException or Google.Protobuf.InvalidProtocolBufferException or InvalidOperationException or FormatException)
            {
                continue;    // not a graph this reader understands: ONNX Runtime reports the damage when it loads it
            }
            string directory = Path.GetDirectoryName(relative) ?? "";
            foreach (var data in model.ExternalDataFiles())
            {
                string dataRelative = Path.Combine(directory, data).Replace('\\', '/');
                if (Path.IsPathRooted(data) || data.Split('/', '\\').Contains(".."))
                    throw new GptModelException($"{Path.Combine(files.Folder, relative)} keeps tensor data in '{data}', outside the model folder '{files.Folder}'.");
                if (files.Find(dataRelative) is not null && !used.Contains(dataRelative)) used.Add(dataRelative);
            }
        }
        return used;
    }

    /// <summary>
    /// The BOS token id and tokenizer_config.json's <c>add_bos_token</c> from whichever configuration
    /// files exist; tokenizer-only stages use this (their saved folders may hold no ONNX file).
    /// </summary>
    public static (int? Bos, bool AddBos) ReadBos(string folder)
    {
        var files = Models.ModelFiles.For(folder);
        int? bos = JsonConfig.LoadIfExists(files, GenerationConfigFile)?.Id("bos_token_id")
            ?? JsonConfig.LoadIfExists(files, ConfigFile)?.Id("bos_token_id")
            ?? JsonConfig.LoadIfExists(files, GenAIConfigFile)?.Id("model.bos_token_id");
        bool addBos = JsonConfig.LoadIfExists(files, "tokenizer_config.json")?.Bool("add_bos_token") ?? false;
        return (bos, addBos && bos is not null);
    }

    /// <summary>The decoding defaults of a configuration object (generation_config.json, or genai_config.json's <c>search</c>).</summary>
    private static GenerationOptions ReadDefaults(JsonConfig config, string? section)
    {
        if ((section is null ? config.Root : config.Find(section)) is not { } element) return new GenerationOptions();
        try
        {
            return GenerationControls.Read(element, section is null ? config.Path : $"{config.Path} ({section})", UnknownKeys.Ignore);
        }
        catch (FormatException e)
        {
            throw new GptModelException(e.Message, e);
        }
    }

    private static ModelFolder OpenGenAI(string folder, ModelFiles files, bool addBos)
    {
        var g = JsonConfig.Load(files, GenAIConfigFile);
        string file = g.String("model.decoder.filename")
            ?? throw new GptModelException($"{g.Path} has no model.decoder.filename.");
        if (Path.IsPathRooted(file) || file.Split('/', '\\').Contains(".."))
            throw new GptModelException($"{g.Path}: 'model.decoder.filename' is '{file}', outside the model folder '{folder}'; expected a file inside it.");
        if (!files.Exists(file))
            throw new GptModelException($"{g.Path} names the model file '{file}', which is not in '{folder}'.");
        int? context = g.Positive("model.context_length")
            ?? throw new GptModelException($"{g.Path} has no model.context_length.");
        int? heads = g.Positive("model.decoder.num_attention_heads");
        int? layers = g.Positive("model.decoder.num_hidden_layers");
        // GenAI names each state kind by a pattern pair: inputs.past_X_names ↔ outputs.present_X_names.
        var patterns = new List<(string Past, string Present)>();
        if (g.Find("model.decoder.inputs") is { ValueKind: System.Text.Json.JsonValueKind.Object } inputNames)
            foreach (var entry in inputNames.EnumerateObject())
            {
                if (!entry.Name.StartsWith("past", StringComparison.Ordinal) || !entry.Name.EndsWith("_names", StringComparison.Ordinal)) continue;
                string presentKey = "model.decoder.outputs.present" + entry.Name[4..];
                if (entry.Value.GetString() is { } past && g.String(presentKey) is { } present) patterns.Add((past, present));
            }
        var names = new GraphNames
        {
            InputIds = g.String("model.decoder.inputs.input_ids") ?? "input_ids",
            AttentionMask = g.String("model.decoder.inputs.attention_mask") ?? "attention_mask",
            PositionIds = g.String("model.decoder.inputs.position_ids") ?? "position_ids",
            Logits = g.String("model.decoder.outputs.logits") ?? "logits",
            StatePatterns = patterns,
        };
        bool shareBuffer = g.Bool("search.past_present_share_buffer") ?? false;
        // search.max_length counts prompt plus output (Hugging Face's max_length).
        var defaults = ReadDefaults(g, "search");
        var sources = new Dictionary<ShapeKey, string>();
        foreach (var (key, path) in new[]
        {
            (ShapeKey.Layers, "model.decoder.num_hidden_layers"), (ShapeKey.Heads, "model.decoder.num_attention_heads"),
            (ShapeKey.KeyValueHeads, "model.decoder.num_key_value_heads"), (ShapeKey.HeadSize, "model.decoder.head_size"),
            (ShapeKey.Vocabulary, "model.vocab_size"), (ShapeKey.Context, "model.context_length"),
        })
            if (g.Where(path) is { } where) sources[key] = where;
        if (!sources.ContainsKey(ShapeKey.KeyValueHeads) && g.Where("model.decoder.num_attention_heads") is { } headsWhere) sources[ShapeKey.KeyValueHeads] = headsWhere;
        return new ModelFolder
        {
            Sources = sources,
            Folder = folder,
            Layout = ModelLayout.OnnxRuntimeGenAI,
            MainFile = file,
            LayerCount = layers,
            HeadCount = heads,
            KeyValueHeadCount = g.Positive("model.decoder.num_key_value_heads") ?? heads,
            HeadSize = g.Positive("model.decoder.head_size"),
            HiddenSize = g.Positive("model.decoder.hidden_size"),
            VocabularySize = g.Positive("model.vocab_size"),
            ContextLength = context,
            EosTokenIds = g.IntList("model.eos_token_id") ?? [],
            BosTokenId = g.Id("model.bos_token_id"),
            PadTokenId = g.Id("model.pad_token_id"),
            AddBosToken = addBos,
            Names = names,
            ShareBuffer = shareBuffer,
            Defaults = defaults,
            ChatTemplates = Chat.ChatTemplateFiles.Read(folder, files),
            Files = files,
            UsedFiles = Used(files, [file]),
        };
    }
}

/// <summary>Graph input/output names; the patterns hold <c>%d</c> for the layer index.</summary>
internal sealed class GraphNames
{
    public string InputIds { get; init; } = "input_ids";
    public string AttentionMask { get; init; } = "attention_mask";
    public string PositionIds { get; init; } = "position_ids";
    public string Logits { get; init; } = "logits";

    /// <summary>Past/present name patterns with <c>%d</c> for the layer (from genai_config.json); states are otherwise paired by name.</summary>
    public IReadOnlyList<(string Past, string Present)> StatePatterns { get; init; } = [];
}

/// <summary>The shape values a model folder's configuration may state and the graph may contradict.</summary>
internal enum ShapeKey
{
    Layers,
    Heads,
    KeyValueHeads,
    HeadSize,
    Vocabulary,
    Context,
}
