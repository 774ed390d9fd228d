using System.Security.Cryptography;
using MLNetGpt.Cli.Csv;

namespace MLNetGpt.Cli.Batch;

/// <summary>An input CSV file's header: its column names, its exact text, byte-order mark and line ending.</summary>
internal sealed record InputHeader(string Path, string[] Columns, string Raw, bool ByteOrderMark, string Terminator)
{
    /// <summary>Reads the header only (column errors are reported before the whole file is read).</summary>
    public static InputHeader Read(string path)
    {
        if (Directory.Exists(path)) throw new UsageException($"the input '{path}' is a folder, not a CSV file.");
        if (!File.Exists(path)) throw new UsageException($"the input file '{path}' does not exist.");
        using var reader = new CsvReader(path);
        return From(path, reader);
    }

    internal static InputHeader From(string path, CsvReader reader)
    {
        var header = reader.Read() ?? throw new UsageException($"the input file '{path}' is empty; it needs a header row.");
        var duplicate = header.Fields.GroupBy(f => f, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new UsageException($"the input file '{path}' has the column '{duplicate.Key}' twice.");
        return new InputHeader(path, header.Fields, header.Raw, reader.HasByteOrderMark, reader.FirstTerminator ?? "\r\n");
    }
}

/// <summary>
/// What the validation pass learned from reading the whole input once before anything is generated:
/// its structure is sound (quotes closed, valid UTF-8, no row wider than the header), how many rows it
/// holds (the progress total), and its identity for the job manifest (size and SHA-256).
/// </summary>
internal sealed record InputFile(InputHeader Header, long Rows, long Bytes, string Sha256)
{
    public static InputFile Scan(string path)
    {
        InputHeader.Read(path);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var reader = new CsvReader(path, hash);
        var header = InputHeader.From(path, reader);
        long rows = 0;
        while (reader.Read() is { } record)
        {
            // Ctrl+C during the pass over a large file ends it at once: nothing has been written yet.
            if (BatchJob.InterruptRequested) throw new OperationCanceledException();
            if (record.Fields.Length > header.Columns.Length)
                throw new CsvFormatException($"{path}: line {record.Line}: the row has {record.Fields.Length} fields, but the header has " +
                    $"{header.Columns.Length} (a cell that holds a comma must be quoted).");
            rows++;
        }
        reader.Drain();
        return new InputFile(header, rows, reader.Position, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }
}
