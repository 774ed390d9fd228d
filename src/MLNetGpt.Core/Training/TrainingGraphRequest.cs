namespace MLNetGpt.Training;

/// <summary>
/// What the trainer asks of a training graph: the model folder, the method and its LoRA settings, the ids the vocabulary
/// extension adds, and where it runs. <see cref="TrainingGraphs"/> turns it into a graph.
/// </summary>
internal sealed record TrainingGraphRequest
{
    /// <summary>The model folder (full path).</summary>
    public required string ModelFolder { get; init; }

    public required FineTuneMethod Method { get; init; }

    public int LoraRank { get; init; } = 8;

    public double LoraAlpha { get; init; } = 16;

    /// <summary>Short projection names (q, k, v, o, gate, up, down).</summary>
    public IReadOnlyList<string> LoraTargets { get; init; } = ["q", "v"];

    /// <summary>Interface token ids that get rows of their own in a remapped vocabulary, most frequent first (empty: none).</summary>
    public IReadOnlyList<int> AddedTokenIds { get; init; } = [];

    /// <summary>ONNX Runtime intra-op threads; null lets it choose.</summary>
    public int? Threads { get; init; }

    public GptDevice Device { get; init; } = GptDevice.Cpu;

    /// <summary>Seeds the LoRA factors' initialization.</summary>
    public int Seed { get; init; }

    /// <summary>Where the graph reports what it decided (the layout it recognised, a device fallback); null: nowhere.</summary>
    public Action<string>? Log { get; init; }
}
