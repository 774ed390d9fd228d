using Microsoft.ML.OnnxRuntime;

namespace MLNetGpt.Generation;

/// <summary>A scoring request: the whole token sequence and where the scored part starts.</summary>
internal readonly record struct ScoreRequest(int[] Ids, int FirstScored, bool Truncated);

/// <summary>
/// Per-sequence log-likelihood in one forward pass per batch (chunked like prefill): the
/// log-probability of token i comes from the logits at position i - 1.
/// </summary>
internal sealed class Scorer
{
    private const long LogitsBudget = 32L << 20;
    private readonly DecoderBackend _backend;
    private readonly GptModelInfo _info;

    public Scorer(DecoderBackend backend, GptModelInfo info)
    {
        _backend = backend;
        _info = info;
    }

    public ScoreResult[] Score(IReadOnlyList<ScoreRequest> requests, CancellationToken cancellationToken)
    {
        // Graphs that cannot take padded batches (recurrent states, GroupQueryAttention) score one text at a time.
        if (_backend.Graph.PrefillRowByRow && requests.Count > 1)
            return requests.SelectMany(r => ScoreBatch([r], cancellationToken)).ToArray();
        return ScoreBatch(requests, cancellationToken);
    }

    private ScoreResult[] ScoreBatch(IReadOnlyList<ScoreRequest> requests, CancellationToken cancellationToken)
    {
        int batch = requests.Count;
        var results = new ScoreResult[batch];
        if (batch == 0) return results;
        int width = requests.Max(r => r.Ids.Length);
        int vocabulary = _info.VocabularySize;
        int chunk = (int)Math.Clamp(LogitsBudget / ((long)batch * vocabulary), 1, Math.Max(1, width));
        var sums = new double[batch];
        var counts = new int[batch];
        var row = new float[vocabulary];
        using var runOptions = new RunOptions();
        using var registration = cancellationToken.Register(() => runOptions.Terminate = true);
        var cache = _backend.EmptyCache(batch);
        try
        {
            var masks = requests.Select(_ => new ColumnMask(width)).ToArray();
            int start = 0;
            foreach (var (length, tokens, first) in BatchInputs.PrefillChunks(requests.Select(r => r.Ids).ToArray(), width, chunk))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var input = BatchInputs.Extend(masks, tokens, first, length, _info.PadTokenId, logitsToKeep: 0);
                var (logits, present) = _backend.Step(input, cache, runOptions);
                cache.Dispose();
                cache = present;
                using (logits)
                {
                    for (int r = 0; r < batch; r++)
                    {
                        var request = requests[r];
                        int pad = width - request.Ids.Length;
                        for (int c = 0; c < length; c++)
                        {
                            // Logits at token index i predict token i + 1.
                            int next = start + c - pad + 1;
                            if (next < Math.Max(1, request.FirstScored) || next >= request.Ids.Length) continue;
                            logits.Read(r, c, row);
                            sums[r] += LogitsProcessors.LogProbability(row, request.Ids[next]);
                            counts[r]++;
                        }
                    }
                }
                start += length;
            }
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException(cancellationToken);
        }
        finally
        {
            cache.Dispose();
        }
        for (int r = 0; r < batch; r++) results[r] = new ScoreResult(sums[r], counts[r], requests[r].Truncated);
        return results;
    }
}
