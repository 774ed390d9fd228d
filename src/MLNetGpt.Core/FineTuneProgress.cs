namespace MLNetGpt;

/// <summary>Where a fine-tune stands after one optimizer step (reported through <see cref="IProgress{T}"/>).</summary>
public sealed class FineTuneProgress
{
    internal FineTuneProgress() { }

    /// <summary>Optimizer steps done (1 after the first step).</summary>
    public int Step { get; internal init; }

    /// <summary>Steps the run will take unless it stops early.</summary>
    public int TotalSteps { get; internal init; }

    /// <summary>Passes over the training sequences done so far (fractional: 1.5 is half-way through the second).</summary>
    public double Epoch { get; internal init; }

    /// <summary>This step's training loss: the mean next-token cross-entropy of its counted tokens, in nats per token.</summary>
    public double TrainLoss { get; internal init; }

    /// <summary>The learning rate this step used (after warm-up and cosine decay).</summary>
    public double LearningRate { get; internal init; }

    /// <summary>The global L2 norm of the step's gradient before clipping.</summary>
    public double GradientNorm { get; internal init; }

    /// <summary>Training throughput since the run (or its resumption) started: tokens fed to the model per second.</summary>
    public double TokensPerSecond { get; internal init; }

    /// <summary>The estimated time to the last step at the throughput so far.</summary>
    public TimeSpan EstimatedTimeLeft { get; internal init; }

    /// <summary>The validation loss (nats per token) when this step ended with an evaluation; otherwise null.</summary>
    public double? ValidationLoss { get; internal init; }

    /// <inheritdoc/>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"step {Step}/{TotalSteps}, epoch {Epoch:F2}, loss {TrainLoss:F4}, lr {LearningRate:G3}, {TokensPerSecond:F0} tokens/s{(ValidationLoss is double v ? $", validation loss {v:F4}" : "")}");
}
