namespace MLNetGpt;

/// <summary>What was discovered about an opened model folder: files, shapes, special tokens, tokenizer and device.</summary>
public sealed class GptModelInfo
{
    internal GptModelInfo() { }

    /// <summary>The model folder, as a full path.</summary>
    public string Folder { get; internal init; } = "";

    /// <summary>How the ONNX files are arranged.</summary>
    public ModelLayout Layout { get; internal init; }

    /// <summary>For an onnx-community folder: every precision under <c>onnx/</c> (empty for other layouts).</summary>
    public IReadOnlyList<string> Variants { get; internal init; } = [];

    /// <summary>For an onnx-community folder: the precision opened (see <see cref="GptModelOptions.Variant"/>).</summary>
    public string? Variant { get; internal init; }

    /// <summary>The ONNX files in use, relative to <see cref="Folder"/>.</summary>
    public IReadOnlyList<string> ModelFiles { get; internal init; } = [];

    /// <summary>
    /// Every file of the folder the model reads, relative to <see cref="Folder"/> with '/' separators: the ONNX files,
    /// their external data, and the configuration, tokenizer and chat-template files present. What
    /// the ML.NET stages' <c>ModelStorage.Embed</c> and <see cref="GptQuantizer"/> copy; nothing else of the folder is read.
    /// Each was checked against the folder's file policy (no link out of the folder; see docs/security.md).
    /// </summary>
    public IReadOnlyList<string> Files { get; internal init; } = [];

    /// <summary>Number of decoder layers (pairs of key/value cache inputs in the graph).</summary>
    public int LayerCount { get; internal init; }

    /// <summary>Attention heads per layer (from the configuration; equals <see cref="KeyValueHeadCount"/> when it does not say).</summary>
    public int AttentionHeadCount { get; internal init; }

    /// <summary>Key/value heads per layer, read from the graph's cache inputs (fewer than <see cref="AttentionHeadCount"/> for grouped-query attention).</summary>
    public int KeyValueHeadCount { get; internal init; }

    /// <summary>Size of one attention head, read from the graph's cache inputs.</summary>
    public int HeadSize { get; internal init; }

    /// <summary>Number of logits the model produces per position.</summary>
    public int VocabularySize { get; internal init; }

    /// <summary>
    /// Ids the tokenizer knows (null when its kind does not say). When it is below
    /// <see cref="VocabularySize"/> (a vocabulary padded to a round size), generation never picks
    /// the ids beyond it.
    /// </summary>
    public int? TokenizerIdCount { get; internal init; }

    /// <summary>The context window: prompt plus generated tokens never exceed it.</summary>
    public int ContextLength { get; internal init; }

    /// <summary>End-of-sequence token ids from the configuration (possibly several, possibly none).</summary>
    public IReadOnlyList<int> EosTokenIds { get; internal init; } = [];

    /// <summary>Beginning-of-sequence token id, if the model has one.</summary>
    public int? BosTokenId { get; internal init; }

    /// <summary>
    /// Whether text prompts start with <see cref="BosTokenId"/>: the special tokens transformers adds
    /// for the folder hold it (the tokenizer.json post-processor, or tokenizer_config.json's
    /// <c>add_bos_token</c>; see docs/tokenization.md). Token-id prompts are used as given.
    /// </summary>
    public bool AddBosToken { get; internal set; }

    /// <summary>Padding token id used for left padding (the configuration's, else the first EOS id, else 0).</summary>
    public int PadTokenId { get; internal init; }

    /// <summary>Whether the graph takes a <c>position_ids</c> input.</summary>
    public bool HasPositionIds { get; internal init; }

    /// <summary>Element type of the key/value cache: <c>float32</c> or <c>float16</c>.</summary>
    public string CacheElementType { get; internal init; } = "float32";

    /// <summary>Where the tokenizer came from, e.g. <c>tokenizer.json (BPE)</c> or <c>encoding gpt2</c>.</summary>
    public string TokenizerSource { get; internal init; } = "";

    /// <summary>The execution provider the sessions run on: <c>CPU</c> or <c>CUDA:N</c>.</summary>
    public string ExecutionProvider { get; internal set; } = "CPU";

    /// <summary>Whether the folder has a chat template (see <see cref="GptModel.ChatTemplate"/>).</summary>
    public bool HasChatTemplate => ChatTemplateNames.Count > 0;

    /// <summary>
    /// The names of the folder's chat templates, in file order (<c>default</c> for a single one; named ones from a
    /// tokenizer_config.json list or additional_chat_templates/); empty when it has none.
    /// </summary>
    public IReadOnlyList<string> ChatTemplateNames { get; internal set; } = [];

    /// <summary>The chat template used when none is named (<c>default</c>, or the only one); null when there is none to choose.</summary>
    public string? ChatTemplateName { get; internal set; }

    /// <summary>
    /// Decoding defaults read from <c>generation_config.json</c> or <c>genai_config.json</c>: a copy on every read, so
    /// changing it changes nothing the model does (pass options to each call instead).
    /// </summary>
    public GenerationOptions Defaults => ModelDefaults.Clone();

    /// <summary>The model's decoding defaults, as generation reads them (never handed out).</summary>
    internal GenerationOptions ModelDefaults { get; init; } = new();

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Layout} {string.Join(" + ", ModelFiles)}: {LayerCount} layers, {AttentionHeadCount} heads ({KeyValueHeadCount} key/value), " +
        $"head size {HeadSize}, vocabulary {VocabularySize}, context {ContextLength}, cache {CacheElementType}, " +
        $"tokenizer {TokenizerSource}, {ExecutionProvider}";
}
