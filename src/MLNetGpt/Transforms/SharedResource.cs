namespace MLNetGpt.Transforms;

/// <summary>
/// A disposable resource that a transformer holds and that cursors and predictions borrow while
/// they run (the same ownership rule as <see cref="ModelHandle"/>): it is disposed only when the
/// holder has let go and no borrow is running, and it is created again by the next borrow.
/// </summary>
internal sealed class SharedResource<T>(Func<T> create) : IDisposable where T : class, IDisposable
{
    private readonly object _gate = new();
    private T? _value;
    private int _borrows;
    private bool _held;

    /// <summary>Whether the resource exists now (tests).</summary>
    internal bool IsOpen
    {
        get
        {
            lock (_gate) return _value is not null;
        }
    }

    /// <summary>Creates the resource now (so errors surface when the stage is made) and holds it.</summary>
    public void Hold()
    {
        lock (_gate)
        {
            _value ??= create();
            _held = true;
        }
    }

    /// <summary>The resource for one run; dispose the returned borrow when done.</summary>
    public Borrowed Borrow()
    {
        lock (_gate)
        {
            _value ??= create();
            _held = true;
            _borrows++;
            return new Borrowed(this, _value);
        }
    }

    /// <summary>Lets go of the holder's claim; the resource goes once the last borrow ends.</summary>
    public void Dispose()
    {
        T? free = null;
        lock (_gate)
        {
            _held = false;
            if (_borrows == 0)
            {
                free = _value;
                _value = null;
            }
        }
        free?.Dispose();
    }

    private void Return()
    {
        T? free = null;
        lock (_gate)
        {
            if (--_borrows == 0 && !_held)
            {
                free = _value;
                _value = null;
            }
        }
        free?.Dispose();
    }

    /// <summary>One borrow of the resource.</summary>
    internal sealed class Borrowed(SharedResource<T> owner, T value) : IDisposable
    {
        private int _returned;

        public T Value { get; } = value;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _returned, 1) == 0) owner.Return();
        }
    }
}
