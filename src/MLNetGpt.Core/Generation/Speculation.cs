namespace MLNetGpt.Generation;

/// <summary>
/// Speculative decoding for small batches. Each step, rows propose the tokens that may follow (by prompt lookup,
/// or from a draft model); one forward pass feeds every row's last token and its proposals, and the loop chooses
/// each position's token exactly as a plain step would (the same controls, the same random draw), keeping proposals
/// only while they equal the chosen token. The rejected positions are then dropped from the cache. So a result never
/// depends on speculation; only the number of forward passes does.
/// </summary>
/// <remarks>
/// How far to speculate is a measured decision: <see cref="StepCostModel"/> learns what a step of n tokens costs on
/// this model and machine (2.8x a one-token step for 11 tokens on the default model, 1.4x on GPT-2 small in fp32,
/// 3.6x in int4), each row's <see cref="SpeculationState"/> learns how often its proposals are accepted, and a step
/// speculates only with the length that maximises the expected tokens per millisecond, which is often none.
/// </remarks>
internal sealed class Speculator
{
    /// <summary>The most rows a speculative step serves: beyond it, a plain step's batch already uses the compute that verification would.</summary>
    public const int MaxRows = 4;

    /// <summary>The most tokens a draft model proposes per step.</summary>
    public const int MaxDraftTokens = GenerationOptions.MaxPromptLookupTokens;

    private readonly DecoderBackend _backend;
    private readonly StepCostModel _costs;
    private readonly DraftModel? _draft;
    private readonly List<int> _start = [];
    private readonly List<int> _available = [];

    public Speculator(DecoderBackend backend, StepCostModel costs, DraftModel? draft, SpeculationCounters counters, Func<bool> exact, int? forcedProposals = null)
    {
        _exact = exact;
        _backend = backend;
        _costs = costs;
        _draft = draft;
        Counters = counters;
        _forced = forcedProposals;
    }

    private readonly int? _forced;
    private readonly Func<bool> _exact;
    private int _declined;
    private int _probeInterval = ProbeInterval;

    /// <summary>Steps that could have speculated but were expected not to pay, before the first probe.</summary>
    public const int ProbeInterval = 16;

    /// <summary>Proposals of a probe.</summary>
    public const int ProbeProposals = 2;

    /// <summary>What speculation did, summed over the engine's loops (tests and benchmarks).</summary>
    public SpeculationCounters Counters { get; }

    /// <summary>Whether the backend can drop rejected positions: host caches without recurrent states (a recurrent state cannot be rolled back).</summary>
    public static bool Supports(DecoderBackend backend) => backend.CanEditRows && backend.Graph.States.All(s => s.Grows);

    /// <summary>What a step costs, for the loop to record its own steps.</summary>
    public StepCostModel Costs => _costs;

    /// <summary>Whether any row of the loop could speculate (its settings ask for prompt lookup, or a draft model is open).</summary>
    public bool Wanted(Sequence row) => _draft is not null || row.Settings.PromptLookupNumTokens > 0;

    /// <summary>
    /// Every row's proposals for the next step (an empty array for a row that feeds only its last token) and the
    /// step's length, or null when a plain one-token step is expected to be faster.
    /// </summary>
    public SpeculationPlan? Propose(IReadOnlyList<Sequence> rows, Microsoft.ML.OnnxRuntime.RunOptions runOptions, CancellationToken cancellationToken)
    {
        int batch = rows.Count;
        if (batch == 0 || batch > MaxRows || (_backend.Graph.PrefillRowByRow && batch > 1)) return null;
        // Checked once per model, the first time a row could speculate.
        if (!_exact()) return null;
        _start.Clear();
        _available.Clear();
        int most = 0;
        foreach (var row in rows)
        {
            int available = 0, start = -1;
            if (!row.Done && Wanted(row))
            {
                // Room: the proposals and the token after them must fit the row's limit and its context.
                int room = Math.Min(row.Limit - row.Generated - 1, row.ContextLimit - row.Tokens.Count);
                if (_draft is not null)
                {
                    available = Math.Clamp(Math.Min(room, _draft.ContextLength - row.Tokens.Count - 1), 0, MaxDraftTokens);
                }
                else if (room > 0)
                {
                    available = PromptLookup.Find(row.Tokens, Math.Min(room, row.Settings.PromptLookupNumTokens), out start);
                }
                if (available > 0) (row.Speculation ??= new SpeculationState(_costs.AcceptancePrior(_draft is not null))).Decay();
            }
            _available.Add(available);
            _start.Add(start);
            most = Math.Max(most, available);
        }
        if (most == 0) return null;

        // The step length with the most expected tokens per unit of time; 1 is a plain step.
        int bestLength = _forced is int forced ? Math.Min(forced, most) + 1 : BestLength(rows, batch, most);
        if (_forced is null)
        {
            // A short probe now and then keeps the estimates alive: without one, a pessimistic start would never
            // measure what a longer step costs or how often proposals are accepted.
            // Probes that change no decision come ever more rarely (16, 32, ... 256 declined steps apart).
            if (bestLength > 1)
            {
                _declined = 0;
                _probeInterval = ProbeInterval;
            }
            else if (++_declined >= _probeInterval)
            {
                _declined = 0;
                _probeInterval = Math.Min(2 * _probeInterval, 16 * ProbeInterval);
                bestLength = Math.Min(ProbeProposals, most) + 1;
            }
        }
        if (bestLength == 1) return null;

        var proposals = new int[batch][];
        int longest = ProposeRows(rows, batch, bestLength, proposals, runOptions, cancellationToken);
        return longest == 0 ? null : new SpeculationPlan(proposals, longest + 1);
    }

    /// <summary>The step length with the most expected tokens per unit of time (1: a plain step is best).</summary>
    private int BestLength(IReadOnlyList<Sequence> rows, int batch, int most)
    {
        var candidates = new (double Rate, int Available)[batch];
        for (int r = 0; r < batch; r++)
            candidates[r] = (_available[r] > 0 ? rows[r].Speculation!.AcceptanceRate : 0, _available[r]);
        return ChooseLength(candidates, _costs.Predict, _draft?.PassMilliseconds(_costs) ?? 0);
    }

    /// <summary>
    /// The step length (1 + proposals) that maximises expected tokens per unit of time, for rows that may propose up to
    /// <c>Available</c> tokens each accepted with probability <c>Rate</c>, when a step feeding n tokens costs
    /// <paramref name="predict"/>(n) and each drafted token costs <paramref name="draftPass"/> per drafting row.
    /// </summary>
    public static int ChooseLength(IReadOnlyList<(double Rate, int Available)> rows, Func<int, double> predict, double draftPass)
    {
        int batch = rows.Count, most = rows.Max(r => r.Available);
        int bestLength = 1;
        double bestRate = batch / predict(batch);
        for (int length = 2; length <= most + 1; length++)
        {
            double expected = 0;
            int drafting = 0;
            foreach (var (rate, available) in rows)
            {
                int k = Math.Min(length - 1, available);
                expected += k == 0 ? 1 : ExpectedTokens(rate, k);
                if (k > 0) drafting++;
            }
            double time = predict(batch * length) + draftPass * drafting * (length - 1);
            if (expected / time > bestRate)
            {
                bestRate = expected / time;
                bestLength = length;
            }
        }
        return bestLength;
    }

    private int ProposeRows(IReadOnlyList<Sequence> rows, int batch, int bestLength, int[][] proposals, Microsoft.ML.OnnxRuntime.RunOptions runOptions,
        CancellationToken cancellationToken)
    {
        int longest = 0;
        for (int r = 0; r < batch; r++)
        {
            int k = Math.Min(bestLength - 1, _available[r]);
            if (k == 0)
            {
                proposals[r] = [];
                continue;
            }
            proposals[r] = _draft is not null
                ? _draft.Propose(rows[r], k, _costs, runOptions, cancellationToken)
                : rows[r].Tokens.GetRange(_start[r], k).ToArray();
            longest = Math.Max(longest, proposals[r].Length);
        }
        return longest;
    }

    /// <summary>Records what verification kept of a row's proposals, and rolls the draft model's cache back to it.</summary>
    public void Settle(Sequence row, int proposed, int accepted)
    {
        if (proposed == 0) return;
        Counters.Add(proposed, accepted);
        // Proposals are tried in order until the first rejection.
        int tried = accepted + (accepted < proposed ? 1 : 0);
        row.Speculation!.Observe(tried, accepted);
        _costs.ObserveAcceptance(_draft is not null, tried, accepted);
        _draft?.Settle(row, proposed, accepted);
    }

    /// <summary>Tokens a step yields when each of <paramref name="k"/> proposals is accepted with probability <paramref name="rate"/> until the first rejection, plus the token chosen after them.</summary>
    public static double ExpectedTokens(double rate, int k)
    {
        if (rate >= 1) return k + 1;
        return (1 - Math.Pow(rate, k + 1)) / (1 - rate);
    }
}

/// <summary>Proposals made and accepted, summed over an engine's loops (tests and benchmarks).</summary>
internal sealed class SpeculationCounters
{
    private long _verified, _proposed, _accepted;

    /// <summary>Rows verified: one per row and speculative step.</summary>
    public long Verified => Interlocked.Read(ref _verified);

    public long Proposed => Interlocked.Read(ref _proposed);

    public long Accepted => Interlocked.Read(ref _accepted);

    public void Add(int proposed, int accepted)
    {
        Interlocked.Increment(ref _verified);
        Interlocked.Add(ref _proposed, proposed);
        Interlocked.Add(ref _accepted, accepted);
    }
}

/// <summary>One speculative step: every row's proposals, and the step's length (1 + the longest proposal).</summary>
internal sealed record SpeculationPlan(int[][] Proposals, int Length);

/// <summary>
/// A row's speculation record: how often its proposals were accepted (decayed counts, drifting back to the engine's
/// recent acceptance rate while the row does not speculate), and the draft model's cache for the row.
/// </summary>
internal sealed class SpeculationState(double priorRate) : IDisposable
{
    private const double PriorTried = 2, Forget = 0.95;
    private readonly double _priorAccepted = PriorTried * priorRate;
    private double _tried, _accepted;

    /// <summary>The estimated chance that a proposal is accepted, given the ones before it were.</summary>
    public double AcceptanceRate => (_priorAccepted + _accepted) / (PriorTried + _tried);

    /// <summary>The draft model's state for this row (null without a draft model, or before its first proposal).</summary>
    public DraftRow? Draft { get; set; }

    /// <summary>Proposals tried and accepted over the row's life (benchmarks).</summary>
    public int TotalProposed { get; private set; }

    public int TotalAccepted { get; private set; }

    public void Observe(int tried, int accepted)
    {
        _tried += tried;
        _accepted += accepted;
        TotalProposed += tried;
        TotalAccepted += accepted;
    }

    /// <summary>Ages the evidence by one step.</summary>
    public void Decay()
    {
        _tried *= Forget;
        _accepted *= Forget;
    }

    public void Dispose()
    {
        Draft?.Dispose();
        Draft = null;
    }
}

/// <summary>
/// Prompt lookup (Hugging Face's <c>prompt_lookup_num_tokens</c>): the tokens that followed the most recent earlier
/// occurrence of the sequence's last n tokens (n = 3, then 2, then 1) in the prompt and the output.
/// </summary>
internal static class PromptLookup
{
    public const int MaxNgram = 3;

    /// <summary>How many tokens (at most <paramref name="max"/>) can be proposed, and where they start in <paramref name="tokens"/>; 0 when nothing matches.</summary>
    public static int Find(List<int> tokens, int max, out int start)
    {
        start = -1;
        if (max <= 0) return 0;
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens);
        for (int n = Math.Min(MaxNgram, span.Length - 1); n >= 1; n--)
        {
            var suffix = span[^n..];
            // The most recent occurrence that has at least one token after it.
            for (int i = span.Length - n - 1; i >= 0; i--)
            {
                if (!span.Slice(i, n).SequenceEqual(suffix)) continue;
                start = i + n;
                return Math.Min(max, span.Length - start);
            }
        }
        return 0;
    }
}

/// <summary>
/// What a forward step costs on this model and machine as a function of the tokens it feeds (rows x length), learnt
/// from the steps the engine runs: a least-squares line over recent steps, older ones weighing less. Until steps of
/// different sizes have been seen, an extra token is assumed to cost a fifth of a one-token step.
/// </summary>
/// <remarks>Thread-safe: the loops of one engine share it.</remarks>
internal sealed class StepCostModel
{
    private const double Forget = 0.99;
    private const double PriorSlope = 0.2;
    private readonly object _gate = new();
    private double _s0, _s1, _s2, _t0, _t1;
    private double _draftPass = double.NaN;
    private (double Tried, double Accepted) _lookupAcceptance, _draftAcceptance;

    /// <summary>Records a step of <paramref name="tokens"/> tokens that took <paramref name="milliseconds"/>.</summary>
    public void Add(int tokens, double milliseconds)
    {
        lock (_gate)
        {
            // A step that other work on the machine delayed says little about the model: clip it.
            if (_s0 > 0.5) milliseconds = Math.Min(milliseconds, 3 * PredictCore(tokens));
            _s0 = _s0 * Forget + 1;
            _s1 = _s1 * Forget + tokens;
            _s2 = _s2 * Forget + (double)tokens * tokens;
            _t0 = _t0 * Forget + milliseconds;
            _t1 = _t1 * Forget + tokens * milliseconds;
        }
    }

    /// <summary>The expected duration of a step of <paramref name="tokens"/> tokens (in milliseconds, or in units of a one-token step before any was measured).</summary>
    public double Predict(int tokens)
    {
        lock (_gate) return PredictCore(tokens);
    }

    /// <summary>The duration of one draft-model pass for one row, once measured.</summary>
    public double DraftPass
    {
        get
        {
            lock (_gate) return _draftPass;
        }
    }

    /// <summary>
    /// The acceptance rate recent rows saw (decayed over proposals), which a new row starts from: one in two before
    /// anything was proposed. Kept apart for prompt lookup and for the draft model.
    /// </summary>
    public double AcceptancePrior(bool draft)
    {
        lock (_gate)
        {
            var (tried, accepted) = draft ? _draftAcceptance : _lookupAcceptance;
            return (1 + accepted) / (2 + tried);
        }
    }

    /// <summary>Records what verification kept of one row's proposals.</summary>
    public void ObserveAcceptance(bool draft, int tried, int accepted)
    {
        lock (_gate)
        {
            var (t, a) = draft ? _draftAcceptance : _lookupAcceptance;
            var next = (t * 0.98 + tried, a * 0.98 + accepted);
            if (draft) _draftAcceptance = next;
            else _lookupAcceptance = next;
        }
    }

    /// <summary>Records draft-model passes that took <paramref name="milliseconds"/> in all.</summary>
    public void AddDraft(int passes, double milliseconds)
    {
        if (passes <= 0) return;
        lock (_gate)
        {
            double each = milliseconds / passes;
            _draftPass = double.IsNaN(_draftPass) ? each : 0.9 * _draftPass + 0.1 * Math.Min(each, 3 * _draftPass);
        }
    }

    private double PredictCore(int tokens)
    {
        if (_s0 <= 0) return 1 + PriorSlope * (tokens - 1);
        double meanTokens = _s1 / _s0, meanTime = _t0 / _s0;
        double variance = _s2 / _s0 - meanTokens * meanTokens;
        double slope;
        if (variance > 0.25)
        {
            slope = (_t1 / _s0 - meanTokens * meanTime) / variance;
        }
        else
        {
            // One step size seen so far: the prior's shape through the measured mean.
            double intercept0 = meanTime / (1 + PriorSlope * meanTokens);
            slope = PriorSlope * intercept0;
        }
        slope = Math.Max(0, slope);
        double intercept = meanTime - slope * meanTokens;
        if (intercept < 0.05 * meanTime)
        {
            intercept = 0.05 * meanTime;
            slope = (meanTime - intercept) / meanTokens;
        }
        return intercept + slope * tokens;
    }
}

/// <summary>
/// Whether a verification pass computes each position as a one-token step does on this model: feeds the same 4 tokens
/// after a 6-token prefix once in one pass and once one at a time, and compares the logits. Float32 kernels differ by
/// rounding only (2e-7 to 5e-7 of a position's logit range on every fixture, the default model and GPT-2 small);
/// ONNX Runtime's MatMulNBits with int8 dot products (GptQuantizer's accuracy level 4) quantizes activations so that
/// one row and several differ by about 1e-2 (8e-3 on GPT-2 small in int4 and int8; batching changes seeded results
/// there too). Beyond <see cref="Tolerance"/> a proposal could be accepted where plain decoding would choose another
/// token, so speculation stays off on such a model.
/// </summary>
internal static class SpeculationProbe
{
    public static bool IsExact(DecoderBackend backend, GptModelInfo info) => Difference(backend, info) <= Tolerance;

    /// <summary>The largest difference allowed, relative to the range of a position's logits: float32 rounding of differently shaped products.</summary>
    public const double Tolerance = 1e-5;

    /// <summary>The largest difference between a verification pass's logits and one-token steps', relative to the logits' range at that position.</summary>
    public static double Difference(DecoderBackend backend, GptModelInfo info)
    {
        int usable = Math.Min(info.TokenizerIdCount ?? info.VocabularySize, info.VocabularySize);
        var ids = Enumerable.Range(0, 10).Select(i => (int)((i * 7919L + 17) % usable)).ToArray();
        using var runOptions = new Microsoft.ML.OnnxRuntime.RunOptions();
        var headMask = new ColumnMask(32, backend.Graph.Padding);
        var (first, head) = StepRunner.Extend(backend, runOptions, backend.EmptyCache(1), [headMask], [ids[..6]], [0], info.PadTokenId,
            lastLogitsOnly: true, CancellationToken.None, out _);
        first.Dispose();
        IKvCache? together = null, apart = null;
        LogitsBuffer? all = null;
        double worst = 0;
        try
        {
            var mask = headMask.Clone();
            (all, together) = StepRunner.Extend(backend, runOptions, backend.KeepRows(head, [0], head.Width), [mask], [ids[6..]], [6], info.PadTokenId,
                lastLogitsOnly: false, CancellationToken.None, out _);
            var expected = new float[info.VocabularySize];
            var actual = new float[info.VocabularySize];
            mask = headMask.Clone();
            apart = backend.KeepRows(head, [0], head.Width);
            for (int i = 0; i < 4; i++)
            {
                var (one, next) = StepRunner.Extend(backend, runOptions, apart, [mask], [ids[(6 + i)..(7 + i)]], [6 + i], info.PadTokenId,
                    lastLogitsOnly: true, CancellationToken.None, out _);
                apart = next;
                using (one) one.Read(0, one.Length - 1, expected);
                all.Read(0, all.Length - 4 + i, actual);
                float low = float.PositiveInfinity, high = float.NegativeInfinity, largest = 0;
                for (int v = 0; v < usable; v++)
                {
                    low = Math.Min(low, expected[v]);
                    high = Math.Max(high, expected[v]);
                    largest = Math.Max(largest, Math.Abs(expected[v] - actual[v]));
                }
                worst = Math.Max(worst, largest / Math.Max(high - low, 1e-20));
            }
            return worst;
        }
        finally
        {
            all?.Dispose();
            together?.Dispose();
            apart?.Dispose();
            head.Dispose();
        }
    }
}
