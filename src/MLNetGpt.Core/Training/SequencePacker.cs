namespace MLNetGpt.Training;

/// <summary>The model's special ids that frame training text.</summary>
/// <param name="Bos">The beginning-of-sequence id, if the model has one.</param>
/// <param name="Eos">The end-of-sequence id that ends every document and completion.</param>
/// <param name="Pad">The id fed at padded positions (their loss is never counted).</param>
internal readonly record struct SpecialIds(int? Bos, int Eos, int Pad);

/// <summary>
/// Turns token ids into fixed-length training sequences, the two standard ways.
/// <para><b>Documents</b> (causal language modelling): each document is framed as <c>BOS doc EOS</c> (a BOS equal to the
/// previous EOS is not repeated, so GPT-2's stream is <c>EOS d1 EOS d2 EOS</c>), the documents are joined into one
/// stream, and the stream is cut into consecutive sequences of <c>length</c> inputs, each predicting the next token, so
/// every token of the stream but the first is predicted exactly once. The last, shorter sequence is padded (padding
/// counts no loss). Documents may span two sequences, as in Hugging Face's <c>run_clm</c> packing.</para>
/// <para><b>Prompt/completion rows</b> (supervised fine-tuning): each row is one sequence, <c>BOS prompt completion
/// EOS</c>, padded at the end; only the completion's tokens and the EOS are predicted (targets -100 elsewhere, as
/// Hugging Face's collators do). A row longer than the sequence loses the start of its prompt first (the end of the
/// prompt, next to the completion, is kept); if the completion alone does not fit, its end is cut. Prompt and
/// completion are tokenized separately, as <c>ClassifyText</c> scores a label after its prompt.</para>
/// </summary>
internal static class SequencePacker
{
    /// <summary>The target of a position whose loss is not counted (torch's <c>ignore_index</c>).</summary>
    public const long Ignored = -100;

    /// <summary>Packs documents into sequences of <paramref name="length"/> inputs; empty documents are skipped.</summary>
    public static List<TrainingSequence> PackDocuments(IEnumerable<int[]> documents, int length, SpecialIds ids)
    {
        if (length < 1) throw new ArgumentOutOfRangeException(nameof(length), length, "The sequence length must be 1 or more.");
        var stream = new List<int>();
        foreach (var document in documents)
        {
            if (document.Length == 0) continue;
            if (ids.Bos is int bos && (stream.Count == 0 || stream[^1] != bos)) stream.Add(bos);
            stream.AddRange(document);
            stream.Add(ids.Eos);
        }
        var sequences = new List<TrainingSequence>();
        for (int start = 0; start < stream.Count - 1; start += length)
        {
            var inputs = new long[length];
            var targets = new long[length];
            for (int i = 0; i < length; i++)
            {
                int position = start + i;
                bool real = position + 1 < stream.Count;
                inputs[i] = real ? stream[position] : ids.Pad;
                targets[i] = real ? stream[position + 1] : Ignored;
            }
            sequences.Add(new TrainingSequence(inputs, targets));
        }
        return sequences;
    }

    /// <summary>One sequence of <paramref name="length"/> inputs per row, with loss on the completion and the EOS only.</summary>
    /// <param name="rows">The rows' prompt and completion ids.</param>
    /// <param name="length">Inputs per sequence.</param>
    /// <param name="ids">The special ids.</param>
    /// <param name="truncated">How many rows were cut to fit.</param>
    public static List<TrainingSequence> PackRows(IEnumerable<(int[] Prompt, int[] Completion)> rows, int length, SpecialIds ids, out int truncated)
    {
        if (length < 1) throw new ArgumentOutOfRangeException(nameof(length), length, "The sequence length must be 1 or more.");
        truncated = 0;
        var sequences = new List<TrainingSequence>();
        foreach (var (prompt, completion) in rows)
        {
            int head = ids.Bos is null ? 0 : 1;
            // The framed row is head + prompt + completion + EOS tokens, and a sequence of `length` inputs holds length + 1 of them.
            int over = head + prompt.Length + completion.Length + 1 - (length + 1);
            int promptStart = 0, completionEnd = completion.Length;
            bool withEos = true;
            if (over > 0)
            {
                truncated++;
                promptStart = Math.Min(over, prompt.Length);
                over -= promptStart;
                if (over > 0)
                {
                    // Even the whole completion does not fit: its EOS goes first, then its last tokens.
                    withEos = false;
                    completionEnd -= over - 1;
                }
            }
            var tokens = new List<int>(length + 1);
            if (ids.Bos is int bos) tokens.Add(bos);
            for (int i = promptStart; i < prompt.Length; i++) tokens.Add(prompt[i]);
            int firstCounted = tokens.Count;   // the position of the first completion token in the framed row
            for (int i = 0; i < completionEnd; i++) tokens.Add(completion[i]);
            if (withEos) tokens.Add(ids.Eos);

            var inputs = new long[length];
            var targets = new long[length];
            for (int i = 0; i < length; i++)
            {
                bool real = i + 1 < tokens.Count;
                inputs[i] = i < tokens.Count ? tokens[i] : ids.Pad;
                targets[i] = real && i + 1 >= firstCounted ? tokens[i + 1] : Ignored;
            }
            var sequence = new TrainingSequence(inputs, targets);
            if (sequence.CountedTokens > 0) sequences.Add(sequence);
        }
        return sequences;
    }
}
