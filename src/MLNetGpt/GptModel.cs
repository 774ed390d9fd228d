using System.Runtime.CompilerServices;
using System.Threading.Channels;
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
/// Thread-safe: any number of <c>Generate</c>/<c>Score</c> calls may run at once on one instance
/// (each call has its own cache; ONNX Runtime sessions allow concurrent runs). <see cref="Dispose"/>
/// may be called while calls are still running: new calls then throw
/// <see cref="ObjectDisposedException"/>, and the native sessions are released when the last
/// running call returns. Dispose it when done: it holds native sessions and, on CUDA, device memory.
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
    private readonly DecoderBackend _backend;
    private readonly GptModelOptions _options;
    private int _users;
    private int _disposed;
    private int _released;

    private GptModel(DecoderBackend backend, GptModelInfo info, Tokenizer tokenizer, GptModelOptions options, Chat.ChatTemplateFiles? chatTemplates)
    {
        _backend = backend;
        Info = info;
        Tokenizer = tokenizer;
        _options = options;
        Prompts = new PromptPreparer(tokenizer, info, options.Write);
        ChatTemplates = chatTemplates;
        TemplateLimits = options.ChatTemplateLimits.ToTemplateLimits();
        ChatTemplate = chatTemplates?.Default is { } entry ? new ChatTemplate(entry, chatTemplates, TemplateLimits) : null;
    }

    /// <summary>What was discovered about the model: layout, shapes, special tokens, tokenizer and device.</summary>
    public GptModelInfo Info { get; }

    /// <summary>The tokenizer in use (from the folder, or the one given in <see cref="GptModelOptions"/>).</summary>
    public Tokenizer Tokenizer { get; }

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

    /// <summary>The decoder graph runner, for tests that drive single steps.</summary>
    internal DecoderBackend Backend => _backend;

    internal PromptPreparer Prompts { get; }

    /// <summary>Number of forward steps the last single-threaded generate call ran (for diagnostics and tests).</summary>
    internal int LastStepCount { get; private set; }

    /// <summary>Heads the prefix cache computed and rows it served in the last single-threaded generate call (tests).</summary>
    internal (int Heads, int Rows) LastPrefixUse { get; private set; }

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
        try
        {
            int? idCount = sessions.CheckTokenizer(TokenizerVocabulary.IdCount(tokenizer), tokenizerSource, description, options.Write);
            var info = sessions.Describe(description, tokenizerSource, idCount, options.Write);
            info.ChatTemplateNames = description.ChatTemplates?.Names ?? [];
            info.ChatTemplateName = description.ChatTemplates?.Default?.Name;
            DecoderBackend backend = sessions.OnCuda
                ? new CudaDecoderBackend(sessions.Main, sessions.Prefill, sessions.Graph, options.GpuDeviceId!.Value)
                : new HostDecoderBackend(sessions.Main, sessions.Prefill, sessions.Graph);
            return new GptModel(backend, info, tokenizer, options, description.ChatTemplates);
        }
        catch
        {
            sessions.Dispose();
            throw;
        }
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

    /// <summary>Generates a continuation of one prompt.</summary>
    /// <exception cref="ArgumentException">The prompt is empty and the model has no BOS token, is not valid Unicode, or does not fit the context window under <see cref="PromptOverflow.Error"/>.</exception>
    public GenerationResult Generate(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return Generate([prompt], options, batchSize: 1, cancellationToken)[0];
    }

    /// <summary>
    /// Generates continuations of many prompts, <paramref name="batchSize"/> at a time, and returns
    /// them in prompt order. A finished prompt's batch slot is given to the next waiting prompt at
    /// once (continuous batching) where the device allows it.
    /// </summary>
    public IReadOnlyList<GenerationResult> Generate(IEnumerable<string> prompts, GenerationOptions? options = null, int batchSize = 8,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var settings = DecodingSettings.Resolve(options, Info);
        var prepared = prompts.Select((text, i) => Prompts.FromText(text, i, settings)).ToList();
        return RunOrdered(prepared, settings, batchSize, continuous: true, cancellationToken);
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
        var settings = DecodingSettings.Resolve(options, Info);
        var prepared = prompts.Select((p, i) => Prompts.FromText(p.Prompt, i, settings) with { Constraint = p.Constraint }).ToList();
        return RunOrdered(prepared, settings, batchSize, continuous: true, cancellationToken);
    }

    /// <summary>Like <see cref="Generate(IEnumerable{string}, GenerationOptions?, int, CancellationToken)"/>, from token ids.</summary>
    public IReadOnlyList<GenerationResult> GenerateTokens(IEnumerable<IReadOnlyList<int>> promptIds, GenerationOptions? options = null,
        int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        var settings = DecodingSettings.Resolve(options, Info);
        var prepared = promptIds.Select((ids, i) => Prompts.FromIds(ids?.ToArray() ?? throw new ArgumentNullException(nameof(promptIds), $"Prompt {i} is null."), i, settings)).ToList();
        return RunOrdered(prepared, settings, batchSize, continuous: true, cancellationToken);
    }

    /// <summary>
    /// Streams the continuation of one prompt as text pieces, as they are generated. A piece never
    /// ends inside a multi-byte character, and text that might be the start of a stop string is held
    /// back until it is known not to be.
    /// </summary>
    public async IAsyncEnumerable<string> GenerateStreamingAsync(string prompt, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var settings = DecodingSettings.Resolve(options, Info);
        await foreach (var piece in StreamAsync(Prompts.FromText(prompt, 0, settings), settings, onFinished: null, cancellationToken).ConfigureAwait(false))
            yield return piece;
    }

    /// <summary>
    /// Streams one prepared prompt's text pieces; <paramref name="onFinished"/> receives the whole result before
    /// the stream ends (the chat client reads its finish reason and token counts).
    /// </summary>
    internal async IAsyncEnumerable<string> StreamAsync(PreparedPrompt prepared, DecodingSettings settings, Action<GenerationResult>? onFinished,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var channel = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        // The producer stops when the caller cancels or stops reading early.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var loop = CreateLoop(settings, 1, continuous: false, (_, result) => onFinished?.Invoke(result), (_, piece) => channel.Writer.TryWrite(piece));
        var producer = Task.Run(() =>
        {
            try
            {
                using (loop) loop.Run(new[] { prepared }.AsEnumerable().GetEnumerator(), stop.Token);
                channel.Writer.TryComplete();
            }
            catch (Exception e)
            {
                channel.Writer.TryComplete(e);
            }
        }, CancellationToken.None);
        try
        {
            // Reading observes the caller's token, so a cancellation is reported even when every piece was already produced.
            await foreach (var piece in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return piece;
                cancellationToken.ThrowIfCancellationRequested();
            }
            await producer.ConfigureAwait(false);
        }
        finally
        {
            stop.Cancel();
            try
            {
                await producer.ConfigureAwait(false);   // never leave the loop running on the model after returning
            }
            catch (Exception)
            {
                // Already reported through the channel, or a consequence of stopping early.
            }
        }
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
        var labelIds = LabelIds(labels);
        var settings = DecodingSettings.Resolve(new GenerationOptions { PromptOverflow = PromptOverflow.TruncateLeft, MaxNewTokens = labelIds.Max(l => l.Length) }, Info);
        var prepared = prompts.Select((p, i) => Prompts.FromText(p, i, settings).Ids).ToList();
        return ClassifyIds(prepared, labels, labelIds, lengthNormalized, batchSize, cancellationToken);
    }

    /// <summary>The token ids of each label, checked.</summary>
    internal int[][] LabelIds(IReadOnlyList<string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.Count < 2) throw new ArgumentException($"Classification needs at least two labels; {labels.Count} given.", nameof(labels));
        var duplicate = labels.GroupBy(l => l).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"The label '{duplicate.Key}' is given twice.", nameof(labels));
        return labels.Select(l =>
        {
            if (string.IsNullOrEmpty(l)) throw new ArgumentException("A label is empty.", nameof(labels));
            var ids = Tokenizer.EncodeToIds(l).ToArray();
            if (ids.Length == 0) throw new ArgumentException($"The label '{l}' encodes to no token.", nameof(labels));
            return ids;
        }).ToArray();
    }

    internal IReadOnlyList<ClassificationResult> ClassifyIds(IReadOnlyList<int[]> prompts, IReadOnlyList<string> labels, int[][] labelIds, bool lengthNormalized,
        int batchSize, CancellationToken cancellationToken)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be 1 or more.");
        using var use = Use();
        var scorer = new LabelScorer(_backend, Info);
        var results = new List<ClassificationResult>(prompts.Count);
        for (int start = 0; start < prompts.Count; start += batchSize)
        {
            var batch = prompts.Skip(start).Take(batchSize).ToList();
            foreach (var scores in scorer.Score(batch, labelIds, cancellationToken))
                results.Add(new ClassificationResult(labels, scores.Select(s => s.LogLikelihood).ToArray(), scores.Select(s => s.Tokens).ToArray(), lengthNormalized));
        }
        return results;
    }

    /// <summary>Log-likelihood and perplexity of <paramref name="text"/>, optionally conditioned on <paramref name="prompt"/>.</summary>
    public ScoreResult Score(string text, string? prompt = null, CancellationToken cancellationToken = default) =>
        Score([(text, prompt)], batchSize: 1, cancellationToken)[0];

    /// <summary>
    /// Scores many texts, <paramref name="batchSize"/> per forward pass. Without a prompt the text
    /// is scored after the BOS token when the model has one (so its first token counts too);
    /// otherwise from its second token. With a prompt, only the text's tokens are scored.
    /// </summary>
    public IReadOnlyList<ScoreResult> Score(IEnumerable<(string Text, string? Prompt)> items, int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be 1 or more.");
        using var use = Use();
        var scorer = new Scorer(_backend, Info);
        var results = new List<ScoreResult>();
        var batch = new List<ScoreRequest>(batchSize);
        int index = 0;
        foreach (var (text, prompt) in items)
        {
            batch.Add(Prompts.ForScore(text, prompt, index++));
            if (batch.Count == batchSize)
            {
                results.AddRange(scorer.Score(batch, cancellationToken));
                batch.Clear();
            }
        }
        if (batch.Count > 0) results.AddRange(scorer.Score(batch, cancellationToken));
        return results;
    }

    /// <summary>Scores prepared requests in one batch.</summary>
    internal ScoreResult[] ScoreRequests(IReadOnlyList<ScoreRequest> requests, CancellationToken cancellationToken)
    {
        using var use = Use();
        return new Scorer(_backend, Info).Score(requests, cancellationToken);
    }

    internal IReadOnlyList<GenerationResult> RunOrdered(IReadOnlyList<PreparedPrompt> prompts, DecodingSettings settings, int batchSize,
        bool continuous, CancellationToken cancellationToken)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be 1 or more.");
        var results = new GenerationResult[prompts.Count];
        using var loop = CreateLoop(settings, batchSize, continuous, (i, r) => results[i] = r);
        loop.Run(prompts.GetEnumerator(), cancellationToken);
        LastStepCount = loop.Steps;
        LastPrefixUse = loop.Prefixes is { } prefixes ? (prefixes.HeadsComputed, prefixes.RowsServed) : (0, 0);
        return results;
    }

    /// <summary>
    /// A decode loop that the caller drives step by step (the ML.NET cursors do). It holds a use of
    /// the model until it is disposed, so disposing the model meanwhile does not free the sessions
    /// under it.
    /// </summary>
    internal DecodeLoop CreateLoop(DecodingSettings settings, int batchSize, bool continuous, Action<int, GenerationResult> onFinished,
        Action<int, string>? onText = null)
    {
        var use = Use();
        try
        {
            return new DecodeLoop(_backend, Tokenizer, Info, settings, batchSize, continuous, onFinished, onText) { Use = use };
        }
        catch
        {
            use.Dispose();
            throw;
        }
    }

    internal DecodingSettings Resolve(GenerationOptions? options) => DecodingSettings.Resolve(options, Info);

    /// <summary>Marks one running operation; the sessions stay alive until every use is disposed.</summary>
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    internal IDisposable Use()
    {
        Interlocked.Increment(ref _users);
        if (Volatile.Read(ref _disposed) != 0)
        {
            EndUse();
            throw new ObjectDisposedException(nameof(GptModel), $"The model '{Info.Folder}' was disposed.");
        }
        return new UseToken(this);
    }

    private void EndUse()
    {
        if (Interlocked.Decrement(ref _users) == 0 && Volatile.Read(ref _disposed) != 0) Release();
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) _backend.Dispose();
    }

    /// <summary>Releases the ONNX Runtime sessions (once every running call has returned).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (Interlocked.CompareExchange(ref _users, 0, 0) == 0) Release();
    }

    private sealed class UseToken(GptModel owner) : IDisposable
    {
        private int _ended;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0) owner.EndUse();
        }
    }
}
