namespace MLNetGpt.Cli.Batch;

/// <summary>
/// What a finished job should tell its user about its answers beyond errors: rows whose result is right by the
/// rules but likely not what was wanted (empty completions, tied labels), counted while the rows are written and
/// reported as warnings at the end, with the option that changes it.
/// </summary>
internal abstract class JobNotes
{
    public long Rows { get; private set; }

    /// <summary>Looks at one written row.</summary>
    public void Observe(RowGetters row)
    {
        Rows++;
        See(row);
    }

    protected abstract void See(RowGetters row);

    /// <summary>The warnings to print, each one line.</summary>
    public abstract IEnumerable<string> Summary();

    /// <summary>Completions that are empty because the model ended them at once.</summary>
    internal sealed class EmptyCompletions(string completion, string finish) : JobNotes
    {
        private long _empty;

        protected override void See(RowGetters row)
        {
            if (row.Text(completion).Length == 0 && row.Text(finish) == "eos") _empty++;
        }

        public override IEnumerable<string> Summary()
        {
            if (_empty > 0)
                yield return $"{_empty} of {Rows} completions are empty: the model ended them at once with its end-of-sequence token " +
                    "(finish_reason eos). --min-new-tokens N makes it write at least N tokens first; sampling (--temperature, or the " +
                    "model's defaults without --greedy) often helps too.";
        }
    }

    /// <summary>Rows where two or more labels tie for the best probability.</summary>
    internal sealed class TiedLabels(string score) : JobNotes
    {
        private long _tied;

        protected override void See(RowGetters row)
        {
            var scores = row.Vector<float>(score);
            float best = scores.Max();
            if (scores.Count(s => s == best) > 1) _tied++;
        }

        public override IEnumerable<string> Summary()
        {
            if (_tied > 0)
                yield return $"{_tied} of {Rows} rows have two or more labels tied for the best probability: their label is merely the " +
                    "first of the tied ones (the model cannot tell those labels apart there; see the warnings above).";
        }
    }
}
