using System.Text;
using System.Text.Json;
using MLNetGpt.Cli.Csv;

namespace MLNetGpt.Cli.Batch;

/// <summary>Output file formats.</summary>
internal enum OutputFormat
{
    Csv,
    Jsonl,
}

/// <summary>
/// Writes output rows to <c>OUTPUT.partial</c> and moves it to <c>OUTPUT</c> only when the run
/// completes, so an interrupted or crashed run never leaves a file that looks complete. Each row is
/// flushed as written. With resume, the complete rows of an earlier partial file are kept (a last
/// row cut off by a crash is dropped) and writing continues after them.
/// </summary>
internal sealed class OutputWriter : IDisposable
{
    private readonly string _output;
    private readonly string _partial;
    private readonly OutputFormat _format;
    private readonly string[] _header;
    private readonly string[] _newColumns;
    private readonly string _terminator;
    private readonly StreamWriter _writer;
    private bool _closed;

    public OutputWriter(string output, OutputFormat format, string[] header, string headerRaw, string[] newColumns,
        bool byteOrderMark, string terminator, bool resume)
    {
        _output = Path.GetFullPath(output);
        _partial = _output + ".partial";
        _format = format;
        _header = header;
        _newColumns = newColumns;
        _terminator = terminator;
        var directory = Path.GetDirectoryName(_output)!;
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"cannot create the output folder '{directory}': {e.Message}");
        }
        string headerLine = format == OutputFormat.Csv ? headerRaw + "," + CsvText.Join(newColumns) : "";
        var kept = new List<string>();
        if (resume)
        {
            if (!File.Exists(_partial))
                throw new UsageException($"--resume: there is no interrupted run to continue ('{_partial}' does not exist).");
            kept = ReadCompleteRows(headerLine);
            ExistingRows = kept.Count;
        }
        var encoding = new UTF8Encoding(encoderShouldEmitUTF8Identifier: byteOrderMark && format == OutputFormat.Csv);
        try
        {
            _writer = new StreamWriter(new FileStream(_partial, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16), encoding);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"cannot write '{_partial}': {e.Message}");
        }
        _writer.NewLine = terminator;
        if (format == OutputFormat.Csv) _writer.Write(headerLine + terminator);
        foreach (var line in kept) _writer.Write(line + terminator);
        _writer.Flush();
    }

    /// <summary>Rows already in the partial output when resuming.</summary>
    public long ExistingRows { get; }

    public string PartialPath => _partial;

    public string OutputPath => _output;

    /// <summary>Writes one row: the input record as it was, padded to the header's width, then the new values.</summary>
    public void Write(CsvRecord record, IReadOnlyList<string> values)
    {
        if (_format == OutputFormat.Csv)
        {
            var line = new StringBuilder(record.Raw);
            for (int i = record.Fields.Length; i < _header.Length; i++) line.Append(',');
            foreach (var value in values) line.Append(',').Append(CsvText.Quote(value));
            _writer.Write(line.Append(_terminator).ToString());
        }
        else
        {
            using var buffer = new MemoryStream();
            using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            {
                json.WriteStartObject();
                for (int i = 0; i < Math.Max(_header.Length, record.Fields.Length); i++)
                {
                    string name = i < _header.Length ? _header[i] : $"_extra{i - _header.Length + 1}";
                    if (i < record.Fields.Length) json.WriteString(name, record.Fields[i]);
                    else json.WriteNull(name);
                }
                for (int i = 0; i < _newColumns.Length; i++) json.WriteString(_newColumns[i], values[i]);
                json.WriteEndObject();
            }
            _writer.Write(Encoding.UTF8.GetString(buffer.ToArray()) + "\n");
        }
        _writer.Flush();
    }

    /// <summary>Closes the file and moves it into place.</summary>
    public void Complete()
    {
        Close();
        File.Move(_partial, _output, overwrite: true);
    }

    /// <summary>Closes the file and leaves it as <c>OUTPUT.partial</c> for <c>--resume</c>.</summary>
    public void Close()
    {
        if (_closed) return;
        _closed = true;
        _writer.Flush();
        _writer.Dispose();
    }

    public void Dispose() => Close();

    private List<string> ReadCompleteRows(string headerLine)
    {
        var rows = new List<string>();
        if (_format == OutputFormat.Jsonl)
        {
            var text = File.ReadAllText(_partial, Encoding.UTF8);
            int start = 0;
            for (int end = text.IndexOf('\n'); end >= 0; start = end + 1, end = text.IndexOf('\n', start))
                rows.Add(text[start..end]);
            return rows;
        }
        using var reader = new CsvReader(_partial);
        var header = reader.Read();
        if (header is null || header.Raw != headerLine)
            throw new UsageException($"--resume: '{_partial}' was written with different columns; delete it or choose another output.");
        try
        {
            while (reader.Read() is { } record)
                if (record.Terminated) rows.Add(record.Raw);
        }
        catch (CsvFormatException)
        {
            // A row cut off inside a quoted field by a crash: it is dropped and generated again.
        }
        return rows;
    }
}
