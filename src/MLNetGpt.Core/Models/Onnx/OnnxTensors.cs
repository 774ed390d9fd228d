using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Google.Protobuf;
using MLNetGpt.Models.Onnx.Protos;
using DataType = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataType;

namespace MLNetGpt.Models.Onnx;

/// <summary>Element types, sizes and conversions of ONNX tensors, and tensors built from .NET arrays.</summary>
internal static class OnnxTensors
{
    /// <summary>The ONNX name of an element type (<c>float16</c>, <c>int64</c>, ...), or its number when ONNX added it after this file was written.</summary>
    public static string TypeName(int dataType) => Enum.IsDefined(typeof(DataType), dataType)
        ? ((DataType)dataType).ToString().ToLowerInvariant()
        : $"element type {dataType}";

    /// <summary>Bytes of <paramref name="elements"/> values in the raw little-endian layout, or null for strings and types this code does not know.</summary>
    public static long? RawByteLength(int dataType, long elements) => dataType switch
    {
        (int)DataType.Uint8 or (int)DataType.Int8 or (int)DataType.Bool => elements,
        17 or 18 or 19 or 20 or 24 => elements,                          // the float8 types
        21 or 22 or 23 => (elements + 1) / 2,                            // uint4, int4, float4: two per byte
        (int)DataType.Uint16 or (int)DataType.Int16 or (int)DataType.Float16 or (int)DataType.Bfloat16 => elements * 2,
        (int)DataType.Float or (int)DataType.Int32 or (int)DataType.Uint32 => elements * 4,
        (int)DataType.Int64 or (int)DataType.Uint64 or (int)DataType.Double or (int)DataType.Complex64 => elements * 8,
        (int)DataType.Complex128 => elements * 16,
        _ => null,
    };

    public static long ElementCount(TensorProto tensor)
    {
        long count = 1;
        foreach (long d in tensor.Dims) count = checked(count * d);
        return count;
    }

    /// <summary>
    /// The bytes of a tensor that keeps its values in the typed fields (<c>float_data</c>,
    /// <c>int32_data</c>, ...) instead of <c>raw_data</c>, in the raw little-endian layout.
    /// </summary>
    public static byte[] TypedFieldsToRaw(TensorProto tensor, string fileName)
    {
        int type = tensor.DataType;
        switch (type)
        {
            case (int)DataType.Float:
            case (int)DataType.Complex64:
                return MemoryMarshal.AsBytes(tensor.FloatData.ToArray().AsSpan()).ToArray();
            case (int)DataType.Double:
            case (int)DataType.Complex128:
                return MemoryMarshal.AsBytes(tensor.DoubleData.ToArray().AsSpan()).ToArray();
            case (int)DataType.Int64:
                return MemoryMarshal.AsBytes(tensor.Int64Data.ToArray().AsSpan()).ToArray();
            case (int)DataType.Uint32:
            case (int)DataType.Uint64:
            {
                int size = type == (int)DataType.Uint32 ? 4 : 8;
                var bytes = new byte[tensor.Uint64Data.Count * size];
                for (int i = 0; i < tensor.Uint64Data.Count; i++)
                {
                    if (size == 4) BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), (uint)tensor.Uint64Data[i]);
                    else BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * 8), tensor.Uint64Data[i]);
                }
                return bytes;
            }
            case (int)DataType.Int32:
                return MemoryMarshal.AsBytes(tensor.Int32Data.ToArray().AsSpan()).ToArray();
            case (int)DataType.Uint8:
            case (int)DataType.Int8:
            case (int)DataType.Bool:
            case 17 or 18 or 19 or 20 or 24:
                return tensor.Int32Data.Select(v => (byte)v).ToArray();
            case (int)DataType.Uint16:
            case (int)DataType.Int16:
            case (int)DataType.Float16:
            case (int)DataType.Bfloat16:
            {
                // One 16-bit value (for float16 and bfloat16: its bit pattern) per int32 element.
                var bytes = new byte[tensor.Int32Data.Count * 2];
                for (int i = 0; i < tensor.Int32Data.Count; i++)
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), (ushort)tensor.Int32Data[i]);
                return bytes;
            }
            default:
                throw new GptModelException($"'{fileName}': tensor '{tensor.Name}' holds {TypeName(type)} values in typed fields, which MLNetGpt does not read.");
        }
    }

    /// <summary>The values of a float32, float16, bfloat16 or float64 tensor's raw bytes, as float32 (float16 and bfloat16 exactly).</summary>
    public static float[] ToFloats(ReadOnlySpan<byte> raw, int dataType)
    {
        switch (dataType)
        {
            case (int)DataType.Float:
                return MemoryMarshal.Cast<byte, float>(raw).ToArray();
            case (int)DataType.Float16:
            {
                var halves = MemoryMarshal.Cast<byte, Half>(raw);
                var result = new float[halves.Length];
                for (int i = 0; i < result.Length; i++) result[i] = (float)halves[i];
                return result;
            }
            case (int)DataType.Bfloat16:
            {
                var bits = MemoryMarshal.Cast<byte, ushort>(raw);
                var result = new float[bits.Length];
                for (int i = 0; i < result.Length; i++) result[i] = BitConverter.Int32BitsToSingle(bits[i] << 16);
                return result;
            }
            case (int)DataType.Double:
            {
                var doubles = MemoryMarshal.Cast<byte, double>(raw);
                var result = new float[doubles.Length];
                for (int i = 0; i < result.Length; i++) result[i] = (float)doubles[i];
                return result;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(dataType), dataType, $"{TypeName(dataType)} is not a floating-point type.");
        }
    }

    public static TensorProto FromFloats(string name, float[] values, params long[] dims) =>
        FromRaw(name, DataType.Float, MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), dims);

    public static TensorProto FromHalves(string name, Half[] values, params long[] dims) =>
        FromRaw(name, DataType.Float16, MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), dims);

    public static TensorProto FromBytes(string name, byte[] values, params long[] dims) =>
        FromRaw(name, DataType.Uint8, values, dims);

    public static TensorProto FromRaw(string name, DataType type, byte[] raw, params long[] dims)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = UnsafeByteOperations.UnsafeWrap(raw) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }
}
