using System.Globalization;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Generation;
using MLNetGpt.Models;
using MLNetGpt.Models.Onnx;

namespace MLNetGpt.Training;

/// <summary>
/// The training graph of one model folder, run by ONNX Runtime: every weight (and LoRA factor) is a graph input
/// fed from a pinned float32 array, so an optimizer that updates <see cref="TrainableTensor.Value"/> in place is
/// read by the next pass without a copy; gradients are graph outputs bound to <see cref="TrainableTensor.Gradient"/>.
/// </summary>
/// <remarks>Not thread-safe: one pass at a time.</remarks>
internal sealed class TrainingGraph : ITrainingGraph
{
    /// <summary>A target that counts no loss (as torch's cross_entropy ignore_index).</summary>
    public const long IgnoreIndex = -100;

    private readonly DecoderLayout _layout;
    private readonly TrainingGraphOptions _options;
    private readonly Dictionary<string, float[]> _values;
    private readonly List<TrainableTensor> _parameters;
    private readonly IReadOnlyList<LoraFactor> _lora;
    private readonly int[]? _tokenMap;
    private readonly float[]? _logCounts;
    private readonly IReadOnlyList<int> _extension;
    private readonly InferenceSession? _train;
    private readonly InferenceSession _eval;
    private readonly OrtIoBinding? _trainBinding;
    private readonly OrtIoBinding _evalBinding;
    private readonly List<OrtValue> _bound = [];
    private readonly RunOptions _runOptions = new();
    private readonly Dictionary<int, (float[] Mask, float[]? Cos, float[]? Sin)> _byLength = [];
    private readonly float[]? _ropeCos, _ropeSin;
    private bool _disposed;

    private TrainingGraph(DecoderLayout layout, TrainingGraphOptions options, Dictionary<string, float[]> values, List<TrainableTensor> parameters,
        IReadOnlyList<LoraFactor> lora, int[]? tokenMap, float[]? logCounts, float[]? offset, IReadOnlyList<int> extension,
        HashSet<string> trainableWeights)
    {
        _layout = layout;
        _options = options;
        _values = values;
        _parameters = parameters;
        _lora = lora;
        _tokenMap = tokenMap;
        _logCounts = logCounts;
        _extension = extension;
        if (layout.RotaryCos is not null)
        {
            var file = OnnxModelFile.Load(Path.Combine(layout.Folder, layout.ModelFile));
            _ropeCos = SourceWeights.Read(file, layout.RotaryCos);
            _ropeSin = SourceWeights.Read(file, layout.RotarySin!);
        }

        var settings = new EmitterSettings
        {
            Layout = layout,
            Backward = false,
            TrainableWeights = trainableWeights,
            Lora = lora,
            ExtensionRows = extension.Count,
            HasOutputOffset = offset is not null,
        };
        var sessionOptions = new GptModelOptions
        {
            GpuDeviceId = options.Device?.GpuDeviceId,
            FallbackToCpu = options.Device?.FallbackToCpu ?? true,
            IntraOpThreads = options.Threads,
            Log = options.Log,
        };
        string spinning = options.AllowSpinning ? "1" : "0";
        sessionOptions.SessionConfig["session.intra_op.allow_spinning"] = spinning;
        sessionOptions.SessionConfig["session.inter_op.allow_spinning"] = spinning;
        try
        {
            EvaluationGraph = TrainingGraphEmitter.Emit(settings).ToByteArray();
            (_eval, Provider) = SessionFactory.Open(EvaluationGraph, "the evaluation graph", sessionOptions, cudaAlreadyFailed: false);
            _evalBinding = _eval.CreateIoBinding();
            if (parameters.Count > 0)
            {
                BackwardGraph = TrainingGraphEmitter.Emit(new EmitterSettings
                {
                    Layout = layout,
                    Backward = true,
                    TrainableWeights = trainableWeights,
                    Lora = lora,
                    ExtensionRows = extension.Count,
                    HasOutputOffset = offset is not null,
                }).ToByteArray();
                (_train, _) = SessionFactory.Open(BackwardGraph, "the training graph", sessionOptions, cudaAlreadyFailed: Provider == "CPU" && options.Device?.GpuDeviceId is not null);
                _trainBinding = _train.CreateIoBinding();
            }

            if (_trainBinding is not null)
            {
                foreach (var p in parameters)
                {
                    var gradient = OrtValue.CreateTensorValueFromMemory(p.Gradient, p.Shape.Select(d => (long)d).ToArray());
                    _bound.Add(gradient);
                    _trainBinding.BindOutput(TrainingGraphEmitter.GradientName(p.Name), gradient);
                }
            }
            foreach (var (name, array) in values)
            {
                var value = OrtValue.CreateTensorValueFromMemory(array, ShapeOf(name));
                _bound.Add(value);
                foreach (var (session, binding) in Sessions())
                    if (session.InputMetadata.ContainsKey(name)) binding.BindInput(name, value);
            }
            if (offset is not null)
            {
                var value = OrtValue.CreateTensorValueFromMemory(offset, [offset.Length]);
                _bound.Add(value);
                foreach (var (session, binding) in Sessions())
                    if (session.InputMetadata.ContainsKey(TrainingGraphEmitter.OutputOffset)) binding.BindInput(TrainingGraphEmitter.OutputOffset, value);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The recognised decoder.</summary>
    public DecoderLayout Layout => _layout;

    /// <summary>Where the graphs run: <c>CPU</c> or <c>CUDA:N</c>.</summary>
    public string Provider { get; } = "CPU";

    /// <summary>The serialized forward-and-backward graph (null when nothing trains).</summary>
    public byte[]? BackwardGraph { get; }

    /// <summary>The serialized forward-only graph <see cref="Evaluate"/> runs.</summary>
    public byte[] EvaluationGraph { get; } = [];

    /// <inheritdoc/>
    public IReadOnlyList<TrainableTensor> Parameters => _parameters;

    /// <inheritdoc/>
    public int VocabularySize => _layout.Vocabulary;

    /// <inheritdoc/>
    public int MaxSequenceLength => _layout.MaxPositions;

    /// <summary>The LoRA factors (empty for full fine-tuning).</summary>
    public IReadOnlyList<LoraFactor> LoraFactors => _lora;

    /// <summary>The interface ids given rows of their own (in the order of their new rows).</summary>
    public IReadOnlyList<int> VocabularyExtension => _extension;

    /// <summary>Every float32 graph input by name: source weights (dequantized), LoRA factors, extension rows.</summary>
    internal IReadOnlyDictionary<string, float[]> Values => _values;

    /// <summary>The interface-id → inner-row table after the vocabulary extension (null without a remap).</summary>
    internal int[]? TokenMap => _tokenMap;

    private IEnumerable<(InferenceSession, OrtIoBinding)> Sessions()
    {
        yield return (_eval, _evalBinding);
        if (_train is not null) yield return (_train, _trainBinding!);
    }

    private long[] ShapeOf(string name)
    {
        var dims = _eval.InputMetadata.TryGetValue(name, out var m) ? m.Dimensions : _train!.InputMetadata[name].Dimensions;
        return dims.Select(d => (long)d).ToArray();
    }

    /// <summary>Reads <paramref name="modelFolder"/>, recognises its decoder and builds its training and evaluation graphs.</summary>
    /// <exception cref="GptModelException">The folder cannot be read, its graph is not a GPT-2 or Llama decoder this code knows, an option does
    /// not fit the model, or the training graph does not reproduce the folder's own log-probabilities.</exception>
    public static TrainingGraph Create(string modelFolder, TrainingGraphOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var layout = DecoderLayoutReader.Read(modelFolder, options.Variant);
        options.Log?.Invoke($"Training graph: {layout.Describe()} in '{layout.ModelFile}'.");
        var values = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var source = OnnxModelFile.Load(Path.Combine(layout.Folder, layout.ModelFile));
        foreach (var w in layout.AllWeights()) values[w.Name] = SourceWeights.Read(source, w);

        var parameters = new List<TrainableTensor>();
        var trainable = new HashSet<string>(StringComparer.Ordinal);
        if (options.Method == TrainingMethod.Full)
        {
            foreach (var w in layout.AllWeights())
            {
                trainable.Add(w.Name);
                parameters.Add(new TrainableTensor(w.Name, w.Shape, values[w.Name], decay: w.Shape.Length >= 2));
            }
        }
        var lora = options.Method == TrainingMethod.Lora ? CreateLora(layout, options, values, parameters) : [];

        // The remapped vocabulary: interface ids → inner rows, plus rows of their own for the extension ids.
        int[]? tokenMap = layout.Remap?.TokenMap.ToArray();
        float[]? logCounts = null, offset = null;
        var extension = options.VocabularyExtension;
        if (extension.Count > 0)
            Extend(layout, extension, tokenMap, values, parameters);
        if (layout.Remap is { } remap)
        {
            var counts = new int[layout.InnerVocabulary];
            foreach (int row in tokenMap!)
                if (row < layout.InnerVocabulary) counts[row]++;
            logCounts = counts.Select(c => c > 0 ? (float)Math.Log(c) : 0f).ToArray();
            // An inner row no id maps to takes no probability in the interface's softmax.
            offset = SourceWeights.Pinned(layout.InnerVocabulary);
            for (int c = 0; c < offset.Length; c++) offset[c] = counts[c] > 0 ? remap.OutputBias[c] + logCounts[c] : -1e30f;
        }

        var graph = new TrainingGraph(layout, options, values, parameters, lora, tokenMap, logCounts, offset, extension, trainable);
        try
        {
            if (options.VerifyLayout) graph.VerifyAgainstInference();
            return graph;
        }
        catch
        {
            graph.Dispose();
            throw;
        }
    }

    private static List<LoraFactor> CreateLora(DecoderLayout layout, TrainingGraphOptions options, Dictionary<string, float[]> values, List<TrainableTensor> parameters)
    {
        var factors = new List<LoraFactor>();
        var random = new Random(options.Seed);
        int r = options.LoraRank;
        float scale = options.LoraAlpha / r;
        int qWidth = layout.Heads * layout.HeadSize, kvWidth = layout.KeyValueHeads * layout.HeadSize;
        for (int layer = 0; layer < layout.Layers; layer++)
        {
            var block = layout.Blocks[layer];
            foreach (var role in TrainingGraphOptions.LoraTargetNames.Where(options.LoraTargets.Contains))
            {
                (LinearWeight? target, int offset, int width, string name) = role switch
                {
                    "q" when block.QueryKeyValue is { } f => (f, 0, qWidth, $"{f.Weight.Name}.q"),
                    "k" when block.QueryKeyValue is { } f => (f, qWidth, kvWidth, $"{f.Weight.Name}.k"),
                    "v" when block.QueryKeyValue is { } f => (f, qWidth + kvWidth, kvWidth, $"{f.Weight.Name}.v"),
                    "q" => (block.Query, 0, qWidth, block.Query!.Weight.Name),
                    "k" => (block.Key, 0, kvWidth, block.Key!.Weight.Name),
                    "v" => (block.Value, 0, kvWidth, block.Value!.Weight.Name),
                    "o" => (block.Output, 0, block.Output.Out, block.Output.Weight.Name),
                    "up" => (block.Up, 0, block.Up.Out, block.Up.Weight.Name),
                    "down" => (block.Down, 0, block.Down.Out, block.Down.Weight.Name),
                    "gate" => (block.Gate, 0, block.Gate?.Out ?? 0, block.Gate?.Weight.Name ?? ""),
                    _ => (null, 0, 0, ""),
                };
                if (target is null)
                    throw new GptModelException($"'{layout.ModelFile}': the LoRA target '{role}' does not exist in the {(layout.Family == DecoderFamily.Gpt2 ? "GPT-2" : "Llama")} layout " +
                        $"(it has {(layout.Family == DecoderFamily.Gpt2 ? "q, k, v, o, up, down" : "q, k, v, o, up, down, gate")}).");
                var factor = new LoraFactor(layer, role, target, offset, width, r, scale, name + ".lora_A", name + ".lora_B");
                var a = SourceWeights.Pinned(target.In * r);
                // PEFT: A as nn.Linear(in, r) under kaiming_uniform_(a=√5), i.e. U(−1/√in, 1/√in); B zero.
                double bound = 1.0 / Math.Sqrt(target.In);
                for (int i = 0; i < a.Length; i++) a[i] = (float)((random.NextDouble() * 2 - 1) * bound);
                var b = SourceWeights.Pinned(r * width);
                values[factor.AName] = a;
                values[factor.BName] = b;
                parameters.Add(new TrainableTensor(factor.AName, [target.In, r], a, decay: true));
                parameters.Add(new TrainableTensor(factor.BName, [r, width], b, decay: true));
                factors.Add(factor);
            }
        }
        return factors;
    }

    private static void Extend(DecoderLayout layout, IReadOnlyList<int> ids, int[]? tokenMap, Dictionary<string, float[]> values, List<TrainableTensor> parameters)
    {
        if (layout.Remap is not { } remap || tokenMap is null)
            throw new GptModelException($"'{layout.ModelFile}': the vocabulary can be extended only where the graph remaps it (interface ids to inner rows with an unk row); " +
                $"this model's {layout.InnerVocabulary} embedding rows are its whole vocabulary.");
        if (remap.BiasValue is null)
            throw new GptModelException($"'{layout.ModelFile}': the vocabulary can be extended only where the remapped logits get a constant bias (new rows need one).");
        int unk = remap.UnkRow;
        for (int i = 0; i < ids.Count; i++)
        {
            int id = ids[i];
            if (id >= tokenMap.Length)
                throw new ArgumentOutOfRangeException(nameof(TrainingGraphOptions.VocabularyExtension), id, $"Token id {id} is outside the model's {tokenMap.Length} ids.");
            if (tokenMap[id] != unk)
                throw new ArgumentException($"Token id {id} already has its own row ({tokenMap[id]}) in '{layout.ModelFile}'; extend the vocabulary only with ids that map to the unk row {unk}.",
                    nameof(TrainingGraphOptions.VocabularyExtension));
            tokenMap[id] = layout.InnerVocabulary + i;
        }
        int width = layout.Hidden, n = ids.Count;
        var table = values[layout.TokenEmbedding.Name];
        var rows = SourceWeights.Pinned(n * width);
        for (int i = 0; i < n; i++) Array.Copy(table, (long)unk * width, rows, (long)i * width, width);
        values[TrainingGraphEmitter.ExtensionWeight] = rows;
        parameters.Add(new TrainableTensor(TrainingGraphEmitter.ExtensionWeight, [n, width], rows, decay: true));
        if (layout.LmHead is { } head)
        {
            if (head.Weight.Storage == WeightStorage.Quantized || !head.OutByIn)
                throw new GptModelException($"'{layout.ModelFile}': the vocabulary can be extended only with a float output layer stored one row per token; '{head.Weight.Name}' is not.");
            var headTable = values[head.Weight.Name];
            var headRows = SourceWeights.Pinned(n * width);
            for (int i = 0; i < n; i++) Array.Copy(headTable, (long)unk * width, headRows, (long)i * width, width);
            values[TrainingGraphEmitter.ExtensionHead] = headRows;
            parameters.Add(new TrainableTensor(TrainingGraphEmitter.ExtensionHead, [n, width], headRows, decay: true));
        }
        var bias = SourceWeights.Pinned(n);
        Array.Fill(bias, remap.OutputBias[unk]);
        values[TrainingGraphEmitter.ExtensionBias] = bias;
        parameters.Add(new TrainableTensor(TrainingGraphEmitter.ExtensionBias, [n], bias, decay: false));
    }

    // ---- passes ----

    /// <inheritdoc/>
    public (double LossSum, int Tokens) ForwardBackward(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence)
    {
        if (_trainBinding is null) throw new InvalidOperationException("Nothing in this training graph learns.");
        var (sum, count, _) = Run(_train!, _trainBinding, inputIds, targets, batch, sequence, perToken: false);
        if (count == 0)
            foreach (var p in _parameters) Array.Clear(p.Gradient);
        return (sum, count);
    }

    /// <inheritdoc/>
    public (double LossSum, int Tokens) Evaluate(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence)
    {
        var (sum, count, _) = Run(_eval, _evalBinding, inputIds, targets, batch, sequence, perToken: false);
        return (sum, count);
    }

    /// <summary>The loss of every counted token, in order (the forward pass only).</summary>
    internal double[] TokenLosses(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence) =>
        Run(_eval, _evalBinding, inputIds, targets, batch, sequence, perToken: true).PerToken!;

    private (double Sum, int Count, double[]? PerToken) Run(InferenceSession session, OrtIoBinding binding, ReadOnlySpan<long> inputIds,
        ReadOnlySpan<long> targets, int batch, int sequence, bool perToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), batch, "The batch must hold at least one row.");
        if (sequence < 1 || sequence > MaxSequenceLength)
            throw new ArgumentOutOfRangeException(nameof(sequence), sequence, $"The sequence length must be between 1 and the model's {MaxSequenceLength} positions.");
        long tokens = (long)batch * sequence;
        if (inputIds.Length != tokens || targets.Length != tokens)
            throw new ArgumentException($"Expected {tokens} input ids and targets for {batch} x {sequence}, got {inputIds.Length} and {targets.Length}.");

        var ids = InnerIds(inputIds);
        var rows = new List<long>();
        var inner = new List<long>();
        double correction = 0;
        for (int i = 0; i < tokens; i++)
        {
            long target = targets[i];
            if (target == IgnoreIndex) continue;
            if (target < 0 || target >= VocabularySize)
                throw new ArgumentOutOfRangeException(nameof(targets), target, $"Target {target} at position {i} is neither {IgnoreIndex} nor in [0, {VocabularySize}).");
            long row = _tokenMap is null ? target : _tokenMap[target];
            rows.Add(i);
            inner.Add(row);
            correction += LogCount(row);
        }
        if (rows.Count == 0) return (0, 0, perToken ? [] : null);

        var losses = RunRows(session, binding, ids, rows.ToArray(), inner.ToArray(), batch, sequence);
        // The interface's probability of an id that shares an inner row is that row's divided by the ids sharing it.
        double sum = correction;
        double[]? each = perToken ? new double[losses.Length] : null;
        for (int i = 0; i < losses.Length; i++)
        {
            sum += losses[i];
            if (each is not null) each[i] = losses[i] + LogCount(inner[i]);
        }
        return (sum, rows.Count, each);
    }

    private double LogCount(long row) => _logCounts is not null && row < _logCounts.Length ? _logCounts[row] : 0;

    private long[] InnerIds(ReadOnlySpan<long> inputIds)
    {
        var ids = new long[inputIds.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            long id = inputIds[i];
            if (id < 0 || id >= VocabularySize)
                throw new ArgumentOutOfRangeException(nameof(inputIds), id, $"Input id {id} at position {i} is outside [0, {VocabularySize}).");
            ids[i] = _tokenMap is null ? id : _tokenMap[id];
        }
        return ids;
    }

    /// <summary>
    /// The log-probability of every id after <paramref name="prefix"/> (one row), as the inference graph's softmax over its
    /// output ids gives it: what greedy decoding with these weights would choose from.
    /// </summary>
    internal double[] NextTokenLogProbabilities(ReadOnlySpan<long> prefix)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int sequence = prefix.Length;
        if (sequence < 1 || sequence > MaxSequenceLength)
            throw new ArgumentOutOfRangeException(nameof(prefix), sequence, $"The prefix must hold 1 to {MaxSequenceLength} ids.");
        int rows = _layout.InnerVocabulary + _extension.Count;
        var losses = RunRows(_eval, _evalBinding, InnerIds(prefix), Enumerable.Repeat((long)sequence - 1, rows).ToArray(),
            Enumerable.Range(0, rows).Select(r => (long)r).ToArray(), 1, sequence);
        var result = new double[VocabularySize];
        for (int id = 0; id < result.Length; id++)
        {
            int row = _tokenMap is null ? id : _tokenMap[id];
            result[id] = -losses[row] - LogCount(row);
        }
        return result;
    }

    /// <summary>One pass over inner ids, counting the loss of inner target <paramref name="inner"/>[i] at flat position <paramref name="rows"/>[i].</summary>
    private float[] RunRows(InferenceSession session, OrtIoBinding binding, long[] ids, long[] rows, long[] inner, int batch, int sequence)
    {
        long tokens = (long)batch * sequence;
        var (mask, cos, sin) = TablesFor(sequence);
        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [batch, sequence]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [sequence, sequence]);
        using var rowsValue = OrtValue.CreateTensorValueFromMemory(rows, [rows.Length]);
        using var targetsValue = OrtValue.CreateTensorValueFromMemory(inner, [inner.Length, 1]);
        binding.BindInput(TrainingGraphEmitter.InputIds, idsValue);
        binding.BindInput(TrainingGraphEmitter.AttentionBias, maskValue);
        binding.BindInput(TrainingGraphEmitter.LossRows, rowsValue);
        binding.BindInput(TrainingGraphEmitter.LossTargets, targetsValue);
        OrtValue? positionsValue = null, cosValue = null, sinValue = null;
        try
        {
            if (_layout.Family == DecoderFamily.Gpt2)
            {
                var positions = new long[tokens];
                for (int i = 0; i < tokens; i++) positions[i] = i % sequence;
                positionsValue = OrtValue.CreateTensorValueFromMemory(positions, [tokens]);
                binding.BindInput(TrainingGraphEmitter.PositionIds, positionsValue);
            }
            else
            {
                cosValue = OrtValue.CreateTensorValueFromMemory(cos!, [sequence, _layout.HeadSize / 2]);
                sinValue = OrtValue.CreateTensorValueFromMemory(sin!, [sequence, _layout.HeadSize / 2]);
                binding.BindInput(TrainingGraphEmitter.RopeCos, cosValue);
                binding.BindInput(TrainingGraphEmitter.RopeSin, sinValue);
            }
            // Bound afresh each pass: once a pass has filled it, ONNX Runtime would take it as a preallocated output of that shape.
            binding.BindOutputToDevice(TrainingGraphEmitter.TokenLoss, OrtMemoryInfo.DefaultInstance);
            session.RunWithBinding(_runOptions, binding);
            using var outputs = binding.GetOutputValues();
            int index = Array.IndexOf(binding.GetOutputNames(), TrainingGraphEmitter.TokenLoss);
            return outputs[index].GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            positionsValue?.Dispose();
            cosValue?.Dispose();
            sinValue?.Dispose();
        }
    }

    /// <summary>The causal mask and (Llama) rotary tables for positions 0 .. <paramref name="sequence"/> − 1, kept per length.</summary>
    private (float[] Mask, float[]? Cos, float[]? Sin) TablesFor(int sequence)
    {
        if (_byLength.TryGetValue(sequence, out var cached)) return cached;
        var mask = new float[sequence * sequence];
        for (int q = 0; q < sequence; q++)
            for (int k = q + 1; k < sequence; k++) mask[q * sequence + k] = float.MinValue;
        float[]? cos = null, sin = null;
        if (_layout.Family == DecoderFamily.Llama)
        {
            int half = _layout.HeadSize / 2;
            cos = new float[sequence * half];
            sin = new float[sequence * half];
            if (_ropeCos is not null)
            {
                Array.Copy(_ropeCos, cos, cos.Length);
                Array.Copy(_ropeSin!, sin, sin.Length);
            }
            else
            {
                // As transformers computes them in float32: inv_freq = 1 / theta^(2j / d); angle = position · inv_freq.
                var inverse = new float[half];
                for (int j = 0; j < half; j++) inverse[j] = 1f / MathF.Pow((float)_layout.RopeTheta, (float)(2 * j) / _layout.HeadSize);
                for (int p = 0; p < sequence; p++)
                    for (int j = 0; j < half; j++)
                    {
                        float angle = p * inverse[j];
                        cos[p * half + j] = MathF.Cos(angle);
                        sin[p * half + j] = MathF.Sin(angle);
                    }
            }
        }
        if (_byLength.Count > 64) _byLength.Clear();
        return _byLength[sequence] = (mask, cos, sin);
    }

    // ---- the layout check ----

    private const int ProbeLength = 12;

    /// <summary>Compares the log-probability of every token of two probe sequences with the inference engine's.</summary>
    private void VerifyAgainstInference()
    {
        var random = new Random(20261207);
        int[] pool = _tokenMap is null
            ? Enumerable.Range(0, VocabularySize).ToArray()
            : Enumerable.Range(0, Math.Min(VocabularySize, _layout.Remap!.TokenMap.Length)).Where(i => _layout.Remap.TokenMap[i] != _layout.Remap.UnkRow).ToArray();
        var probes = new List<int[]>();
        for (int p = 0; p < 2; p++)
        {
            var sequence = new int[Math.Min(ProbeLength, MaxSequenceLength)];
            for (int i = 0; i < sequence.Length; i++)
                sequence[i] = i == 3 && _tokenMap is not null ? IdOfRow(_layout.Remap!.UnkRow) : pool[random.Next(pool.Length)];
            probes.Add(sequence);
        }

        var requests = new List<ScoreRequest>();
        foreach (var probe in probes)
            for (int end = 2; end <= probe.Length; end++) requests.Add(new ScoreRequest(probe[..end], end - 1, false));
        ScoreResult[] reference;
        try
        {
            using var model = GptModel.Open(_layout.Folder, new GptModelOptions { Variant = _options.Variant, IntraOpThreads = _options.Threads, Log = _options.Log });
            reference = model.Engine.ScoreRequests(requests, CancellationToken.None);
        }
        catch (GptModelException e)
        {
            throw new GptModelException($"The layout check could not run the folder's own model ({e.Message}); set VerifyLayout to false to skip it.", e);
        }

        double tolerance = _layout.LowPrecisionMatMuls ? 5e-2 : 1e-3;
        int index = 0;
        foreach (var probe in probes)
        {
            var inputs = probe[..^1].Select(i => (long)i).ToArray();
            var targets = probe[1..].Select(i => (long)i).ToArray();
            var losses = TokenLosses(inputs, targets, 1, inputs.Length);
            for (int t = 0; t < losses.Length; t++, index++)
            {
                double expected = -reference[index].LogLikelihood;
                if (Math.Abs(losses[t] - expected) > tolerance * Math.Max(1, Math.Abs(expected)))
                    throw new GptModelException(string.Create(CultureInfo.InvariantCulture,
                        $"'{_layout.ModelFile}' was read as a {_layout.Describe()}, but the training graph's loss of token {t + 1} of a probe sequence is {losses[t]:G6} " +
                        $"where the model itself gives {expected:G6}: the layout was misread or the graph computes something else, so it is not trained."));
            }
        }
    }

    private int IdOfRow(int row) => Array.IndexOf(_layout.Remap!.TokenMap, row);

    // ---- write-back ----

    /// <inheritdoc/>
    public void WriteModelFolder(string outputFolder)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ModelWriter.Write(this, outputFolder);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _trainBinding?.Dispose();
        _evalBinding?.Dispose();
        _train?.Dispose();
        _eval?.Dispose();
        foreach (var v in _bound) v.Dispose();
        _runOptions.Dispose();
    }
}
