using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetGpt.Models;

namespace MLNetGpt.Generation;

/// <summary>
/// The decoder state of a batch: every state tensor of the graph (key/value caches, combined caches,
/// recurrent states) for <see cref="Batch"/> rows.
/// </summary>
internal interface IKvCache : IDisposable
{
    int Batch { get; }

    /// <summary>Cached positions per row, padding included (the width of the growing caches).</summary>
    int Width { get; }
}

/// <summary>
/// One forward step: <c>Length</c> new tokens per row on top of the cache. <c>LogitsToKeep</c>
/// asks for the logits of only the last positions (0 = all); graphs without a
/// <c>num_logits_to_keep</c> input return all of them anyway.
/// </summary>
internal readonly record struct StepInput(long[] Ids, int Batch, int Length, long[] Mask, long[]? Positions, int LogitsToKeep = 0);

/// <summary>
/// Runs the decoder graph one step at a time and keeps its key/value cache where the device wants
/// it: in pinned host buffers on the CPU, in device memory (IOBinding) on CUDA.
/// </summary>
internal abstract class DecoderBackend : IDisposable
{
    protected DecoderBackend(InferenceSession main, InferenceSession? prefill, DecoderGraph graph)
    {
        Main = main;
        Prefill = prefill;
        Graph = graph;
    }

    /// <summary>The session with past inputs (all steps, except prefill in the pair layout).</summary>
    protected InferenceSession Main { get; }

    /// <summary>The pair layout's prefill session (no past inputs), else null.</summary>
    protected InferenceSession? Prefill { get; }

    public DecoderGraph Graph { get; }

    /// <summary>Whether caches can drop and join rows (batch compaction and continuous batching).</summary>
    public abstract bool CanEditRows { get; }

    /// <summary>
    /// Whether a <c>num_logits_to_keep</c> fed to the graph is obeyed. When it is not, the backend
    /// still returns correct (all-position) logits, and prefill goes in chunks to bound their size.
    /// </summary>
    public virtual bool HonoursLogitsToKeep => true;

    public abstract IKvCache EmptyCache(int batch);

    /// <summary>Runs one step; the returned cache holds the old positions plus the new ones. The caller disposes both results.</summary>
    public abstract (LogitsBuffer Logits, IKvCache Present) Step(in StepInput input, IKvCache past, RunOptions runOptions);

    /// <summary>Keeps <paramref name="rows"/> (in that order) and the last <paramref name="width"/> positions.</summary>
    public virtual IKvCache KeepRows(IKvCache cache, int[] rows, int width) => throw new NotSupportedException();

    /// <summary>
    /// The same rows without their last <paramref name="columns"/> positions (positions a speculative step fed and
    /// verification rejected). The result may take over <paramref name="cache"/>'s buffers; the caller disposes both.
    /// </summary>
    public virtual IKvCache TrimEnd(IKvCache cache, int columns) => throw new NotSupportedException();

    /// <summary>Stacks the rows of <paramref name="first"/> then <paramref name="second"/>, left-padding the narrower one.</summary>
    public virtual IKvCache Concat(IKvCache first, IKvCache second) => throw new NotSupportedException();

    protected InferenceSession SessionFor(IKvCache past) => past.Width == 0 && Prefill is not null ? Prefill : Main;

    protected bool FeedsPast(IKvCache past) => !(past.Width == 0 && Prefill is not null);

    /// <summary>How many positions' logits the step returns.</summary>
    protected int LogitsLength(in StepInput input, IKvCache past) =>
        input.LogitsToKeep > 0 && KeepsLogits(past) ? Math.Min(input.LogitsToKeep, input.Length) : input.Length;

    private bool KeepsLogits(IKvCache past) => Graph.LogitsToKeep is not null && (SessionFor(past) == Main || Graph.PrefillHasLogitsToKeep);

    /// <summary>The non-state inputs of a step, as host tensors of the element types the graph asks for.</summary>
    protected List<(string Name, OrtValue Value)> CommonInputs(in StepInput input, IKvCache past)
    {
        var list = new List<(string, OrtValue)>(5)
        {
            (Graph.InputIds.Name, Integers(input.Ids, Graph.InputIds.ElementType, [input.Batch, input.Length])),
            (Graph.AttentionMask.Name, Integers(input.Mask, Graph.AttentionMask.ElementType, [input.Batch, past.Width + input.Length])),
        };
        if (Graph.PositionIds is { } positions)
            list.Add((positions.Name, Integers(input.Positions!, positions.ElementType, [input.Batch, input.Length])));
        if (Graph.UseCacheBranch is not null && SessionFor(past) == Main)
            list.Add((Graph.UseCacheBranch, OrtValue.CreateTensorValueFromMemory(new[] { past.Width > 0 }, [1])));
        if (KeepsLogits(past))
            list.Add((Graph.LogitsToKeep!, OrtValue.CreateTensorValueFromMemory(new[] { (long)input.LogitsToKeep }, [])));
        return list;
    }

    private static OrtValue Integers(long[] values, TensorElementType type, long[] shape)
    {
        if (type == TensorElementType.Int64) return OrtValue.CreateTensorValueFromMemory(values, shape);
        var narrow = new int[values.Length];
        for (int i = 0; i < values.Length; i++) narrow[i] = checked((int)values[i]);
        return OrtValue.CreateTensorValueFromMemory(narrow, shape);
    }

    /// <summary>ONNX Runtime's failure of a step, as an error that names the file and the step's shape.</summary>
    protected GptModelException StepFailed(OnnxRuntimeException e, in StepInput input, IKvCache past)
    {
        string file = SessionFor(past) == Main ? Graph.File : Graph.PrefillFile ?? Graph.File;
        string message = e.Message.Split('\n')[0].Trim();
        return new GptModelException($"{file}: ONNX Runtime failed on a step of {input.Batch} row(s) x {input.Length} new token(s) " +
            $"after {past.Width} cached position(s): {message}", e);
    }

    public virtual void Dispose()
    {
        Main.Dispose();
        Prefill?.Dispose();
    }
}

/// <summary>Logits of one step, <c>[batch, length, vocabulary]</c>, in a host buffer.</summary>
internal sealed class LogitsBuffer : IDisposable
{
    private readonly PinnedBuffer? _buffer;
    private readonly OrtValue? _value;

    public LogitsBuffer(PinnedBuffer buffer, int batch, int length, int vocabulary, TensorElementType type)
    {
        _buffer = buffer;
        Batch = batch;
        Length = length;
        Vocabulary = vocabulary;
        Type = type;
    }

    public LogitsBuffer(OrtValue value, int batch, int length, int vocabulary, TensorElementType type)
    {
        _value = value;
        Batch = batch;
        Length = length;
        Vocabulary = vocabulary;
        Type = type;
    }

    public int Batch { get; }
    public int Length { get; }
    public int Vocabulary { get; }
    public TensorElementType Type { get; }

    /// <summary>Bytes per logit of <paramref name="type"/>.</summary>
    public static int SizeOf(TensorElementType type) => type == TensorElementType.Float ? 4 : 2;

    /// <summary>Copies the logits of <paramref name="row"/> at <paramref name="position"/> into <paramref name="destination"/> as float32.</summary>
    public void Read(int row, int position, Span<float> destination)
    {
        int offset = checked((row * Length + position) * Vocabulary);
        if (Type == TensorElementType.Float16)
        {
            ReadOnlySpan<Float16> source = _buffer is not null ? _buffer.As<Float16>() : _value!.GetTensorDataAsSpan<Float16>();
            source = source.Slice(offset, Vocabulary);
            for (int i = 0; i < Vocabulary; i++) destination[i] = (float)source[i];
        }
        else if (Type == TensorElementType.BFloat16)
        {
            // bfloat16 is the upper half of a float32.
            ReadOnlySpan<ushort> source = _buffer is not null ? _buffer.As<ushort>() : _value!.GetTensorDataAsSpan<ushort>();
            source = source.Slice(offset, Vocabulary);
            for (int i = 0; i < Vocabulary; i++) destination[i] = BitConverter.Int32BitsToSingle(source[i] << 16);
        }
        else
        {
            ReadOnlySpan<float> source = _buffer is not null ? _buffer.As<float>() : _value!.GetTensorDataAsSpan<float>();
            source.Slice(offset, Vocabulary).CopyTo(destination);
        }
    }

    public void Dispose()
    {
        _buffer?.Dispose();
        _value?.Dispose();
    }
}
