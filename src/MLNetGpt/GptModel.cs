using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Microsoft.ML.OnnxRuntime;
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
/// Thread-safe: any number of <c>Generate</c>/<c>Score</c> calls may run at once (each call has its
/// own cache; ONNX Runtime sessions allow concurrent runs). Dispose it when done: it holds native
/// sessions and, on CUDA, device memory.
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
    private int _disposed;

    private GptModel(DecoderBackend backend, GptModelInfo info, Tokenizer tokenizer, GptModelOptions options)
    {
        _backend = backend;
        Info = info;
        Tokenizer = tokenizer;
        _options = options;
    }

    /// <summary>What was discovered about the model: layout, shapes, special tokens, tokenizer and device.</summary>
    public GptModelInfo Info { get; }

    /// <summary>The tokenizer in use (from the folder, or the one given in <see cref="GptModelOptions"/>).</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>The decoder graph runner, for tests that drive single steps.</summary>
    internal DecoderBackend Backend => _backend;

    /// <summary>Number of forward steps the last single-threaded generate call ran (for diagnostics and tests).</summary>
    internal int LastStepCount { get; private set; }

    /// <summary>
    /// Opens a model folder: Optimum (<c>model.onnx</c>, <c>decoder_model_merged.onnx</c>, or
    /// <c>decoder_model.onnx</c> + <c>decoder_with_past_model.onnx</c>, with <c>config.json</c>) or
    /// ONNX Runtime GenAI (<c>genai_config.json</c>).
    /// </summary>
    /// <exception cref="GptModelException">A file is missing or unreadable, a needed configuration key is absent, the graph is unsupported, or CUDA was required and cannot start.</exception>
    public static GptModel Open(string folder, GptModelOptions? options = null)
    {
        options ??= new GptModelOptions();
        var description = ModelFolder.Open(folder);
        var (tokenizer, tokenizerSource) = TokenizerFactory.Create(description.Folder, options);

        InferenceSession? main = null, prefill = null;
        try
        {
            string mainFile = description.WithPastFile ?? description.MainFile;
            (main, string provider) = SessionFactory.Open(Path.Combine(description.Folder, mainFile), options, cudaAlreadyFailed: false);
            if (description.WithPastFile is not null)
            {
                (prefill, string prefillProvider) = SessionFactory.Open(Path.Combine(description.Folder, description.MainFile), options,
                    cudaAlreadyFailed: provider == "CPU");
                if (prefillProvider != provider)
                    throw new GptModelException($"{description.MainFile} runs on {prefillProvider} but {mainFile} on {provider}; both must share a device.");
            }
            var graph = DecoderGraph.Read(description, main, mainFile, prefill);
            int? bos = description.BosTokenId;
            var info = new GptModelInfo
            {
                Folder = description.Folder,
                Layout = description.Layout,
                ModelFiles = description.ModelFiles,
                LayerCount = graph.LayerCount,
                AttentionHeadCount = description.HeadCount ?? graph.KeyValueHeadCount,
                KeyValueHeadCount = graph.KeyValueHeadCount,
                HeadSize = graph.HeadSize,
                VocabularySize = graph.VocabularySize,
                ContextLength = description.ContextLength!.Value,
                EosTokenIds = description.EosTokenIds,
                BosTokenId = bos,
                AddBosToken = description.AddBosToken && bos is not null,
                PadTokenId = description.PadTokenId ?? (description.EosTokenIds.Length > 0 ? description.EosTokenIds[0] : 0),
                HasPositionIds = graph.PositionIds is not null,
                CacheElementType = graph.CacheType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16 ? "float16" : "float32",
                TokenizerSource = tokenizerSource,
                ExecutionProvider = provider,
                Defaults = description.Defaults,
            };
            DecoderBackend backend = provider.StartsWith("CUDA", StringComparison.Ordinal)
                ? new CudaDecoderBackend(main, prefill, graph, options.GpuDeviceId!.Value)
                : new HostDecoderBackend(main, prefill, graph);
            return new GptModel(backend, info, tokenizer, options);
        }
        catch
        {
            main?.Dispose();
            prefill?.Dispose();
            throw;
        }
    }

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
        var prepared = prompts.Select((text, i) => PreparePrompt(text, i, settings)).ToList();
        return RunOrdered(prepared, settings, batchSize, continuous: true, cancellationToken);
    }

    /// <summary>Like <see cref="Generate(IEnumerable{string}, GenerationOptions?, int, CancellationToken)"/>, from token ids.</summary>
    public IReadOnlyList<GenerationResult> GenerateTokens(IEnumerable<IReadOnlyList<int>> promptIds, GenerationOptions? options = null,
        int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        var settings = DecodingSettings.Resolve(options, Info);
        var prepared = promptIds.Select((ids, i) => PrepareIds(ids?.ToArray() ?? throw new ArgumentNullException(nameof(promptIds), $"Prompt {i} is null."), i, settings)).ToList();
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
        var prepared = PreparePrompt(prompt, 0, settings);
        var channel = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        // The producer stops when the caller cancels or stops reading early.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var producer = Task.Run(() =>
        {
            try
            {
                using var loop = new DecodeLoop(_backend, Tokenizer, Info, settings, 1, continuous: false,
                    (_, _) => { }, (_, piece) => channel.Writer.TryWrite(piece));
                loop.Run(new[] { prepared }.AsEnumerable().GetEnumerator(), stop.Token);
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
        var scorer = new Scorer(_backend, Info);
        var results = new List<ScoreResult>();
        var batch = new List<ScoreRequest>(batchSize);
        int index = 0;
        foreach (var (text, prompt) in items)
        {
            batch.Add(PrepareScore(text, prompt, index++));
            if (batch.Count == batchSize)
            {
                results.AddRange(scorer.Score(batch, cancellationToken));
                batch.Clear();
            }
        }
        if (batch.Count > 0) results.AddRange(scorer.Score(batch, cancellationToken));
        return results;
    }

    internal IReadOnlyList<GenerationResult> RunOrdered(IReadOnlyList<PreparedPrompt> prompts, DecodingSettings settings, int batchSize,
        bool continuous, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be 1 or more.");
        var results = new GenerationResult[prompts.Count];
        using var loop = CreateLoop(settings, batchSize, continuous, (i, r) => results[i] = r);
        loop.Run(prompts.GetEnumerator(), cancellationToken);
        LastStepCount = loop.Steps;
        return results;
    }

    /// <summary>A decode loop that the caller drives step by step (the ML.NET cursors do).</summary>
    internal DecodeLoop CreateLoop(DecodingSettings settings, int batchSize, bool continuous, Action<int, GenerationResult> onFinished)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return new DecodeLoop(_backend, Tokenizer, Info, settings, batchSize, continuous, onFinished);
    }

    internal DecodingSettings Resolve(GenerationOptions? options) => DecodingSettings.Resolve(options, Info);

    internal PreparedPrompt PreparePrompt(string text, int index, DecodingSettings settings)
    {
        if (text is null) throw new ArgumentNullException(nameof(text), $"Prompt {index} is null.");
        EnsureValidUnicode(text, $"Prompt {index}");
        return PrepareIds(WithBos(Tokenizer.EncodeToIds(text)), index, settings);
    }

    internal PreparedPrompt PrepareIds(int[] ids, int index, DecodingSettings settings)
    {
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)Info.VocabularySize)
                throw new ArgumentOutOfRangeException(nameof(ids), ids[i], $"Prompt {index}: token id {ids[i]} at position {i} is outside the vocabulary (0..{Info.VocabularySize - 1}).");
        if (ids.Length == 0)
        {
            ids = Info.BosTokenId is int bos ? [bos]
                : throw new ArgumentException($"Prompt {index} is empty and the model defines no bos_token_id to start from.", nameof(ids));
        }
        bool truncated = false;
        if (ids.Length >= Info.ContextLength)
        {
            if (settings.PromptOverflow == PromptOverflow.Error)
                throw new ArgumentException($"Prompt {index} has {ids.Length} tokens; the context window holds {Info.ContextLength} " +
                    "(prompt plus generated tokens). Shorten it or use PromptOverflow.TruncateLeft.", nameof(ids));
            int keep = Info.ContextLength - Math.Min(settings.MaxNewTokens, Info.ContextLength / 2);
            _options.Write($"Prompt {index} has {ids.Length} tokens, more than the context window of {Info.ContextLength}; keeping its last {keep} tokens.");
            ids = ids[^keep..];
            truncated = true;
        }
        return new PreparedPrompt(index, ids, truncated);
    }

    internal ScoreRequest PrepareScore(string text, string? prompt, int index)
    {
        if (text is null) throw new ArgumentNullException(nameof(text), $"Text {index} is null.");
        EnsureValidUnicode(text, $"Text {index}");
        if (prompt is not null) EnsureValidUnicode(prompt, $"Prompt {index}");
        var head = new List<int>();
        if (prompt is not null) head.AddRange(WithBos(Tokenizer.EncodeToIds(prompt)));
        else if (Info.BosTokenId is int bos) head.Add(bos);
        var body = Tokenizer.EncodeToIds(text);
        var ids = head.Concat(body).ToArray();
        int first = head.Count;
        bool truncated = false;
        if (ids.Length > Info.ContextLength)
        {
            int cut = ids.Length - Info.ContextLength;
            ids = ids[cut..];
            first = Math.Max(0, first - cut);
            truncated = true;
            _options.Write($"Text {index}: prompt + text have {ids.Length + cut} tokens, more than the context window of {Info.ContextLength}; scoring the last {Info.ContextLength}.");
        }
        return new ScoreRequest(ids, first, truncated);
    }

    /// <summary>Text ids with the BOS token in front when the model's tokenizer asks for it.</summary>
    internal int[] WithBos(IReadOnlyList<int> ids)
    {
        if (!Info.AddBosToken || Info.BosTokenId is not int bos || (ids.Count > 0 && ids[0] == bos)) return ids.ToArray();
        var result = new int[ids.Count + 1];
        result[0] = bos;
        for (int i = 0; i < ids.Count; i++) result[i + 1] = ids[i];
        return result;
    }

    internal static void EnsureValidUnicode(string text, string what)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }
            if (char.IsSurrogate(c))
                throw new ArgumentException($"{what} is not valid Unicode: a lone surrogate (U+{(int)c:X4}) at index {i} cannot be encoded as UTF-8.");
        }
    }

    /// <summary>Releases the ONNX Runtime sessions.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _backend.Dispose();
    }
}
