using MLNetGpt.Training;

namespace MLNetGpt;

/// <summary>
/// Fine-tunes a model folder on texts and writes the tuned model as a new folder: the engine behind the ML.NET stage
/// <c>FineTuneGpt</c> and <c>mlnetgpt finetune</c>, for use without ML.NET.
/// </summary>
/// <remarks>
/// <para><b>Plain texts</b> (causal language modelling) are tokenized with the folder's tokenizer, each framed as
/// <c>BOS text EOS</c> (a BOS equal to the EOS before it is not repeated), joined, and cut into sequences of
/// <see cref="FineTuneOptions.SequenceLength"/> tokens; every token but the first is predicted once, and texts may span
/// two sequences (Hugging Face's <c>run_clm</c> packing).</para>
/// <para><b>Prompt/completion pairs</b> (supervised fine-tuning) become one sequence each, <c>BOS prompt completion
/// EOS</c> padded to the sequence length, with the loss counted on the completion and its EOS only. Prompt and completion
/// are tokenized separately, as <c>ClassifyText</c> scores a label after its prompt, so a completion usually starts with a
/// space. A pair longer than the sequence loses the start of its prompt first; a completion that alone does not fit
/// loses its EOS and then its end (<see cref="FineTuneReport.TruncatedRows"/> counts such rows).</para>
/// <para>The tuned folder holds the source folder's files with the trained weights, a model card section saying what was
/// trained, and the report as <c>finetune_report.json</c>; it appears only when complete. Static and thread-safe; each call
/// trains on its own graph.</para>
/// </remarks>
/// <example>
/// <code>
/// var report = GptFineTuner.FineTune(GptModel.DefaultModelFolder, "models/kjv-licences", trainingTexts, validationTexts,
///     new FineTuneOptions { MaxSteps = 300, BatchSize = 8, SequenceLength = 128, LearningRate = 3e-4 });
/// Console.WriteLine($"validation loss {report.ValidationLossBefore:F2} -> {report.ValidationLossAfter:F2}");
/// using var tuned = GptModel.Open(report.OutputFolder);
/// </code>
/// </example>
public static class GptFineTuner
{
    /// <summary>Fine-tunes <paramref name="modelFolder"/> on plain texts and writes the tuned model to <paramref name="outputFolder"/>.</summary>
    /// <param name="modelFolder">The model folder to tune (left unchanged).</param>
    /// <param name="outputFolder">Where the tuned model folder is written: a new or empty folder outside <paramref name="modelFolder"/>.</param>
    /// <param name="texts">The training texts (empty ones are skipped).</param>
    /// <param name="validationTexts">Held-out texts evaluated before, during (<see cref="FineTuneOptions.EvaluateEveryNSteps"/>) and after training; null for none.</param>
    /// <param name="options">The settings; null takes the defaults.</param>
    /// <param name="progress">Receives a report after every optimizer step.</param>
    /// <param name="cancellationToken">Checked between micro-batches; with a <see cref="FineTuneOptions.CheckpointFolder"/>, a checkpoint of the last completed step is written before <see cref="OperationCanceledException"/> is thrown.</param>
    /// <returns>What the run did; also written to the output folder.</returns>
    /// <exception cref="ArgumentException">A setting conflicts with another or with the data (the message names it), or the texts hold nothing to learn.</exception>
    /// <exception cref="GptModelException">The model folder cannot be opened or trained.</exception>
    /// <exception cref="IOException">The output folder is not empty or overlaps the model folder.</exception>
    /// <exception cref="InvalidOperationException">The checkpoint folder holds a checkpoint and <see cref="FineTuneOptions.Resume"/> is off, or the other way round, or the loss diverged.</exception>
    /// <exception cref="InvalidDataException">The checkpoint to resume is damaged or belongs to another job (the message names the difference).</exception>
    public static FineTuneReport FineTune(string modelFolder, string outputFolder, IEnumerable<string> texts, IEnumerable<string>? validationTexts = null,
        FineTuneOptions? options = null, IProgress<FineTuneProgress>? progress = null, CancellationToken cancellationToken = default) =>
        FineTuner.Run(modelFolder, outputFolder, FineTuneData.FromTexts(texts, nameof(texts)),
            validationTexts is null ? null : FineTuneData.FromTexts(validationTexts, nameof(validationTexts)), options ?? new FineTuneOptions(), progress, cancellationToken);

    /// <summary>Fine-tunes <paramref name="modelFolder"/> on prompt/completion pairs (loss on the completions only) and writes the tuned model to <paramref name="outputFolder"/>.</summary>
    /// <param name="modelFolder">The model folder to tune (left unchanged).</param>
    /// <param name="outputFolder">Where the tuned model folder is written: a new or empty folder outside <paramref name="modelFolder"/>.</param>
    /// <param name="examples">The training pairs; a completion usually starts with a space (" positive").</param>
    /// <param name="validationExamples">Held-out pairs, evaluated on their completions; null for none.</param>
    /// <param name="options">The settings; null takes the defaults.</param>
    /// <param name="progress">Receives a report after every optimizer step.</param>
    /// <param name="cancellationToken">As for the texts overload.</param>
    /// <returns>What the run did; also written to the output folder.</returns>
    /// <exception cref="ArgumentException">As for the texts overload.</exception>
    /// <exception cref="GptModelException">As for the texts overload.</exception>
    /// <exception cref="IOException">As for the texts overload.</exception>
    /// <exception cref="InvalidOperationException">As for the texts overload.</exception>
    /// <exception cref="InvalidDataException">As for the texts overload.</exception>
    public static FineTuneReport FineTune(string modelFolder, string outputFolder, IEnumerable<(string Prompt, string Completion)> examples,
        IEnumerable<(string Prompt, string Completion)>? validationExamples = null, FineTuneOptions? options = null, IProgress<FineTuneProgress>? progress = null,
        CancellationToken cancellationToken = default) =>
        FineTuner.Run(modelFolder, outputFolder, FineTuneData.FromPairs(examples, nameof(examples)),
            validationExamples is null ? null : FineTuneData.FromPairs(validationExamples, nameof(validationExamples)), options ?? new FineTuneOptions(), progress, cancellationToken);
}
