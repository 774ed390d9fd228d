namespace MLNetGpt.Training;

/// <summary>
/// Where training graphs come from: the one seam between the trainer (data, optimizer, schedule, checkpoints, the ML.NET
/// stage and the command line) and the graph that computes losses and gradients. <see cref="Factory"/> is the
/// product's graph builder; tests substitute their own graph for the calls of one logical flow with <see cref="Use"/>,
/// so tests running in parallel do not see each other's graphs.
/// </summary>
internal static class TrainingGraphs
{
    private static readonly AsyncLocal<Func<TrainingGraphRequest, ITrainingGraph>?> Substitute = new();

    /// <summary>Builds the training graph for a request.</summary>
    public static Func<TrainingGraphRequest, ITrainingGraph> Factory { get; set; } = Build;

    /// <summary>The product's graph: the folder's decoder layout recognised and emitted as forward + loss + backward.</summary>
    private static ITrainingGraph Build(TrainingGraphRequest request) => TrainingGraph.Create(request.ModelFolder, new TrainingGraphOptions
    {
        Method = request.Method == FineTuneMethod.LoRA ? TrainingMethod.Lora : TrainingMethod.Full,
        LoraRank = request.LoraRank,
        LoraAlpha = (float)request.LoraAlpha,
        LoraTargets = request.LoraTargets,
        Seed = request.Seed,
        VocabularyExtension = request.AddedTokenIds,
        Threads = request.Threads,
        Device = request.Device,
        Log = request.Log,
    });

    /// <summary>Builds the graph for <paramref name="request"/> with the substitute of this flow, if any, else <see cref="Factory"/>.</summary>
    public static ITrainingGraph Create(TrainingGraphRequest request) => (Substitute.Value ?? Factory)(request);

    /// <summary>Makes <paramref name="factory"/> build the graphs of the calling flow (and the tasks it starts) until disposed.</summary>
    public static IDisposable Use(Func<TrainingGraphRequest, ITrainingGraph> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        var previous = Substitute.Value;
        Substitute.Value = factory;
        return new Restore(previous);
    }

    private sealed class Restore(Func<TrainingGraphRequest, ITrainingGraph>? previous) : IDisposable
    {
        public void Dispose() => Substitute.Value = previous;
    }
}
