using System.Threading.Tasks.Sources;

namespace MLNetGpt.Generation;

/// <summary>
/// The text pieces of one streaming request, from the scheduler's thread (one writer) to the caller (one reader).
/// A piece is readable as soon as the step that produced it ends; the reader's continuation runs on the thread pool,
/// never on the scheduler's thread, so a slow reader cannot hold up the batch.
/// </summary>
internal sealed class PieceStream : IValueTaskSource<bool>
{
    private readonly object _gate = new();
    private readonly Queue<string> _pieces = new();
    private ManualResetValueTaskSourceCore<bool> _signal = new() { RunContinuationsAsynchronously = true };
    private bool _waiting;
    private bool _ended;
    private Exception? _error;

    /// <summary>Adds a piece (scheduler thread).</summary>
    public void Write(string piece)
    {
        lock (_gate)
        {
            if (_ended) return;
            _pieces.Enqueue(piece);
            Wake(true);
        }
    }

    /// <summary>Ends the stream after the pieces already written (scheduler thread).</summary>
    public void Complete()
    {
        lock (_gate)
        {
            if (_ended) return;
            _ended = true;
            Wake(false);
        }
    }

    /// <summary>Ends the stream with an error, which the reader sees after the pieces already written.</summary>
    public void Fail(Exception error)
    {
        lock (_gate)
        {
            if (_ended) return;
            _ended = true;
            _error = error;
            Wake(true);     // the reader's next TryRead throws it
        }
    }

    /// <summary>The next piece, if one is waiting.</summary>
    public bool TryRead(out string piece)
    {
        lock (_gate)
        {
            if (_pieces.Count > 0)
            {
                piece = _pieces.Dequeue();
                return true;
            }
            piece = "";
            if (_ended && _error is { } error) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
            return false;
        }
    }

    /// <summary>True when a piece can be read; false when the stream has ended and every piece was read.</summary>
    public ValueTask<bool> WaitToReadAsync()
    {
        lock (_gate)
        {
            if (_pieces.Count > 0 || (_ended && _error is not null)) return new ValueTask<bool>(true);
            if (_ended) return new ValueTask<bool>(false);
            _signal.Reset();
            _waiting = true;
            return new ValueTask<bool>(this, _signal.Version);
        }
    }

    private void Wake(bool value)
    {
        if (!_waiting) return;
        _waiting = false;
        _signal.SetResult(value);
    }

    bool IValueTaskSource<bool>.GetResult(short token) => _signal.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _signal.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _signal.OnCompleted(continuation, state, token, flags);
}
