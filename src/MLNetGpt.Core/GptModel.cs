using System.Runtime.CompilerServices;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Generation;
using MLNetGpt.Models;
using MLNetGpt.Tokenization;

namespace MLNetGpt;

/// <summary>
/// An opened GPT model folder: ONNX Runtime session(s) on the chosen device, the tokenizer, and the
/// batched key/value-cache decode loop. Start here for generation and scoring without ML.NET.
/// </summary>
/// <remarks>
/// Thread-safe: any number of calls may run at once on one instance. Every <c>Generate</c>,
/// <c>GenerateTokens</c> and <c>GenerateStreamingAsync</c> call (and every <see cref="GptChatClient"/> request) is a
/// request to one shared generation loop that batches them (continuous batching; bounds in
/// <see cref="GptModelOptions"/>, details in docs/serving.md): a seeded or greedy request gives the same tokens alone
/// or beside others. <c>Score</c> and <c>Classify</c> run their own batches. <see cref="Dispose"/> may be called while
/// calls are still running: new calls then throw <see cref="ObjectDisposedException"/>, every request already
/// submitted runs to its end (cancel them with their tokens), and the native sessions are released when the last one
/// returns. Dispose it when done: it holds native sessions and, on CUDA, device memory.
/// </remarks>
/// <example>
/// <code>
/// using var model = GptModel.Open("models/mlnetgpt-kjv");
/// var result = model.Generate("And God said,", new GenerationOptions { MaxNewTokens = 24 });
/// Console.WriteLine(result.Text);
/// </code>
/// </example>
public sealed class GptModel : IDisposable
{
    private GptModel(GenerationEngine engine, Chat.ChatTemplateFiles? chatTemplates, Chat.TemplateLimits templateLimits)
    {
        Engine = engine;
        ChatTemplates = chatTemplates;
        TemplateLimits = templateLimits;
        ChatTemplate = chatTemplates?.Default is { } entry ? new ChatTemplate(entry, chatTemplates, TemplateLimits) : null;
    }

    /// <summary>What was discovered about the model: layout, shapes, special tokens, tokenizer and device.</summary>
    public GptModelInfo Info => Engine.Info;

    /// <summary>The tokenizer in use (from the folder, or the one given in <see cref="GptModelOptions"/>).</summary>
    public Tokenizer Tokenizer => Engine.Tokenizer;

    /// <summary>The engine behind this model: the one door the ML.NET stages, the chat client and the tool use.</summary>
    internal GenerationEngine Engine { get; }

    /// <summary>
    /// The folder's chat template (<c>default</c>, or its only one), or null when it has none or has several
    /// without a default (then ask for one with <see cref="GetChatTemplate"/>).
    /// </summary>
    public ChatTemplate? ChatTemplate { get; }

    /// <summary>The folder's chat template named <paramref name="name"/> (see <see cref="GptModelInfo.ChatTemplateNames"/>).</summary>
    /// <exception cref="ArgumentException">The folder has no template of that name; the message lists the names it has.</exception>
    public ChatTemplate GetChatTemplate(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var files = ChatTemplates ?? throw new ArgumentException($"The model folder '{Info.Folder}' has no chat template.", nameof(name));
        return new ChatTemplate(files.Choose(name, withTools: false), files, TemplateLimits);
    }

    /// <summary>Every chat template of the folder and its special tokens (null when it has none).</summary>
    internal Chat.ChatTemplateFiles? ChatTemplates { get; }

    /// <summary>The render budget of the model's chat templates (from <see cref="GptModelOptions.ChatTemplateLimits"/> when it opened).</summary>
    internal Chat.TemplateLimits TemplateLimits { get; }

    /// <summary>
    /// Opens a model folder: Optimum (<c>model.onnx</c>, <c>decoder_model_merged.onnx</c>, or
    /// <c>decoder_model.onnx</c> + <c>decoder_with_past_model.onnx</c>, with <c>config.json</c>) or
    /// ONNX Runtime GenAI (<c>genai_config.json</c>).
    /// </summary>
    /// <exception cref="GptModelException">A file is missing or unreadable, a needed configuration key is absent, the graph is unsupported, or CUDA was required and cannot start.</exception>
    public static GptModel Open(string folder, GptModelOptions? options = null)
    {
        options ??= new GptModelOptions();
        var description = ModelFolder.Open(folder, options.Variant, onCuda: options.GpuDeviceId is not null);
        var (tokenizer, tokenizerSource) = options.Tokenizer is null && options.TokenizerEncoding is null && MissingTokenizer.IsMissing(description.Folder)
            ? (new MissingTokenizer(description.Folder), MissingTokenizer.Source)
            : TokenizerFactory.Create(description.Folder, options);
        var sessions = DecoderSessions.Open(description, options);
        DraftModel? draft = null;
        try
        {
            int? idCount = sessions.CheckTokenizer(TokenizerVocabulary.IdCount(tokenizer), tokenizerSource, description, options.Write);
            var info = sessions.Describe(description, tokenizerSource, idCount, options.Write);
            var specialTokens = SpecialTokenRule.For(description.Folder, tokenizer, description.BosTokenId, description.EosTokenIds.Length > 0 ? description.EosTokenIds[0] : null);
            info.AddBosToken = info.BosTokenId is int bos && specialTokens.Prefix.Contains(bos);
            info.ChatTemplateNames = description.ChatTemplates?.Names ?? [];
            info.ChatTemplateName = description.ChatTemplates?.Default?.Name;
            DecoderBackend backend = sessions.OnCuda
                ? new CudaDecoderBackend(sessions.Main, sessions.Prefill, sessions.Graph, options.GpuDeviceId!.Value)
                : new HostDecoderBackend(sessions.Main, sessions.Prefill, sessions.Graph);
            draft = OpenDraft(options, backend, info, tokenizer);
            return new GptModel(new GenerationEngine(backend, info, tokenizer, specialTokens, options.Write, SchedulerLimits.From(options), options.MaxTokensPerRequest, draft),
                description.ChatTemplates, options.ChatTemplateLimits.ToTemplateLimits());
        }
        catch
        {
            draft?.Dispose();
            sessions.Dispose();
            throw;
        }
    }

    private static DraftModel? OpenDraft(GptModelOptions options, DecoderBackend backend, GptModelInfo info, Tokenizer tokenizer)
    {
        if (options.DraftModelFolder is not { } folder) return null;
        if (!Speculator.Supports(backend))
        {
            options.Write($"The draft model '{folder}' is not used: speculative decoding runs on the CPU with key/value caches only, " +
                $"and '{info.Folder}' runs {(backend.CanEditRows ? "with recurrent states" : "on CUDA")}.");
            return null;
        }
        return DraftModel.Open(folder, options, info, tokenizer);
    }

    /// <summary>
    /// The folder of the default model, mlnetgpt-kjv (a small GPT trained on the King James Bible), for
    /// every API that takes a model folder. The package MLNetGpt.Models.Kjv, which MLNetGpt depends on,
    /// carries its files inside its assembly; the first use in a process extracts them, once per model
    /// version, to <c>MLNetGpt/models/mlnetgpt-kjv-HASH</c> under the local application data folder
    /// (<c>~/.local/share</c> on Linux, <c>%LOCALAPPDATA%</c> on Windows) or under the folder that the
    /// <c>MLNETGPT_CACHE</c> environment variable names (made private to the user, mode 0700 on Unix). Later uses,
    /// and other processes, reuse that copy once it matches the package's content hash; a copy changed on disk is
    /// written again (docs/security.md).
    /// </summary>
    /// <exception cref="GptModelException">The package is missing from the app, or the cache folder cannot be written.</exception>
    public static string DefaultModelFolder => DefaultModel.Folder;

    /// <summary>Opens the default model (see <see cref="DefaultModelFolder"/>): <c>Open(DefaultModelFolder, options)</c>.</summary>
    /// <exception cref="GptModelException">As for <see cref="DefaultModelFolder"/> and <see cref="Open"/>.</exception>
    public static GptModel OpenDefault(GptModelOptions? options = null) => Open(DefaultModelFolder, options);

    /// <summary>Generates a continuation of one prompt, in the model's shared batch beside any other running calls.</summary>
    /// <exception cref="ArgumentException">The prompt is empty and the model has no BOS token, is not valid Unicode, or does not fit the context window under <see cref="PromptOverflow.Error"/>.</exception>
    /// <exception cref="GptModelException">The model's queue of waiting requests is full (<see cref="GptModelOptions.MaxQueuedRequests"/>).</exception>
    public GenerationResult Generate(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var settings = Engine.Resolve(options);
        return Engine.Generate(Engine.Prompts.FromText(prompt, 0, settings), settings, cancellationToken);
    }

    /// <summary>
    /// Generates continuations of many prompts and returns them in prompt order. At most
    /// <paramref name="batchSize"/> of them are in the model's shared batch at once (which
    /// <see cref="GptModelOptions.MaxBatchSize"/> bounds), beside other calls' rows; a finished prompt's slot goes to
    /// the next waiting prompt at once (continuous batching) where the device allows it.
    /// </summary>
    public IReadOnlyList<GenerationResult> Generate(IEnumerable<string> prompts, GenerationOptions? options = null, int batchSize = 8,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var settings = Engine.Resolve(options);
        var prepared = prompts.Select((text, i) => Engine.Prompts.FromText(text, i, settings)).ToList();
        return Engine.GenerateMany(prepared, settings, batchSize, cancellationToken);
    }

    /// <summary>
    /// Like <see cref="Generate(IEnumerable{string}, GenerationOptions?, int, CancellationToken)"/>, with an
    /// output constraint per prompt (a null one takes <see cref="GenerationOptions.Constraint"/>): rows
    /// with different constraints share batches.
    /// </summary>
    public IReadOnlyList<GenerationResult> Generate(IEnumerable<(string Prompt, OutputConstraint? Constraint)> prompts, GenerationOptions? options = null,
        int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var settings = Engine.Resolve(options);
        var prepared = prompts.Select((p, i) => Engine.Prompts.FromText(p.Prompt, i, settings) with { Constraint = p.Constraint }).ToList();
        return Engine.GenerateMany(prepared, settings, batchSize, cancellationToken);
    }

    /// <summary>Like <see cref="Generate(IEnumerable{string}, GenerationOptions?, int, CancellationToken)"/>, from token ids.</summary>
    public IReadOnlyList<GenerationResult> GenerateTokens(IEnumerable<IReadOnlyList<int>> promptIds, GenerationOptions? options = null,
        int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        var settings = Engine.Resolve(options);
        var prepared = promptIds.Select((ids, i) => Engine.Prompts.FromIds(ids?.ToArray() ?? throw new ArgumentNullException(nameof(promptIds), $"Prompt {i} is null."), i, settings)).ToList();
        return Engine.GenerateMany(prepared, settings, batchSize, cancellationToken);
    }

    /// <summary>
    /// Streams the continuation of one prompt as text pieces, each as soon as the step of the model's shared batch
    /// that produced it ends. A piece never ends inside a multi-byte character, and text that might be the start of a
    /// stop string is held back until it is known not to be. Stopping early or cancelling takes the row out of the
    /// batch before the next step.
    /// </summary>
    public async IAsyncEnumerable<string> GenerateStreamingAsync(string prompt, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var settings = Engine.Resolve(options);
        await foreach (var piece in Engine.StreamAsync(Engine.Prompts.FromText(prompt, 0, settings), settings, onFinished: null, cancellationToken).ConfigureAwait(false))
            yield return piece;
    }

    /// <summary>
    /// Zero-shot classification: for each prompt, the log-likelihood of every label as its
    /// continuation (the label's own tokens after the prompt's), computed with the prompt prefilled
    /// once and shared by its labels. Labels usually start with a space (" positive") so they read
    /// as the next word.
    /// </summary>
    /// <param name="prompts">The prompts (text; the BOS token is added where the model asks for it).</param>
    /// <param name="labels">The label set (at least two, distinct, each non-empty).</param>
    /// <param name="lengthNormalized">Rank labels by their mean log-likelihood per token instead of the sum (longer labels are not penalised).</param>
    /// <param name="batchSize">Prompts prefilled together.</param>
    /// <param name="cancellationToken">Stops between and inside forward passes.</param>
    public IReadOnlyList<ClassificationResult> Classify(IEnumerable<string> prompts, IReadOnlyList<string> labels, bool lengthNormalized = false,
        int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var labelIds = Engine.LabelIds(labels);
        var settings = Engine.Resolve(new GenerationOptions { PromptOverflow = PromptOverflow.TruncateLeft, MaxNewTokens = labelIds.Max(l => l.Length) });
        var prepared = prompts.Select((p, i) => Engine.Prompts.FromText(p, i, settings).Ids).ToList();
        return Engine.ClassifyIds(prepared, labels, labelIds, lengthNormalized, batchSize, cancellationToken);
    }

    /// <summary>Log-likelihood and perplexity of <paramref name="text"/>, optionally conditioned on <paramref name="prompt"/>.</summary>
    public ScoreResult Score(string text, string? prompt = null, CancellationToken cancellationToken = default) =>
        Score([(text, prompt)], batchSize: 1, cancellationToken)[0];

    /// <summary>
    /// Scores many texts, <paramref name="batchSize"/> per forward pass. Without a prompt the text
    /// is scored after the BOS token when the model has one (so its first token counts too);
    /// otherwise from its second token. With a prompt, only the text's tokens are scored.
    /// </summary>
    public IReadOnlyList<ScoreResult> Score(IEnumerable<(string Text, string? Prompt)> items, int batchSize = 8, CancellationToken cancellationToken = default) =>
        Engine.Score(items, batchSize, cancellationToken);

    /// <summary>Refuses new calls; requests already submitted run to their end, then the ONNX Runtime sessions are released.</summary>
    public void Dispose() => Engine.Dispose();
}
