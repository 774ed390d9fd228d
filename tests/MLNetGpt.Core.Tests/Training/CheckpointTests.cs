using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>Checkpoints, cancellation and resumption: a run cut anywhere ends with the weights of one never cut, bit for bit.</summary>
public sealed class CheckpointTests
{
    private static readonly List<TrainingSequence> Data = TrainerTests.RandomSequences(9, 6, 8, seed: 21);
    private static readonly List<TrainingSequence> Validation = TrainerTests.RandomSequences(3, 6, 8, seed: 22);

    private static FineTuneOptions Options(string folder, bool resume = false) => TrainerTests.Quiet(new FineTuneOptions
    {
        BatchSize = 2, GradientAccumulationSteps = 2, MaxSteps = 9, WarmupSteps = 2, LearningRate = 0.05, ClipNorm = 0.7,
        EvaluateEveryNSteps = 4, CheckpointFolder = folder, CheckpointEveryNSteps = 3, Resume = resume,
    });

    private static TrainerOutcome Run(BigramGraph graph, FineTuneOptions options, CancellationToken token = default) =>
        new Trainer(graph, options, Data, Validation, TrainerTests.Job(options, graph, Data, Validation)).Run(null, token);

    private static (BigramGraph Graph, TrainerOutcome Outcome) Uninterrupted()
    {
        var graph = new BigramGraph(8, 3, seed: 3);
        return (graph, Run(graph, Options(Fixtures.TempFolder("ckpt-straight"))));
    }

    [Theory]
    [InlineData(1)]    // before the first micro-batch: nothing done yet
    [InlineData(6)]    // the second micro-batch of step 3: the partial step is dropped
    [InlineData(7)]    // the first micro-batch of step 4, just after the checkpoint of step 3
    [InlineData(14)]   // the second micro-batch of step 7
    public void A_run_cancelled_between_micro_batches_and_resumed_ends_with_the_same_weights_bit_for_bit(int cancelAtCall)
    {
        var (straight, expected) = Uninterrupted();
        string folder = Fixtures.TempFolder("ckpt-cut");

        var first = new BigramGraph(8, 3, seed: 3);
        using var cancellation = new CancellationTokenSource();
        first.BeforeForwardBackward = call => { if (call == cancelAtCall - 1) cancellation.Cancel(); };
        if (cancelAtCall == 1) cancellation.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => Run(first, Options(folder), cancellation.Token));
        Assert.True(TrainingCheckpoint.Exists(folder), "cancelling leaves a checkpoint to resume");

        // A new process: a fresh graph with the initial weights, resumed from the checkpoint.
        var resumed = new BigramGraph(8, 3, seed: 3);
        var outcome = Run(resumed, Options(folder, resume: true));

        Assert.Equal(expected.State.TrainLosses, outcome.State.TrainLosses);
        Assert.Equal(expected.State.Evaluations, outcome.State.Evaluations);
        for (int t = 0; t < straight.Parameters.Count; t++) Assert.Equal(straight.Parameters[t].Value, resumed.Parameters[t].Value);
        Assert.Equal(expected.State.Consumed, outcome.State.Consumed);
        Assert.Equal((cancelAtCall - 1) / 2, outcome.ResumedFromStep);
        Assert.Empty(Directory.GetFiles(folder, "*.tmp"));
    }

    [Fact]
    public void A_run_cancelled_during_an_evaluation_resumes_by_evaluating_that_step_again()
    {
        var (straight, expected) = Uninterrupted();
        string folder = Fixtures.TempFolder("ckpt-eval");
        var first = new BigramGraph(8, 3, seed: 3);
        using var cancellation = new CancellationTokenSource();
        var cut = new CancellingGraph(first, evaluateCallToCancelAt: 3, cancellation);   // inside the evaluation after step 4 (calls 1-2 evaluate step 0)
        var options = Options(folder);
        Assert.ThrowsAny<OperationCanceledException>(() =>
            new Trainer(cut, options, Data, Validation, TrainerTests.Job(options, first, Data, Validation)).Run(null, cancellation.Token));
        Assert.Equal(4, TrainingCheckpoint.StepOf(folder));

        var resumed = new BigramGraph(8, 3, seed: 3);
        var outcome = Run(resumed, Options(folder, resume: true));
        Assert.Equal(expected.State.Evaluations, outcome.State.Evaluations);
        for (int t = 0; t < straight.Parameters.Count; t++) Assert.Equal(straight.Parameters[t].Value, resumed.Parameters[t].Value);
    }

    [Fact]
    public void Resuming_a_finished_run_changes_nothing_and_trains_no_more()
    {
        var (straight, expected) = Uninterrupted();
        string folder = Fixtures.TempFolder("ckpt-done");
        Run(new BigramGraph(8, 3, seed: 3), Options(folder));
        var again = new BigramGraph(8, 3, seed: 3);
        var outcome = Run(again, Options(folder, resume: true));
        Assert.Equal(0, again.ForwardBackwardCalls);
        Assert.Equal(0, again.EvaluateCalls);
        Assert.Equal(expected.State.TrainLosses, outcome.State.TrainLosses);
        for (int t = 0; t < straight.Parameters.Count; t++) Assert.Equal(straight.Parameters[t].Value, again.Parameters[t].Value);
    }

    [Theory]
    [InlineData("LearningRate", "its learning_rate is 0.05, this run's is 0.06")]
    [InlineData("Seed", "its seed is 42, this run's is 43")]
    [InlineData("MaxSteps", "its total_steps is 9, this run's is 10")]
    [InlineData("Method", "its method is full, this run's is lora")]
    public void A_checkpoint_of_another_job_is_refused_naming_the_difference(string change, string difference)
    {
        string folder = Fixtures.TempFolder("ckpt-other");
        using (var cancellation = new CancellationTokenSource())
        {
            var graph = new BigramGraph(8, 3, seed: 3) { BeforeForwardBackward = call => { if (call == 4) cancellation.Cancel(); } };
            Assert.ThrowsAny<OperationCanceledException>(() => Run(graph, Options(folder), cancellation.Token));
        }
        var options = Options(folder, resume: true);
        switch (change)
        {
            case "LearningRate": options.LearningRate = 0.06; break;
            case "Seed": options.Seed = 43; break;
            case "MaxSteps": options.MaxSteps = 10; break;
            case "Method": options.Method = FineTuneMethod.LoRA; break;
        }
        var error = Assert.Throws<InvalidDataException>(() => Run(new BigramGraph(8, 3, seed: 3), options));
        Assert.Equal($"The checkpoint '{TrainingCheckpoint.PathIn(folder)}' belongs to another job: {difference}. " +
            "Resume with the same model, data and settings, or use another checkpoint folder.", error.Message);
    }

    [Fact]
    public void A_checkpoint_made_from_other_data_or_another_model_is_refused_in_words()
    {
        string folder = Fixtures.TempFolder("ckpt-data");
        var graph = new BigramGraph(8, 3, seed: 3);
        var options = Options(folder);
        options.MaxSteps = 3;
        Run(graph, options);
        options.Resume = true;
        var otherData = TrainerTests.RandomSequences(9, 6, 8, seed: 99);
        var job = TrainerTests.Job(options, graph, otherData, Validation);
        var error = Assert.Throws<InvalidDataException>(() => new Trainer(new BigramGraph(8, 3, seed: 3), options, otherData, Validation, job).Run(null, default));
        Assert.Contains("belongs to another job: it was made from other data (9 training and 3 validation sequences then, 9 and 3 now, with other tokens)", error.Message);

        var otherModel = new TrainingJob
        {
            ModelFolder = "elsewhere", ModelFingerprint = "another-model", DataFingerprint = job.DataFingerprint, TrainingSequences = 9, ValidationSequences = 3,
            Settings = job.Settings, Parameters = job.Parameters,
        };
        error = Assert.Throws<InvalidDataException>(() => new Trainer(new BigramGraph(8, 3, seed: 3), options, Data, Validation, otherModel).Run(null, default));
        Assert.Contains("belongs to another job: it was made from other model files (the folder 'bigram' then; 'elsewhere' now, whose files differ)", error.Message);

        var wider = new BigramGraph(9, 3, seed: 3);
        var widerJob = TrainerTests.Job(options, wider, Data, Validation);
        error = Assert.Throws<InvalidDataException>(() => new Trainer(wider, options, Data, Validation, widerJob).Run(null, default));
        Assert.Contains("its trainable tensor 0 is 'embedding' [8, 3], this run's is 'embedding' [9, 3]", error.Message);
    }

    [Theory]
    [InlineData(20, "is damaged: its header does not match its checksum")]
    [InlineData(-40, "is damaged: its tensors do not match their checksum")]
    [InlineData(0, "is not an MLNetGpt training checkpoint (it does not start with MLNGCKPT)")]
    public void A_damaged_checkpoint_is_refused_and_leaves_the_weights_as_they_were(int offset, string message)
    {
        string folder = Fixtures.TempFolder("ckpt-damaged");
        var options = Options(folder);
        options.MaxSteps = 3;
        Run(new BigramGraph(8, 3, seed: 3), options);
        string path = TrainingCheckpoint.PathIn(folder);
        var bytes = File.ReadAllBytes(path);
        bytes[offset >= 0 ? offset : bytes.Length + offset] ^= 0x5A;
        File.WriteAllBytes(path, bytes);

        var fresh = new BigramGraph(8, 3, seed: 3);
        var before = fresh.Parameters.Select(p => p.Value.ToArray()).ToArray();
        options.Resume = true;
        var error = Assert.Throws<InvalidDataException>(() => Run(fresh, options));
        Assert.Equal($"The checkpoint '{path}' {message}.", error.Message);
        for (int t = 0; t < before.Length; t++) Assert.Equal(before[t], fresh.Parameters[t].Value);
    }

    [Fact]
    public void A_cut_off_checkpoint_is_refused_as_damaged()
    {
        string folder = Fixtures.TempFolder("ckpt-short");
        var options = Options(folder);
        options.MaxSteps = 3;
        Run(new BigramGraph(8, 3, seed: 3), options);
        string path = TrainingCheckpoint.PathIn(folder);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^100]);
        options.Resume = true;
        var error = Assert.Throws<InvalidDataException>(() => Run(new BigramGraph(8, 3, seed: 3), options));
        Assert.Contains("is damaged: it holds", error.Message);
        Assert.Contains("(a cut-off write?)", error.Message);
    }

    [Fact]
    public void A_folder_holding_a_checkpoint_is_refused_without_resume_and_resume_without_one_is_refused()
    {
        string folder = Fixtures.TempFolder("ckpt-exists");
        var options = Options(folder);
        options.MaxSteps = 3;
        Run(new BigramGraph(8, 3, seed: 3), options);
        var error = Assert.Throws<InvalidOperationException>(() => Run(new BigramGraph(8, 3, seed: 3), options));
        Assert.Equal($"The checkpoint folder '{folder}' already holds a checkpoint (step 3); set Resume to continue that run, or choose an empty folder.", error.Message);

        string empty = Fixtures.TempFolder("ckpt-none");
        error = Assert.Throws<InvalidOperationException>(() => Run(new BigramGraph(8, 3, seed: 3), Options(empty, resume: true)));
        Assert.Equal($"Resume is set, but the checkpoint folder '{empty}' holds no checkpoint (checkpoint.bin).", error.Message);
    }

    [Fact]
    public void Without_a_checkpoint_folder_cancellation_just_stops()
    {
        var graph = new BigramGraph(8, 3, seed: 3);
        using var cancellation = new CancellationTokenSource();
        graph.BeforeForwardBackward = call => { if (call == 2) cancellation.Cancel(); };
        var options = Options(Fixtures.TempFolder("unused"));
        options.CheckpointFolder = null;
        Assert.ThrowsAny<OperationCanceledException>(() =>
            new Trainer(graph, options, Data, null, TrainerTests.Job(options, graph, Data)).Run(null, cancellation.Token));
        Assert.Equal(2, graph.ForwardBackwardCalls);
    }

    [Fact]
    public void Checkpoints_are_written_every_n_steps_through_a_temporary_file()
    {
        string folder = Fixtures.TempFolder("ckpt-every");
        var steps = new List<int?>();
        var graph = new BigramGraph(8, 3, seed: 3);
        graph.BeforeForwardBackward = call => { if (call % 2 == 1) steps.Add(TrainingCheckpoint.StepOf(folder)); };
        Run(graph, Options(folder));
        // Before steps 1..9 (odd calls): no checkpoint until step 3 is done, then 3, 3, 3, 6, 6, 6.
        Assert.Equal([null, null, null, 3, 3, 3, 6, 6, 6], steps);
        Assert.Equal(9, TrainingCheckpoint.StepOf(folder));
        Assert.Equal([TrainingCheckpoint.FileName], Directory.GetFiles(folder).Select(Path.GetFileName));
    }

    /// <summary>Passes everything to a graph and cancels during its n-th evaluation call (the next check stops the run).</summary>
    private sealed class CancellingGraph(BigramGraph inner, int evaluateCallToCancelAt, CancellationTokenSource cancellation) : ITrainingGraph
    {
        private int _evaluations;

        public IReadOnlyList<TrainableTensor> Parameters => inner.Parameters;
        public int VocabularySize => inner.VocabularySize;
        public int MaxSequenceLength => inner.MaxSequenceLength;

        public (double LossSum, int Tokens) ForwardBackward(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence) =>
            inner.ForwardBackward(inputIds, targets, batch, sequence);

        public (double LossSum, int Tokens) Evaluate(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence)
        {
            if (++_evaluations == evaluateCallToCancelAt) cancellation.Cancel();
            return inner.Evaluate(inputIds, targets, batch, sequence);
        }

        public void WriteModelFolder(string outputFolder) => inner.WriteModelFolder(outputFolder);

        public void Dispose() => inner.Dispose();
    }
}
