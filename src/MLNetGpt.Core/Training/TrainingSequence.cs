namespace MLNetGpt.Training;

/// <summary>
/// One training sequence of a fixed length: the ids fed to the model and, at each position, the id it should predict
/// there (<see cref="SequencePacker.Ignored"/> where no loss is counted: padding, prompts).
/// </summary>
internal sealed class TrainingSequence
{
    public TrainingSequence(long[] inputs, long[] targets)
    {
        if (inputs.Length != targets.Length) throw new ArgumentException($"A training sequence has {inputs.Length} inputs but {targets.Length} targets.");
        Inputs = inputs;
        Targets = targets;
        CountedTokens = targets.Count(t => t != SequencePacker.Ignored);
    }

    public long[] Inputs { get; }

    public long[] Targets { get; }

    /// <summary>Positions whose loss counts.</summary>
    public int CountedTokens { get; }
}
