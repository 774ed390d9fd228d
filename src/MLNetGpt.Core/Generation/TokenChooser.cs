namespace MLNetGpt.Generation;

/// <summary>
/// Applies the decoding controls to one row of logits and picks the next token, in Hugging Face's
/// order: repetition penalty, no-repeat n-gram, min-new-tokens EOS suppression; then, when sampling,
/// temperature, top-k, top-p, min-p and typical-p before the draw. Holds scratch buffers: one per thread. The
/// controls come with each call, so rows with different settings share one chooser.
/// </summary>
internal sealed class TokenChooser
{
    private readonly float[] _raw;
    private readonly float[] _selection;
    private readonly HashSet<int> _seen = [];
    private int[]? _order;
    private float[]? _keys;
    private float[]? _constrained;
    private readonly int _usable;

    /// <param name="vocabulary">Logits per position.</param>
    /// <param name="usableIds">Ids the tokenizer knows; logits beyond them (a padded vocabulary) are never chosen.</param>
    public TokenChooser(int vocabulary, int? usableIds = null)
    {
        _usable = Math.Min(usableIds ?? vocabulary, vocabulary);
        _raw = new float[vocabulary];
        _selection = new float[vocabulary];
    }

    /// <summary>
    /// Picks the next token from <paramref name="scores"/> (modified in place) under the controls <paramref name="s"/>. <paramref name="history"/>
    /// holds prompt and generated tokens; <paramref name="generated"/> how many of them were generated.
    /// Returns the token and, when asked for, its raw log-probability.
    /// </summary>
    public (int Token, float LogProbability) Choose(DecodingSettings s, Span<float> scores, ReadOnlySpan<int> history, int generated, SequenceRandom random,
        Constraints.TokenSet? allowed = null)
    {
        float rawLogSumExp = s.LogProbabilities ? LogSumExp(scores) : 0f;
        float[]? raw = null;
        if (s.LogProbabilities && !s.IsPlainGreedy)
        {
            raw = _raw;               // the raw scores, for the chosen token's log-probability
            scores.CopyTo(raw);
        }

        if (_usable < scores.Length) scores[_usable..].Fill(float.NegativeInfinity);
        // The output constraint goes first, as a logits processor ahead of every other control.
        allowed?.Apply(scores);
        float[]? constrained = null;
        if (allowed is not null && !s.IsPlainGreedy)
        {
            constrained = _constrained ??= new float[scores.Length];
            scores.CopyTo(constrained);
        }

        int token;
        if (s.IsPlainGreedy)
        {
            token = LogitsProcessors.ArgMax(scores);
        }
        else
        {
            LogitsProcessors.ApplyRepetitionPenalty(scores, history, s.RepetitionPenalty, _seen);
            LogitsProcessors.ApplyNoRepeatNgram(scores, history, s.NoRepeatNgramSize);
            if (generated < s.MinNewTokens) LogitsProcessors.SuppressEos(scores, s.EosTokenIds);
            if (!s.Sample)
            {
                token = LogitsProcessors.ArgMax(scores);
            }
            else
            {
                LogitsProcessors.ApplyTemperature(scores, s.Temperature);
                LogitsProcessors.ApplyTopK(scores, s.TopK, _selection, s.MinTokensToKeep);
                LogitsProcessors.ApplyTopP(scores, s.TopP, ref _order, ref _keys, s.MinTokensToKeep);
                LogitsProcessors.ApplyMinP(scores, s.MinP, _selection, s.MinTokensToKeep);
                LogitsProcessors.ApplyTypicalP(scores, s.Options.TypicalP!.Value, ref _order, ref _keys, s.MinTokensToKeep);
                token = LogitsProcessors.Sample(scores, random.NextDouble());
            }
        }

        // Penalties or n-gram bans may remove every token the constraint allows: the constraint wins,
        // and the most likely allowed token is taken.
        if (constrained is not null && float.IsNegativeInfinity(scores[token])) token = LogitsProcessors.ArgMax(constrained);

        float logProbability = 0f;
        if (s.LogProbabilities) logProbability = (raw is null ? scores[token] : raw[token]) - rawLogSumExp;
        return (token, logProbability);
    }

    private static float LogSumExp(ReadOnlySpan<float> scores)
    {
        float max = float.NegativeInfinity;
        foreach (float v in scores) if (v > max) max = v;
        double total = 0;
        foreach (float v in scores) total += Math.Exp(v - max);
        return (float)(max + Math.Log(total));
    }
}
