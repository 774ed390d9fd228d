using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>The training loop's mechanics, on the exact bigram graph: torch's trajectory, accumulation, determinism, early stopping, progress.</summary>
public sealed class TrainerTests
{
    internal static List<TrainingSequence> RandomSequences(int count, int length, int vocabulary, int seed, bool ignoreSome = true)
    {
        var random = new Random(seed);
        var list = new List<TrainingSequence>();
        for (int s = 0; s < count; s++)
        {
            var inputs = Enumerable.Range(0, length).Select(_ => (long)random.Next(vocabulary)).ToArray();
            var targets = Enumerable.Range(0, length).Select(k => ignoreSome && (s + k) % 5 == 4 ? SequencePacker.Ignored : random.Next(vocabulary)).ToArray();
            list.Add(new TrainingSequence(inputs, targets));
        }
        return list;
    }

    internal static TrainingJob Job(FineTuneOptions options, ITrainingGraph graph, IReadOnlyList<TrainingSequence> training, IReadOnlyList<TrainingSequence>? validation = null)
    {
        var (total, warmup) = Trainer.Plan(options, training.Count);
        return new TrainingJob
        {
            ModelFolder = "bigram",
            ModelFingerprint = "bigram-model",
            DataFingerprint = TrainingJob.FingerprintData(training, validation),
            TrainingSequences = training.Count,
            ValidationSequences = validation?.Count ?? 0,
            Settings = TrainingJob.SettingsOf(options, total, warmup, []),
            Parameters = graph.Parameters.Select(p => (p.Name, p.Shape)).ToList(),
        };
    }

    internal static TrainerOutcome Train(BigramGraph graph, FineTuneOptions options, IReadOnlyList<TrainingSequence> training,
        IReadOnlyList<TrainingSequence>? validation = null, IProgress<FineTuneProgress>? progress = null, CancellationToken cancellationToken = default) =>
        new Trainer(graph, options, training, validation, Job(options, graph, training, validation)).Run(progress, cancellationToken);

    internal static FineTuneOptions Quiet(FineTuneOptions options)
    {
        options.Log = _ => { };
        return options;
    }

    [Fact]
    public void The_trainer_reproduces_torch_losses_and_final_weights_on_the_bigram_golden()
    {
        var g = OptimizerGoldenTests.Golden("trainer");
        var sequences = g.GetProperty("sequences").EnumerateArray().Select(s => new TrainingSequence(
            s.GetProperty("inputs").EnumerateArray().Select(v => v.GetInt64()).ToArray(),
            s.GetProperty("targets").EnumerateArray().Select(v => v.GetInt64()).ToArray())).ToList();
        var graph = new BigramGraph(g.GetProperty("vocabulary").GetInt32(), g.GetProperty("dimension").GetInt32());
        foreach (var p in graph.Parameters) OptimizerGoldenTests.Floats(g.GetProperty("initial").GetProperty(p.Name)).CopyTo(p.Value, 0);
        var options = Quiet(new FineTuneOptions
        {
            BatchSize = g.GetProperty("batch_size").GetInt32(),
            GradientAccumulationSteps = g.GetProperty("gradient_accumulation_steps").GetInt32(),
            MaxSteps = g.GetProperty("max_steps").GetInt32(),
            WarmupSteps = g.GetProperty("warmup_steps").GetInt32(),
            LearningRate = g.GetProperty("learning_rate").GetDouble(),
            WeightDecay = g.GetProperty("weight_decay").GetDouble(),
            AdamBeta1 = g.GetProperty("beta1").GetDouble(),
            AdamBeta2 = g.GetProperty("beta2").GetDouble(),
            AdamEpsilon = g.GetProperty("epsilon").GetDouble(),
            ClipNorm = g.GetProperty("clip_norm").GetDouble(),
            Seed = g.GetProperty("seed").GetInt32(),
        });

        var outcome = Train(graph, options, sequences);

        var losses = g.GetProperty("losses").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(losses.Length, outcome.State.TrainLosses.Count);
        for (int i = 0; i < losses.Length; i++) Tolerance.Close(losses[i], outcome.State.TrainLosses[i], $"loss of step {i + 1}");
        foreach (var p in graph.Parameters)
        {
            var expected = OptimizerGoldenTests.Floats(g.GetProperty("final").GetProperty(p.Name));
            for (int i = 0; i < expected.Length; i++) Tolerance.Close(expected[i], p.Value[i], $"{p.Name}[{i}] after training");
        }
        Assert.Equal(FineTuneStopReason.Completed, outcome.State.StopReason);
        Assert.Equal(2 * 2 * losses.Length, outcome.State.Consumed);   // batch 2 x 2 micro-batches per step
    }

    [Fact]
    public void The_data_order_is_the_seeded_permutation_the_torch_golden_recomputes()
    {
        var g = OptimizerGoldenTests.Golden("trainer");
        int seed = g.GetProperty("seed").GetInt32();
        Assert.Equal(g.GetProperty("permutation_epoch0").EnumerateArray().Select(v => v.GetInt32()), DataOrder.Permutation(10, seed, 0));
        Assert.Equal(g.GetProperty("permutation_epoch1").EnumerateArray().Select(v => v.GetInt32()), DataOrder.Permutation(10, seed, 1));
        var order = new DataOrder(10, seed);
        Assert.Equal(DataOrder.Permutation(10, seed, 1)[3], order.At(13));
        Assert.NotEqual(DataOrder.Permutation(10, seed, 0), DataOrder.Permutation(10, seed + 1, 0));
    }

    [Fact]
    public void Accumulating_two_micro_batches_equals_one_batch_of_twice_the_size()
    {
        var data = RandomSequences(12, 6, 9, seed: 3);
        var one = new BigramGraph(9, 4, seed: 5);
        var two = new BigramGraph(9, 4, seed: 5);
        Train(one, Quiet(new FineTuneOptions { BatchSize = 4, GradientAccumulationSteps = 1, MaxSteps = 5, LearningRate = 0.05, ClipNorm = 0.5 }), data);
        var outcome = Train(two, Quiet(new FineTuneOptions { BatchSize = 2, GradientAccumulationSteps = 2, MaxSteps = 5, LearningRate = 0.05, ClipNorm = 0.5 }), data);

        Assert.Equal(5, one.ForwardBackwardCalls);
        Assert.Equal(10, two.ForwardBackwardCalls);
        for (int t = 0; t < one.Parameters.Count; t++)
            for (int i = 0; i < one.Parameters[t].Value.Length; i++)
                Assert.True(Math.Abs(one.Parameters[t].Value[i] - two.Parameters[t].Value[i]) <= 1e-6,
                    $"{one.Parameters[t].Name}[{i}]: {one.Parameters[t].Value[i]:R} vs {two.Parameters[t].Value[i]:R}");
        Assert.Equal(20, outcome.State.Consumed);
    }

    [Fact]
    public void The_step_gradient_is_the_sum_over_micro_batches_divided_by_their_counted_tokens()
    {
        // One step of plain SGD-like AdamW is sign-based, so compare the gradient itself: a graph that records it.
        var data = RandomSequences(4, 5, 7, seed: 8);
        var graph = new BigramGraph(7, 3, seed: 2);
        var reference = new BigramGraph(7, 3, seed: 2);
        var inputs = data.SelectMany(s => s.Inputs).ToArray();
        var targets = data.SelectMany(s => s.Targets).ToArray();
        reference.ForwardBackward(inputs, targets, 4, 5);
        int counted = data.Sum(s => s.CountedTokens);
        var expected = reference.Parameters.Select(p => p.Gradient.Select(v => v / counted).ToArray()).ToArray();
        double expectedNorm = Math.Sqrt(expected.Sum(g => g.Sum(v => (double)v * v)));

        var progress = new List<FineTuneProgress>();
        Train(graph, Quiet(new FineTuneOptions { BatchSize = 2, GradientAccumulationSteps = 2, MaxSteps = 1, ClipNorm = null }), data, progress: new FineTuneKit.Collect(progress));

        var report = Assert.Single(progress);
        Assert.Equal(expectedNorm, report.GradientNorm, 5);
        Tolerance.Close(reference.LossSum(inputs, targets, 4, 5) / counted, report.TrainLoss, "step loss");
    }

    [Fact]
    public void The_same_seed_gives_bit_identical_losses_and_weights_and_another_seed_another_order()
    {
        var data = RandomSequences(10, 6, 8, seed: 1);
        var validation = RandomSequences(3, 6, 8, seed: 2);
        FineTuneOptions Options(int seed) => Quiet(new FineTuneOptions { BatchSize = 3, GradientAccumulationSteps = 2, MaxSteps = 7, Seed = seed, WarmupSteps = 2, EvaluateEveryNSteps = 3 });
        var a = new BigramGraph(8, 3, seed: 6);
        var b = new BigramGraph(8, 3, seed: 6);
        var c = new BigramGraph(8, 3, seed: 6);
        var first = Train(a, Options(17), data, validation);
        var second = Train(b, Options(17), data, validation);
        var other = Train(c, Options(18), data, validation);

        Assert.Equal(first.State.TrainLosses, second.State.TrainLosses);
        Assert.Equal(first.State.Evaluations, second.State.Evaluations);
        for (int t = 0; t < a.Parameters.Count; t++) Assert.Equal(a.Parameters[t].Value, b.Parameters[t].Value);
        Assert.NotEqual(a.Batches[0], c.Batches[0]);
        Assert.NotEqual(first.State.TrainLosses, other.State.TrainLosses);
    }

    [Fact]
    public void Validation_is_evaluated_before_the_first_step_every_n_steps_and_after_the_last()
    {
        var data = RandomSequences(8, 5, 6, seed: 4);
        var validation = RandomSequences(5, 5, 6, seed: 5);
        var graph = new BigramGraph(6, 3);
        var progress = new List<FineTuneProgress>();
        var outcome = Train(graph, Quiet(new FineTuneOptions { BatchSize = 2, MaxSteps = 7, EvaluateEveryNSteps = 3, LearningRate = 0.05 }), data, validation, new FineTuneKit.Collect(progress));

        Assert.Equal([0, 3, 6, 7], outcome.State.Evaluations.Select(e => e.Step));
        Assert.Equal(3 * 4, graph.EvaluateCalls);          // 5 validation sequences in batches of 2: 3 calls per evaluation
        Assert.Equal([1, 2, 3, 4, 5, 6, 7], progress.Select(p => p.Step));
        Assert.Equal([null, null, outcome.State.Evaluations[1].Loss, null, null, outcome.State.Evaluations[2].Loss, outcome.State.Evaluations[3].Loss],
            progress.Select(p => p.ValidationLoss));
        // The last evaluation is the mean loss per counted token of the whole validation set under the final weights.
        double sum = validation.Sum(v => graph.LossSum(v.Inputs, v.Targets, 1, 5));
        Assert.Equal(sum / validation.Sum(v => v.CountedTokens), outcome.State.Evaluations[^1].Loss, 12);
        Assert.All(progress, p => Assert.Equal(7, p.TotalSteps));
        Assert.Equal(14.0 / 8, progress[^1].Epoch, 10);
    }

    [Fact]
    public void Early_stopping_ends_the_run_after_patience_evaluations_without_improvement()
    {
        var data = RandomSequences(6, 4, 5, seed: 4);
        var validation = RandomSequences(2, 4, 5, seed: 5);
        // Evaluation losses at steps 0, 1, 2, ...: best 4.0 at step 1; steps 2 and 3 improve nothing, step 4 neither.
        double[] script = [5.0, 4.0, 4.5, 4.0, 4.2, 1.0, 1.0];
        var graph = new BigramGraph(5, 2) { ScriptedValidationLoss = call => script[call - 1] };
        var outcome = Train(graph, Quiet(new FineTuneOptions { BatchSize = 2, MaxSteps = 20, EvaluateEveryNSteps = 1, EarlyStoppingPatience = 3 }), data, validation);

        Assert.Equal(FineTuneStopReason.EarlyStopping, outcome.State.StopReason);
        Assert.Equal(4, outcome.State.Step);
        Assert.Equal([5.0, 4.0, 4.5, 4.0, 4.2], outcome.State.Evaluations.Select(e => e.Loss));
        Assert.Equal(4.0, outcome.State.BestLoss);
    }

    [Fact]
    public void An_improvement_resets_the_patience()
    {
        var data = RandomSequences(6, 4, 5, seed: 4);
        var validation = RandomSequences(2, 4, 5, seed: 5);
        double[] script = [5.0, 5.1, 4.9, 5.0, 4.8, 4.9, 4.7, 4.75];
        var graph = new BigramGraph(5, 2) { ScriptedValidationLoss = call => script[call - 1] };
        var outcome = Train(graph, Quiet(new FineTuneOptions { BatchSize = 2, MaxSteps = 7, EvaluateEveryNSteps = 1, EarlyStoppingPatience = 2 }), data, validation);
        Assert.Equal(FineTuneStopReason.Completed, outcome.State.StopReason);
        Assert.Equal(7, outcome.State.Step);
    }

    [Fact]
    public void A_diverging_loss_stops_the_run_with_a_message_naming_the_step_and_the_learning_rate()
    {
        var data = RandomSequences(4, 4, 5, seed: 4);
        var graph = new BigramGraph(5, 2);
        graph.BeforeForwardBackward = call => { if (call == 3) graph.Bias.Value[0] = float.NaN; };
        var error = Assert.Throws<InvalidOperationException>(() => Train(graph, Quiet(new FineTuneOptions { BatchSize = 2, MaxSteps = 5, LearningRate = 0.5 }), data));
        Assert.Equal("The training loss is NaN at step 3; the weights have diverged. Lower LearningRate (now 0.5) or set ClipNorm.", error.Message);
    }

    [Fact]
    public void Epochs_set_the_steps_when_max_steps_is_not_given()
    {
        Assert.Equal((3, 0), Trainer.Plan(new FineTuneOptions { BatchSize = 4, Epochs = 1 }, 10));                       // ceil(10 / 4)
        Assert.Equal((5, 0), Trainer.Plan(new FineTuneOptions { BatchSize = 2, GradientAccumulationSteps = 2, Epochs = 2 }, 10));
        Assert.Equal((4, 1), Trainer.Plan(new FineTuneOptions { BatchSize = 2, Epochs = 0.5, WarmupRatio = 0.1 }, 16));  // ceil(4 x 0.1)
        Assert.Equal((9, 3), Trainer.Plan(new FineTuneOptions { MaxSteps = 9, Epochs = 5, WarmupSteps = 3, WarmupRatio = 0.5 }, 100));
    }

    [Fact]
    public void Progress_reports_the_learning_rate_of_each_step_and_a_throughput()
    {
        var data = RandomSequences(4, 4, 5, seed: 4);
        var progress = new List<FineTuneProgress>();
        Train(new BigramGraph(5, 2), Quiet(new FineTuneOptions { BatchSize = 2, MaxSteps = 4, WarmupSteps = 2, LearningRate = 0.01 }), data, progress: new FineTuneKit.Collect(progress));
        Assert.Equal([0.0, 0.005, 0.01, 0.005], progress.Select(p => Math.Round(p.LearningRate, 12)));
        Assert.All(progress, p => Assert.True(p.TokensPerSecond > 0 && double.IsFinite(p.TrainLoss)));
        Assert.Equal(TimeSpan.Zero, progress[^1].EstimatedTimeLeft);
    }

}
