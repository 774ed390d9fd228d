using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Generation;

/// <summary>
/// The engine behind one opened model: its decoder backend, tokenizer and prompt preparation, the decode loops,
/// scoring and classification, and the lifetime of the native sessions. <see cref="GptModel"/> is its public face;
/// the ML.NET stages, the chat client and the command line reach it here (friend access), and nowhere else.
/// </summary>
/// <remarks>
/// Thread-safe. Every operation holds a use of the engine while it runs (<see cref="Use"/>): disposing the engine
/// refuses new operations and frees the sessions when the last running one ends.
/// </remarks>
internal sealed class GenerationEngine : IDisposable
{
    private int _users;
    private int _disposed;
    private int _released;

    public GenerationEngine(DecoderBackend backend, GptModelInfo info, Tokenizer tokenizer, Tokenization.SpecialTokenTemplate specialTokens, Action<string> log)
    {
        Backend = backend;
        Info = info;
        Tokenizer = tokenizer;
        Prompts = new PromptPreparer(tokenizer, info, specialTokens, log);
        _vocabulary = new Lazy<Models.VocabularyMap?>(() => info.ModelFiles.Count == 0 ? null : ReadVocabulary(Path.Combine(info.Folder, info.ModelFiles[0])));
    }

    private static Models.VocabularyMap? ReadVocabulary(string path)
    {
        try
        {
            return File.Exists(path) ? Models.VocabularyMap.Read(path) : null;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or Google.Protobuf.InvalidProtocolBufferException or GptModelException)
        {
            return null;   // a graph this reader cannot parse has no map it can use; classification still works, unwarned
        }
    }

    /// <summary>The decoder graph runner.</summary>
    public DecoderBackend Backend { get; }

    /// <summary>What was discovered about the model.</summary>
    public GptModelInfo Info { get; }

    /// <summary>The tokenizer in use.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>Turns text or ids into prompts the loop takes (BOS, chat rendering, overflow).</summary>
    public PromptPreparer Prompts { get; }

    /// <summary>Number of forward steps the last single-threaded generate call ran (for diagnostics and tests).</summary>
    public int LastStepCount { get; private set; }

    /// <summary>Heads the prefix cache computed and rows it served in the last single-threaded generate call (tests).</summary>
    public (int Heads, int Rows) LastPrefixUse { get; private set; }

    /// <summary>Resolves a call's options once: the caller's, then the model's defaults, then the library's.</summary>
    public DecodingSettings Resolve(GenerationOptions? options) => DecodingSettings.Resolve(options, Info);

    /// <summary>Runs prepared prompts to the end and returns their results in prompt order.</summary>
    public IReadOnlyList<GenerationResult> RunOrdered(IReadOnlyList<PreparedPrompt> prompts, DecodingSettings settings, int batchSize,
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
    /// A decode loop that the caller drives step by step (the ML.NET cursors do). It holds a use of the engine
    /// until it is disposed, so disposing the model meanwhile does not free the sessions under it.
    /// </summary>
    public DecodeLoop CreateLoop(DecodingSettings settings, int batchSize, bool continuous, Action<int, GenerationResult> onFinished,
        Action<int, string>? onText = null)
    {
        var use = Use();
        try
        {
            return new DecodeLoop(Backend, Tokenizer, Info, settings, batchSize, continuous, onFinished, onText) { Use = use };
        }
        catch
        {
            use.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Streams one prepared prompt's text pieces; <paramref name="onFinished"/> receives the whole result before the
    /// stream ends (the chat client reads its finish reason and token counts).
    /// </summary>
    public async IAsyncEnumerable<string> StreamAsync(PreparedPrompt prepared, DecodingSettings settings, Action<GenerationResult>? onFinished,
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

    /// <summary>The token ids of each classification label, checked.</summary>
    public int[][] LabelIds(IReadOnlyList<string> labels)
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

    /// <summary>
    /// What makes a label set meaningless to this model, in words: labels whose token ids are the same, or become the same
    /// once the graph maps them onto its inner vocabulary (the default model gives every id it never saw one shared
    /// <c>unk</c> row), and labels whose every token is unknown to it. Empty when every label is its own.
    /// </summary>
    public IReadOnlyList<string> LabelWarnings(IReadOnlyList<string> labels, int[][] labelIds)
    {
        var map = Vocabulary;
        var inner = labelIds.Select(ids => ids.Select(id => map?.InnerId(id) ?? id).ToArray()).ToArray();
        var warnings = new List<string>();
        var grouped = new HashSet<int>();
        for (int i = 0; i < labels.Count; i++)
        {
            if (grouped.Contains(i)) continue;
            var same = Enumerable.Range(i, labels.Count - i).Where(j => inner[j].SequenceEqual(inner[i])).ToArray();
            if (same.Length < 2) continue;
            grouped.UnionWith(same);
            bool sameIds = same.All(j => labelIds[j].SequenceEqual(labelIds[i]));
            warnings.Add($"the labels {string.Join(", ", same.Select(j => $"'{labels[j]}'"))} are the same to this model " +
                (sameIds ? "(they encode to the same token ids)" : "(the tokens that tell them apart are all unknown to its vocabulary and share one row)") +
                ", so they always get the same score");
        }
        if (map is not null)
            for (int i = 0; i < labels.Count; i++)
                if (!grouped.Contains(i) && labelIds[i].All(id => !map.IsKept(id)))
                    warnings.Add($"the label '{labels[i]}' is unknown to this model's vocabulary (every token of it shares the row of unknown tokens), " +
                        "so its score measures an unknown token, not the label");
        return warnings;
    }

    /// <summary>The graph's map onto a smaller inner vocabulary, when it has one (read once, on first use).</summary>
    internal Models.VocabularyMap? Vocabulary => _vocabulary.Value;

    private readonly Lazy<Models.VocabularyMap?> _vocabulary;

    /// <summary>Each label's log-likelihood as the continuation of each prompt, <paramref name="batchSize"/> prompts per pass.</summary>
    public IReadOnlyList<ClassificationResult> ClassifyIds(IReadOnlyList<int[]> prompts, IReadOnlyList<string> labels, int[][] labelIds,
        bool lengthNormalized, int batchSize, CancellationToken cancellationToken)
    {
        var labelWarnings = LabelWarnings(labels, labelIds);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be 1 or more.");
        using var use = Use();
        var scorer = new LabelScorer(Backend, Info);
        var results = new List<ClassificationResult>(prompts.Count);
        for (int start = 0; start < prompts.Count; start += batchSize)
        {
            var batch = prompts.Skip(start).Take(batchSize).ToList();
            foreach (var scores in scorer.Score(batch, labelIds, cancellationToken))
                results.Add(new ClassificationResult(labels, scores.Select(s => s.LogLikelihood).ToArray(), scores.Select(s => s.Tokens).ToArray(), lengthNormalized,
                    labelWarnings));
        }
        return results;
    }

    /// <summary>Scores many texts, <paramref name="batchSize"/> per forward pass.</summary>
    public IReadOnlyList<ScoreResult> Score(IEnumerable<(string Text, string? Prompt)> items, int batchSize, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be 1 or more.");
        using var use = Use();
        var scorer = new Scorer(Backend, Info);
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
    public ScoreResult[] ScoreRequests(IReadOnlyList<ScoreRequest> requests, CancellationToken cancellationToken)
    {
        using var use = Use();
        return new Scorer(Backend, Info).Score(requests, cancellationToken);
    }

    /// <summary>Marks one running operation; the sessions stay alive until every use is disposed.</summary>
    /// <exception cref="ObjectDisposedException">The engine was disposed.</exception>
    public IDisposable Use()
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
        if (Interlocked.Exchange(ref _released, 1) == 0) Backend.Dispose();
    }

    /// <summary>Refuses new operations; the sessions are freed once every running operation has returned.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (Interlocked.CompareExchange(ref _users, 0, 0) == 0) Release();
    }

    private sealed class UseToken(GenerationEngine owner) : IDisposable
    {
        private int _ended;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0) owner.EndUse();
        }
    }
}
