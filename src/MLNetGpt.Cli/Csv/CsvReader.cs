using System.Text;

namespace MLNetGpt.Cli.Csv;

/// <summary>
/// One CSV record: its parsed fields, its exact source text (without the line terminator), the line
/// it starts on, and whether a line terminator ended it (false only for a last line without one).
/// </summary>
internal sealed record CsvRecord(string[] Fields, string Raw, long Line, bool Terminated = true);

/// <summary>A CSV input problem: names the file and the line.</summary>
internal sealed class CsvFormatException(string message) : Exception(message);

/// <summary>
/// A streaming RFC 4180 reader: commas, double-quoted fields with doubled quotes, CRLF or LF
/// (also inside quoted fields), UTF-8 with or without a byte-order mark. It keeps each record's
/// exact text so the output can repeat input cells byte for byte. Blank lines are skipped.
/// </summary>
internal sealed class CsvReader : IDisposable
{
    private readonly string _path;
    private readonly TextReader _reader;
    private readonly char[] _buffer = new char[1 << 16];
    private int _length;
    private int _offset;
    private long _line = 1;

    private CsvReader(string path, TextReader reader)
    {
        _path = path;
        _reader = reader;
    }

    /// <summary>Parses one record's text (as <see cref="CsvRecord.Raw"/> holds it) into fields.</summary>
    public static string[] ParseFields(string raw)
    {
        using var reader = new CsvReader("(record)", new StringReader(raw));
        return reader.Read()?.Fields ?? [""];
    }

    public CsvReader(string path)
    {
        _path = path;
        Stream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CsvFormatException($"cannot read '{path}': {e.Message}");
        }
        var bom = new byte[3];
        int read = stream.Read(bom, 0, 3);
        HasByteOrderMark = read == 3 && bom[0] == 0xEF && bom[1] == 0xBB && bom[2] == 0xBF;
        stream.Position = HasByteOrderMark ? 3 : 0;
        _reader = new StreamReader(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true),
            detectEncodingFromByteOrderMarks: false);
    }

    /// <summary>Whether the file starts with a UTF-8 byte-order mark.</summary>
    public bool HasByteOrderMark { get; }

    /// <summary>The terminator of the first record (<c>\r\n</c> or <c>\n</c>), to repeat in the output.</summary>
    public string? FirstTerminator { get; private set; }

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

    private CsvRecord? ReadRecord()
    {
        if (!Fill()) return null;
        long startLine = _line;
        var raw = new StringBuilder();
        var fields = new List<string>();
        var field = new StringBuilder();
        bool inQuotes = false, afterQuote = false, fieldStart = true;
        while (true)
        {
            if (!Fill())
            {
                if (inQuotes) throw new CsvFormatException($"{_path}: line {startLine}: a quoted field is not closed before the end of the file.");
                fields.Add(field.ToString());
                return new CsvRecord(fields.ToArray(), raw.ToString(), startLine, Terminated: false);
            }
            char c = _buffer[_offset++];
            if (inQuotes)
            {
                raw.Append(c);
                if (c == '"')
                {
                    if (Fill() && _buffer[_offset] == '"')
                    {
                        raw.Append('"');
                        _offset++;
                        field.Append('"');
                    }
                    else
                    {
                        inQuotes = false;
                        afterQuote = true;
                    }
                }
                else
                {
                    if (c == '\n') _line++;
                    field.Append(c);
                }
                continue;
            }
            if (c == '\r' && Fill() && _buffer[_offset] == '\n')
            {
                _offset++;
                _line++;
                FirstTerminator ??= "\r\n";
                fields.Add(field.ToString());
                return new CsvRecord(fields.ToArray(), raw.ToString(), startLine);
            }
            if (c == '\n')
            {
                _line++;
                FirstTerminator ??= "\n";
                fields.Add(field.ToString());
                return new CsvRecord(fields.ToArray(), raw.ToString(), startLine);
            }
            raw.Append(c);
            if (c == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
                afterQuote = false;
                fieldStart = true;
                continue;
            }
            if (afterQuote)
                throw new CsvFormatException($"{_path}: line {_line}: unexpected '{c}' after a closing quote (a quote inside a quoted field must be doubled).");
            if (c == '"' && fieldStart)
            {
                inQuotes = true;
                fieldStart = false;
                continue;
            }
            fieldStart = false;
            field.Append(c);
        }
    }

    private bool Fill()
    {
        if (_offset < _length) return true;
        try
        {
            _length = _reader.Read(_buffer, 0, _buffer.Length);
        }
        catch (DecoderFallbackException)
        {
            throw new CsvFormatException($"{_path}: line {_line}: the file is not valid UTF-8.");
        }
        _offset = 0;
        return _length > 0;
    }

    public void Dispose() => _reader.Dispose();

    /// <summary>Counts the records after the header, for progress (a fast second pass).</summary>
    public static long CountRecords(string path)
    {
        using var reader = new CsvReader(path);
        long count = -1;
        while (reader.Read() is not null) count++;
        return Math.Max(0, count);
    }
}
