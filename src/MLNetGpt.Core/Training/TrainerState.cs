namespace MLNetGpt.Training;

/// <summary>Everything about a run's progress that is not a tensor: what a checkpoint keeps besides the weights and moments.</summary>
internal sealed class TrainerState
{
    /// <summary>Optimizer steps done.</summary>
    public int Step { get; set; }

    /// <summary>Sequences of the data order consumed by completed steps (the data position).</summary>
    public long Consumed { get; set; }

    /// <summary>Whether the run has ended (all steps, or early stopping).</summary>
    public bool Finished { get; set; }

    public FineTuneStopReason StopReason { get; set; }

    /// <summary>The lowest validation loss so far (null before the first evaluation).</summary>
    public double? BestLoss { get; set; }

    /// <summary>Evaluations in a row that did not improve on <see cref="BestLoss"/>.</summary>
    public int BadEvaluations { get; set; }

    public List<double> TrainLosses { get; } = [];

    public List<FineTuneEvaluation> Evaluations { get; } = [];
}
