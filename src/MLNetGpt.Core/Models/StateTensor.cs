using Microsoft.ML.OnnxRuntime.Tensors;

namespace MLNetGpt.Models;

/// <summary>How a past input and its present output carry a decoder's state from step to step.</summary>
internal enum StateKind
{
    /// <summary>A key or a value cache, <c>[batch, heads, sequence, head size]</c>: grows by the step's tokens.</summary>
    KeyValue,

    /// <summary>ONNX Runtime GenAI's combined cache (<c>past_%d</c>), <c>[2, batch, heads, sequence, head size]</c>: grows like a key/value cache.</summary>
    CombinedKeyValue,

    /// <summary>A state that keeps its shape (<c>[batch, ...]</c>: a convolution window, an SSM state): replaced every step.</summary>
    Recurrent,
}

/// <summary>One past input of the decoder graph, the present output that feeds it, and their shape.</summary>
internal sealed class StateTensor
{
    public StateTensor(string input, string output, StateKind kind, TensorElementType elementType, long[] dimensions)
    {
        Input = input;
        Output = output;
        Kind = kind;
        ElementType = elementType;
        Dimensions = dimensions;
        ElementSize = elementType switch
        {
            TensorElementType.Float => 4,
            TensorElementType.Float16 or TensorElementType.BFloat16 => 2,
            _ => throw new ArgumentOutOfRangeException(nameof(elementType), elementType, "Only float32, float16 and bfloat16 states are supported."),
        };
    }

    public string Input { get; }
    public string Output { get; }
    public StateKind Kind { get; }
    public TensorElementType ElementType { get; }

    /// <summary>The graph's dimensions; the batch (and, for caches, the sequence) are -1.</summary>
    public long[] Dimensions { get; }

    public int ElementSize { get; }

    public bool Grows => Kind != StateKind.Recurrent;

    /// <summary>Leading slices before the batch axis (2 for the combined cache: keys, then values).</summary>
    public int Outer => Kind == StateKind.CombinedKeyValue ? 2 : 1;

    /// <summary>Independent sequences per batch row (the heads of a cache; 1 for a recurrent state).</summary>
    public int Heads => Kind switch
    {
        StateKind.KeyValue => (int)Dimensions[1],
        StateKind.CombinedKeyValue => (int)Dimensions[2],
        _ => 1,
    };

    /// <summary>Elements per position of one head (the head size), or per batch row for a recurrent state.</summary>
    public int Inner => Kind switch
    {
        StateKind.KeyValue => (int)Dimensions[3],
        StateKind.CombinedKeyValue => (int)Dimensions[4],
        _ => (int)Dimensions.Skip(1).Aggregate(1L, (a, b) => a * b),
    };

    /// <summary>The concrete shape for <paramref name="batch"/> rows and <paramref name="width"/> cached positions.</summary>
    public long[] Shape(int batch, int width) => Kind switch
    {
        StateKind.KeyValue => [batch, Dimensions[1], width, Dimensions[3]],
        StateKind.CombinedKeyValue => [2, batch, Dimensions[2], width, Dimensions[4]],
        _ => [batch, .. Dimensions.Skip(1)],
    };

    /// <summary>Bytes of the whole tensor for <paramref name="batch"/> rows and <paramref name="width"/> positions.</summary>
    public long Bytes(int batch, int width) => Grows
        ? (long)Outer * batch * Heads * width * Inner * ElementSize
        : (long)batch * Inner * ElementSize;

    public override string ToString() => $"{Input} [{string.Join(", ", Dimensions.Select(d => d < 0 ? "?" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)))}] {ElementType}";
}
