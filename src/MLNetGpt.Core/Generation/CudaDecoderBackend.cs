using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Models;

namespace MLNetGpt.Generation;

/// <summary>
/// The CUDA backend: with IOBinding, every present output (caches and recurrent states) is bound to
/// device memory and fed back as the next step's past input as the same OrtValue, so the state never
/// crosses to the host; only token ids, the mask and positions go up, and only the logits come down.
/// </summary>
/// <remarks>
/// Written against ONNX Runtime's documented IOBinding API (OrtIoBinding.BindInput,
/// BindOutputToDevice, SynchronizeBoundInputs/Outputs, GetOutputValues and
/// InferenceSession.RunWithBinding). Rows of a device cache cannot be edited from .NET without a
/// device copy kernel, so this backend runs static batches (<see cref="CanEditRows"/> is false).
/// </remarks>
internal sealed class CudaDecoderBackend : DecoderBackend
{
    private readonly OrtMemoryInfo _deviceMemory;

    public CudaDecoderBackend(InferenceSession main, InferenceSession? prefill, DecoderGraph graph, int deviceId) : base(main, prefill, graph)
    {
        _deviceMemory = new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, deviceId, OrtMemType.Default);
    }

    public override bool CanEditRows => false;

    /// <remarks>
    /// Measured on an H200 with ONNX Runtime 1.31: the CUDA provider returns every position's logits
    /// when <c>num_logits_to_keep</c> is a graph input with an initializer default (plain Run and
    /// IOBinding alike), while the CPU provider honours the fed value. The shape of the returned
    /// logits is read, not assumed, so results are right either way.
    /// </remarks>
    public override bool HonoursLogitsToKeep => false;

    public override IKvCache EmptyCache(int batch) => new DeviceKvCache(batch, 0, null);

    public override (LogitsBuffer Logits, IKvCache Present) Step(in StepInput input, IKvCache pastCache, RunOptions runOptions)
    {
        var past = (DeviceKvCache)pastCache;
        var session = SessionFor(past);
        var inputs = CommonInputs(input, past);
        var hostPast = new List<OrtValue>();
        var states = Graph.States;
        using var binding = session.CreateIoBinding();
        try
        {
            foreach (var (name, value) in inputs) binding.BindInput(name, value);
            if (FeedsPast(past))
            {
                for (int i = 0; i < states.Count; i++)
                {
                    if (past.Values is { } values)
                    {
                        binding.BindInput(states[i].Input, values[i]);
                    }
                    else
                    {
                        // The first step: empty caches and zero recurrent states, as host tensors (ONNX Runtime copies them up).
                        var initial = CreateInitial(states[i], input.Batch);
                        hostPast.Add(initial);
                        binding.BindInput(states[i].Input, initial);
                    }
                }
            }
            binding.BindOutputToDevice(Graph.Logits, OrtMemoryInfo.DefaultInstance);
            foreach (var state in states) binding.BindOutputToDevice(state.Output, _deviceMemory);

            binding.SynchronizeBoundInputs();
            try
            {
                session.RunWithBinding(runOptions, binding);
            }
            catch (OnnxRuntimeException e) when (!runOptions.Terminate)
            {
                throw StepFailed(e, input, past);
            }
            binding.SynchronizeBoundOutputs();

            // The collection would dispose every value; the presents must outlive it as the next past.
            var outputs = binding.GetOutputValues().ToArray();
            // ONNX Runtime allocated the logits: read their real shape rather than assume it.
            long[] shape = outputs[0].GetTensorTypeAndShape().Shape;
            if (shape.Length != 3 || shape[0] != input.Batch || shape[2] != Graph.VocabularySize || shape[1] < 1 || shape[1] > input.Length)
            {
                foreach (var value in outputs) value.Dispose();
                throw new GptModelException($"The model returned logits of shape [{string.Join(", ", shape)}] for {input.Batch} rows of {input.Length} tokens; " +
                    $"expected [{input.Batch}, 1..{input.Length}, {Graph.VocabularySize}].");
            }
            var logits = new LogitsBuffer(outputs[0], input.Batch, (int)shape[1], Graph.VocabularySize, Graph.LogitsType);
            return (logits, new DeviceKvCache(input.Batch, past.Width + input.Length, outputs[1..]));
        }
        finally
        {
            foreach (var (_, value) in inputs) value.Dispose();
            foreach (var value in hostPast) value.Dispose();
        }
    }

    private static OrtValue CreateInitial(Models.StateTensor state, int batch)
    {
        long[] shape = state.Shape(batch, 0);
        long elements = shape.Aggregate(1L, (a, b) => a * b);
        return state.ElementType switch
        {
            Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float => OrtValue.CreateTensorValueFromMemory(new float[elements], shape),
            Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16 => OrtValue.CreateTensorValueFromMemory(new Float16[elements], shape),
            _ => OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<BFloat16>(new BFloat16[elements]), shape),
        };
    }

    public override void Dispose()
    {
        _deviceMemory.Dispose();
        base.Dispose();
    }

    private sealed class DeviceKvCache(int batch, int width, OrtValue[]? values) : IKvCache
    {
        public int Batch { get; } = batch;
        public int Width { get; } = width;
        public OrtValue[]? Values { get; private set; } = values;

        public void Dispose()
        {
            if (Values is null) return;
            foreach (var value in Values) value.Dispose();
            Values = null;
        }
    }
}
