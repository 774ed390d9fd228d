using System.Security.Cryptography;
using System.Text;

namespace MLNetGpt.Cli.Csv;

/// <summary>
/// One CSV record: its parsed fields, its exact source text (without the line terminator), the
/// physical line it starts on (1-based, as an editor counts), and whether a line terminator ended it
/// (false only for a last line without one).
/// </summary>
internal sealed record CsvRecord(string[] Fields, string Raw, long Line, bool Terminated = true);

/// <summary>A CSV input problem: names the file and the line.</summary>
internal sealed class CsvFormatException(string message) : Exception(message);

/// <summary>
/// A streaming RFC 4180 reader over the file's bytes: commas, double-quoted fields with doubled
/// quotes, CRLF, LF or CR line endings (also inside quoted fields), UTF-8 with or without a
/// byte-order mark. It keeps each record's exact text so the output can repeat input cells byte for
/// byte, and counts physical lines so every message names the line an editor shows. Blank lines are
/// skipped. Structure is found on bytes (every structural character is ASCII), so an invalid UTF-8
/// byte is reported at its own line and byte offset, not where a decoder buffer happened to end.
/// </summary>
internal sealed class CsvReader : IDisposable
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly string _path;
    private readonly Stream _stream;
    private readonly IncrementalHash? _hash;
    private readonly byte[] _buffer;
    private int _length;
    private int _offset;
    private long _bufferStart;
    private long _line = 1;
    private byte[] _raw = new byte[1024];
    private int _rawLength;
    private readonly List<(int Start, int End, bool Quoted)> _fields = [];

    /// <summary>Opens <paramref name="path"/>; with <paramref name="hash"/>, every byte read is also fed to it.</summary>
    public CsvReader(string path, IncrementalHash? hash = null) : this(Open(path), path, hash) { }

    private CsvReader(Stream stream, string name, IncrementalHash? hash)
    {
        _buffer = new byte[stream is MemoryStream memory ? Math.Max(16, (int)memory.Length) : 1 << 16];
        _path = name;
        _hash = hash;
        _stream = stream;
        if (Fill() && _length >= 3 && _buffer[0] == 0xEF && _buffer[1] == 0xBB && _buffer[2] == 0xBF)
        {
            HasByteOrderMark = true;
            _offset = 3;
        }
    }

    private static FileStream Open(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CsvFormatException($"cannot read '{path}': {e.Message}");
        }
    }

    /// <summary>Parses one record's text (as <see cref="CsvRecord.Raw"/> holds it) into fields.</summary>
    public static string[] ParseFields(string raw)
    {
        using var reader = new CsvReader(new MemoryStream(StrictUtf8.GetBytes(raw)), "(record)", null);
        return reader.Read()?.Fields ?? [""];
    }

    /// <summary>Whether the file starts with a UTF-8 byte-order mark.</summary>
    public bool HasByteOrderMark { get; }

    /// <summary>The terminator of the first record (<c>\r\n</c>, <c>\n</c> or <c>\r</c>), to repeat in the output.</summary>
    public string? FirstTerminator { get; private set; }

    /// <summary>Bytes consumed so far (the byte-order mark included).</summary>
    public long Position => _bufferStart + _offset;

    /// <summary>Reads the next non-blank record, or null at the end of the file.</summary>
    public CsvRecord? Read()
    {
        while (true)
        {
            var record = ReadRecord();
            if (record is null) return null;
            if (record.Raw.Length > 0) return record;
        }
    }

    /// <summary>Reads to the end of the file, so that a hash given to the constructor covers all of it.</summary>
    public void Drain()
    {
        _offset = _length;
        while (Fill()) _offset = _length;
    }

    private CsvRecord? ReadRecord()
    {
        if (!Fill()) return null;
        long startLine = _line;
        long startOffset = Position;
        _rawLength = 0;
        _fields.Clear();
        int fieldStart = 0;
        bool quoted = false, inQuotes = false, afterQuote = false, atFieldStart = true;
        while (true)
        {
            if (!Fill())
            {
                if (inQuotes) throw new CsvFormatException($"{_path}: line {startLine}: a quoted field is not closed before the end of the file.");
                _fields.Add((fieldStart, _rawLength, quoted));
                return Build(startLine, startOffset, terminated: false);
            }
            byte b = _buffer[_offset++];
            if (inQuotes)
            {
                Append(b);
                if (b == '"')
                {
                    if (Fill() && _buffer[_offset] == '"')
                    {
                        Append((byte)'"');
                        _offset++;
                    }
                    else
                    {
                        inQuotes = false;
                        afterQuote = true;
                    }
                }
                else if (b == '\n' || (b == '\r' && !(Fill() && _buffer[_offset] == '\n')))
                {
                    _line++;
                }
                continue;
            }
            if (b == '\r' || b == '\n')
            {
                string terminator = b == '\n' ? "\n" : Fill() && _buffer[_offset] == '\n' ? "\r\n" : "\r";
                if (terminator == "\r\n") _offset++;
                _line++;
                FirstTerminator ??= terminator;
                _fields.Add((fieldStart, _rawLength, quoted));
                return Build(startLine, startOffset, terminated: true);
            }
            Append(b);
            if (b == ',')
            {
                _fields.Add((fieldStart, _rawLength - 1, quoted));
                fieldStart = _rawLength;
                quoted = afterQuote = false;
                atFieldStart = true;
                continue;
            }
            if (afterQuote)
                throw new CsvFormatException($"{_path}: line {_line}: unexpected {Describe(b)} after a closing quote (a quote inside a quoted field must be doubled).");
            if (b == '"' && atFieldStart)
            {
                inQuotes = quoted = true;
                atFieldStart = false;
                continue;
            }
            atFieldStart = false;
        }
    }

    private CsvRecord Build(long startLine, long startOffset, bool terminated)
    {
        var raw = _raw.AsSpan(0, _rawLength);
        if (!System.Text.Unicode.Utf8.IsValid(raw)) throw InvalidUtf8(raw, startLine, startOffset);
        var fields = new string[_fields.Count];
        for (int i = 0; i < fields.Length; i++)
        {
            var (start, end, isQuoted) = _fields[i];
            fields[i] = isQuoted
                ? StrictUtf8.GetString(raw[(start + 1)..(end - 1)]).Replace("\"\"", "\"", StringComparison.Ordinal)
                : StrictUtf8.GetString(raw[start..end]);
        }
        return new CsvRecord(fields, StrictUtf8.GetString(raw), startLine, terminated);
    }

    private CsvFormatException InvalidUtf8(ReadOnlySpan<byte> raw, long startLine, long startOffset)
    {
        int index = 0;
        while (System.Text.Rune.DecodeFromUtf8(raw[index..], out _, out int consumed) == System.Buffers.OperationStatus.Done) index += consumed;
        long line = startLine;
        for (int i = 0; i < index; i++)
            if (raw[i] == '\n' || (raw[i] == '\r' && (i + 1 >= raw.Length || raw[i + 1] != '\n'))) line++;
        return new CsvFormatException($"{_path}: line {line}: the byte 0x{raw[index]:X2} at byte offset {startOffset + index} is not valid UTF-8 " +
            "(save the file as UTF-8).");
    }

    private static string Describe(byte b) => b is >= 0x20 and < 0x7F ? $"'{(char)b}'" : $"byte 0x{b:X2}";

    private void Append(byte b)
    {
        if (_rawLength == _raw.Length) Array.Resize(ref _raw, _raw.Length * 2);
        _raw[_rawLength++] = b;
    }

    private bool Fill()
    {
        if (_offset < _length) return true;
        _bufferStart += _length;
        _offset = 0;
        _length = _stream.Read(_buffer, 0, _buffer.Length);
        _hash?.AppendData(_buffer, 0, _length);
        return _length > 0;
    }

    public void Dispose() => _stream.Dispose();
}
