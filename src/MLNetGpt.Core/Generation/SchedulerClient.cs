namespace MLNetGpt.Generation;

/// <summary>
/// A caller that feeds the shared scheduler from a pull source and takes each result as it comes: the ML.NET
/// stage's cursors and prediction engines. It keeps at most <c>inFlight</c> of its prompts queued or running, pulls
/// more only as results come back (so the source is read as lazily as with a loop of its own), and reports each
/// result under the index its source gave the prompt.
/// </summary>
/// <remarks>Not thread-safe: one per cursor. Disposing it cancels its requests still in the scheduler.</remarks>
internal sealed class SchedulerClient : IDisposable
{
    private readonly GenerationEngine _engine;
    private readonly DecodingSettings _settings;
    private readonly int _inFlight;
    private readonly IDisposable _session;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(int Index, GenerationRequest Request)> _running = [];
    private bool _ended;

    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public SchedulerClient(GenerationEngine engine, DecodingSettings settings, int inFlight)
    {
        if (inFlight < 1) throw new ArgumentOutOfRangeException(nameof(inFlight), inFlight, "The batch size must be 1 or more.");
        _engine = engine;
        _settings = settings;
        _inFlight = inFlight;
        // Held for the client's life, so its later requests may still be submitted if the model is disposed meanwhile.
        _session = engine.Use();
    }

    /// <summary>
    /// Submits what the source gives (up to the in-flight bound), waits until at least one of the client's requests has
    /// a result, and reports every result that has one. Returns false when the source is exhausted and every result was
    /// reported.
    /// </summary>
    /// <exception cref="InvalidOperationException">The source has no row ready while nothing is in flight (the consumer asked for a row it never let be read).</exception>
    public bool Step(DecodeLoop.Admit admit, Action<int, GenerationResult> report, CancellationToken cancellationToken)
    {
        var batch = new List<PreparedPrompt>();
        while (!_ended && _running.Count + batch.Count < _inFlight)
        {
            var kind = admit(out var prompt);
            if (kind == AdmitKind.Prompt)
            {
                batch.Add(prompt);
                continue;
            }
            if (kind == AdmitKind.End) _ended = true;
            break;
        }
        if (batch.Count > 0)
        {
            var requests = _engine.Scheduler.Submit(batch, _settings, stream: false, waitForRoom: true, _engine.AnotherUse, _stop.Token);
            for (int i = 0; i < requests.Length; i++) _running.Add((batch[i].Index, requests[i]));
        }
        if (_running.Count == 0)
        {
            if (_ended) return false;
            throw new InvalidOperationException("GenerateTokens: the cursor asked for a row that was never admitted.");
        }
        if (!_running.Exists(r => r.Request.Task.IsCompleted))
            Task.WaitAny(_running.Select(r => (Task)r.Request.Task).ToArray(), cancellationToken);
        for (int i = 0; i < _running.Count; i++)
        {
            var (index, request) = _running[i];
            if (!request.Task.IsCompleted) continue;
            _running.RemoveAt(i--);
            report(index, request.Task.GetAwaiter().GetResult());
        }
        return true;
    }

    public void Dispose()
    {
        // The token stays undisposed: requests that were cancelled unregister from it when the scheduler ends them.
        if (_running.Count > 0) _stop.Cancel();
        _session.Dispose();
    }
}
