using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Generation;

/// <summary>What a pull for the next prompt produced.</summary>
internal enum AdmitKind
{
    /// <summary>A prompt to admit.</summary>
    Prompt,

    /// <summary>More prompts exist but should not be admitted yet (the consumer is behind).</summary>
    Wait,

    /// <summary>No more prompts.</summary>
    End,
}

/// <summary>What one <see cref="DecodeLoop.Step"/> did.</summary>
internal enum StepOutcome
{
    /// <summary>A prefill or a decode step ran, or rows were reported.</summary>
    Progress,

    /// <summary>Nothing to do until more prompts may be admitted.</summary>
    Idle,

    /// <summary>Every prompt has been generated for and reported.</summary>
    Done,
}

/// <summary>
/// The batch loop. Prompts are pulled lazily; up to <c>maxBatchSize</c> run together with one
/// key/value cache. Every row finishes on its own (see <see cref="StopCriteria"/>) and is reported at
/// once. With <c>continuous</c> batching a finished row's slot is refilled from the waiting prompts at
/// the next step; otherwise a new batch starts when the current one has drained. Where the backend
/// can edit cache rows, finished rows leave the batch and the cache is trimmed to the longest
/// remaining row. Each row may bring its own decoding settings, constraint and streaming. Step inputs
/// come from <see cref="BatchInputs"/>, token choice from <see cref="TokenChooser"/>, text from each
/// row's <see cref="TextStreamer"/>; small batches may speculate (<see cref="Speculator"/>).
/// </summary>
/// <remarks>Not thread-safe: one loop per caller (<see cref="Abandon"/> included). <see cref="Step"/> lets a cursor or the scheduler drive it.</remarks>
internal sealed class DecodeLoop : IDisposable
{
    private readonly DecoderBackend _backend;
    private readonly Tokenizer _tokenizer;
    private readonly GptModelInfo _info;
    private readonly DecodingSettings _settings;
    private readonly int _maxBatchSize;
    private readonly bool _continuous;
    private readonly Action<int, GenerationResult> _onFinished;
    private readonly Action<int, string>? _onText;
    private readonly TokenChooser _chooser;
    private readonly float[] _row;
    private readonly List<Sequence> _active = [];
    private readonly RunOptions _runOptions = new();
    private readonly PrefixCache? _prefixes;
    private readonly HashSet<int> _abandoned = [];
    private IKvCache? _cache;
    private bool _exhausted;
    private PreparedPrompt? _deferred;
    private PartialPrefill? _partial;
    private bool _lastStepPrefilled;
    private int? _contextLimit;

    public DecodeLoop(DecoderBackend backend, Tokenizer tokenizer, GptModelInfo info, DecodingSettings settings, int maxBatchSize,
        bool continuous, Action<int, GenerationResult> onFinished, Action<int, string>? onText = null)
    {
        if (maxBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(maxBatchSize), maxBatchSize, "The batch size must be 1 or more.");
        _backend = backend;
        _tokenizer = tokenizer;
        _info = info;
        _settings = settings;
        // Prompts that must prefill alone are joined by editing cache rows; a backend that cannot runs one row at a time.
        _maxBatchSize = backend.Graph.PrefillRowByRow && !backend.CanEditRows ? 1 : maxBatchSize;
        _continuous = continuous && backend.CanEditRows;
        _onFinished = onFinished;
        _onText = onText;
        _chooser = new TokenChooser(info.VocabularySize, info.TokenizerIdCount);
        _row = new float[info.VocabularySize];
        // Joining a head's state to each row edits cache rows, which device caches cannot do.
        if (settings.PrefixCaching && backend.CanEditRows) _prefixes = new PrefixCache();
    }

    /// <summary>The most tokens (prompt and output) a row may hold; the model's context window unless the engine limits requests.</summary>
    public int ContextLimit
    {
        get => _contextLimit ?? _info.ContextLength;
        init => _contextLimit = value;
    }

    /// <summary>
    /// The most prompt tokens one step prefills (null: no limit). Admission stops before a prompt that would exceed it
    /// (the first prompt of a step is always admitted), a longer prompt is prefilled in chunks of this size over several
    /// steps, and while rows are decoding, prefill and decode steps alternate: long prompts never stall the running rows
    /// for more than one chunk.
    /// </summary>
    public int? MaxPrefillTokens { get; init; }

    /// <summary>Speculative decoding for small batches; null: every decode step feeds one token per row.</summary>
    public Speculator? Speculator { get; init; }

    /// <summary>The prefix cache, when prefix caching is on (tests and benchmarks).</summary>
    public PrefixCache? Prefixes => _prefixes;

    /// <summary>Number of forward steps (ONNX Runtime runs) so far; for tests and benchmarks.</summary>
    public int Steps { get; private set; }

    /// <summary>Decode steps (plain or speculative) so far, and the rows they served in all (benchmarks: the batch a decode step ran on average).</summary>
    public long DecodeSteps { get; private set; }

    public long DecodedRows { get; private set; }

    /// <summary>Rows currently in the batch.</summary>
    public int ActiveRows => _active.Count;

    /// <summary>When set, every forward step's duration is recorded here (benchmarks).</summary>
    public List<(bool Prefill, int Rows, double Milliseconds)>? StepTimings { get; set; }

    /// <summary>A use of the model this loop runs on, ended when the loop is disposed.</summary>
    public IDisposable? Use { get; init; }

    /// <summary>Keep finished rows in the batch until it drains (classic static batching; benchmarks compare against it).</summary>
    public bool KeepFinishedRows { get; set; }

    /// <summary>Runs every prompt of <paramref name="prompts"/> to the end.</summary>
    public void Run(IEnumerator<PreparedPrompt> prompts, CancellationToken cancellationToken)
    {
        AdmitKind Pull(out PreparedPrompt prompt)
        {
            if (prompts.MoveNext())
            {
                prompt = prompts.Current;
                return AdmitKind.Prompt;
            }
            prompt = default;
            return AdmitKind.End;
        }
        while (Step(Pull, cancellationToken) != StepOutcome.Done) { }
    }

    public delegate AdmitKind Admit(out PreparedPrompt prompt);

    /// <summary>Admits waiting prompts when there is room, else runs one decode step.</summary>
    public StepOutcome Step(Admit admit, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var registration = cancellationToken.Register(() => _runOptions.Terminate = true);
        try
        {
            return StepCore(admit, cancellationToken);
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
    }

    /// <summary>
    /// Drops the row of prompt <paramref name="index"/> at the next step without reporting it (its caller cancelled):
    /// from the batch, from a prefill in progress, or when it is admitted later.
    /// </summary>
    public void Abandon(int index) => _abandoned.Add(index);

    private StepOutcome StepCore(Admit admit, CancellationToken cancellationToken)
    {
        DropAbandoned();
        // While rows are decoding, a prefill step is followed by a decode step when the loop caps prefill work.
        bool decodeFirst = MaxPrefillTokens is not null && _lastStepPrefilled && _active.Exists(s => !s.Done);
        if (!decodeFirst)
        {
            if (_partial is not null)
            {
                ContinuePartial(cancellationToken);
                _lastStepPrefilled = true;
                return StepOutcome.Progress;
            }
            if ((!_exhausted || _deferred is not null) && _active.Count < _maxBatchSize && (_continuous || _active.Count == 0))
            {
                var admitted = AdmitWaiting(admit);
                if (admitted.Count > 0)
                {
                    long started = System.Diagnostics.Stopwatch.GetTimestamp();
                    if (MaxPrefillTokens is int cap && admitted.Count == 1 && admitted[0].Ids.Length > cap)
                    {
                        StartPartial(admitted[0], cancellationToken);
                    }
                    else
                    {
                        var (rows, cache) = Prefill(admitted, cancellationToken);
                        Join(rows, cache);
                        Retire();
                    }
                    StepTimings?.Add((true, admitted.Count, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds));
                    _lastStepPrefilled = true;
                    return StepOutcome.Progress;
                }
            }
        }
        _lastStepPrefilled = false;
        if (_active.Count == 0) return _exhausted && _deferred is null && _partial is null ? StepOutcome.Done : StepOutcome.Idle;
        if (_active.TrueForAll(s => s.Done))
        {
            // A static batch on a backend that cannot drop rows has drained.
            foreach (var s in _active) s.Speculation?.Dispose();
            _active.Clear();
            _cache?.Dispose();
            _cache = null;
            return StepOutcome.Progress;
        }

        long stepStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        var plan = Speculator is { } speculator && _active.Exists(s => !s.Done && speculator.Wanted(s)) ? speculator.Propose(_active, _runOptions, cancellationToken) : null;
        // The forward pass alone is what the cost model learns (a draft model's passes are timed apart).
        long forwardStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        if (plan is not null)
        {
            SpeculativeStep(plan, cancellationToken);
        }
        else
        {
            var (logits, present) = DecodeStep(cancellationToken);
            _cache!.Dispose();
            _cache = present;
            using (logits)
            {
                for (int r = 0; r < _active.Count; r++)
                {
                    var sequence = _active[r];
                    if (sequence.Done) continue;
                    sequence.Cached++;
                    logits.Read(r, 0, _row);
                    Advance(sequence);
                }
            }
        }
        double elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(stepStarted).TotalMilliseconds;
        StepTimings?.Add((false, _active.Count, elapsed));
        DecodeSteps++;
        DecodedRows += _active.Count;
        if (Speculator is { } costs && (plan is not null || _active.Exists(s => !s.Done && costs.Wanted(s))))
            costs.Costs.Add(_active.Count * (plan?.Length ?? 1), System.Diagnostics.Stopwatch.GetElapsedTime(forwardStarted).TotalMilliseconds);
        Retire();
        return StepOutcome.Progress;
    }

    /// <summary>
    /// One verification step: every row feeds its last token and its proposals; at each position the row's token is
    /// chosen exactly as a plain step would choose it, and the proposals are kept while they equal the chosen tokens.
    /// The positions of rejected proposals leave the cache (trimmed where every row rejected them, masked otherwise).
    /// </summary>
    private void SpeculativeStep(SpeculationPlan plan, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        int batch = _active.Count, length = plan.Length;
        var masks = new ColumnMask[batch];
        var tokens = new ReadOnlyMemory<int>[batch];
        var first = new int[batch];
        int cached = _cache!.Width;
        for (int r = 0; r < batch; r++)
        {
            var s = _active[r];
            if (s.Done)
            {
                // A finished row kept in a static batch: padding that attends to itself alone, as in a plain step.
                masks[r] = new ColumnMask(cached + length, _backend.Graph.Padding);
                masks[r].Append(false, cached);
                tokens[r] = new[] { _info.PadTokenId };
                continue;
            }
            var proposals = plan.Proposals[r];
            var feed = new int[1 + proposals.Length];
            feed[0] = s.Tokens[^1];
            proposals.CopyTo(feed, 1);
            masks[r] = s.Mask;
            tokens[r] = feed;
            first[r] = s.Cached;
        }
        var input = BatchInputs.Extend(masks, tokens, first, length, _info.PadTokenId, logitsToKeep: length);
        var (logits, present) = _backend.Step(input, _cache!, _runOptions);
        Steps++;
        _cache!.Dispose();
        _cache = present;
        using (logits)
        {
            for (int r = 0; r < batch; r++)
            {
                var s = _active[r];
                if (s.Done) continue;
                var proposals = plan.Proposals[r];
                // Row r's tokens are right-aligned in the step, and so are its logits.
                int at = logits.Length - (proposals.Length + 1);
                int accepted = 0;
                for (int i = 0; i <= proposals.Length; i++)
                {
                    logits.Read(r, at + i, _row);
                    Advance(s);
                    if (s.Done || i == proposals.Length || s.Tokens[^1] != proposals[i]) break;
                    accepted++;
                }
                s.Cached += accepted + 1;
                s.Mask.Unmark(proposals.Length - accepted);
                Speculator!.Settle(s, proposals.Length, accepted);
            }
        }
        // Columns that no running row uses any more come off the end of the cache.
        int trim = int.MaxValue;
        foreach (var s in _active)
            if (!s.Done) trim = Math.Min(trim, s.Mask.TrailingPadding);
        if (trim is > 0 and < int.MaxValue)
        {
            var trimmed = _backend.TrimEnd(_cache, trim);
            _cache.Dispose();
            _cache = trimmed;
            foreach (var s in _active)
                if (!s.Done) s.Mask.TrimEnd(trim);
        }
    }

    /// <summary>Removes the rows and waiting prompts whose callers gave up.</summary>
    private void DropAbandoned()
    {
        if (_abandoned.Count == 0) return;
        if (_partial is { } partial && _abandoned.Remove(partial.Row.Prompt.Index))
        {
            partial.Dispose();
            _partial = null;
        }
        if (_deferred is { } deferred && _abandoned.Remove(deferred.Index)) _deferred = null;
        bool any = false;
        foreach (var s in _active)
        {
            if (!s.Reported && _abandoned.Remove(s.Prompt.Index))
            {
                s.Abandoned = true;
                s.Reported = true;
                any = true;
            }
        }
        // What is left finished before the cancellation was seen.
        _abandoned.Clear();
        if (any) Compact();
    }

    public void Dispose()
    {
        _cache?.Dispose();
        _cache = null;
        foreach (var s in _active) s.Speculation?.Dispose();
        _active.Clear();
        _partial?.Dispose();
        _partial = null;
        _prefixes?.Dispose();
        _runOptions.Dispose();
        Use?.Dispose();
    }

    private List<PreparedPrompt> AdmitWaiting(Admit admit)
    {
        var admitted = new List<PreparedPrompt>();
        int tokens = 0;
        while (_active.Count + admitted.Count < _maxBatchSize)
        {
            PreparedPrompt prompt;
            if (_deferred is { } deferred)
            {
                prompt = deferred;
                _deferred = null;
            }
            else
            {
                var kind = admit(out prompt);
                if (kind != AdmitKind.Prompt)
                {
                    if (kind == AdmitKind.End) _exhausted = true;
                    break;
                }
            }
            if (_abandoned.Remove(prompt.Index)) continue;
            // Within the step's prefill budget (a first prompt always goes; a longer one is chunked), else first next time.
            if (MaxPrefillTokens is int cap && admitted.Count > 0 && tokens + prompt.Ids.Length > cap)
            {
                _deferred = prompt;
                break;
            }
            admitted.Add(prompt);
            tokens += prompt.Ids.Length;
        }
        return admitted;
    }

    /// <summary>A long prompt prefilled chunk by chunk over several steps before it joins the batch.</summary>
    private sealed class PartialPrefill(Sequence row, IKvCache cache, int done) : IDisposable
    {
        public Sequence Row { get; } = row;
        public IKvCache Cache { get; set; } = cache;

        /// <summary>Prompt tokens in <see cref="Cache"/>.</summary>
        public int Done { get; set; } = done;

        public void Dispose() => Cache.Dispose();
    }

    private void StartPartial(PreparedPrompt prompt, CancellationToken cancellationToken)
    {
        var row = NewSequence(prompt);
        var head = RowCaches(row) ? HeadFor([prompt], cancellationToken) : null;
        IKvCache start;
        int from = 0;
        if (head is null)
        {
            start = _backend.EmptyCache(1);
        }
        else
        {
            start = _backend.KeepRows(head.State, [0], head.State.Width);
            from = head.Tokens.Length;
            row.Mask.Append(true, from);
            _prefixes!.Served(1);
        }
        _partial = new PartialPrefill(row, start, from);
        ContinuePartial(cancellationToken);
    }

    /// <summary>Prefills the next chunk of the long prompt in progress; the last chunk chooses its first token and joins it to the batch.</summary>
    private void ContinuePartial(CancellationToken cancellationToken)
    {
        var partial = _partial!;
        var ids = partial.Row.Prompt.Ids;
        int length = Math.Min(MaxPrefillTokens!.Value, ids.Length - partial.Done);
        var (last, cache) = Extend(partial.Cache, [partial.Row.Mask], [ids[partial.Done..(partial.Done + length)]], [partial.Done], cancellationToken);
        partial.Cache = cache;
        partial.Done += length;
        using (last)
        {
            if (partial.Done < ids.Length) return;
            last.Read(0, last.Length - 1, _row);
            Advance(partial.Row);
        }
        _partial = null;
        Join([partial.Row], partial.Cache);
        Retire();
    }

    /// <summary>Adds newly prefilled rows (and their cache) to the running batch.</summary>
    private void Join(List<Sequence> rows, IKvCache cache)
    {
        if (_cache is null)
        {
            _cache = cache;
        }
        else
        {
            var joined = _backend.Concat(_cache, cache);
            int width = joined.Width;
            foreach (var s in _active) s.Mask.Pad(width - s.Mask.Width);
            foreach (var s in rows) s.Mask.Pad(width - s.Mask.Width);
            _cache.Dispose();
            cache.Dispose();
            _cache = joined;
        }
        _active.AddRange(rows);
    }

    /// <summary>
    /// Prefills newly admitted prompts: together in one left-padded batch, or one at a time where the
    /// graph needs that (recurrent states, GroupQueryAttention), joined afterwards; from a shared
    /// prompt head's state where the prefix cache has one.
    /// </summary>
    private (List<Sequence>, IKvCache) Prefill(List<PreparedPrompt> prompts, CancellationToken cancellationToken)
    {
        if (!_backend.Graph.PrefillRowByRow || prompts.Count == 1) return PrefillGroup(prompts, cancellationToken);
        var head = HeadFor(prompts, cancellationToken);   // found once for the group, then used row by row
        var rows = new List<Sequence>(prompts.Count);
        IKvCache? joined = null;
        try
        {
            foreach (var prompt in prompts)
            {
                var (one, cache) = PrefillGroup([prompt], cancellationToken, head);
                rows.AddRange(one);
                if (joined is null)
                {
                    joined = cache;
                    continue;
                }
                var next = _backend.Concat(joined, cache);
                joined.Dispose();
                cache.Dispose();
                joined = next;
            }
            foreach (var s in rows) s.Mask.Pad(joined!.Width - s.Mask.Width);
            return (rows, joined!);
        }
        catch
        {
            joined?.Dispose();
            throw;
        }
    }

    /// <summary>The stored or newly computed head every prompt of the group starts with, when prefix caching applies.</summary>
    private PrefixCache.Entry? HeadFor(List<PreparedPrompt> prompts, CancellationToken cancellationToken)
    {
        // Rows that asked for no prefix caching (their own settings) keep the whole group out of it.
        if (_prefixes is null || !prompts.TrueForAll(p => SettingsOf(p).PrefixCaching)) return null;
        var ids = prompts.Select(p => p.Ids).ToArray();
        if (_prefixes.Find(ids) is { } stored) return stored;
        if (_prefixes.NewHead(ids) is not { } tokens) return null;
        var masks = new[] { new ColumnMask(tokens.Length, _backend.Graph.Padding) };
        var (last, state) = Extend(_backend.EmptyCache(1), masks, [tokens], [0], cancellationToken);
        last.Dispose();
        return _prefixes.Add(tokens, state);
    }

    /// <summary>Prefills prompts together (one row when the graph prefills row by row), from a shared head's state when there is one.</summary>
    private (List<Sequence>, IKvCache) PrefillGroup(List<PreparedPrompt> prompts, CancellationToken cancellationToken, PrefixCache.Entry? head = null)
    {
        var graph = _backend.Graph;
        head ??= HeadFor(prompts, cancellationToken);
        int batch = prompts.Count, from = head?.Tokens.Length ?? 0;
        var rows = prompts.Select(p => NewSequence(p)).ToList();
        var masks = rows.Select(s => s.Mask).ToArray();
        IKvCache start;
        if (head is null)
        {
            start = _backend.EmptyCache(batch);
        }
        else
        {
            // Every row starts from a copy of the head's state.
            start = _backend.KeepRows(head.State, new int[batch], head.State.Width);
            foreach (var mask in masks) mask.Append(true, from);
            _prefixes!.Served(batch);
        }
        var (last, cache) = Extend(start, masks, prompts.Select(p => p.Ids[from..]).ToArray(), Enumerable.Repeat(from, batch).ToArray(), cancellationToken);
        using (last)
        {
            for (int r = 0; r < batch; r++)
            {
                last.Read(r, last.Length - 1, _row);
                Advance(rows[r]);
            }
        }
        return (rows, cache);
    }

    private (LogitsBuffer Last, IKvCache Cache) Extend(IKvCache cache, ColumnMask[] masks, int[][] newTokens, int[] basePositions,
        CancellationToken cancellationToken)
    {
        var result = StepRunner.Extend(_backend, _runOptions, cache, masks, newTokens, basePositions, _info.PadTokenId, lastLogitsOnly: true, cancellationToken,
            out int steps);
        Steps += steps;
        return result;
    }

    private (LogitsBuffer, IKvCache) DecodeStep(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        int batch = _active.Count, cached = _cache!.Width;
        var masks = new ColumnMask[batch];
        var tokens = new ReadOnlyMemory<int>[batch];
        var first = new int[batch];
        for (int r = 0; r < batch; r++)
        {
            var s = _active[r];
            if (s.Done)
            {
                // A finished row kept only because the backend cannot drop rows: feed padding that
                // attends to itself alone, at position 0.
                masks[r] = new ColumnMask(cached + 1, _backend.Graph.Padding);
                masks[r].Append(false, cached);
                tokens[r] = new[] { _info.PadTokenId };
                continue;
            }
            masks[r] = s.Mask;
            tokens[r] = new[] { s.Tokens[^1] };
            first[r] = s.Cached;
        }
        var input = BatchInputs.Extend(masks, tokens, first, 1, _info.PadTokenId, logitsToKeep: 1);
        var result = _backend.Step(input, _cache, _runOptions);
        Steps++;
        return result;
    }

    private DecodingSettings SettingsOf(PreparedPrompt prompt) => prompt.Settings ?? _settings;

    private bool RowCaches(Sequence row) => _prefixes is not null && row.Settings.PrefixCaching;

    private Sequence NewSequence(PreparedPrompt prompt)
    {
        var settings = SettingsOf(prompt);
        var constraint = Compile(prompt.Constraint ?? settings.Constraint, settings);
        return new Sequence(prompt, settings, _tokenizer, _onText is not null && prompt.Stream, _backend.Graph.Padding, ContextLimit)
        {
            Cached = prompt.Ids.Length,
            Constraint = constraint,
            ConstraintState = constraint?.Start ?? 0,
        };
    }

    /// <summary>The constraint compiled for this model's tokenizer (compiled forms are cached per vocabulary).</summary>
    private Constraints.ITokenConstraint? Compile(OutputConstraint? constraint, DecodingSettings settings) =>
        CompileConstraint(constraint, settings, _tokenizer, _info);

    /// <summary>A constraint compiled for a model's tokenizer and a row's EOS ids (the scheduler compiles on the caller's thread first, so errors reach the caller).</summary>
    public static Constraints.ITokenConstraint? CompileConstraint(OutputConstraint? constraint, DecodingSettings settings, Tokenizer tokenizer, GptModelInfo info)
    {
        if (constraint is null) return null;
        try
        {
            // Choices keep each label's own tokenization; patterns and schemas walk the bytes of every token.
            if (constraint.Kind == OutputConstraintKind.Choices)
                return Constraints.ChoiceTokenConstraint.For(constraint, tokenizer, info.VocabularySize, settings.EosTokenIds);
            return Constraints.CompiledConstraint.For(constraint, Tokenization.TokenByteTable.For(tokenizer, info.VocabularySize), settings.EosTokenIds);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"The output constraint cannot be used with this model: {e.Message}", e);
        }
        catch (NotSupportedException e)
        {
            throw new GptModelException($"Output constraints need the bytes of every token: {e.Message}", e);
        }
    }

    /// <summary>Chooses the next token of a sequence from its logits row and decides whether it is finished.</summary>
    private void Advance(Sequence s)
    {
        var settings = s.Settings;
        var history = settings.NeedsHistory ? System.Runtime.InteropServices.CollectionsMarshal.AsSpan(s.Tokens) : default;
        Constraints.TokenSet? allowed = null;
        if (s.Constraint is { } constraint)
        {
            if (constraint.IsFinal(s.ConstraintState))
            {
                s.Finish = FinishReason.Constraint;   // e.g. a pattern that only the empty text matches
                return;
            }
            // Room left for this row, this token included: the constraint keeps only tokens that can still finish in time.
            int remaining = Math.Min(s.Limit - s.Generated, s.ContextLimit - s.Tokens.Count);
            allowed = constraint.Allowed(s.ConstraintState, remaining);
        }
        var (token, logProbability) = _chooser.Choose(settings, _row, history, s.Generated, s.Random, allowed);
        if (s.Stops.FinishOnEos(s, token, logProbability)) return;
        s.Add(token, logProbability);
        s.Stops.AfterToken(s, token);
        if (s.Streams && s.Text!.TakePiece(final: false) is { Length: > 0 } piece) _onText!(s.Prompt.Index, piece);
    }

    /// <summary>Reports finished sequences and, where possible, drops their rows from the batch.</summary>
    private void Retire()
    {
        bool anyFinished = false;
        foreach (var s in _active)
        {
            if (s.Finish is null || s.Reported) continue;
            if (s.Streams && s.Text!.TakePiece(final: true) is { Length: > 0 } piece) _onText!(s.Prompt.Index, piece);
            s.Reported = true;
            anyFinished = true;
            s.Speculation?.Dispose();
            _onFinished(s.Prompt.Index, s.ToResult(_tokenizer));
        }
        if (anyFinished) Compact();
    }

    /// <summary>Drops finished and abandoned rows from the batch where the backend can, trimming the columns no remaining row uses.</summary>
    private void Compact()
    {
        if (!_backend.CanEditRows || KeepFinishedRows || _cache is null) return;
        var keep = new List<int>();
        for (int r = 0; r < _active.Count; r++)
        {
            if (!_active[r].Done) keep.Add(r);
            else _active[r].Speculation?.Dispose();
        }
        if (keep.Count == _active.Count) return;
        if (keep.Count == 0)
        {
            _cache.Dispose();
            _cache = null;
            _active.Clear();
            return;
        }
        // Trim the columns no remaining row uses: every row's real columns end at the right edge.
        int width = keep.Max(r => _active[r].Mask.Span);
        var kept = _backend.KeepRows(_cache, keep.ToArray(), width);
        int dropped = _cache.Width - width;
        _cache.Dispose();
        _cache = kept;
        var remaining = keep.Select(r => _active[r]).ToList();
        foreach (var s in remaining) s.Mask.Trim(dropped);
        _active.Clear();
        _active.AddRange(remaining);
    }
}
