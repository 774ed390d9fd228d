using Microsoft.ML.OnnxRuntime;

namespace MLNetGpt.Generation;

/// <summary>
/// A smaller model with the same tokenizer that proposes tokens for speculative decoding (Hugging Face's
/// <c>assistant_model</c>): greedily, one row at a time, each row with its own cache that follows the row's accepted
/// tokens and is rolled back past the rejected ones.
/// </summary>
internal sealed class DraftModel : IDisposable
{
    private readonly GptModel _model;
    private readonly int _usableIds;
    private readonly float[] _row;

    private DraftModel(GptModel model, int targetVocabulary)
    {
        _model = model;
        var info = model.Info;
        _usableIds = Math.Min(Math.Min(info.TokenizerIdCount ?? info.VocabularySize, info.VocabularySize), targetVocabulary);
        _row = new float[info.VocabularySize];
    }

    /// <summary>The draft's folder.</summary>
    public string Folder => _model.Info.Folder;

    /// <summary>The draft's context window: rows longer than it are not drafted for.</summary>
    public int ContextLength => _model.Info.ContextLength;

    private DecoderBackend Backend => _model.Engine.Backend;

    /// <summary>
    /// Opens the draft model folder for a target model: on the CPU, with the same session settings, and only when its
    /// tokenizer gives the target's ids.
    /// </summary>
    /// <exception cref="GptModelException">The folder cannot be opened, keeps recurrent states, or tokenizes differently.</exception>
    public static DraftModel Open(string folder, GptModelOptions options, GptModelInfo target, Microsoft.ML.Tokenizers.Tokenizer targetTokenizer)
    {
        var draftOptions = new GptModelOptions
        {
            IntraOpThreads = options.IntraOpThreads,
            Variant = options.Variant,
            Tokenizer = options.Tokenizer,
            TokenizerEncoding = options.TokenizerEncoding,
            Log = options.Log,
        };
        foreach (var (key, value) in options.SessionConfig) draftOptions.SessionConfig[key] = value;
        // The draft runs between the target's steps, short passes one after another: its ONNX Runtime workers must not
        // spin between them, taking the cores the target's step needs next.
        draftOptions.SessionConfig["session.intra_op.allow_spinning"] = "0";
        var model = GptModel.Open(folder, draftOptions);
        try
        {
            if (!Speculator.Supports(model.Engine.Backend))
                throw new GptModelException($"The draft model '{model.Info.Folder}' keeps recurrent states, which cannot be rolled back past rejected tokens; " +
                    "a draft model must be a plain decoder with key/value caches.");
            CheckTokenizer(model, target, targetTokenizer);
            return new DraftModel(model, target.VocabularySize);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static void CheckTokenizer(GptModel draft, GptModelInfo target, Microsoft.ML.Tokenizers.Tokenizer targetTokenizer)
    {
        const string Probe = "In the beginning God created the heaven and the earth. {\"id\": 42, \"name\": \"Zoë\"}\n\tdef f(x): return x * 2 # 3.14159";
        var expected = targetTokenizer.EncodeToIds(Probe);
        var actual = draft.Tokenizer.EncodeToIds(Probe);
        if (!expected.SequenceEqual(actual))
            throw new GptModelException($"The draft model '{draft.Info.Folder}' does not share the tokenizer of '{target.Folder}': a probe text encodes to " +
                $"{actual.Count} ids there ([{string.Join(", ", actual.Take(8))}, ...]) and to {expected.Count} here ([{string.Join(", ", expected.Take(8))}, ...]).");
        if (draft.Info.BosTokenId != target.BosTokenId)
            throw new GptModelException($"The draft model '{draft.Info.Folder}' has bos_token_id {draft.Info.BosTokenId?.ToString() ?? "none"}; " +
                $"'{target.Folder}' has {target.BosTokenId?.ToString() ?? "none"}.");
    }

    /// <summary>One draft pass's expected duration for one row: measured, or before that a third of the target's one-token step.</summary>
    public double PassMilliseconds(StepCostModel costs)
    {
        double measured = costs.DraftPass;
        return double.IsNaN(measured) ? 0.3 * costs.Predict(1) : measured;
    }

    /// <summary>
    /// Proposes <paramref name="count"/> tokens for <paramref name="row"/>: feeds the draft what it has not seen of the
    /// row, then chooses greedily, feeding each proposal but the last.
    /// </summary>
    public int[] Propose(Sequence row, int count, StepCostModel costs, RunOptions runOptions, CancellationToken cancellationToken)
    {
        var state = row.Speculation!;
        var draft = state.Draft ??= new DraftRow(Backend.EmptyCache(1), new ColumnMask(row.Tokens.Count + 32, Backend.Graph.Padding));
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        var proposals = new int[count];
        int[] pending = row.Tokens.GetRange(draft.Fed, row.Tokens.Count - draft.Fed).ToArray();
        int passes = 0;
        for (int i = 0; i < count; i++)
        {
            var (last, cache) = StepRunner.Extend(Backend, runOptions, draft.Cache, [draft.Mask], [pending], [draft.Fed + draft.Speculative],
                _model.Info.PadTokenId, lastLogitsOnly: true, cancellationToken, out int steps);
            passes += steps;
            draft.Cache = cache;
            if (i == 0) draft.Fed += pending.Length;
            else draft.Speculative++;
            using (last)
            {
                last.Read(0, last.Length - 1, _row);
                proposals[i] = LogitsProcessors.ArgMax(_row.AsSpan(0, _usableIds));
            }
            pending = [proposals[i]];
        }
        // The first pass may have caught up on several tokens (a prefill): only single-token passes teach the cost.
        if (passes == count) costs.AddDraft(passes, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return proposals;
    }

    /// <summary>Keeps the draft's positions of the accepted proposals and drops the rest.</summary>
    public void Settle(Sequence row, int proposed, int accepted)
    {
        var draft = row.Speculation?.Draft;
        if (draft is null) return;
        // The draft fed proposals 1..proposed-1; those up to the accepted count match the row now.
        int kept = Math.Min(accepted, draft.Speculative);
        int dropped = draft.Speculative - kept;
        draft.Fed += kept;
        draft.Speculative = 0;
        if (dropped == 0) return;
        draft.Mask.Unmark(dropped);
        var trimmed = Backend.TrimEnd(draft.Cache, draft.Mask.TrailingPadding);
        draft.Mask.TrimEnd(draft.Mask.TrailingPadding);
        draft.Cache.Dispose();
        draft.Cache = trimmed;
    }

    public void Dispose() => _model.Dispose();
}

/// <summary>A row's state in the draft model: its cache, which columns are real, and how many of the row's tokens it holds.</summary>
internal sealed class DraftRow(IKvCache cache, ColumnMask mask) : IDisposable
{
    public IKvCache Cache { get; set; } = cache;
    public ColumnMask Mask { get; } = mask;

    /// <summary>Tokens of the row (prompt and output) the draft's cache holds.</summary>
    public int Fed { get; set; }

    /// <summary>Proposals fed to the draft beyond <see cref="Fed"/>, not yet verified.</summary>
    public int Speculative { get; set; }

    public void Dispose() => Cache.Dispose();
}
