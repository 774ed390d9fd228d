namespace MLNetGpt.Generation;

/// <summary>
/// Decides when a row is finished: an end-of-sequence token, a stop string in the text (which may
/// span tokens), the row's token limit, or a full context window.
/// </summary>
internal sealed class StopCriteria
{
    private readonly int[] _eos;
    private readonly bool _includeEos;
    private readonly int _contextLength;

    public StopCriteria(DecodingSettings settings, int contextLength)
    {
        _eos = settings.EosTokenIds;
        _includeEos = settings.IncludeEosToken;
        _contextLength = contextLength;
    }

    /// <summary>Ends the row when <paramref name="token"/> is an EOS id (keeping it when asked); returns whether it did.</summary>
    public bool FinishOnEos(Sequence row, int token, float logProbability)
    {
        if (Array.IndexOf(_eos, token) < 0) return false;
        if (_includeEos)
        {
            row.Add(token, logProbability);
            row.EosKept = true;
        }
        row.Finish = FinishReason.Eos;
        return true;
    }

    /// <summary>Checks a row after <paramref name="token"/> was added to it.</summary>
    public void AfterToken(Sequence row, int token)
    {
        bool stopped = row.Text?.Append(token) == true;
        if (row.Constraint is { } constraint)
        {
            row.ConstraintState = constraint.Advance(row.ConstraintState, token);
            // Nothing more can be added: the output is complete.
            if (!stopped && constraint.IsFinal(row.ConstraintState))
            {
                row.Finish = FinishReason.Constraint;
                return;
            }
        }
        if (stopped) row.Finish = FinishReason.StopString;
        else if (row.Generated >= row.Limit || row.Tokens.Count >= _contextLength) row.Finish = FinishReason.Length;
    }
}
