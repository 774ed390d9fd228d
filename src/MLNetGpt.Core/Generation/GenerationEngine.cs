using System.Runtime.CompilerServices;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Generation;

/// <summary>
/// The engine behind one opened model: its decoder backend, tokenizer and prompt preparation, the decode loops,
/// scoring and classification, and the lifetime of the native sessions. <see cref="GptModel"/> is its public face;
/// the ML.NET stages, the chat client and the command line reach it here (friend access), and nowhere else.
/// </summary>
/// <remarks>
/// Thread-safe. Every operation holds a use of the engine while it runs (<see cref="Use"/>): disposing the engine
/// refuses new operations and frees the sessions when the last running one ends. Single prompts, streams and the
/// batch calls of <see cref="GptModel"/> (and the chat client, and the ML.NET stages' cursors) share one
/// <see cref="GenerationScheduler"/>: one batched loop for every caller.
/// </remarks>
internal sealed class GenerationEngine : IDisposable
{
    private readonly SchedulerLimits _limits;
    private readonly Lazy<GenerationScheduler> _scheduler;
    private int _users;
    private int _disposed;
    private int _released;

    public GenerationEngine(DecoderBackend backend, GptModelInfo info, Tokenizer tokenizer, Tokenization.SpecialTokenTemplate specialTokens, Action<string> log,
        SchedulerLimits? limits = null, int? maxTokensPerRequest = null, DraftModel? draft = null)
    {
        Backend = backend;
        Info = info;
        Tokenizer = tokenizer;
        ContextLimit = Math.Min(info.ContextLength, maxTokensPerRequest ?? int.MaxValue);
        Prompts = new PromptPreparer(tokenizer, info, specialTokens, log, ContextLimit);
        _limits = limits ?? SchedulerLimits.From(new GptModelOptions());
        Draft = draft;
        _scheduler = new Lazy<GenerationScheduler>(() => new GenerationScheduler(this, _limits), LazyThreadSafetyMode.ExecutionAndPublication);
        _speculationExact = new Lazy<bool>(() =>
        {
            bool exact = (ProbeDifferenceOverride ?? SpeculationProbe.Difference(Backend, Info)) <= SpeculationProbe.Tolerance;
            if (!exact)
                log($"Speculative decoding is off for '{Info.Folder}': a verification pass computes positions with other rounding than one-token steps " +
                    "on this model (as quantized MatMulNBits kernels with int8 dot products do), so it could change a sampled token.");
            return exact;
        }, LazyThreadSafetyMode.ExecutionAndPublication);
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

    /// <summary>The most tokens (prompt and output) one request may hold: the context window, or less where the options limit requests.</summary>
    public int ContextLimit { get; }

    /// <summary>The model that proposes tokens for speculative decoding, when the options name one.</summary>
    public DraftModel? Draft { get; }

    /// <summary>What forward steps of different sizes cost on this model (speculation's decisions; shared by every loop).</summary>
    public StepCostModel StepCosts { get; } = new();

    /// <summary>The one loop every caller of the engine shares.</summary>
    public GenerationScheduler Scheduler => _scheduler.Value;

    /// <summary>What speculation did in the engine's loops (tests and benchmarks).</summary>
    public SpeculationCounters SpeculationCounters { get; } = new();

    /// <summary>
    /// Tests only: every speculative step proposes this many tokens where it can, whatever the cost model says (so a
    /// test exercises verification and rollback on any model). Null: the measured decision.
    /// </summary>
    public int? ForcedProposals { get; set; }

    /// <summary>Speculative decoding for a new loop, where the backend can roll its cache back.</summary>
    public Speculator? CreateSpeculator() =>
        Speculator.Supports(Backend) ? new Speculator(Backend, StepCosts, Draft, SpeculationCounters, () => _speculationExact.Value, ForcedProposals) : null;

    /// <summary>
    /// Tests only: the difference the speculation probe reports, in place of measuring it (set before the first
    /// generation). Which models round differently depends on the CPU's kernels; this lets a test take either path.
    /// </summary>
    public double? ProbeDifferenceOverride { get; set; }

    /// <summary>Whether a verification pass computes positions exactly as one-token steps do here (probed once, when a row first could speculate).</summary>
    public bool SpeculationExact => _speculationExact.Value;

    private readonly Lazy<bool> _speculationExact;

    /// <summary>The decoder graph runner.</summary>
    public DecoderBackend Backend { get; }

    /// <summary>What was discovered about the model.</summary>
    public GptModelInfo Info { get; }

    /// <summary>The tokenizer in use.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>Turns text or ids into prompts the loop takes (BOS, chat rendering, overflow).</summary>
    public PromptPreparer Prompts { get; }

    /// <summary>Resolves a call's options once: the caller's, then the model's defaults, then the library's.</summary>
    public DecodingSettings Resolve(GenerationOptions? options) => DecodingSettings.Resolve(options, Info);

    /// <summary>
    /// Runs prepared prompts to the end in a loop of their own (not the shared scheduler) and returns their results in
    /// prompt order: the static and continuous batches that the benchmarks and tests compare the scheduler with.
    /// </summary>
    public IReadOnlyList<GenerationResult> RunOrdered(IReadOnlyList<PreparedPrompt> prompts, DecodingSettings settings, int batchSize,
        bool continuous, CancellationToken cancellationToken)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be 1 or more.");
        var results = new GenerationResult[prompts.Count];
        using var loop = CreateLoop(settings, batchSize, continuous, (i, r) => results[i] = r);
        loop.Run(prompts.GetEnumerator(), cancellationToken);
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
            return new DecodeLoop(Backend, Tokenizer, Info, settings, batchSize, continuous, onFinished, onText)
            {
                Use = use, ContextLimit = ContextLimit, Speculator = CreateSpeculator(),
            };
        }
        catch
        {
            use.Dispose();
            throw;
        }
    }

    /// <summary>Generates one prepared prompt through the shared scheduler.</summary>
    /// <exception cref="GptModelException">The scheduler's queue is full (see <see cref="GptModelOptions.MaxQueuedRequests"/>).</exception>
    public Task<GenerationResult> GenerateAsync(PreparedPrompt prepared, DecodingSettings settings, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Scheduler.Submit([prepared], settings, stream: false, waitForRoom: false, Use, cancellationToken)[0].Task;
    }

    /// <summary>Generates one prepared prompt through the shared scheduler, blocking the calling thread.</summary>
    public GenerationResult Generate(PreparedPrompt prepared, DecodingSettings settings, CancellationToken cancellationToken) =>
        GenerateAsync(prepared, settings, cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// Generates prepared prompts through the shared scheduler, keeping at most <paramref name="inFlight"/> of them
    /// queued or running at once (the first ones submitted together, so they can share a prefill), and returns the
    /// results in prompt order. It waits for room rather than failing when the queue is full.
    /// </summary>
    public IReadOnlyList<GenerationResult> GenerateMany(IReadOnlyList<PreparedPrompt> prompts, DecodingSettings settings, int inFlight,
        CancellationToken cancellationToken)
    {
        if (inFlight < 1) throw new ArgumentOutOfRangeException(nameof(inFlight), inFlight, "The batch size must be 1 or more.");
        cancellationToken.ThrowIfCancellationRequested();
        var results = new GenerationResult[prompts.Count];
        if (prompts.Count == 0) return results;
        // The call's own use lets it submit its later prompts even if the model is disposed meanwhile (as a batch job always could).
        using var session = Use();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var running = new List<(int Index, Task<GenerationResult> Task)>(inFlight);
        int next = Math.Min(inFlight, prompts.Count);
        var first = Scheduler.Submit(prompts.Take(next).ToList(), settings, stream: false, waitForRoom: true, AnotherUse, stop.Token);
        for (int i = 0; i < first.Length; i++) running.Add((i, first[i].Task));
        try
        {
            while (running.Count > 0)
            {
                int done = Task.WaitAny(running.Select(r => (Task)r.Task).ToArray(), stop.Token);
                var (index, task) = running[done];
                running.RemoveAt(done);
                results[index] = task.GetAwaiter().GetResult();
                if (next < prompts.Count)
                {
                    var request = Scheduler.Submit([prompts[next]], settings, stream: false, waitForRoom: true, AnotherUse, stop.Token)[0];
                    running.Add((next++, request.Task));
                }
            }
            return results;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
        finally
        {
            // An error or a cancellation ends the call's other requests too.
            if (running.Count > 0) stop.Cancel();
        }
    }

    /// <summary>
    /// Streams one prepared prompt's text pieces through the shared scheduler, each when the step that produced it
    /// ends; <paramref name="onFinished"/> receives the whole result before the stream ends (the chat client reads its
    /// finish reason and token counts). Stopping early cancels the request.
    /// </summary>
    public async IAsyncEnumerable<string> StreamAsync(PreparedPrompt prepared, DecodingSettings settings, Action<GenerationResult>? onFinished,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var request = Scheduler.Submit([prepared], settings, stream: true, waitForRoom: false, Use, stop.Token)[0];
        var pieces = request.Pieces!;
        try
        {
            while (await pieces.WaitToReadAsync().ConfigureAwait(false))
            {
                while (pieces.TryRead(out string piece))
                {
                    yield return piece;
                    // A cancellation is reported even when every piece was already produced.
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }
            var result = await request.Task.ConfigureAwait(false);
            onFinished?.Invoke(result);
        }
        finally
        {
            if (!request.Task.IsCompleted) stop.Cancel();
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

    /// <summary>A further use by a caller that already holds one: allowed after <see cref="Dispose"/>, as the caller's keeps the sessions alive.</summary>
    public IDisposable AnotherUse()
    {
        Interlocked.Increment(ref _users);
        return new UseToken(this);
    }

    private void EndUse()
    {
        if (Interlocked.Decrement(ref _users) == 0 && Volatile.Read(ref _disposed) != 0) Release();
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        Backend.Dispose();
        Draft?.Dispose();
    }

    /// <summary>
    /// Refuses new operations; what was submitted runs to the end, and the sessions are freed once every running
    /// operation has returned.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (_scheduler.IsValueCreated) _scheduler.Value.Dispose();
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
