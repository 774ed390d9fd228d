namespace MLNetGpt.Generation;

/// <summary>The scheduler's bounds, from <see cref="GptModelOptions"/>.</summary>
internal sealed record SchedulerLimits(int MaxBatchSize, int MaxQueuedRequests, bool WaitWhenQueueFull, int MaxPrefillTokensPerStep)
{
    public static SchedulerLimits From(GptModelOptions options) =>
        new(options.MaxBatchSize, options.MaxQueuedRequests, options.WaitWhenQueueFull, options.MaxPrefillTokensPerStep);
}

/// <summary>
/// One generation loop shared by every caller of one engine. Callers enqueue requests (each with its own settings,
/// constraint, stop strings, seed, streaming and cancellation); one background thread admits waiting requests into
/// the running batch between steps, in arrival order and within a budget of prefill tokens per step, runs the batch
/// (continuous batching, with the prefix cache and speculation for small batches), and hands each request its result
/// the moment its row finishes. A seeded or greedy request gives the same tokens alone or beside others: each row
/// draws from its own random stream and its own controls.
/// </summary>
/// <remarks>
/// <para>Bounds: at most <see cref="SchedulerLimits.MaxBatchSize"/> rows run at once and at most
/// <see cref="SchedulerLimits.MaxQueuedRequests"/> wait; beyond that a request is refused with a
/// <see cref="GptModelException"/>, or waits for room (<see cref="SchedulerLimits.WaitWhenQueueFull"/>, and always for
/// the batch calls, which keep at most their batch size of prompts in the scheduler).</para>
/// <para>Cancelling a request completes its task at once; its row leaves the batch before the next step.</para>
/// <para>Disposing refuses new requests (through the engine's use gate) and lets every submitted request finish; the
/// thread ends when nothing is left.</para>
/// <para>Thread-safe.</para>
/// </remarks>
internal sealed class GenerationScheduler : IDisposable
{
    private readonly GenerationEngine _engine;
    private readonly SchedulerLimits _limits;
    private readonly object _gate = new();
    private readonly LinkedList<GenerationRequest> _queue = new();
    private readonly LinkedList<GenerationRequest> _overflow = new();
    private readonly List<GenerationRequest> _cancelledRunning = [];
    private int _running;
    private int _nextIndex;
    private bool _disposed;
    private bool _paused;
    private Thread? _thread;

    // The scheduler thread's own state.
    private readonly Dictionary<int, GenerationRequest> _inLoop = [];
    private readonly List<GenerationRequest> _ended = [];
    private DecodeLoop? _loop;
    private long _stepsBefore;
    private (long Steps, long Rows) _decodedBefore;

    public GenerationScheduler(GenerationEngine engine, SchedulerLimits limits)
    {
        _engine = engine;
        _limits = limits;
    }

    /// <summary>Requests waiting for a batch slot (tests and benchmarks).</summary>
    public int Queued
    {
        get
        {
            lock (_gate) return _queue.Count + _overflow.Count;
        }
    }

    /// <summary>Rows in the running batch (tests and benchmarks).</summary>
    public int Running
    {
        get
        {
            lock (_gate) return _running;
        }
    }

    /// <summary>Heads the scheduler's prefix cache computed and rows it served in its current loop (tests; counted before the rows' results are reported).</summary>
    public (int Heads, int Rows) PrefixUse => Volatile.Read(ref _loop)?.Prefixes is { } prefixes ? (prefixes.HeadsComputed, prefixes.RowsServed) : (0, 0);

    /// <summary>Forward steps the scheduler ran since the engine opened (tests and benchmarks).</summary>
    public long Steps { get; private set; }

    /// <summary>Decode steps and the rows they served, since the engine opened (benchmarks: the average batch).</summary>
    public (long Steps, long Rows) Decoded { get; private set; }

    /// <summary>The most rows that ran together in one step (tests and benchmarks).</summary>
    public int PeakRows { get; private set; }

    /// <summary>Tests only: the thread admits and runs nothing until <see cref="Resume"/> (requests queue up meanwhile).</summary>
    public void Pause()
    {
        lock (_gate) _paused = true;
    }

    /// <summary>Tests only: ends <see cref="Pause"/>.</summary>
    public void Resume()
    {
        lock (_gate)
        {
            _paused = false;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>
    /// Enqueues prompts, all at once (so they can share a prefill step). <paramref name="use"/> gives each request the
    /// engine use it holds until it ends. A request's task completes with its result, is cancelled with
    /// <paramref name="cancellationToken"/>, or fails with the error of its step.
    /// </summary>
    /// <exception cref="GptModelException">The queue is full and waiting was not asked for.</exception>
    /// <exception cref="ArgumentException">An output constraint cannot be used with this model.</exception>
    public GenerationRequest[] Submit(IReadOnlyList<PreparedPrompt> prompts, DecodingSettings settings, bool stream, bool waitForRoom,
        Func<IDisposable> use, CancellationToken cancellationToken)
    {
        var requests = new GenerationRequest[prompts.Count];
        for (int i = 0; i < prompts.Count; i++)
        {
            var rowSettings = prompts[i].Settings ?? settings;
            // Compiling here puts a bad constraint's error on the caller's thread; the loop then finds it compiled.
            DecodeLoop.CompileConstraint(prompts[i].Constraint ?? rowSettings.Constraint, rowSettings, _engine.Tokenizer, _engine.Info);
            requests[i] = new GenerationRequest(rowSettings, stream ? new PieceStream() : null);
        }
        try
        {
            foreach (var request in requests) request.Use = use();
        }
        catch
        {
            foreach (var request in requests) request.Release();
            throw;
        }
        lock (_gate)
        {
            bool wait = waitForRoom || _limits.WaitWhenQueueFull;
            if (!wait && _queue.Count + requests.Length > _limits.MaxQueuedRequests)
            {
                foreach (var request in requests) request.Release();
                throw new GptModelException($"The generation queue of the model '{_engine.Info.Folder}' is full: {_queue.Count} requests wait for a batch slot " +
                    $"(GptModelOptions.MaxQueuedRequests = {_limits.MaxQueuedRequests}; {_running} rows run, at most {_limits.MaxBatchSize}). " +
                    "Retry later, raise the limit, or set GptModelOptions.WaitWhenQueueFull to wait for room.");
            }
            for (int i = 0; i < requests.Length; i++)
            {
                var request = requests[i];
                request.Prompt = prompts[i] with { Index = unchecked(_nextIndex++), Settings = request.Settings, Stream = stream };
                request.Node = _queue.Count < _limits.MaxQueuedRequests && _overflow.Count == 0 ? _queue.AddLast(request) : _overflow.AddLast(request);
                request.State = RequestState.Queued;
            }
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "MLNetGpt generation scheduler" };
                _thread.Start();
            }
            Monitor.PulseAll(_gate);
        }
        if (cancellationToken.CanBeCanceled)
            foreach (var request in requests) request.Registration = cancellationToken.Register(() => Cancel(request, cancellationToken));
        return requests;
    }

    /// <summary>Refuses nothing by itself (the engine's use gate does); lets the submitted requests finish, then ends the thread.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            Monitor.PulseAll(_gate);
        }
    }

    private void Cancel(GenerationRequest request, CancellationToken cancellationToken)
    {
        bool release = false;
        lock (_gate)
        {
            switch (request.State)
            {
                case RequestState.Queued:
                    request.Node!.List!.Remove(request.Node);
                    request.State = RequestState.Ended;
                    release = true;
                    RefillQueue();
                    break;
                case RequestState.Running:
                    // The row leaves the batch before the next step; its caller is released now.
                    request.State = RequestState.Cancelling;
                    _cancelledRunning.Add(request);
                    Monitor.PulseAll(_gate);
                    break;
                default:
                    return;
            }
        }
        var cancelled = new OperationCanceledException(cancellationToken);
        request.Pieces?.Fail(cancelled);
        request.Completion.TrySetCanceled(cancellationToken);
        if (release) request.Release();
    }

    /// <summary>Moves requests that wait for room into the queue while it has some (under the lock).</summary>
    private void RefillQueue()
    {
        while (_overflow.First is { } first && _queue.Count < _limits.MaxQueuedRequests)
        {
            _overflow.RemoveFirst();
            first.Value.Node = _queue.AddLast(first.Value);
        }
    }

    private void Run()
    {
        while (true)
        {
            List<GenerationRequest>? abandon = null;
            lock (_gate)
            {
                while ((_queue.Count == 0 && _running == 0) || _paused)
                {
                    if (_disposed && !_paused)
                    {
                        _thread = null;
                        _loop?.Dispose();
                        _loop = null;
                        return;
                    }
                    Monitor.Wait(_gate);
                }
                if (_cancelledRunning.Count > 0)
                {
                    abandon = [.. _cancelledRunning];
                    _cancelledRunning.Clear();
                }
            }
            var loop = _loop ??= NewLoop();
            if (abandon is not null)
                foreach (var request in abandon) loop.Abandon(request.Prompt.Index);
            StepOutcome outcome;
            PeakRows = Math.Max(PeakRows, loop.ActiveRows);
            try
            {
                outcome = loop.Step(Admit, CancellationToken.None);
            }
            catch (Exception e)
            {
                // A failed step fails every row of the batch; the waiting requests run in a new loop.
                foreach (var request in _inLoop.Values)
                {
                    request.Pieces?.Fail(e);
                    request.Completion.TrySetException(e);
                    _ended.Add(request);
                }
                _inLoop.Clear();
                _stepsBefore += loop.Steps;
                _decodedBefore = (_decodedBefore.Steps + loop.DecodeSteps, _decodedBefore.Rows + loop.DecodedRows);
                loop.Dispose();
                _loop = null;
                outcome = StepOutcome.Progress;
            }
            if (abandon is not null)
            {
                foreach (var request in abandon)
                    if (_inLoop.Remove(request.Prompt.Index)) _ended.Add(request);
            }
            if (_loop is { } live)
            {
                Steps = _stepsBefore + live.Steps;
                Decoded = (_decodedBefore.Steps + live.DecodeSteps, _decodedBefore.Rows + live.DecodedRows);
                PeakRows = Math.Max(PeakRows, live.ActiveRows);
            }
            EndRequests();
            if (outcome == StepOutcome.Idle)
            {
                // Nothing admitted and nothing running: wait for a request rather than spin.
                lock (_gate)
                    if (_queue.Count == 0 && _cancelledRunning.Count == 0) Monitor.Wait(_gate, 50);
            }
        }
    }

    /// <summary>Releases the engine uses of requests that left the loop, and counts them out (after the step that ended them).</summary>
    private void EndRequests()
    {
        if (_ended.Count == 0) return;
        lock (_gate)
        {
            foreach (var request in _ended)
            {
                if (request.State == RequestState.Ended) continue;
                request.State = RequestState.Ended;
                _running--;
            }
        }
        foreach (var request in _ended) request.Release();
        _ended.Clear();
    }

    private DecodeLoop NewLoop() => new(_engine.Backend, _engine.Tokenizer, _engine.Info, _engine.Resolve(null), _limits.MaxBatchSize, continuous: true,
        OnFinished, OnText)
    {
        MaxPrefillTokens = _limits.MaxPrefillTokensPerStep,
        ContextLimit = _engine.ContextLimit,
        Speculator = _engine.CreateSpeculator(),
    };

    private AdmitKind Admit(out PreparedPrompt prompt)
    {
        GenerationRequest request;
        lock (_gate)
        {
            if (_queue.First is not { } first)
            {
                prompt = default;
                return AdmitKind.Wait;
            }
            _queue.RemoveFirst();
            request = first.Value;
            request.Node = null;
            request.State = RequestState.Running;
            _running++;
            RefillQueue();
        }
        _inLoop[request.Prompt.Index] = request;
        prompt = request.Prompt;
        return AdmitKind.Prompt;
    }

    private void OnFinished(int index, GenerationResult result)
    {
        if (!_inLoop.Remove(index, out var request)) return;
        request.Result = result;
        request.Completion.TrySetResult(result);
        request.Pieces?.Complete();
        _ended.Add(request);
    }

    private void OnText(int index, string piece)
    {
        if (_inLoop.TryGetValue(index, out var request)) request.Pieces?.Write(piece);
    }
}

internal enum RequestState
{
    New,
    Queued,
    Running,
    Cancelling,
    Ended,
}

/// <summary>One caller's prompt in the scheduler: its settings, its result to come, and its text pieces when it streams.</summary>
internal sealed class GenerationRequest(DecodingSettings settings, PieceStream? pieces)
{
    public PreparedPrompt Prompt { get; set; }
    public DecodingSettings Settings { get; } = settings;

    /// <summary>Completes with the result the moment the row finishes (continuations run on the thread pool).</summary>
    public TaskCompletionSource<GenerationResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task<GenerationResult> Task => Completion.Task;

    /// <summary>The result, once finished (read by streaming callers after the last piece).</summary>
    public GenerationResult? Result { get; set; }

    public PieceStream? Pieces { get; } = pieces;

    public RequestState State { get; set; }
    public LinkedListNode<GenerationRequest>? Node { get; set; }
    public CancellationTokenRegistration Registration { get; set; }

    private IDisposable? _use;

    /// <summary>The request's hold on the engine: the sessions stay alive until it ends.</summary>
    public IDisposable? Use
    {
        set => _use = value;
    }

    /// <summary>Ends the request's hold on the engine and on its caller's token (once).</summary>
    public void Release()
    {
        Registration.Unregister();
        Interlocked.Exchange(ref _use, null)?.Dispose();
    }
}
