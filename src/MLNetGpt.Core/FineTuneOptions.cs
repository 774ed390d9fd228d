using System.Globalization;

namespace MLNetGpt;

/// <summary>
/// How a model is fine-tuned: the method (full or LoRA), the length of training, the batches, the AdamW optimizer and its
/// learning-rate schedule, evaluation and early stopping, checkpoints, and where it runs. Names follow Hugging Face's
/// <c>TrainingArguments</c> and PEFT's <c>LoraConfig</c> where they have a counterpart; the defaults are theirs or
/// torch's unless a property says otherwise.
/// </summary>
/// <remarks>
/// <para>Each setter validates its value and throws <see cref="ArgumentOutOfRangeException"/> (or
/// <see cref="ArgumentException"/>) naming the option and the value. Settings that depend on each other or on the data
/// (early stopping needs evaluations; the sequence length must fit the model) are checked when training starts.</para>
/// <para>One optimizer step is <see cref="GradientAccumulationSteps"/> micro-batches of <see cref="BatchSize"/>
/// sequences of <see cref="SequenceLength"/> tokens. The loss of a step is the mean next-token cross-entropy over every
/// counted token of its micro-batches (so accumulating k micro-batches of n sequences equals one batch of k·n).</para>
/// <para>The same options, data, <see cref="Seed"/>, <see cref="Threads"/> and <see cref="Device"/> give the same losses
/// and weights, bit for bit, and a run resumed from a checkpoint ends with the same weights as one that was never
/// interrupted.</para>
/// </remarks>
public sealed class FineTuneOptions
{
    /// <summary>The projection names <see cref="LoraTargets"/> accepts.</summary>
    public static IReadOnlyList<string> LoraTargetNames { get; } = ["q", "k", "v", "o", "gate", "up", "down"];

    private int _loraRank = 8;
    private double _loraAlpha = 16;
    private IReadOnlyList<string> _loraTargets = ["q", "v"];
    private int? _maxSteps;
    private double _epochs = 1;
    private int _batchSize = 8;
    private int _sequenceLength = 128;
    private int _gradientAccumulationSteps = 1;
    private double _learningRate = 1e-4;
    private double _weightDecay = 0.01;
    private double _adamBeta1 = 0.9;
    private double _adamBeta2 = 0.999;
    private double _adamEpsilon = 1e-8;
    private int? _warmupSteps;
    private double _warmupRatio;
    private double? _clipNorm = 1.0;
    private int? _evaluateEveryNSteps;
    private int? _earlyStoppingPatience;
    private string? _checkpointFolder;
    private int _checkpointEveryNSteps = 100;
    private int? _threads;
    private int _extendVocabularyLimit = 1024;

    /// <summary>Full fine-tuning (the default: every weight learns) or LoRA (frozen weights plus small trainable factors).</summary>
    public FineTuneMethod Method { get; set; } = FineTuneMethod.Full;

    /// <summary>LoRA's rank r (PEFT's <c>r</c>): the inner size of each B·A factor pair, 1 or more. Default 8. Used with <see cref="FineTuneMethod.LoRA"/>.</summary>
    public int LoraRank
    {
        get => _loraRank;
        set => _loraRank = value >= 1 ? value : throw Range(nameof(LoraRank), value, "must be 1 or more");
    }

    /// <summary>
    /// LoRA's alpha (PEFT's <c>lora_alpha</c>): the factors' product is scaled by alpha / r. A finite number above 0; default 16,
    /// twice the default rank (a scale of 2, the common LoRA recipe), where PEFT's own default is 8 (a scale of 1): with the
    /// scale of 1 the adapters learn half as fast at the same learning rate.
    /// </summary>
    public double LoraAlpha
    {
        get => _loraAlpha;
        set => _loraAlpha = value > 0 && double.IsFinite(value) ? value : throw Range(nameof(LoraAlpha), value, "must be a finite number above 0");
    }

    /// <summary>
    /// The projections that get LoRA factors (PEFT's <c>target_modules</c>), by short name: <c>q</c>, <c>k</c>, <c>v</c>,
    /// <c>o</c> (attention), <c>gate</c>, <c>up</c>, <c>down</c> (MLP; a GPT-2 MLP has <c>up</c> and <c>down</c>). At least
    /// one, each once. Default q and v, as in the LoRA paper.
    /// </summary>
    public IReadOnlyList<string> LoraTargets
    {
        get => _loraTargets;
        set
        {
            ArgumentNullException.ThrowIfNull(value, nameof(LoraTargets));
            if (value.Count == 0) throw new ArgumentException("LoraTargets must name at least one projection (q, k, v, o, gate, up, down).", nameof(LoraTargets));
            foreach (var name in value)
                if (name is null || !LoraTargetNames.Contains(name, StringComparer.Ordinal))
                    throw new ArgumentException($"LoraTargets: '{name}' is not a projection name; use q, k, v, o, gate, up or down.", nameof(LoraTargets));
            var twice = value.GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (twice is not null) throw new ArgumentException($"LoraTargets names '{twice.Key}' twice.", nameof(LoraTargets));
            _loraTargets = value.ToArray();
        }
    }

    /// <summary>
    /// Optimizer steps to run (Hugging Face's <c>max_steps</c>), 1 or more; when set it overrides <see cref="Epochs"/>.
    /// Default null: as many steps as <see cref="Epochs"/> passes over the training sequences take.
    /// </summary>
    public int? MaxSteps
    {
        get => _maxSteps;
        set => _maxSteps = value is null || value >= 1 ? value : throw Range(nameof(MaxSteps), value, "must be 1 or more");
    }

    /// <summary>
    /// Passes over the training sequences (Hugging Face's <c>num_train_epochs</c>) when <see cref="MaxSteps"/> is not set:
    /// the run takes ceil(Epochs × sequences / (BatchSize × GradientAccumulationSteps)) steps. A finite number above 0
    /// (fractions allowed); default 1.
    /// </summary>
    public double Epochs
    {
        get => _epochs;
        set => _epochs = value > 0 && double.IsFinite(value) ? value : throw Range(nameof(Epochs), value, "must be a finite number above 0");
    }

    /// <summary>Sequences per micro-batch (one forward-backward pass), 1 or more. Default 8.</summary>
    public int BatchSize
    {
        get => _batchSize;
        set => _batchSize = value >= 1 ? value : throw Range(nameof(BatchSize), value, "must be 1 or more");
    }

    /// <summary>
    /// Tokens per training sequence, 2 or more, at most the model's context length (checked when training starts).
    /// Default 128. Texts are joined and cut into sequences of this length; a prompt/completion row longer than it is
    /// cut (see <see cref="GptFineTuner"/>).
    /// </summary>
    public int SequenceLength
    {
        get => _sequenceLength;
        set => _sequenceLength = value >= 2 ? value : throw Range(nameof(SequenceLength), value, "must be 2 or more");
    }

    /// <summary>Micro-batches whose gradients are added up before each optimizer step (Hugging Face's <c>gradient_accumulation_steps</c>), 1 or more. Default 1.</summary>
    public int GradientAccumulationSteps
    {
        get => _gradientAccumulationSteps;
        set => _gradientAccumulationSteps = value >= 1 ? value : throw Range(nameof(GradientAccumulationSteps), value, "must be 1 or more");
    }

    /// <summary>AdamW's peak learning rate, reached after the warm-up; a finite number above 0. Default 1e-4.</summary>
    public double LearningRate
    {
        get => _learningRate;
        set => _learningRate = value > 0 && double.IsFinite(value) ? value : throw Range(nameof(LearningRate), value, "must be a finite number above 0");
    }

    /// <summary>
    /// AdamW's decoupled weight decay (torch's <c>weight_decay</c>), 0 or more; applied to matrices and LoRA factors, never to
    /// biases or normalization weights. Default 0.01 (torch's AdamW default).
    /// </summary>
    public double WeightDecay
    {
        get => _weightDecay;
        set => _weightDecay = value >= 0 && double.IsFinite(value) ? value : throw Range(nameof(WeightDecay), value, "must be a finite number of 0 or more");
    }

    /// <summary>AdamW's β1, the decay of the gradient's running mean, in [0, 1). Default 0.9.</summary>
    public double AdamBeta1
    {
        get => _adamBeta1;
        set => _adamBeta1 = value is >= 0 and < 1 ? value : throw Range(nameof(AdamBeta1), value, "must be in [0, 1)");
    }

    /// <summary>AdamW's β2, the decay of the squared gradient's running mean, in [0, 1). Default 0.999.</summary>
    public double AdamBeta2
    {
        get => _adamBeta2;
        set => _adamBeta2 = value is >= 0 and < 1 ? value : throw Range(nameof(AdamBeta2), value, "must be in [0, 1)");
    }

    /// <summary>AdamW's ε, added to the denominator; a finite number above 0. Default 1e-8.</summary>
    public double AdamEpsilon
    {
        get => _adamEpsilon;
        set => _adamEpsilon = value > 0 && double.IsFinite(value) ? value : throw Range(nameof(AdamEpsilon), value, "must be a finite number above 0");
    }

    /// <summary>
    /// Steps of linear warm-up from 0 to <see cref="LearningRate"/> (Hugging Face's <c>warmup_steps</c>), 0 or more; when set
    /// it overrides <see cref="WarmupRatio"/>. After the warm-up the rate follows a cosine down to 0 at the last step
    /// (Hugging Face's <c>get_cosine_schedule_with_warmup</c>). Default null.
    /// </summary>
    public int? WarmupSteps
    {
        get => _warmupSteps;
        set => _warmupSteps = value is null || value >= 0 ? value : throw Range(nameof(WarmupSteps), value, "must be 0 or more");
    }

    /// <summary>The warm-up as a fraction of all steps (rounded up), in [0, 1], when <see cref="WarmupSteps"/> is not set. Default 0.</summary>
    public double WarmupRatio
    {
        get => _warmupRatio;
        set => _warmupRatio = value is >= 0 and <= 1 ? value : throw Range(nameof(WarmupRatio), value, "must be in [0, 1]");
    }

    /// <summary>
    /// The largest global L2 norm of the gradient (Hugging Face's <c>max_grad_norm</c>; torch's <c>clip_grad_norm_</c>): a
    /// larger one is scaled down to it before each step. A finite number above 0, or null for no clipping. Default 1.
    /// </summary>
    public double? ClipNorm
    {
        get => _clipNorm;
        set => _clipNorm = value is null || (value > 0 && double.IsFinite(value.Value)) ? value : throw Range(nameof(ClipNorm), value, "must be a finite number above 0, or null for no clipping");
    }

    /// <summary>
    /// Evaluate the validation set every this many steps (Hugging Face's <c>eval_steps</c>), 1 or more. The validation set
    /// is always evaluated before the first step and after the last; null (the default) evaluates only then.
    /// </summary>
    public int? EvaluateEveryNSteps
    {
        get => _evaluateEveryNSteps;
        set => _evaluateEveryNSteps = value is null || value >= 1 ? value : throw Range(nameof(EvaluateEveryNSteps), value, "must be 1 or more");
    }

    /// <summary>
    /// Stop when the validation loss has not improved on its best for this many evaluations in a row (Hugging Face's
    /// <c>EarlyStoppingCallback(early_stopping_patience)</c>), 1 or more; needs a validation set and
    /// <see cref="EvaluateEveryNSteps"/>. The written model holds the weights of the last step. Default null: no early stopping.
    /// </summary>
    public int? EarlyStoppingPatience
    {
        get => _earlyStoppingPatience;
        set => _earlyStoppingPatience = value is null || value >= 1 ? value : throw Range(nameof(EarlyStoppingPatience), value, "must be 1 or more");
    }

    /// <summary>
    /// A folder for the training checkpoint (weights, AdamW moments, the step and the data position), written every
    /// <see cref="CheckpointEveryNSteps"/> steps, when a run is cancelled, and at the end. Null (the default): no checkpoints,
    /// so a cancelled run cannot be resumed.
    /// </summary>
    public string? CheckpointFolder
    {
        get => _checkpointFolder;
        set => _checkpointFolder = value is null || value.Trim().Length > 0 ? value
            : throw new ArgumentException($"CheckpointFolder must be a folder path or null, not '{value}'.", nameof(CheckpointFolder));
    }

    /// <summary>Steps between checkpoints, 1 or more (used with <see cref="CheckpointFolder"/>). Default 100.</summary>
    public int CheckpointEveryNSteps
    {
        get => _checkpointEveryNSteps;
        set => _checkpointEveryNSteps = value >= 1 ? value : throw Range(nameof(CheckpointEveryNSteps), value, "must be 1 or more");
    }

    /// <summary>
    /// Continue the run whose checkpoint is in <see cref="CheckpointFolder"/> (Hugging Face's <c>resume_from_checkpoint</c>).
    /// The checkpoint must come from the same job: the same model, data and settings; a difference is refused by name.
    /// Without it, a folder that already holds a checkpoint is refused, so nothing is overwritten by accident. Default false.
    /// </summary>
    public bool Resume { get; set; }

    /// <summary>The seed of the data order (the shuffle of every epoch) and of the LoRA factors' initialization. Default 42 (Hugging Face's).</summary>
    public int Seed { get; set; } = 42;

    /// <summary>ONNX Runtime's intra-op threads on the CPU, 1 or more; null lets ONNX Runtime choose. Default null.</summary>
    public int? Threads
    {
        get => _threads;
        set => _threads = value is null || value >= 1 ? value : throw Range(nameof(Threads), value, "must be 1 or more");
    }

    /// <summary>Where training runs; null means the CPU (the ML.NET stage uses the MLContext's <c>GpuDeviceId</c> then).</summary>
    public GptDevice? Device { get; set; }

    /// <summary>
    /// For a model whose graph maps the tokenizer's ids onto a smaller inner vocabulary (the default model keeps 7,834 of
    /// GPT-2's 50,257 ids; every other id shares one <c>unk</c> row): give the training text's most frequent <c>unk</c>
    /// tokens rows of their own, at most <see cref="ExtendVocabularyLimit"/> of them, each seen at least twice. The report
    /// says how much of the text was <c>unk</c> and how many tokens were added. Ignored for models without such a map.
    /// Default false.
    /// </summary>
    public bool ExtendVocabulary { get; set; }

    /// <summary>The most tokens <see cref="ExtendVocabulary"/> adds, 1 or more. Default 1024.</summary>
    public int ExtendVocabularyLimit
    {
        get => _extendVocabularyLimit;
        set => _extendVocabularyLimit = value >= 1 ? value : throw Range(nameof(ExtendVocabularyLimit), value, "must be 1 or more");
    }

    /// <summary>Receives log lines (the plan, evaluations, checkpoints). Default: <see cref="System.Diagnostics.Trace"/>.</summary>
    public Action<string>? Log { get; set; }

    /// <summary>A copy whose later changes do not affect this one (a run reads its options once).</summary>
    internal FineTuneOptions Clone()
    {
        var copy = (FineTuneOptions)MemberwiseClone();
        copy._loraTargets = _loraTargets.ToArray();
        return copy;
    }

    internal void Write(string message)
    {
        if (Log is { } log) log(message);
        else System.Diagnostics.Trace.WriteLine(message, "MLNetGpt");
    }

    private static ArgumentOutOfRangeException Range(string name, object? value, string rule) =>
        new(name, value, $"{name} {rule}, not {Format(value)}.");

    private static string Format(object? value) => value switch
    {
        null => "null",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
