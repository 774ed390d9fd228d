namespace MLNetGpt;

/// <summary>Why a fine-tune ended (<see cref="FineTuneReport.StopReason"/>).</summary>
public enum FineTuneStopReason
{
    /// <summary>Every planned step ran (<see cref="FineTuneOptions.MaxSteps"/>, or the steps of <see cref="FineTuneOptions.Epochs"/>).</summary>
    Completed,

    /// <summary>
    /// The validation loss did not improve on its best for <see cref="FineTuneOptions.EarlyStoppingPatience"/> evaluations in a
    /// row, so training stopped early.
    /// </summary>
    EarlyStopping,
}
