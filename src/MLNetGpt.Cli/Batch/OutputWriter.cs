using System.Globalization;
using System.Security.Cryptography;
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
/// One computed output value: text, a JSON value such as a number (written as it is in JSONL, as its
/// text in CSV), or missing (empty in CSV, null in JSONL).
/// </summary>
internal readonly record struct OutputValue(string? Text, bool IsJson = false)
{
    public static OutputValue Missing => default;

    public static OutputValue Of(string text) => new(text);

    /// <summary>A number; NaN and infinities, which JSON cannot hold, stay text.</summary>
    public static OutputValue Of(double value) => new(value.ToString("R", CultureInfo.InvariantCulture), double.IsFinite(value));

    public static OutputValue Of(float value) => new(value.ToString("R", CultureInfo.InvariantCulture), float.IsFinite(value));

    public static OutputValue Of(int value) => new(value.ToString(CultureInfo.InvariantCulture), IsJson: true);

    /// <summary>A JSON value that is not a string (number, boolean, object, array) as compact JSON text.</summary>
    public static OutputValue Json(string compactJson) => new(compactJson, IsJson: true);
}

/// <summary>The files of one job: the output, and what is kept beside it while the job is unfinished.</summary>
internal sealed record OutputPaths(string Output, string Partial, string Manifest, string Lock)
{
    public static OutputPaths For(string output)
    {
        var full = Path.GetFullPath(output);
        return new OutputPaths(full, full + ".partial", full + ".partial.job.json", full + ".lock");
    }

    /// <summary>A completed shard's manifest, kept beside its output for <c>merge</c>.</summary>
    public string CompletedManifest => Output + ".job.json";

    /// <summary>Temporary files a crash may leave behind (each is written whole and renamed into place).</summary>
    public IEnumerable<string> Temporaries => [Partial + ".tmp", Manifest + ".tmp", CompletedManifest + ".tmp"];

    /// <summary>
    /// Finds every output path problem before anything is generated: an output that is a folder or
    /// cannot be written, a folder in the way of the partial output, the manifest or the lock, an output
    /// folder that cannot be created. The folder's writability is proven by creating the lock file next.
    /// </summary>
    public void Check(string input)
    {
        if (Path.GetFullPath(input) == Output) throw new UsageException("the output file must not be the input file.");
        if (Directory.Exists(Output)) throw new UsageException($"--output '{Output}' is a folder; give the path of the file to write.");
        foreach (var (path, role) in new[] { (Partial, "the partial output"), (Manifest, "the job manifest"), (Lock, "the output lock"),
            (CompletedManifest, "a shard's manifest") }.Concat(Temporaries.Select(t => (t, "a temporary file"))))
            if (Directory.Exists(path)) throw new UsageException($"'{path}' is a folder, but mlnetgpt keeps {role} there; move it away.");
        var directory = Path.GetDirectoryName(Output)!;
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"cannot create the output folder '{directory}': {e.Message}");
        }
        if (File.Exists(Output))
        {
            try
            {
                using var probe = new FileStream(Output, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new UsageException($"the output file '{Output}' exists and cannot be written: {e.Message}");
            }
        }
    }
}

/// <summary>The layout of the output rows: format, columns, byte-order mark and line terminator.</summary>
internal sealed record OutputLayout(OutputFormat Format, string[] InputColumns, string HeaderRaw, string[] NewColumns, bool ByteOrderMark, string Terminator)
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    public byte[] TerminatorBytes => Format == OutputFormat.Csv ? Encoding.ASCII.GetBytes(Terminator) : [(byte)'\n'];

    /// <summary>What the output starts with: for CSV the byte-order mark (as the input had it) and the header line; for JSONL nothing.</summary>
    public byte[] HeaderBytes()
    {
        if (Format == OutputFormat.Jsonl) return [];
        var header = Utf8.GetBytes(HeaderRaw + "," + CsvText.Join(NewColumns) + Terminator);
        return ByteOrderMark ? [0xEF, 0xBB, 0xBF, .. header] : header;
    }

    public OutputShape Shape => new(Format == OutputFormat.Csv ? "csv" : "jsonl", [.. InputColumns, .. NewColumns],
        ByteOrderMark && Format == OutputFormat.Csv, Format == OutputFormat.Csv ? Terminator : "\n");

    /// <summary>One row's bytes: the input record as it was, then the new values.</summary>
    public byte[] Row(CsvRecord record, IReadOnlyList<OutputValue> values)
    {
        if (Format == OutputFormat.Csv)
        {
            // A short record is padded to the header's width, so the new values stay under their headings.
            var line = new StringBuilder(record.Raw);
            for (int i = record.Fields.Length; i < InputColumns.Length; i++) line.Append(',');
            foreach (var value in values) line.Append(',').Append(CsvText.Quote(value.Text ?? ""));
            return Utf8.GetBytes(line.Append(Terminator).ToString());
        }
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            for (int i = 0; i < InputColumns.Length; i++)
            {
                if (i < record.Fields.Length) json.WriteString(InputColumns[i], record.Fields[i]);
                else json.WriteNull(InputColumns[i]);
            }
            for (int i = 0; i < NewColumns.Length; i++)
            {
                json.WritePropertyName(NewColumns[i]);
                var value = values[i];
                if (value.Text is null) json.WriteNullValue();
                else if (value.IsJson) json.WriteRawValue(value.Text);
                else json.WriteStringValue(value.Text);
            }
            json.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        return buffer.ToArray();
    }
}

/// <summary>
/// Writes output rows to <c>OUTPUT.partial</c> and moves it to <c>OUTPUT</c> only when the job is
/// complete, so an interrupted or crashed run never leaves a file that looks complete. Finished rows
/// are never rewritten: each row goes to the file in one write, after the previous one, and a resume
/// only cuts away the bytes after the last finished row. The job manifest's record of the finished
/// prefix is kept up to date at every orderly start and stop.
/// </summary>
internal sealed class OutputWriter : IDisposable
{
    private readonly OutputPaths _paths;
    private readonly OutputLayout _layout;
    private readonly JobManifest _manifest;
    private readonly IncrementalHash _hash;
    private readonly Action<string> _warn;
    private FileStream? _stream;

    private OutputWriter(OutputPaths paths, OutputLayout layout, JobManifest manifest, FileStream stream, IncrementalHash hash, long rows, long bytes,
        Action<string> warn)
    {
        _warn = warn;
        _paths = paths;
        _layout = layout;
        _manifest = manifest;
        _stream = stream;
        _hash = hash;
        ExistingRows = rows;
        Bytes = bytes;
    }

    /// <summary>Rows the partial output held when this run started.</summary>
    public long ExistingRows { get; }

    /// <summary>Rows written by this run.</summary>
    public long RowsWritten { get; private set; }

    /// <summary>Bytes of the partial output, all of them finished rows (or the header).</summary>
    public long Bytes { get; private set; }

    public string PartialPath => _paths.Partial;

    public string OutputPath => _paths.Output;

    /// <summary>
    /// Starts a new job: the manifest first, then the partial output with its header, each written to a
    /// temporary file and renamed into place, so a crash leaves no half-written header behind.
    /// </summary>
    public static OutputWriter Create(OutputPaths paths, OutputLayout layout, JobManifest manifest, Action<string> warn)
    {
        var header = layout.HeaderBytes();
        var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(header);
        var recorded = manifest with { Partial = new PartialPrefix(header.Length, 0, Convert.ToHexStringLower(hash.GetCurrentHash())) };
        try
        {
            recorded.WriteAtomically(paths.Manifest);
            string temporary = paths.Partial + ".tmp";
            using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.Read))
            {
                stream.Write(header);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, paths.Partial, overwrite: false);
            return new OutputWriter(paths, layout, recorded, OpenForAppend(paths.Partial, header.Length), hash, 0, header.Length, warn);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            hash.Dispose();
            throw new UsageException($"cannot write '{paths.Partial}': {e.Message}");
        }
    }

    /// <summary>
    /// Continues a partial output: cuts away a row a crash left unfinished (only those bytes), then
    /// records the finished prefix in the manifest. <paramref name="hash"/> holds the hash of that prefix.
    /// </summary>
    public static OutputWriter Continue(OutputPaths paths, OutputLayout layout, JobManifest manifest, PartialState state, IncrementalHash hash,
        Action<string> warn)
    {
        FaultPoint.Reached("resume-scanned");
        FileStream stream;
        try
        {
            stream = OpenForAppend(paths.Partial, state.CompleteBytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"cannot write '{paths.Partial}': {e.Message}");
        }
        FaultPoint.Reached("resume-truncated");
        var recorded = manifest with { Partial = new PartialPrefix(state.CompleteBytes, state.Rows, Convert.ToHexStringLower(hash.GetCurrentHash())) };
        recorded.WriteAtomically(paths.Manifest);
        return new OutputWriter(paths, layout, recorded, stream, hash, state.Rows, state.CompleteBytes, warn);
    }

    private static FileStream OpenForAppend(string path, long finishedBytes)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.Read, bufferSize: 0);
        if (stream.Length > finishedBytes)
        {
            stream.SetLength(finishedBytes);
            stream.Flush(flushToDisk: true);
        }
        stream.Position = finishedBytes;
        return stream;
    }

    /// <summary>Writes one row (a single write to the file, so a crash cuts at most this row).</summary>
    public void Write(CsvRecord record, IReadOnlyList<OutputValue> values)
    {
        var bytes = _layout.Row(record, values);
        _stream!.Write(bytes);
        _hash.AppendData(bytes);
        Bytes += bytes.Length;
        RowsWritten++;
    }

    /// <summary>
    /// Forces the finished file to disk and moves it into place; the manifest goes with the partial.
    /// A shard's manifest is kept as <c>OUTPUT.job.json</c>, now describing the whole output (its size
    /// and SHA-256), so <c>merge</c> can tell a whole shard from one that was cut or edited. It is written
    /// before the output moves into place: a crash in between leaves a manifest whose hash the old output
    /// does not match, which merge refuses, never a stale pair that looks whole.
    /// </summary>
    public void Complete()
    {
        _stream!.Flush(flushToDisk: true);
        _stream.Dispose();
        _stream = null;
        if (_manifest.Shard is not null)
            (_manifest with { Partial = new PartialPrefix(Bytes, ExistingRows + RowsWritten, Convert.ToHexStringLower(_hash.GetCurrentHash())) })
                .WriteAtomically(_paths.CompletedManifest);
        else
            File.Delete(_paths.CompletedManifest);
        File.Move(_paths.Partial, _paths.Output, overwrite: true);
        File.Delete(_paths.Manifest);
        _hash.Dispose();
    }

    /// <summary>Closes the file, leaves it as <c>OUTPUT.partial</c> for <c>--resume</c> and records its finished rows in the manifest.</summary>
    public void Close()
    {
        if (_stream is null) return;
        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        _stream = null;
        var recorded = _manifest with { Partial = new PartialPrefix(Bytes, ExistingRows + RowsWritten, Convert.ToHexStringLower(_hash.GetCurrentHash())) };
        _hash.Dispose();
        try
        {
            recorded.WriteAtomically(_paths.Manifest);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The manifest on disk still describes a shorter finished prefix, which stays true: --resume works.
            _warn($"could not record the finished rows in '{_paths.Manifest}' ({e.Message}); --resume still continues the job.");
        }
    }

    public void Dispose() => Close();
}
