using Microsoft.ML.OnnxRuntime;

namespace MLNetGpt.Generation;

/// <summary>
/// Log-likelihoods of candidate continuations (labels) after each of several prompts, with each
/// prompt prefilled once and shared by its labels: the prompts' state is copied to one row per
/// (prompt, label) and the labels' tokens run on top of it in one step. Graphs that prefill row by row
/// (recurrent states, GroupQueryAttention) take each prompt and each label alone.
/// </summary>
internal sealed class LabelScorer(DecoderBackend backend, GptModelInfo info)
{
    /// <summary>Per prompt, per label: (sum of the label tokens' log-probabilities, token count).</summary>
    public (double LogLikelihood, int Tokens)[][] Score(IReadOnlyList<int[]> prompts, IReadOnlyList<int[]> labels, CancellationToken cancellationToken)
    {
        using var runOptions = new RunOptions();
        using var registration = cancellationToken.Register(() => runOptions.Terminate = true);
        try
        {
            if (!backend.Graph.PrefillRowByRow) return ScoreTogether(prompts, labels, runOptions, cancellationToken);
            return prompts.Select(p => ScoreTogether([p], labels, runOptions, cancellationToken, labelsAlone: true)[0]).ToArray();
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
    }

    private (double, int)[][] ScoreTogether(IReadOnlyList<int[]> prompts, IReadOnlyList<int[]> labels, RunOptions runOptions,
        CancellationToken cancellationToken, bool labelsAlone = false)
    {
        var padding = backend.Graph.Padding;
        int batch = prompts.Count, vocabulary = info.VocabularySize;
        var row = new float[vocabulary];
        var results = prompts.Select(_ => new (double, int)[labels.Count]).ToArray();
        var masks = prompts.Select(p => new ColumnMask(p.Length + 16, padding)).ToArray();
        var (last, state) = StepRunner.Extend(backend, runOptions, backend.EmptyCache(batch), masks, prompts.ToArray(), new int[batch], info.PadTokenId,
            lastLogitsOnly: true, cancellationToken, out _);
        try
        {
            // The first token of every label comes from the prompt's last logits.
            using (last)
            {
                for (int r = 0; r < batch; r++)
                {
                    last.Read(r, last.Length - 1, row);
                    for (int l = 0; l < labels.Count; l++) results[r][l] = (LogitsProcessors.LogProbability(row, labels[l][0]), 1);
                }
            }
            // The rest: one row per (prompt, label of two or more tokens), from a copy of the prompt's state.
            var pairs = new List<(int Prompt, int Label)>();
            for (int r = 0; r < batch; r++)
                for (int l = 0; l < labels.Count; l++)
                    if (labels[l].Length > 1) pairs.Add((r, l));
            if (pairs.Count == 0) return results;
            var groups = labelsAlone ? pairs.Select(p => new List<(int Prompt, int Label)> { p }).ToList() : [pairs];
            foreach (var group in groups)
            {
                var rowMasks = group.Select(p => masks[p.Prompt].Clone()).ToArray();
                var start = backend.KeepRows(state, group.Select(p => p.Prompt).ToArray(), state.Width);
                var feed = group.Select(p => labels[p.Label][..^1]).ToArray();
                var positions = group.Select(p => prompts[p.Prompt].Length).ToArray();
                var (logits, grown) = StepRunner.Extend(backend, runOptions, start, rowMasks, feed, positions, info.PadTokenId, lastLogitsOnly: false,
                    cancellationToken, out _);
                grown.Dispose();
                using (logits)
                {
                    for (int i = 0; i < group.Count; i++)
                    {
                        var (r, l) = group[i];
                        var label = labels[l];
                        int width = logits.Length, fed = label.Length - 1;
                        var (sum, count) = results[r][l];
                        // Rows are right-aligned: the label's fed tokens end at the step's last column.
                        for (int t = 0; t < fed; t++)
                        {
                            logits.Read(i, width - fed + t, row);
                            sum += LogitsProcessors.LogProbability(row, label[t + 1]);
                            count++;
                        }
                        results[r][l] = (sum, count);
                    }
                }
            }
            return results;
        }
        finally
        {
            state.Dispose();
        }
    }
}
