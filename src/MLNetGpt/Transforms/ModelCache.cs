namespace MLNetGpt.Transforms;

/// <summary>
/// One open <see cref="GptModel"/> per (folder, device, threads, variant, draft model), shared by every stage that uses
/// it: the model is thread-safe and its sessions are large. Each <see cref="ModelLease"/> counts as
/// one reference; the model is disposed when the last reference is released.
/// </summary>
internal static class ModelCache
{
    private static readonly Dictionary<string, (GptModel Model, int References)> Models = new(StringComparer.Ordinal);
    private static readonly object Gate = new();

    public static ModelLease Acquire(string folder, GptDevice device, int? threads, string? variant, string? draftFolder, Action<string> log)
    {
        string key = $"{folder}|{device}|{device.FallbackToCpu}|{threads}|{variant}|{draftFolder}";
        lock (Gate)
        {
            if (Models.TryGetValue(key, out var entry))
            {
                Models[key] = (entry.Model, entry.References + 1);
                return new ModelLease(key, entry.Model);
            }
            var model = GptModel.Open(folder, new GptModelOptions
            {
                GpuDeviceId = device.GpuDeviceId,
                FallbackToCpu = device.FallbackToCpu,
                IntraOpThreads = threads,
                Variant = variant,
                DraftModelFolder = draftFolder,
                Log = log,
            });
            Models[key] = (model, 1);
            return new ModelLease(key, model);
        }
    }

    /// <summary>Open models and their reference counts (tests).</summary>
    internal static int References(string folder)
    {
        lock (Gate) return Models.Where(kv => kv.Key.StartsWith(folder + "|", StringComparison.Ordinal)).Sum(kv => kv.Value.References);
    }

    internal static void Release(string key)
    {
        lock (Gate)
        {
            if (!Models.TryGetValue(key, out var entry)) return;
            if (entry.References > 1)
            {
                Models[key] = (entry.Model, entry.References - 1);
                return;
            }
            Models.Remove(key);
            // Safe while other threads still run on it: the model frees its sessions when their calls return.
            entry.Model.Dispose();
        }
    }
}

/// <summary>One reference to a cached model; disposing it releases the reference (once).</summary>
internal sealed class ModelLease(string key, GptModel model) : IDisposable
{
    private int _released;

    public GptModel Model { get; } = model;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0) ModelCache.Release(key);
    }
}

/// <summary>
/// A transformer's hold on its model. The transformer owns one reference for its lifetime; cursors
/// and prediction engines borrow their own reference for as long as they run, so disposing a
/// borrower never frees what the owner or another borrower uses. ML.NET's PredictionEngine disposes
/// the transformer it was made from, even while other engines of the same transformer are in use:
/// so a disposed handle is not dead, it only gave up its hold, and the next borrow takes it again
/// (reopening the model if nothing else kept it open).
/// </summary>
internal sealed class ModelHandle : IDisposable
{
    private readonly string _folder;
    private readonly GptDevice _device;
    private readonly int? _threads;
    private readonly string? _variant;
    private readonly string? _draftFolder;
    private readonly Action<string> _log;
    private readonly object _gate = new();
    private ModelLease? _held;

    /// <summary>Opens (or shares) the model now, so a bad folder fails when the stage is created.</summary>
    public ModelHandle(string folder, GptDevice device, int? threads, string? variant, string? draftFolder, Action<string> log)
    {
        _draftFolder = draftFolder;
        _folder = folder;
        _device = device;
        _threads = threads;
        _variant = variant;
        _log = log;
        _held = ModelCache.Acquire(folder, device, threads, variant, draftFolder, log);
    }

    /// <summary>The model the handle holds (taking the hold again after <see cref="Dispose"/>).</summary>
    public GptModel Model
    {
        get
        {
            lock (_gate) return (_held ??= ModelCache.Acquire(_folder, _device, _threads, _variant, _draftFolder, _log)).Model;
        }
    }

    /// <summary>A reference of the caller's own, for one cursor or one prediction; dispose it when done.</summary>
    public ModelLease Borrow()
    {
        lock (_gate)
        {
            _held ??= ModelCache.Acquire(_folder, _device, _threads, _variant, _draftFolder, _log);
            return ModelCache.Acquire(_folder, _device, _threads, _variant, _draftFolder, _log);
        }
    }

    /// <summary>Gives up the transformer's own reference; borrowers keep theirs.</summary>
    public void Dispose()
    {
        ModelLease? held;
        lock (_gate)
        {
            held = _held;
            _held = null;
        }
        held?.Dispose();
    }
}
