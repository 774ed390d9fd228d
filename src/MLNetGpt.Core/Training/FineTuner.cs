using MLNetGpt.Models;
using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Training;

/// <summary>Training rows: plain texts (packed as documents) or prompt/completion pairs (loss on the completion only).</summary>
internal sealed class FineTuneData
{
    private FineTuneData(IReadOnlyList<string>? texts, IReadOnlyList<(string Prompt, string Completion)>? pairs)
    {
        Texts = texts;
        Pairs = pairs;
    }

    public IReadOnlyList<string>? Texts { get; }

    public IReadOnlyList<(string Prompt, string Completion)>? Pairs { get; }

    public bool Supervised => Pairs is not null;

    public int Count => Texts?.Count ?? Pairs!.Count;

    public static FineTuneData FromTexts(IEnumerable<string> texts, string what)
    {
        ArgumentNullException.ThrowIfNull(texts, what);
        var list = new List<string>();
        foreach (var text in texts) list.Add(text ?? throw new ArgumentException($"Row {list.Count} of {what} is null.", what));
        return new FineTuneData(list, null);
    }

    public static FineTuneData FromPairs(IEnumerable<(string Prompt, string Completion)> pairs, string what)
    {
        ArgumentNullException.ThrowIfNull(pairs, what);
        var list = new List<(string, string)>();
        foreach (var (prompt, completion) in pairs)
        {
            if (prompt is null) throw new ArgumentException($"The prompt of row {list.Count} of {what} is null.", what);
            if (completion is null) throw new ArgumentException($"The completion of row {list.Count} of {what} is null.", what);
            list.Add((prompt, completion));
        }
        return new FineTuneData(null, list);
    }
}

/// <summary>
/// A whole fine-tune: checks the folders and settings, tokenizes and packs the data, chooses the vocabulary extension,
/// builds the training graph (<see cref="TrainingGraphs"/>), runs the <see cref="Trainer"/>, and writes the tuned model
/// folder with its model card section and report. The ML.NET stage and <see cref="GptFineTuner"/> both run through here.
/// </summary>
internal static class FineTuner
{
    /// <summary>The report's file name in the written model folder.</summary>
    public const string ReportFile = "finetune_report.json";

    private const string ModelCard = "README.md";

    public static FineTuneReport Run(string modelFolder, string outputFolder, FineTuneData training, FineTuneData? validation, FineTuneOptions options,
        IProgress<FineTuneProgress>? progress, CancellationToken cancellationToken, Action? checkAlive = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelFolder);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputFolder);
        ArgumentNullException.ThrowIfNull(training);
        ArgumentNullException.ThrowIfNull(options);
        options = options.Clone();
        string model = Path.GetFullPath(modelFolder);
        string output = Path.GetFullPath(outputFolder);
        string? checkpoints = options.CheckpointFolder is { } c ? Path.GetFullPath(c) : null;
        options.CheckpointFolder = checkpoints;
        CheckPlan(model, output, checkpoints, training, validation, options);

        var (tokenizer, ids, contextLength, modelFile) = OpenTokenizer(model);
        if (options.SequenceLength > contextLength)
            throw new ArgumentOutOfRangeException(nameof(options), options.SequenceLength,
                $"SequenceLength {options.SequenceLength} is longer than the context of the model '{model}' ({contextLength} positions).");

        var trainingTokens = Tokenize(tokenizer, training);
        var validationTokens = validation is null ? null : Tokenize(tokenizer, validation);
        var map = modelFile is null ? null : VocabularyMap.Read(modelFile);
        var textTokens = trainingTokens.Documents ?? trainingTokens.Rows!.SelectMany(r => new[] { r.Prompt, r.Completion }).ToList();
        double? unkRate = map?.Unk is null ? null : map.UnkRate(textTokens);
        int[] added = options.ExtendVocabulary && map?.Unk is not null ? map.ChooseExtension(textTokens, options.ExtendVocabularyLimit) : [];
        if (unkRate is double rate)
            options.Write(Invariant($"{rate * 100:F1}% of the training text's tokens have no row of their own in the model's {map!.KeptCount:N0}-id vocabulary") +
                (options.ExtendVocabulary ? Invariant($"; {added.Length} tokens get rows of their own") : " (ExtendVocabulary would give the frequent ones rows)"));

        var trainingSequences = Pack(trainingTokens, options.SequenceLength, ids, out int truncated);
        var validationSequences = validationTokens is null ? null : Pack(validationTokens, options.SequenceLength, ids, out _);
        if (trainingSequences.Count == 0)
            throw new ArgumentException($"The training data holds no text to learn from ({training.Count} rows, all empty).", nameof(training));
        if (validationSequences is { Count: 0 })
            throw new ArgumentException($"The validation data holds no text to evaluate ({validation!.Count} rows, all empty).", nameof(validation));

        var request = new TrainingGraphRequest
        {
            ModelFolder = model,
            Method = options.Method,
            LoraRank = options.LoraRank,
            LoraAlpha = options.LoraAlpha,
            LoraTargets = options.LoraTargets,
            AddedTokenIds = added,
            Threads = options.Threads,
            Device = options.Device ?? GptDevice.Cpu,
            Seed = options.Seed,
            Log = options.Log,
        };
        using var graph = TrainingGraphs.Create(request);
        if (graph.MaxSequenceLength < options.SequenceLength)
            throw new ArgumentOutOfRangeException(nameof(options), options.SequenceLength,
                $"SequenceLength {options.SequenceLength} is longer than the training graph of '{model}' allows ({graph.MaxSequenceLength} positions).");
        long largest = trainingSequences.Concat(validationSequences ?? []).SelectMany(s => s.Inputs.Concat(s.Targets)).Max();
        if (largest >= graph.VocabularySize)
            throw new GptModelException($"The tokenizer of '{model}' gives the id {largest}, but its training graph takes ids below {graph.VocabularySize}.");

        var (total, warmup) = Trainer.Plan(options, trainingSequences.Count);
        var job = new TrainingJob
        {
            ModelFolder = model,
            ModelFingerprint = checkpoints is null ? "" : TrainingJob.FingerprintFolder(model),
            DataFingerprint = checkpoints is null ? "" : TrainingJob.FingerprintData(trainingSequences, validationSequences),
            TrainingSequences = trainingSequences.Count,
            ValidationSequences = validationSequences?.Count ?? 0,
            Settings = TrainingJob.SettingsOf(options, total, warmup, added),
            Parameters = graph.Parameters.Select(p => (p.Name, p.Shape)).ToList(),
        };
        var trainer = new Trainer(graph, options, trainingSequences, validationSequences, job);
        var outcome = trainer.Run(progress, cancellationToken, checkAlive);
        var state = outcome.State;

        var report = new FineTuneReport
        {
            Method = options.Method,
            ModelFolder = model,
            OutputFolder = output,
            StepsRun = state.Step,
            TotalSteps = trainer.TotalSteps,
            Epochs = (double)state.Consumed / trainingSequences.Count,
            StopReason = state.StopReason,
            TrainLosses = state.TrainLosses.ToArray(),
            Evaluations = state.Evaluations.ToArray(),
            TokensPerSecond = outcome.TokensPerSecond,
            TrainingSequences = trainingSequences.Count,
            TrainingTokens = trainingSequences.Sum(s => (long)s.CountedTokens),
            ValidationTokens = validationSequences?.Sum(s => (long)s.CountedTokens) ?? 0,
            UnkRate = unkRate,
            AddedTokens = added.Length,
            TruncatedRows = truncated,
            ResumedFromStep = outcome.ResumedFromStep,
        };
        WriteOutput(graph, model, output, report, options);
        options.Write($"wrote the tuned model to '{output}': {report}");
        return report;
    }

    /// <summary>The checks that need no model: folders that must not overlap, settings that depend on each other.</summary>
    private static void CheckPlan(string model, string output, string? checkpoints, FineTuneData training, FineTuneData? validation, FineTuneOptions options)
    {
        if (!Directory.Exists(model)) throw new GptModelException($"The model folder '{model}' does not exist.");
        if (IsSameOrInside(output, model) || IsSameOrInside(model, output))
            throw new IOException($"The output folder '{output}' and the model folder '{model}' overlap; write the tuned model to a folder outside the model folder.");
        if (File.Exists(output)) throw new IOException($"The output folder '{output}' is a file; give a new or empty folder.");
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
            throw new IOException($"The output folder '{output}' is not empty; choose a new or empty folder.");
        if (checkpoints is not null)
        {
            if (IsSameOrInside(checkpoints, model))
                throw new IOException($"The checkpoint folder '{checkpoints}' is inside the model folder '{model}'; a checkpoint there would change the model it belongs to.");
            if (IsSameOrInside(checkpoints, output) || IsSameOrInside(output, checkpoints))
                throw new IOException($"The checkpoint folder '{checkpoints}' and the output folder '{output}' overlap; keep checkpoints outside the tuned model's folder.");
            if (File.Exists(checkpoints)) throw new IOException($"The checkpoint folder '{checkpoints}' is a file.");
        }
        if (options.Resume && checkpoints is null) throw new ArgumentException("Resume is set, but no CheckpointFolder is given to resume from.", nameof(options));
        if (options.EarlyStoppingPatience is int patience)
        {
            if (validation is null)
                throw new ArgumentException($"EarlyStoppingPatience is {patience}, but there is no validation set to evaluate.", nameof(options));
            if (options.EvaluateEveryNSteps is null)
                throw new ArgumentException($"EarlyStoppingPatience is {patience}, but EvaluateEveryNSteps is not set: early stopping compares evaluations made during training.", nameof(options));
        }
        if (validation is not null && validation.Supervised != training.Supervised)
            throw new ArgumentException(training.Supervised
                ? "The training rows are prompt/completion pairs, but the validation rows are plain texts; give the validation set in the same form."
                : "The training rows are plain texts, but the validation rows are prompt/completion pairs; give the validation set in the same form.", nameof(validation));
    }

    /// <summary>The folder's tokenizer, special ids, context length and main ONNX file (null when it is not one file).</summary>
    private static (Tokenizer Tokenizer, SpecialIds Ids, int ContextLength, string? ModelFile) OpenTokenizer(string folder)
    {
        using var model = GptModel.Open(folder, new GptModelOptions { IntraOpThreads = 1 });
        var info = model.Info;
        if (info.EosTokenIds.Count == 0)
            throw new GptModelException($"The model '{folder}' has no end-of-sequence token (eos_token_id in its configuration); fine-tuning needs one to end every text.");
        string? file = info.ModelFiles.Count == 1 ? Path.Combine(info.Folder, info.ModelFiles[0]) : null;
        return (model.Tokenizer, new SpecialIds(info.BosTokenId, info.EosTokenIds[0], info.PadTokenId), info.ContextLength, file);
    }

    private sealed record TokenizedData(List<int[]>? Documents, List<(int[] Prompt, int[] Completion)>? Rows);

    private static TokenizedData Tokenize(Tokenizer tokenizer, FineTuneData data) => data.Texts is { } texts
        ? new TokenizedData(texts.Select(t => tokenizer.EncodeToIds(t).ToArray()).ToList(), null)
        : new TokenizedData(null, data.Pairs!.Select(p => (tokenizer.EncodeToIds(p.Prompt).ToArray(), tokenizer.EncodeToIds(p.Completion).ToArray())).ToList());

    private static List<TrainingSequence> Pack(TokenizedData data, int length, SpecialIds ids, out int truncated)
    {
        truncated = 0;
        return data.Documents is { } documents ? SequencePacker.PackDocuments(documents, length, ids) : SequencePacker.PackRows(data.Rows!, length, ids, out truncated);
    }

    /// <summary>
    /// Writes the tuned model beside <paramref name="output"/> first and moves it into place when it is complete, so the
    /// output folder is either absent/empty or a whole model (a run killed while writing leaves only the staging folder,
    /// which the next run replaces).
    /// </summary>
    private static void WriteOutput(ITrainingGraph graph, string model, string output, FineTuneReport report, FineTuneOptions options)
    {
        string staging = Path.TrimEndingDirectorySeparator(output) + ".writing";
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        Directory.CreateDirectory(Path.GetDirectoryName(staging)!);
        try
        {
            graph.WriteModelFolder(staging);
            string card = Path.Combine(staging, ModelCard);
            string text = File.Exists(card) ? File.ReadAllText(card)
                : File.Exists(Path.Combine(model, ModelCard)) ? File.ReadAllText(Path.Combine(model, ModelCard)) : $"# {Path.GetFileName(model)}\n";
            File.WriteAllText(card, AppendSection(text, report, options));
            File.WriteAllText(Path.Combine(staging, ReportFile), report.ToJson());
        }
        catch
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            throw;
        }
        if (Directory.Exists(output))
        {
            if (Directory.EnumerateFileSystemEntries(output).Any())
                throw new IOException($"The output folder '{output}' was filled while training ran; the tuned model is in '{staging}'.");
            Directory.Delete(output);
        }
        Directory.Move(staging, output);
    }

    private static string AppendSection(string card, FineTuneReport report, FineTuneOptions options)
    {
        var s = new StringBuilder(card.TrimEnd());
        s.Append("\n\n## Fine-tuning\n\n");
        s.Append(Invariant($"Fine-tuned by MLNetGpt (`FineTuneGpt`, `mlnetgpt finetune`) from `{Path.GetFileName(report.ModelFolder)}`: "))
         .Append(report.Method == FineTuneMethod.LoRA
             ? Invariant($"LoRA of rank {options.LoraRank} (alpha {options.LoraAlpha}) on {string.Join(", ", options.LoraTargets)}, merged into the weights.")
             : "every weight trained.")
         .Append("\n\n| | |\n|---|---|\n");
        s.Append(Invariant($"| Steps | {report.StepsRun} of {report.TotalSteps} ({(report.StopReason == FineTuneStopReason.EarlyStopping ? "early stopping" : "completed")}), {report.Epochs:F2} epochs |\n"));
        s.Append(Invariant($"| Data | {report.TrainingSequences} sequences of {options.SequenceLength} tokens, {report.TrainingTokens:N0} tokens with loss |\n"));
        s.Append(Invariant($"| Batch | {options.BatchSize} x {options.GradientAccumulationSteps} sequences per step |\n"));
        s.Append(Invariant($"| Optimizer | AdamW, learning rate {options.LearningRate:G4}, weight decay {options.WeightDecay:G4}, betas ({options.AdamBeta1:G4}, {options.AdamBeta2:G4}), eps {options.AdamEpsilon:G4}; warm-up then cosine decay |\n"));
        s.Append(options.ClipNorm is double clip ? Invariant($"| Gradient clipping | global norm {clip:G4} |\n") : "| Gradient clipping | none |\n");
        s.Append(Invariant($"| Seed | {options.Seed} |\n"));
        if (report.TrainLosses.Count > 0)
            s.Append(Invariant($"| Training loss | {report.TrainLosses[0]:F4} (first step) -> {report.TrainLosses[^1]:F4} (last step) nats/token |\n"));
        if (report.ValidationLossBefore is double before && report.ValidationLossAfter is double after)
            s.Append(Invariant($"| Validation loss | {before:F4} -> {after:F4} nats/token ({report.ValidationTokens:N0} tokens) |\n"));
        if (report.UnkRate is double unk)
            s.Append(Invariant($"| Vocabulary | {unk * 100:F1}% of the training tokens had no row of their own; {report.AddedTokens} added |\n"));
        if (report.TruncatedRows > 0) s.Append(Invariant($"| Truncated rows | {report.TruncatedRows} |\n"));
        s.Append(Invariant($"\nThe whole report is in `{ReportFile}`.\n"));
        return s.ToString();
    }

    private static bool IsSameOrInside(string path, string folder)
    {
        string p = Path.TrimEndingDirectorySeparator(path), f = Path.TrimEndingDirectorySeparator(folder);
        return p == f || p.StartsWith(f + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
