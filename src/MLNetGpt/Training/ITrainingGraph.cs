namespace MLNetGpt.Training;

/// <summary>One trainable tensor of a training graph: its values, which the optimizer updates in place
/// and the next pass reads, and the gradient the last <see cref="ITrainingGraph.ForwardBackward"/> wrote.</summary>
internal sealed class TrainableTensor
{
    public TrainableTensor(string name, int[] shape, float[] value, bool decay)
    {
        Name = name;
        Shape = shape;
        Value = value;
        Gradient = new float[value.Length];
        Decay = decay;
    }

    /// <summary>The tensor's name (the source graph's initializer name, or a LoRA factor's name).</summary>
    public string Name { get; }

    /// <summary>The tensor's shape.</summary>
    public int[] Shape { get; }

    /// <summary>The values, row-major; updated in place by the optimizer.</summary>
    public float[] Value { get; }

    /// <summary>d(sum of the counted tokens' losses)/d(value) from the last forward-backward pass.</summary>
    public float[] Gradient { get; }

    /// <summary>Whether weight decay applies (matrices and LoRA factors: yes; biases, norm weights: no).</summary>
    public bool Decay { get; }
}

/// <summary>A forward pass, a next-token cross-entropy loss and its backward pass for one decoder, run by
/// ONNX Runtime over batches of token ids.</summary>
internal interface ITrainingGraph : IDisposable
{
    /// <summary>The tensors that learn (every weight for full fine-tuning; the LoRA factors for LoRA).</summary>
    IReadOnlyList<TrainableTensor> Parameters { get; }

    /// <summary>How many token ids the model takes (ids are in [0, VocabularySize)).</summary>
    int VocabularySize { get; }

    /// <summary>The longest sequence the model's position table allows.</summary>
    int MaxSequenceLength { get; }

    /// <summary>Runs forward and backward over <paramref name="batch"/> x <paramref name="sequence"/> tokens
    /// (row-major). <paramref name="targets"/>[i] is the id to predict at position i, or -100 where no loss is
    /// counted. Overwrites every parameter's <see cref="TrainableTensor.Gradient"/> with the gradient of the
    /// SUM of the counted tokens' losses (so accumulation over micro-batches is exact: add, then divide by
    /// the total count). Returns that sum (nats) and the count.</summary>
    (double LossSum, int Tokens) ForwardBackward(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence);

    /// <summary>The forward pass and loss only (evaluation); gradients are left as they are.</summary>
    (double LossSum, int Tokens) Evaluate(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence);

    /// <summary>Writes a complete model folder with the current values: the source graph with only initializer
    /// data replaced (stored as fp16 where the source stored fp16; LoRA factors merged into their weights;
    /// re-quantized where the source was quantized) and the source folder's other model files copied.</summary>
    void WriteModelFolder(string outputFolder);
}
