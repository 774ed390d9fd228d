using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tokenization;

namespace MLNetGpt.Generation;

/// <summary>A tokenized prompt ready for the loop; <c>Index</c> identifies it in the results.</summary>
internal readonly record struct PreparedPrompt(int Index, int[] Ids, bool Truncated);

/// <summary>
/// The batched decode loop. Prompts are pulled lazily; up to <c>maxBatchSize</c> run together,
/// left-padded, with one key/value cache. Every row finishes on its own (EOS, stop string, length
/// or a full context window) and is reported at once. With <c>continuous</c> batching a finished
/// row's slot is refilled from the waiting prompts at the next step; otherwise a new batch starts
/// when the current one has drained. Where the backend can edit cache rows, finished rows leave
/// the batch (and the cache is trimmed to the longest remaining row).
/// </summary>
internal sealed class DecodeLoop
{
    // Logits of a prefill chunk are at most this many floats (128 MB); longer prompts prefill in chunks.
    private const long PrefillLogitsBudget = 32L << 20;

    private readonly DecoderBackend _backend;
    private readonly Tokenizer _tokenizer;
    private readonly GptModelInfo _info;

    public DecodeLoop(DecoderBackend backend, Tokenizer tokenizer, GptModelInfo info)
    {
        _backend = backend;
        _tokenizer = tokenizer;
        _info = info;
    }

    /// <summary>Number of forward steps (ONNX Runtime runs) of the last call; for tests and benchmarks.</summary>
    public int Steps { get; private set; }

    public void Run(IEnumerator<PreparedPrompt> prompts, DecodingSettings settings, int maxBatchSize, bool continuous,
        Action<int, GenerationResult> onFinished, Action<int, string>? onText, CancellationToken cancellationToken)
    {
        if (maxBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(maxBatchSize), maxBatchSize, "The batch size must be 1 or more.");
        continuous &= _backend.CanEditRows;
        int vocabulary = _info.VocabularySize;
        var chooser = new TokenChooser(settings, vocabulary);
        var row = new float[vocabulary];
        var active = new List<Sequence>();
        IKvCache? cache = null;
        bool exhausted = false;
        Steps = 0;

        using var runOptions = new RunOptions();
        using var registration = cancellationToken.Register(() => runOptions.Terminate = true);
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (!exhausted && active.Count < maxBatchSize && (continuous || active.Count == 0))
                {
                    var admitted = new List<PreparedPrompt>();
                    while (active.Count + admitted.Count < maxBatchSize)
                    {
                        if (!prompts.MoveNext())
                        {
                            exhausted = true;
                            break;
                        }
                        admitted.Add(prompts.Current);
                    }
                    if (admitted.Count > 0)
                    {
                        var (newRows, newCache) = Prefill(admitted, settings, chooser, row, runOptions, onText, cancellationToken);
                        if (cache is null)
                        {
                            cache = newCache;
                        }
                        else
                        {
                            var joined = _backend.Concat(cache, newCache);
                            cache.Dispose();
                            newCache.Dispose();
                            cache = joined;
                        }
                        active.AddRange(newRows);
                        cache = Retire(active, cache, settings, onFinished, onText);
                    }
                }
                if (active.Count == 0)
                {
                    if (exhausted) break;
                    continue;
                }
                if (active.All(s => s.Done))
                {
                    // A static batch on a backend that cannot drop rows has drained.
                    active.Clear();
                    cache?.Dispose();
                    cache = null;
                    continue;
                }

                var (logits, present) = DecodeStep(active, cache!, runOptions, cancellationToken);
                cache!.Dispose();
                cache = present;
                using (logits)
                {
                    for (int r = 0; r < active.Count; r++)
                    {
                        var sequence = active[r];
                        if (sequence.Done) continue;
                        sequence.Cached++;
                        logits.Read(r, 0, row);
                        Advance(sequence, row, settings, chooser, onText);
                    }
                }
                cache = Retire(active, cache, settings, onFinished, onText);
            }
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
        finally
        {
            cache?.Dispose();
        }
    }

    private (List<Sequence>, IKvCache) Prefill(List<PreparedPrompt> prompts, DecodingSettings settings, TokenChooser chooser,
        float[] row, RunOptions runOptions, Action<int, string>? onText, CancellationToken cancellationToken)
    {
        int batch = prompts.Count;
        int width = prompts.Max(p => p.Ids.Length);
        int chunk = (int)Math.Clamp(PrefillLogitsBudget / ((long)batch * _info.VocabularySize), 1, width);
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
                var (logits, present) = _backend.Step(new StepInput(ids, batch, length, mask, positions), cache, runOptions);
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
                    var sequence = new Sequence(p, settings, _tokenizer, onText is not null);
                    sequence.Cached = p.Ids.Length;
                    last!.Read(r, last.Length - 1, row);
                    Advance(sequence, row, settings, chooser, onText);
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
        var result = _backend.Step(new StepInput(ids, batch, 1, mask, positions), cache, runOptions);
        Steps++;
        return result;
    }

    /// <summary>Chooses the next token of a sequence from its logits row and decides whether it is finished.</summary>
    private void Advance(Sequence s, float[] row, DecodingSettings settings, TokenChooser chooser, Action<int, string>? onText)
    {
        var history = settings.NeedsHistory ? System.Runtime.InteropServices.CollectionsMarshal.AsSpan(s.Tokens) : default;
        var (token, logProbability) = chooser.Choose(row, history, s.Generated, s.Random);
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
    private IKvCache Retire(List<Sequence> active, IKvCache cache, DecodingSettings settings,
        Action<int, GenerationResult> onFinished, Action<int, string>? onText)
    {
        bool anyFinished = false;
        foreach (var s in active)
        {
            if (s.Finish is null || s.Reported) continue;
            if (onText is not null) Emit(s, settings, onText, final: true);
            onFinished(s.Prompt.Index, s.ToResult(_tokenizer));
            s.Reported = true;
            anyFinished = true;
        }
        if (!anyFinished || !_backend.CanEditRows) return cache;

        var keep = new List<int>();
        for (int r = 0; r < active.Count; r++)
            if (!active[r].Done) keep.Add(r);
        if (keep.Count == active.Count) return cache;
        int width = keep.Count == 0 ? 0 : keep.Max(r => active[r].Cached);
        var kept = _backend.KeepRows(cache, keep.ToArray(), width);
        cache.Dispose();
        var remaining = keep.Select(r => active[r]).ToList();
        active.Clear();
        active.AddRange(remaining);
        return kept;
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
