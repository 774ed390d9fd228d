namespace MLNetGpt.Models.Onnx;

/// <summary>
/// Reads the protobuf wire format from a seekable stream, field by field, knowing the absolute
/// position of every byte. <see cref="OnnxFileReader"/> uses it to step over tensor payloads by
/// seeking instead of reading them, which a generated parser cannot do.
/// </summary>
internal sealed class WireScanner
{
    public const int Varint = 0;
    public const int Fixed64 = 1;
    public const int LengthDelimited = 2;
    public const int Fixed32 = 5;

    private readonly Stream _stream;
    private const int FirstReadSize = 4096;

    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _readSize = FirstReadSize;
    private long _bufferOffset;
    private int _count;
    private int _pos;

    public WireScanner(Stream stream, string fileName)
    {
        if (!stream.CanSeek) throw new ArgumentException("The stream must be seekable.", nameof(stream));
        _stream = stream;
        FileName = fileName;
        _bufferOffset = stream.Position;
        Length = stream.Length;
    }

    /// <summary>The file named in error messages.</summary>
    public string FileName { get; }

    public long Length { get; }

    public long Position => _bufferOffset + _pos;

    public void Seek(long position)
    {
        if (position >= _bufferOffset && position <= _bufferOffset + _count)
        {
            _pos = (int)(position - _bufferOffset);
            return;
        }
        _stream.Position = position;
        _bufferOffset = position;
        _count = 0;
        _pos = 0;
        // After a jump over tensor data, the next field is usually small: read a little first.
        _readSize = FirstReadSize;
    }

    /// <summary>Reads a field's tag; false at <paramref name="end"/>.</summary>
    public bool TryReadTag(long end, out int field, out int wireType)
    {
        field = 0;
        wireType = 0;
        if (Position >= end) return false;
        ulong tag = ReadVarint(end);
        field = (int)(tag >> 3);
        wireType = (int)(tag & 7);
        if (field <= 0) throw Corrupt($"a field number of {field} at byte {Position}");
        return true;
    }

    public ulong ReadVarint(long end)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (Position >= end) throw Corrupt($"a varint that runs past its message at byte {Position}");
            byte b = ReadByte();
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
        throw Corrupt($"a varint longer than 10 bytes at byte {Position}");
    }

    /// <summary>Reads the length prefix of a length-delimited field and returns the absolute end of its payload.</summary>
    public long ReadLengthAndEnd(long end)
    {
        ulong length = ReadVarint(end);
        long payloadEnd = Position + (long)length;
        if (length > (ulong)(end - Position)) throw Corrupt($"a field of {length} bytes at byte {Position} that runs past its message (which ends at byte {end})");
        return payloadEnd;
    }

    /// <summary>Moves past the payload of a field whose tag was just read.</summary>
    public void SkipPayload(int wireType, long end)
    {
        switch (wireType)
        {
            case Varint: ReadVarint(end); break;
            case Fixed64: SkipBytes(8, end); break;
            case Fixed32: SkipBytes(4, end); break;
            case LengthDelimited: Seek(ReadLengthAndEnd(end)); break;
            default: throw Corrupt($"wire type {wireType} (groups are not part of ONNX) at byte {Position}");
        }
    }

    /// <summary>Re-encodes the field whose tag was just read, payload included, onto <paramref name="target"/>.</summary>
    public void CopyField(int field, int wireType, long end, Stream target)
    {
        WriteVarint(target, ((ulong)field << 3) | (uint)wireType);
        switch (wireType)
        {
            case Varint:
                WriteVarint(target, ReadVarint(end));
                break;
            case Fixed64:
                CopyBytes(8, end, target);
                break;
            case Fixed32:
                CopyBytes(4, end, target);
                break;
            case LengthDelimited:
                long payloadEnd = ReadLengthAndEnd(end);
                long length = payloadEnd - Position;
                WriteVarint(target, (ulong)length);
                CopyBytes(length, end, target);
                break;
            default:
                throw Corrupt($"wire type {wireType} (groups are not part of ONNX) at byte {Position}");
        }
    }

    public static void WriteVarint(Stream target, ulong value)
    {
        while (value >= 0x80)
        {
            target.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        target.WriteByte((byte)value);
    }

    public GptModelException Corrupt(string what) =>
        new($"'{FileName}' is not a valid ONNX model file: it has {what}.");

    private byte ReadByte()
    {
        if (_pos == _count && !Fill()) throw Corrupt($"an unexpected end of file at byte {Position}");
        return _buffer[_pos++];
    }

    private void SkipBytes(long count, long end)
    {
        if (count > end - Position) throw Corrupt($"a fixed-size field that runs past its message at byte {Position}");
        Seek(Position + count);
    }

    private void CopyBytes(long count, long end, Stream target)
    {
        if (count > end - Position) throw Corrupt($"a field that runs past its message at byte {Position}");
        while (count > 0)
        {
            if (_pos == _count && !Fill()) throw Corrupt($"an unexpected end of file at byte {Position}");
            int chunk = (int)Math.Min(count, _count - _pos);
            target.Write(_buffer, _pos, chunk);
            _pos += chunk;
            count -= chunk;
        }
    }

    private bool Fill()
    {
        _bufferOffset += _count;
        _pos = 0;
        _count = 0;
        if (_stream.Position != _bufferOffset) _stream.Position = _bufferOffset;
        _count = _stream.Read(_buffer, 0, _readSize);
        _readSize = Math.Min(_readSize * 2, _buffer.Length);
        return _count > 0;
    }
}
