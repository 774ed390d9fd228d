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
/// The batch scheduler. Prompts are pulled lazily; up to <c>maxBatchSize</c> run together with one
/// key/value cache. Every row finishes on its own (see <see cref="StopCriteria"/>) and is reported at
/// once. With <c>continuous</c> batching a finished row's slot is refilled from the waiting prompts at
/// the next step; otherwise a new batch starts when the current one has drained. Where the backend
/// can edit cache rows, finished rows leave the batch and the cache is trimmed to the longest
/// remaining row. Step inputs come from <see cref="BatchInputs"/>, token choice from
/// <see cref="TokenChooser"/>, text from each row's <see cref="TextStreamer"/>.
/// </summary>
/// <remarks>Not thread-safe: one loop per caller. <see cref="Step"/> lets a cursor drive it row by row.</remarks>
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
    private readonly StopCriteria _stops;
    private readonly float[] _row;
    private readonly List<Sequence> _active = [];
    private readonly RunOptions _runOptions = new();
    private readonly PrefixCache? _prefixes;
    private IKvCache? _cache;
    private bool _exhausted;

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
        _chooser = new TokenChooser(settings, info.VocabularySize, info.TokenizerIdCount);
        _stops = new StopCriteria(settings, info.ContextLength);
        _row = new float[info.VocabularySize];
        // Joining a head's state to each row edits cache rows, which device caches cannot do.
        if (settings.PrefixCaching && backend.CanEditRows) _prefixes = new PrefixCache();
    }

    /// <summary>The prefix cache, when prefix caching is on (tests and benchmarks).</summary>
    public PrefixCache? Prefixes => _prefixes;

    /// <summary>Number of forward steps (ONNX Runtime runs) so far; for tests and benchmarks.</summary>
    public int Steps { get; private set; }

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

    private StepOutcome StepCore(Admit admit, CancellationToken cancellationToken)
    {
        if (!_exhausted && _active.Count < _maxBatchSize && (_continuous || _active.Count == 0))
        {
            var admitted = AdmitWaiting(admit);
            if (admitted.Count > 0)
            {
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                var (rows, cache) = Prefill(admitted, cancellationToken);
                StepTimings?.Add((true, admitted.Count, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds));
                Join(rows, cache);
                Retire();
                return StepOutcome.Progress;
            }
        }
        if (_active.Count == 0) return _exhausted ? StepOutcome.Done : StepOutcome.Idle;
        if (_active.TrueForAll(s => s.Done))
        {
            // A static batch on a backend that cannot drop rows has drained.
            _active.Clear();
            _cache?.Dispose();
            _cache = null;
            return StepOutcome.Progress;
        }

        long stepStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        var (logits, present) = DecodeStep(cancellationToken);
        StepTimings?.Add((false, _active.Count, System.Diagnostics.Stopwatch.GetElapsedTime(stepStarted).TotalMilliseconds));
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
        Retire();
        return StepOutcome.Progress;
    }

    public void Dispose()
    {
        _cache?.Dispose();
        _cache = null;
        _prefixes?.Dispose();
        _runOptions.Dispose();
        Use?.Dispose();
    }

    private List<PreparedPrompt> AdmitWaiting(Admit admit)
    {
        var admitted = new List<PreparedPrompt>();
        while (_active.Count + admitted.Count < _maxBatchSize)
        {
            var kind = admit(out var prompt);
            if (kind == AdmitKind.Prompt)
            {
                admitted.Add(prompt);
                continue;
            }
            if (kind == AdmitKind.End) _exhausted = true;
            break;
        }
        return admitted;
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
        if (_prefixes is null) return null;
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

    private Sequence NewSequence(PreparedPrompt prompt)
    {
        var constraint = Compile(prompt.Constraint ?? _settings.Constraint);
        return new Sequence(prompt, _settings, _tokenizer, _onText is not null, _backend.Graph.Padding)
        {
            Cached = prompt.Ids.Length,
            Constraint = constraint,
            ConstraintState = constraint?.Start ?? 0,
        };
    }

    /// <summary>The constraint compiled for this model's tokenizer (compiled forms are cached per vocabulary).</summary>
    private Constraints.ITokenConstraint? Compile(OutputConstraint? constraint)
    {
        if (constraint is null) return null;
        try
        {
            // Choices keep each label's own tokenization; patterns and schemas walk the bytes of every token.
            if (constraint.Kind == OutputConstraintKind.Choices)
                return Constraints.ChoiceTokenConstraint.For(constraint, _tokenizer, _info.VocabularySize, _settings.EosTokenIds);
            return Constraints.CompiledConstraint.For(constraint, Tokenization.TokenByteTable.For(_tokenizer, _info.VocabularySize), _settings.EosTokenIds);
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
        var history = _settings.NeedsHistory ? System.Runtime.InteropServices.CollectionsMarshal.AsSpan(s.Tokens) : default;
        Constraints.TokenSet? allowed = null;
        if (s.Constraint is { } constraint)
        {
            if (constraint.IsFinal(s.ConstraintState))
            {
                s.Finish = FinishReason.Constraint;   // e.g. a pattern that only the empty text matches
                return;
            }
            // Room left for this row, this token included: the constraint keeps only tokens that can still finish in time.
            int remaining = Math.Min(s.Limit - s.Generated, _info.ContextLength - s.Tokens.Count);
            allowed = constraint.Allowed(s.ConstraintState, remaining);
        }
        var (token, logProbability) = _chooser.Choose(_row, history, s.Generated, s.Random, allowed);
        if (_stops.FinishOnEos(s, token, logProbability)) return;
        s.Add(token, logProbability);
        _stops.AfterToken(s, token);
        if (_onText is not null && s.Text!.TakePiece(final: false) is { Length: > 0 } piece) _onText(s.Prompt.Index, piece);
    }

    /// <summary>Reports finished sequences and, where possible, drops their rows from the batch.</summary>
    private void Retire()
    {
        bool anyFinished = false;
        foreach (var s in _active)
        {
            if (s.Finish is null || s.Reported) continue;
            if (_onText is not null && s.Text!.TakePiece(final: true) is { Length: > 0 } piece) _onText(s.Prompt.Index, piece);
            s.Reported = true;
            anyFinished = true;
            _onFinished(s.Prompt.Index, s.ToResult(_tokenizer));
        }
        if (!anyFinished || !_backend.CanEditRows || KeepFinishedRows || _cache is null) return;

        var keep = new List<int>();
        for (int r = 0; r < _active.Count; r++)
            if (!_active[r].Done) keep.Add(r);
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
