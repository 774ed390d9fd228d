namespace MLNetGpt.Training;

/// <summary>Which tensors a training graph changes.</summary>
internal enum TrainingMethod
{
    /// <summary>Every weight of the model learns.</summary>
    Full,

    /// <summary>Low-rank adapters (LoRA) on the chosen projections learn; the model's weights stay frozen.</summary>
    Lora,
}

/// <summary>How <see cref="TrainingGraph.Create"/> builds and runs a training graph.</summary>
internal sealed class TrainingGraphOptions
{
    /// <summary>The projection names LoRA can target: attention query, key, value, output; MLP up, down, gate.</summary>
    public static readonly IReadOnlyList<string> LoraTargetNames = ["q", "k", "v", "o", "up", "down", "gate"];

    private int _loraRank = 8;
    private float _loraAlpha = 16f;
    private IReadOnlyList<string> _loraTargets = ["q", "v"];
    private IReadOnlyList<int> _extension = [];
    private int? _threads;

    /// <summary>Full fine-tuning (the default) or LoRA.</summary>
    public TrainingMethod Method { get; set; } = TrainingMethod.Full;

    /// <summary>LoRA's rank r (default 8, as PEFT).</summary>
    public int LoraRank
    {
        get => _loraRank;
        set => _loraRank = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(LoraRank), value, "The LoRA rank must be 1 or more.");
    }

    /// <summary>LoRA's alpha; the adapter's output is scaled by alpha / r (default 16, as <see cref="FineTuneOptions.LoraAlpha"/>: alpha = 2r for the default rank).</summary>
    public float LoraAlpha
    {
        get => _loraAlpha;
        set => _loraAlpha = float.IsFinite(value) && value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(LoraAlpha), value, "LoRA alpha must be a positive number.");
    }

    /// <summary>The projections LoRA adapts, by name: q, k, v, o, up, down, gate (default q and v). Dropout is 0.</summary>
    public IReadOnlyList<string> LoraTargets
    {
        get => _loraTargets;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (value.Count == 0) throw new ArgumentException("Name at least one LoRA target (q, k, v, o, up, down, gate).", nameof(LoraTargets));
            foreach (var target in value)
                if (!LoraTargetNames.Contains(target))
                    throw new ArgumentException($"'{target}' is not a LoRA target; use q, k, v, o, up, down or gate.", nameof(LoraTargets));
            if (value.Distinct().Count() != value.Count) throw new ArgumentException("A LoRA target is named twice.", nameof(LoraTargets));
            _loraTargets = value.ToArray();
        }
    }

    /// <summary>Seeds the random initial LoRA A factors (B starts at zero, as PEFT does).</summary>
    public int Seed { get; set; }

    /// <summary>
    /// Interface ids that get embedding rows of their own in a remapped vocabulary (the default model's): each starts
    /// as a copy of the unk row with the unk row's output bias, so the model's outputs do not change until it learns.
    /// Each id must currently map to the unk row. Empty by default.
    /// </summary>
    public IReadOnlyList<int> VocabularyExtension
    {
        get => _extension;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (value.Any(i => i < 0)) throw new ArgumentOutOfRangeException(nameof(VocabularyExtension), "Token ids are 0 or more.");
            if (value.Distinct().Count() != value.Count) throw new ArgumentException("A token id is listed twice in the vocabulary extension.", nameof(VocabularyExtension));
            _extension = value.ToArray();
        }
    }

    /// <summary>ONNX Runtime's intra-op threads (null: ONNX Runtime chooses).</summary>
    public int? Threads
    {
        get => _threads;
        set => _threads = value is null || value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Threads), value, "Threads must be 1 or more.");
    }

    /// <summary>Whether ONNX Runtime's idle threads spin (off by default: spinning threads steal cores from other work on a shared machine).</summary>
    public bool AllowSpinning { get; set; }

    /// <summary>The device (null: the CPU). CUDA falls back to the CPU as <see cref="GptDevice.FallbackToCpu"/> says.</summary>
    public GptDevice? Device { get; set; }

    /// <summary>For an onnx-community folder: the precision file to train (fp32, q4, ...); null picks as <see cref="GptModelOptions.Variant"/> does.</summary>
    public string? Variant { get; set; }

    /// <summary>
    /// Check at creation that the training graph's forward pass gives the folder's own log-probabilities (through the
    /// inference engine) for a few probe sequences, so a misread layout is refused instead of trained (default true).
    /// </summary>
    public bool VerifyLayout { get; set; } = true;

    /// <summary>Receives notes (device fallback, the recognised layout).</summary>
    public Action<string>? Log { get; set; }
}
