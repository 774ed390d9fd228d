using System.Security.Cryptography;

namespace MLNetGpt.Cli.Batch;

/// <summary>How much of a partial output is complete: <see cref="Rows"/> finished rows in its first <see cref="CompleteBytes"/> bytes.</summary>
internal sealed record PartialState(long Rows, long CompleteBytes, long Length)
{
    /// <summary>Bytes after the last finished row: a row a crash cut off, to be cut away and generated again.</summary>
    public long TornBytes => Length - CompleteBytes;
}

/// <summary>
/// Reads a partial output as a stream (memory stays flat whatever its size) to find where its last
/// finished row ends. A row is finished when its line terminator is there, outside quotes: every
/// row is written whole and only then followed by the next, so anything after the last terminator is
/// a row cut off mid-write.
/// </summary>
internal static class PartialFile
{
    public static PartialState Scan(string path, OutputLayout layout)
    {
        using var stream = OpenRead(path);
        var header = layout.HeaderBytes();
        var start = new byte[header.Length];
        int got = stream.ReadAtLeast(start, header.Length, throwOnEndOfStream: false);
        if (got < header.Length || !start.AsSpan().SequenceEqual(header))
            throw new UsageException($"--resume: '{path}' does not start with the header this job writes; it is not this job's output, or it was edited. " +
                "Delete it to start over.");

        var boundary = new RowBoundary(layout.TerminatorBytes, layout.Format == OutputFormat.Csv);
        long rows = 0, complete = header.Length, offset = header.Length;
        var buffer = new byte[1 << 16];
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            for (int i = 0; i < read; i++, offset++)
            {
                if (!boundary.EndsRow(buffer[i])) continue;
                rows++;
                complete = offset + 1;
            }
        }
        return new PartialState(rows, complete, offset);
    }

    /// <summary>Feeds the file's first <paramref name="bytes"/> bytes to <paramref name="hash"/>, returning the hash after the first <paramref name="checkpoint"/> of them.</summary>
    public static string Hash(string path, IncrementalHash hash, long checkpoint, long bytes)
    {
        using var stream = OpenRead(path);
        var buffer = new byte[1 << 16];
        string? atCheckpoint = checkpoint == 0 ? Convert.ToHexStringLower(hash.GetCurrentHash()) : null;
        for (long done = 0; done < bytes;)
        {
            long limit = atCheckpoint is null ? checkpoint : bytes;
            int read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, limit - done));
            if (read == 0) throw new IOException($"'{path}' became shorter while it was read.");
            hash.AppendData(buffer, 0, read);
            done += read;
            if (done == checkpoint) atCheckpoint = Convert.ToHexStringLower(hash.GetCurrentHash());
        }
        return atCheckpoint!;
    }

    private static FileStream OpenRead(string path) => new(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
}

/// <summary>
/// Finds where output rows end, byte by byte: at the line terminator outside quotes. The CSV reader's
/// own rules apply: a quote opens a quoted field only at the start of a field, and inside one a doubled
/// quote is a quote; elsewhere a quote is an ordinary character. JSONL rows end at every line feed
/// (JSON strings escape theirs). Feed it the bytes after the header.
/// </summary>
internal struct RowBoundary(byte[] terminator, bool csv)
{
    private readonly byte[] _terminator = terminator;
    private readonly bool _csv = csv;
    private bool _inQuotes, _quotePending;
    private bool _atFieldStart = true;
    private int _matched;

    /// <summary>Whether <paramref name="b"/> is the last byte of a row.</summary>
    public bool EndsRow(byte b)
    {
        if (_inQuotes)
        {
            if (!_quotePending)
            {
                _quotePending = b == '"';
                return false;
            }
            _quotePending = false;
            if (b == '"') return false;
            _inQuotes = false;
        }
        if (_csv && b == '"' && _atFieldStart)
        {
            _inQuotes = true;
            _atFieldStart = false;
            _matched = 0;
            return false;
        }
        if (b == _terminator[_matched])
        {
            if (++_matched < _terminator.Length) return false;
            _matched = 0;
            _atFieldStart = true;
            return true;
        }
        _matched = b == _terminator[0] ? 1 : 0;
        _atFieldStart = b == ',';
        return false;
    }
}
