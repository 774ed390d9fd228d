using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tokenization;

namespace MLNetGpt.Generation;

/// <summary>A tokenized prompt ready for the loop; <c>Index</c> identifies it in the results.</summary>
internal readonly record struct PreparedPrompt(int Index, int[] Ids, bool Truncated);

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
/// The batched decode loop. Prompts are pulled lazily; up to <c>maxBatchSize</c> run together,
/// left-padded, with one key/value cache. Every row finishes on its own (EOS, stop string, length
/// or a full context window) and is reported at once. With <c>continuous</c> batching a finished
/// row's slot is refilled from the waiting prompts at the next step; otherwise a new batch starts
/// when the current one has drained. Where the backend can edit cache rows, finished rows leave
/// the batch (and the cache is trimmed to the longest remaining row).
/// </summary>
/// <remarks>Not thread-safe: one loop per caller. <see cref="Step"/> lets a cursor drive it row by row.</remarks>
internal sealed class DecodeLoop : IDisposable
{
    // Logits of a prefill chunk are at most this many floats (128 MB); longer prompts prefill in chunks.
    private const long PrefillLogitsBudget = 32L << 20;

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
        _maxBatchSize = maxBatchSize;
        _continuous = continuous && backend.CanEditRows;
        _onFinished = onFinished;
        _onText = onText;
        _chooser = new TokenChooser(settings, info.VocabularySize);
        _row = new float[info.VocabularySize];
    }

    /// <summary>Number of forward steps (ONNX Runtime runs) so far; for tests and benchmarks.</summary>
    public int Steps { get; private set; }

    /// <summary>Rows currently in the batch.</summary>
    public int ActiveRows => _active.Count;

    /// <summary>When set, every forward step's duration is recorded here (benchmarks).</summary>
    public List<(bool Prefill, int Rows, double Milliseconds)>? StepTimings { get; set; }

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
            if (admitted.Count > 0)
            {
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                var (newRows, newCache) = Prefill(admitted, _runOptions, cancellationToken);
                StepTimings?.Add((true, admitted.Count, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds));
                if (_cache is null)
                {
                    _cache = newCache;
                }
                else
                {
                    var joined = _backend.Concat(_cache, newCache);
                    _cache.Dispose();
                    newCache.Dispose();
                    _cache = joined;
                }
                _active.AddRange(newRows);
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
        var (logits, present) = DecodeStep(_active, _cache!, _runOptions, cancellationToken);
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
        _runOptions.Dispose();
    }

    private (List<Sequence>, IKvCache) Prefill(List<PreparedPrompt> prompts, RunOptions runOptions, CancellationToken cancellationToken)
    {
        int batch = prompts.Count;
        int width = prompts.Max(p => p.Ids.Length);
        // A graph that returns only the kept logits prefills in one pass; otherwise every position's
        // logits come back and long prompts go through in chunks to bound that buffer.
        var graph = _backend.Graph;
        int chunk = graph.LogitsToKeep is not null && graph.PrefillHasLogitsToKeep && _backend.HonoursLogitsToKeep ? width
            : (int)Math.Clamp(PrefillLogitsBudget / ((long)batch * _info.VocabularySize), 1, width);
        var cache = _backend.EmptyCache(batch);
        try
        {
            LogitsBuffer? last = null;
            for (int start = 0; start < width; start += chunk)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int length = Math.Min(chunk, width - start);
                var ids = new long[batch * length];
                var positions = new long[batch * length];
                var mask = new long[batch * (start + length)];
                for (int r = 0; r < batch; r++)
                {
                    var prompt = prompts[r].Ids;
                    int pad = width - prompt.Length;
                    for (int c = 0; c < start + length; c++)
                        mask[r * (start + length) + c] = c >= pad ? 1 : 0;
                    for (int c = 0; c < length; c++)
                    {
                        int column = start + c;
                        ids[r * length + c] = column >= pad ? prompt[column - pad] : _info.PadTokenId;
                        positions[r * length + c] = column >= pad ? column - pad : 0;
                    }
                }
                // Only the last position's logits are needed: the next token after the prompt.
                var (logits, present) = _backend.Step(new StepInput(ids, batch, length, mask, positions, LogitsToKeep: 1), cache, runOptions);
                Steps++;
                cache.Dispose();
                cache = present;
                last?.Dispose();
                last = logits;
            }

            var sequences = new List<Sequence>(batch);
            using (last)
            {
                for (int r = 0; r < batch; r++)
                {
                    var p = prompts[r];
                    var sequence = new Sequence(p, _settings, _tokenizer, _onText is not null);
                    sequence.Cached = p.Ids.Length;
                    last!.Read(r, last.Length - 1, _row);
                    Advance(sequence);
                    sequences.Add(sequence);
                }
            }
            return (sequences, cache);
        }
        catch
        {
            cache.Dispose();
            throw;
        }
    }

    private (LogitsBuffer, IKvCache) DecodeStep(List<Sequence> active, IKvCache cache, RunOptions runOptions, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        int batch = active.Count, width = cache.Width + 1;
        var ids = new long[batch];
        var positions = new long[batch];
        var mask = new long[batch * width];
        for (int r = 0; r < batch; r++)
        {
            var s = active[r];
            if (s.Done)
            {
                // A finished row kept only because the backend cannot drop rows: feed padding that
                // attends to itself alone, at position 0.
                ids[r] = _info.PadTokenId;
                mask[r * width + width - 1] = 1;
                continue;
            }
            ids[r] = s.Tokens[^1];
            positions[r] = s.Cached;
            for (int c = width - (s.Cached + 1); c < width; c++) mask[r * width + c] = 1;
        }
        var result = _backend.Step(new StepInput(ids, batch, 1, mask, positions, LogitsToKeep: 1), cache, runOptions);
        Steps++;
        return result;
    }

    /// <summary>Chooses the next token of a sequence from its logits row and decides whether it is finished.</summary>
    private void Advance(Sequence s)
    {
        var settings = _settings;
        var onText = _onText;
        var row = _row;
        var history = settings.NeedsHistory ? System.Runtime.InteropServices.CollectionsMarshal.AsSpan(s.Tokens) : default;
        var (token, logProbability) = _chooser.Choose(row, history, s.Generated, s.Random);
        if (Array.IndexOf(settings.EosTokenIds, token) >= 0)
        {
            s.Finish = FinishReason.Eos;
            return;
        }
        s.Tokens.Add(token);
        s.LogProbabilities?.Add(logProbability);
        if (s.Decoder is not null)
        {
            int before = s.Decoder.Text.Length;
            s.Decoder.Append(token);
            if (settings.StopStrings.Length > 0)
            {
                int at = FindStop(s.Decoder.Text, before, settings.StopStrings);
                if (at >= 0)
                {
                    s.Finish = FinishReason.StopString;
                    s.StopAt = at;
                }
            }
            if (onText is not null) Emit(s, settings, onText, final: false);
        }
        if (s.Finish is null && (s.Generated >= settings.MaxNewTokens || s.Tokens.Count >= _info.ContextLength))
            s.Finish = FinishReason.Length;
    }

    /// <summary>Reports finished sequences and, where possible, drops their rows from the batch.</summary>
    private void Retire()
    {
        bool anyFinished = false;
        foreach (var s in _active)
        {
            if (s.Finish is null || s.Reported) continue;
            if (_onText is not null) Emit(s, _settings, _onText, final: true);
            s.Reported = true;
            anyFinished = true;
            _onFinished(s.Prompt.Index, s.ToResult(_tokenizer));
        }
        if (!anyFinished || !_backend.CanEditRows || KeepFinishedRows || _cache is null) return;

        var keep = new List<int>();
        for (int r = 0; r < _active.Count; r++)
            if (!_active[r].Done) keep.Add(r);
        if (keep.Count == _active.Count) return;
        int width = keep.Count == 0 ? 0 : keep.Max(r => _active[r].Cached);
        var kept = _backend.KeepRows(_cache, keep.ToArray(), width);
        _cache.Dispose();
        _cache = keep.Count == 0 ? null : kept;
        if (keep.Count == 0) kept.Dispose();
        var remaining = keep.Select(r => _active[r]).ToList();
        _active.Clear();
        _active.AddRange(remaining);
    }

    private static int FindStop(string text, int previousLength, string[] stops)
    {
        int best = -1;
        foreach (var stop in stops)
        {
            int from = Math.Max(0, previousLength - stop.Length + 1);
            int at = text.IndexOf(stop, from, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best;
    }

    /// <summary>Streams the text that can no longer turn out to be the start of a stop string.</summary>
    private static void Emit(Sequence s, DecodingSettings settings, Action<int, string> onText, bool final)
    {
        if (final && s.Finish != FinishReason.StopString) s.Decoder!.Flush();
        string text = s.Decoder!.Text;
        int limit = s.StopAt >= 0 ? s.StopAt : final ? text.Length : text.Length - HeldForStops(text, settings.StopStrings);
        if (limit > s.Emitted)
        {
            onText(s.Prompt.Index, text[s.Emitted..limit]);
            s.Emitted = limit;
        }
    }

    private static int HeldForStops(string text, string[] stops)
    {
        int held = 0;
        foreach (var stop in stops)
            for (int k = Math.Min(stop.Length - 1, text.Length); k > held; k--)
                if (text.AsSpan(text.Length - k).SequenceEqual(stop.AsSpan(0, k)))
                {
                    held = k;
                    break;
                }
        return held;
    }

    private sealed class Sequence
    {
        public Sequence(PreparedPrompt prompt, DecodingSettings settings, Tokenizer tokenizer, bool streaming)
        {
            Prompt = prompt;
            Tokens = new List<int>(prompt.Ids.Length + settings.MaxNewTokens);
            Tokens.AddRange(prompt.Ids);
            Random = SequenceRandom.ForPrompt(settings.Seed, prompt.Ids);
            if (settings.LogProbabilities) LogProbabilities = [];
            if (streaming || settings.StopStrings.Length > 0) Decoder = new IncrementalDecoder(tokenizer);
        }

        public PreparedPrompt Prompt { get; }
        public List<int> Tokens { get; }
        public int Generated => Tokens.Count - Prompt.Ids.Length;
        public List<float>? LogProbabilities { get; }
        public SequenceRandom Random { get; }
        public IncrementalDecoder? Decoder { get; }
        public int Emitted { get; set; }
        public FinishReason? Finish { get; set; }
        public int StopAt { get; set; } = -1;
        public bool Done => Finish is not null;
        public bool Reported { get; set; }

        /// <summary>Real (unpadded) tokens in the cache for this row.</summary>
        public int Cached { get; set; }

        public GenerationResult ToResult(Tokenizer tokenizer)
        {
            var generated = Tokens.GetRange(Prompt.Ids.Length, Generated).ToArray();
            string text;
            if (Decoder is not null)
            {
                if (StopAt < 0) Decoder.Flush();
                text = StopAt >= 0 ? Decoder.Text[..StopAt] : Decoder.Text;
            }
            else
            {
                text = generated.Length == 0 ? "" : tokenizer.Decode(generated);
            }
            return new GenerationResult(text, generated, Finish!.Value, LogProbabilities?.ToArray(), Prompt.Ids.Length, Prompt.Truncated);
        }
    }
}
