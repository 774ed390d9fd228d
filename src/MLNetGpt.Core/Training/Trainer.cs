using System.Diagnostics;
using System.Globalization;

namespace MLNetGpt.Training;

/// <summary>What a finished <see cref="Trainer.Run"/> hands back.</summary>
internal sealed record TrainerOutcome(TrainerState State, double TokensPerSecond, int? ResumedFromStep);

/// <summary>
/// The training loop over an <see cref="ITrainingGraph"/>: micro-batches in a seeded order, gradient accumulation,
/// global-norm clipping, AdamW with warm-up and cosine decay, evaluation with early stopping, checkpoints and resumption,
/// cancellation and progress.
/// </summary>
/// <remarks>
/// <para>One step: for each of <see cref="FineTuneOptions.GradientAccumulationSteps"/> micro-batches, the next
/// <see cref="FineTuneOptions.BatchSize"/> sequences of the data order go through the graph's forward-backward pass and its
/// gradients (of loss sums) are added up; the sum is divided by the step's counted tokens (the gradient of the step's mean
/// loss), clipped, and AdamW updates the parameters with the step's learning rate.</para>
/// <para>The state between steps is the whole truth: cancellation is checked before every micro-batch and evaluation
/// batch; a cancelled step is dropped (the parameters only change once all its micro-batches are done) and the
/// checkpoint written then is that of the last completed step, which a resumed run repeats from exactly there.</para>
/// </remarks>
internal sealed class Trainer
{
    private readonly ITrainingGraph _graph;
    private readonly FineTuneOptions _options;
    private readonly IReadOnlyList<TrainingSequence> _training;
    private readonly IReadOnlyList<TrainingSequence>? _validation;
    private readonly TrainingJob _job;
    private readonly IReadOnlyList<TrainableTensor> _parameters;
    private readonly AdamW _optimizer;
    private readonly DataOrder _order;
    private readonly LearningRateSchedule _schedule;
    private readonly int _sequenceLength;

    /// <param name="graph">The graph; its parameters are trained in place.</param>
    /// <param name="options">The settings (read, not kept for later changes).</param>
    /// <param name="training">At least one training sequence; all of one length.</param>
    /// <param name="validation">Validation sequences of the same length, or null.</param>
    /// <param name="job">The job's identity (its settings come from <see cref="Plan"/>); checkpoints carry it.</param>
    public Trainer(ITrainingGraph graph, FineTuneOptions options, IReadOnlyList<TrainingSequence> training, IReadOnlyList<TrainingSequence>? validation, TrainingJob job)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(training);
        if (training.Count == 0) throw new ArgumentException("There is no training sequence.", nameof(training));
        _graph = graph;
        _options = options.Clone();
        _training = training;
        _validation = validation is { Count: > 0 } ? validation : null;
        _job = job;
        _sequenceLength = training[0].Inputs.Length;
        if (training.Concat(_validation ?? []).Any(s => s.Inputs.Length != _sequenceLength))
            throw new ArgumentException("Every training and validation sequence must have the same length.", nameof(training));
        _parameters = graph.Parameters;
        _optimizer = new AdamW(_parameters, _options.AdamBeta1, _options.AdamBeta2, _options.AdamEpsilon, _options.WeightDecay);
        _order = new DataOrder(training.Count, _options.Seed);
        (TotalSteps, WarmupSteps) = Plan(_options, training.Count);
        _schedule = new LearningRateSchedule(_options.LearningRate, WarmupSteps, TotalSteps);
    }

    public int TotalSteps { get; }

    public int WarmupSteps { get; }

    /// <summary>The steps a run takes and its warm-up steps (Hugging Face's rules: max_steps overrides epochs; warmup_steps overrides the ratio).</summary>
    public static (int Total, int Warmup) Plan(FineTuneOptions options, int sequences)
    {
        int total = options.MaxSteps ?? (int)Math.Min(int.MaxValue, Math.Max(1, Math.Ceiling(options.Epochs * sequences / ((double)options.BatchSize * options.GradientAccumulationSteps))));
        int warmup = options.WarmupSteps ?? (int)Math.Ceiling(total * options.WarmupRatio);
        return (total, warmup);
    }

    /// <summary>Trains to the end (or early stop); resumes from the checkpoint when <see cref="FineTuneOptions.Resume"/> is set.</summary>
    /// <param name="progress">Receives one report per step.</param>
    /// <param name="cancellationToken">Checked before every micro-batch and evaluation batch.</param>
    /// <param name="checkAlive">Another cancellation check (ML.NET's <c>CheckAlive</c>), called where the token is; it throws to cancel.</param>
    /// <exception cref="OperationCanceledException">Cancelled; with a checkpoint folder, a checkpoint of the last completed step was written first.</exception>
    public TrainerOutcome Run(IProgress<FineTuneProgress>? progress, CancellationToken cancellationToken, Action? checkAlive = null)
    {
        string? folder = _options.CheckpointFolder;
        TrainerState state;
        int? resumedFrom = null;
        if (folder is not null && _options.Resume)
        {
            if (!TrainingCheckpoint.Exists(folder))
                throw new InvalidOperationException($"Resume is set, but the checkpoint folder '{folder}' holds no checkpoint ({TrainingCheckpoint.FileName}).");
            state = TrainingCheckpoint.Restore(folder, _job, _parameters, _optimizer);
            resumedFrom = state.Step;
            _options.Write(string.Create(CultureInfo.InvariantCulture, $"resumed from the checkpoint of step {state.Step} of {TotalSteps} in '{folder}'"));
        }
        else
        {
            if (_options.Resume) throw new InvalidOperationException("Resume is set, but no CheckpointFolder is given to resume from.");
            if (folder is not null && TrainingCheckpoint.Exists(folder))
                throw new InvalidOperationException($"The checkpoint folder '{folder}' already holds a checkpoint (step {TrainingCheckpoint.StepOf(folder)?.ToString(CultureInfo.InvariantCulture) ?? "unknown"}); " +
                    "set Resume to continue that run, or choose an empty folder.");
            state = new TrainerState();
        }
        _options.Write(string.Create(CultureInfo.InvariantCulture,
            $"fine-tuning ({FineTuneReport.MethodName(_options.Method)}): {_training.Count} sequences of {_sequenceLength} tokens, {TotalSteps} steps of " +
            $"{_options.BatchSize} x {_options.GradientAccumulationSteps} sequences, learning rate {_options.LearningRate:G4} (warm-up {WarmupSteps} steps, cosine), " +
            $"{_parameters.Count} trainable tensors ({_parameters.Sum(p => (long)p.Value.Length):N0} values)"));

        var run = new RunLoop(this, state, progress, cancellationToken, checkAlive);
        try
        {
            run.Execute();
        }
        catch (OperationCanceledException)
        {
            if (folder is not null)
            {
                TrainingCheckpoint.Write(folder, _job, state, _parameters, _optimizer);
                _options.Write(string.Create(CultureInfo.InvariantCulture, $"cancelled; the checkpoint of step {state.Step} is in '{folder}' (resume to continue)"));
            }
            throw;
        }
        if (folder is not null) TrainingCheckpoint.Write(folder, _job, state, _parameters, _optimizer);
        return new TrainerOutcome(state, run.TokensPerSecond, resumedFrom);
    }

    /// <summary>One call of <see cref="Run"/>: its buffers, clock and the state it advances.</summary>
    private sealed class RunLoop
    {
        private readonly Trainer _t;
        private readonly TrainerState _state;
        private readonly IProgress<FineTuneProgress>? _progress;
        private readonly CancellationToken _cancellationToken;
        private readonly Action? _checkAlive;
        private readonly long[] _inputs;
        private readonly long[] _targets;
        private readonly float[][] _gradients;
        private readonly Stopwatch _clock = new();
        private long _tokensFed;

        public RunLoop(Trainer trainer, TrainerState state, IProgress<FineTuneProgress>? progress, CancellationToken cancellationToken, Action? checkAlive)
        {
            _t = trainer;
            _state = state;
            _progress = progress;
            _cancellationToken = cancellationToken;
            _checkAlive = checkAlive;
            int batch = trainer._options.BatchSize;
            _inputs = new long[batch * trainer._sequenceLength];
            _targets = new long[batch * trainer._sequenceLength];
            // With one micro-batch per step the graph's own gradient buffers are the step's gradient; otherwise they are added up here.
            _gradients = trainer._options.GradientAccumulationSteps == 1
                ? trainer._parameters.Select(p => p.Gradient).ToArray()
                : trainer._parameters.Select(p => new float[p.Value.Length]).ToArray();
        }

        public double TokensPerSecond => _clock.Elapsed.TotalSeconds > 0 ? _tokensFed / _clock.Elapsed.TotalSeconds : 0;

        public void Execute()
        {
            EvaluateIfDue();
            while (!_state.Finished)
            {
                if (_state.Step >= _t.TotalSteps)
                {
                    _state.Finished = true;
                    _state.StopReason = FineTuneStopReason.Completed;
                    break;
                }
                var (loss, learningRate, norm) = TrainStep();
                double? validation = EvaluateIfDue();
                Report(loss, learningRate, norm, validation);
                if (_t._options.CheckpointFolder is { } folder && _state.Step % _t._options.CheckpointEveryNSteps == 0 && !_state.Finished)
                {
                    TrainingCheckpoint.Write(folder, _t._job, _state, _t._parameters, _t._optimizer);
                    _t._options.Write(string.Create(CultureInfo.InvariantCulture, $"checkpoint of step {_state.Step} written to '{folder}'"));
                }
            }
        }

        private (double Loss, double LearningRate, double Norm) TrainStep()
        {
            var options = _t._options;
            int batch = options.BatchSize, length = _t._sequenceLength;
            bool accumulate = options.GradientAccumulationSteps > 1;
            if (accumulate) foreach (var g in _gradients) Array.Clear(g);
            double lossSum = 0;
            long tokens = 0;
            long position = _state.Consumed;
            for (int micro = 0; micro < options.GradientAccumulationSteps; micro++)
            {
                ThrowIfCancelled();
                for (int row = 0; row < batch; row++)
                {
                    var sequence = _t._training[_t._order.At(position++)];
                    sequence.Inputs.CopyTo(_inputs, row * length);
                    sequence.Targets.CopyTo(_targets, row * length);
                }
                _clock.Start();
                var (sum, count) = _t._graph.ForwardBackward(_inputs, _targets, batch, length);
                if (accumulate)
                {
                    for (int p = 0; p < _gradients.Length; p++)
                    {
                        var source = _t._parameters[p].Gradient;
                        var target = _gradients[p];
                        for (int i = 0; i < target.Length; i++) target[i] += source[i];
                    }
                }
                _clock.Stop();
                _tokensFed += (long)batch * length;
                lossSum += sum;
                tokens += count;
            }
            if (tokens == 0)
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"Step {_state.Step + 1} has no token whose loss counts (every target of its {options.GradientAccumulationSteps * batch} sequences is ignored)."));
            double loss = lossSum / tokens;
            if (!double.IsFinite(loss))
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"The training loss is {loss} at step {_state.Step + 1}; the weights have diverged. Lower LearningRate (now {options.LearningRate:G4}) or set ClipNorm."));

            _clock.Start();
            float divisor = tokens;
            foreach (var g in _gradients)
                for (int i = 0; i < g.Length; i++) g[i] /= divisor;
            double norm = GradientClipping.Clip(_gradients, options.ClipNorm);
            double learningRate = _t._schedule.At(_state.Step);
            _t._optimizer.Step(_gradients, learningRate);
            _clock.Stop();

            _state.Step++;
            _state.Consumed = position;
            _state.TrainLosses.Add(loss);
            return (loss, learningRate, norm);
        }

        /// <summary>Evaluates when the current step calls for it and has no evaluation yet; returns the loss, or null.</summary>
        private double? EvaluateIfDue()
        {
            if (_t._validation is null) return null;
            int step = _state.Step;
            bool due = step == 0 || step >= _t.TotalSteps || (_t._options.EvaluateEveryNSteps is int every && step % every == 0);
            if (!due || (_state.Evaluations.Count > 0 && _state.Evaluations[^1].Step == step)) return null;

            double lossSum = 0;
            long tokens = 0;
            int batch = _t._options.BatchSize, length = _t._sequenceLength;
            for (int start = 0; start < _t._validation.Count; start += batch)
            {
                ThrowIfCancelled();
                int rows = Math.Min(batch, _t._validation.Count - start);
                for (int row = 0; row < rows; row++)
                {
                    _t._validation[start + row].Inputs.CopyTo(_inputs, row * length);
                    _t._validation[start + row].Targets.CopyTo(_targets, row * length);
                }
                var (sum, count) = _t._graph.Evaluate(_inputs.AsSpan(0, rows * length), _targets.AsSpan(0, rows * length), rows, length);
                lossSum += sum;
                tokens += count;
            }
            double loss = tokens > 0 ? lossSum / tokens : double.NaN;
            _state.Evaluations.Add(new FineTuneEvaluation(step, loss));
            _t._options.Write(string.Create(CultureInfo.InvariantCulture, $"step {step}: validation loss {loss:F4}"));
            if (_state.BestLoss is not double best || loss < best)
            {
                _state.BestLoss = loss;
                _state.BadEvaluations = 0;
            }
            else
            {
                _state.BadEvaluations++;
                if (_t._options.EarlyStoppingPatience is int patience && _state.BadEvaluations >= patience && step < _t.TotalSteps)
                {
                    _state.Finished = true;
                    _state.StopReason = FineTuneStopReason.EarlyStopping;
                    _t._options.Write(string.Create(CultureInfo.InvariantCulture,
                        $"early stopping at step {step}: no improvement on the best validation loss {_state.BestLoss:F4} for {patience} evaluations"));
                }
            }
            return loss;
        }

        private void Report(double loss, double learningRate, double norm, double? validation)
        {
            if (_progress is null) return;
            double perSecond = TokensPerSecond;
            long tokensPerStep = (long)_t._options.BatchSize * _t._options.GradientAccumulationSteps * _t._sequenceLength;
            double secondsLeft = perSecond > 0 ? (double)(_t.TotalSteps - _state.Step) * tokensPerStep / perSecond : 0;
            _progress.Report(new FineTuneProgress
            {
                Step = _state.Step,
                TotalSteps = _t.TotalSteps,
                Epoch = (double)_state.Consumed / _t._training.Count,
                TrainLoss = loss,
                LearningRate = learningRate,
                GradientNorm = norm,
                TokensPerSecond = perSecond,
                EstimatedTimeLeft = TimeSpan.FromSeconds(Math.Min(secondsLeft, TimeSpan.MaxValue.TotalSeconds / 2)),
                ValidationLoss = validation,
            });
        }

        private void ThrowIfCancelled()
        {
            _cancellationToken.ThrowIfCancellationRequested();
            _checkAlive?.Invoke();
        }
    }
}
