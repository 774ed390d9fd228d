using System.Security.Cryptography;

namespace MLNetGpt.Cli.Batch;

/// <summary>
/// <c>mlnetgpt merge OUTPUT SHARD...</c>: joins the outputs of a sharded job into the file the same job
/// would have written unsharded, byte for byte. Every check that can refuse the merge runs on the
/// shards' manifests before anything is written (each shard complete, all from one job, every shard
/// index once); while merging, each shard's bytes are hashed and compared with its manifest, so a shard
/// edited or cut after it completed is refused too, and the output appears only when all of that holds.
/// </summary>
internal static class ShardMerge
{
    /// <summary>One shard output and the manifest its run kept beside it.</summary>
    private sealed record Shard(string Path, JobManifest Manifest)
    {
        public ShardRecord Record => Manifest.Shard!;

        public string Name => $"'{Path}' (shard {Record})";
    }

    public static int Run(string output, IReadOnlyList<string> shardOutputs, bool quiet)
    {
        if (output.Length == 0) throw new UsageException("the merged output's name is empty; give the path of the file to write.");
        var shards = shardOutputs.Select(Open).ToList();
        var twice = shards.GroupBy(s => s.Path, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null) throw new UsageException($"the shard output '{twice.Key}' is given twice.");

        var first = shards[0];
        foreach (var shard in shards.Skip(1))
        {
            var differences = shard.Manifest.DifferencesFrom(first.Manifest, compareShardIndex: false);
            if (differences.Count > 0)
                throw new UsageException($"{shard.Name} is not a shard of the same job as {first.Name} (from the first to the second: " +
                    $"{string.Join("; ", differences)}).");
        }
        int count = first.Record.Count;
        var byIndex = new Shard[count];
        foreach (var shard in shards)
        {
            if (byIndex[shard.Record.Index] is { } earlier)
                throw new UsageException($"'{earlier.Path}' and '{shard.Path}' are both shard {shard.Record}: give each shard once.");
            byIndex[shard.Record.Index] = shard;
        }
        var missing = Enumerable.Range(0, count).Where(i => byIndex[i] is null).ToList();
        if (missing.Count > 0)
            throw new UsageException($"{(missing.Count == 1 ? "shard" : "shards")} {string.Join(", ", missing.Take(10).Select(i => $"{i}/{count}"))}" +
                $"{(missing.Count > 10 ? $" and {missing.Count - 10} more" : "")} {(missing.Count == 1 ? "is" : "are")} missing; " +
                $"given: {string.Join(", ", shards.OrderBy(s => s.Record.Index).Select(s => s.Name))}.");

        var paths = OutputPaths.For(output);
        foreach (var shard in shards)
            if (paths.Output == shard.Path || paths.Output == shard.Path + ".job.json")
                throw new UsageException($"the merged output must not be one of the shard files ('{paths.Output}').");
        paths.Check(first.Path);
        using var outputLock = OutputLock.Acquire(paths.Lock, paths.Output, BatchJob.Warn);
        string temporary = paths.Output + ".merging";
        try
        {
            long rows = Write(temporary, byIndex, first.Manifest);
            File.Move(temporary, paths.Output, overwrite: true);
            if (!quiet) Console.Error.WriteLine($"mlnetgpt: merge: {count} {(count == 1 ? "shard" : "shards")}, {rows} rows -> {paths.Output}");
        }
        finally
        {
            File.Delete(temporary);
        }
        return BatchJob.Success;
    }

    /// <summary>A shard output named on the command line, with the checks that need only it and its manifest.</summary>
    private static Shard Open(string given)
    {
        if (given.Length == 0) throw new UsageException("a shard output's name is empty.");
        string path = System.IO.Path.GetFullPath(given);
        if (Directory.Exists(path)) throw new UsageException($"the shard output '{given}' is a folder.");
        bool unfinished = File.Exists(path + ".partial");
        if (!File.Exists(path))
            throw new UsageException(unfinished
                ? $"the shard '{given}' is unfinished ('{given}.partial' holds its rows so far): run its command again with --resume, then merge."
                : $"the shard output '{given}' does not exist.");
        if (unfinished)
            throw new UsageException($"'{given}.partial' lies beside the shard output '{given}': a later run of that shard is unfinished. " +
                $"Resume it with --resume, or delete '{given}.partial' to merge the completed output.");
        string manifestPath = path + ".job.json";
        if (!File.Exists(manifestPath))
            throw new UsageException($"'{given}' has no shard manifest ('{given}.job.json'), so nothing shows which job and shard wrote it; " +
                "merge takes the outputs of generate, score or classify run with --shard K/N.");
        var manifest = JobManifest.Read(manifestPath);
        if (manifest.Shard is not { } record)
            throw new UsageException($"'{given}' was written without --shard (its manifest '{given}.job.json' names no shard).");
        var shard = new Shard(path, manifest);
        if (record.Assignment != ShardAssignment.Scheme)
            throw new UsageException($"{shard.Name} assigns rows by '{record.Assignment}'; this mlnetgpt ({JobManifest.ToolVersion}) merges '{ShardAssignment.Scheme}' shards.");
        if (record.Count < 1 || record.Index < 0 || record.Index >= record.Count || record.Count > ShardAssignment.MaxCount)
            throw new UsageException($"the manifest '{given}.job.json' names the shard {record.Index}/{record.Count}, which cannot be.");
        long share = record.Shard.RowsOf(record.InputRows);
        if (record.Rows != share || manifest.Partial.Rows != share)
            throw new UsageException($"{shard.Name} holds {manifest.Partial.Rows} rows, but its share of the input's {record.InputRows} rows is {share}: " +
                "run the shard again.");
        long length = new FileInfo(path).Length;
        if (length != manifest.Partial.Bytes)
            throw new UsageException($"{shard.Name} is {length} bytes, but its manifest records {manifest.Partial.Bytes}: it was changed after its run completed. " +
                "Run the shard again.");
        return shard;
    }

    /// <summary>Writes the header once and then every input row from the shard that holds it; returns the rows written.</summary>
    private static long Write(string temporary, Shard[] shards, JobManifest job)
    {
        var shape = job.Output;
        bool csv = shape.Format == "csv";
        byte[] terminator = csv ? System.Text.Encoding.ASCII.GetBytes(shape.LineTerminator) : [(byte)'\n'];
        var readers = new List<ShardReader>();
        try
        {
            foreach (var shard in shards) readers.Add(new ShardReader(shard, terminator, csv));
            using var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            if (csv)
            {
                byte[] header = readers[0].Header(shape.ByteOrderMark);
                stream.Write(header);
                foreach (var reader in readers.Skip(1))
                    if (!reader.Header(shape.ByteOrderMark).AsSpan().SequenceEqual(header))
                        throw new UsageException($"the header of {reader.Shard.Name} differs from that of {readers[0].Shard.Name}: it was changed after its run completed.");
            }
            long inputRows = job.Shard!.InputRows;
            var map = new ShardMap(shards.Length);
            for (long row = 0; row < inputRows; row++)
            {
                if ((row & 0xFFF) == 0 && BatchJob.InterruptRequested) throw new OperationCanceledException();
                var reader = readers[map.ShardOf(row)];
                if (!reader.CopyRow(stream))
                    throw new UsageException($"{reader.Shard.Name} ends after {reader.Rows} rows, before its share of {reader.Shard.Record.Rows}: " +
                        "it was changed after its run completed. Run the shard again.");
            }
            foreach (var reader in readers)
            {
                if (!reader.AtEnd())
                    throw new UsageException($"{reader.Shard.Name} holds more than its share of {reader.Shard.Record.Rows} rows: it was changed after its run completed. " +
                        "Run the shard again.");
                if (reader.Sha256() != reader.Shard.Manifest.Partial.Sha256)
                    throw new UsageException($"{reader.Shard.Name} was changed after its run completed: its SHA-256 is not the one its manifest records. " +
                        "Run the shard again.");
            }
            stream.Flush(flushToDisk: true);
            return inputRows;
        }
        finally
        {
            foreach (var reader in readers) reader.Dispose();
        }
    }

    /// <summary>Reads one shard output row by row (streaming), hashing every byte it reads.</summary>
    private sealed class ShardReader(Shard shard, byte[] terminator, bool csv) : IDisposable
    {
        private readonly FileStream _stream = new(shard.Path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly byte[] _buffer = new byte[1 << 16];
        private RowBoundary _boundary = new(terminator, csv);
        private int _offset, _length;

        public Shard Shard => shard;

        public long Rows { get; private set; }

        /// <summary>The CSV header (the byte-order mark, when the job writes one, and the first row).</summary>
        public byte[] Header(bool byteOrderMark)
        {
            using var header = new MemoryStream();
            if (byteOrderMark)
            {
                for (int i = 0; i < 3 && Fill(); i++) header.WriteByte(_buffer[_offset++]);
            }
            CopyRow(header);
            Rows = 0;
            return header.ToArray();
        }

        /// <summary>Copies the next row, terminator included; false when the file ends first.</summary>
        public bool CopyRow(Stream output)
        {
            while (Fill())
            {
                int start = _offset;
                while (_offset < _length)
                {
                    if (!_boundary.EndsRow(_buffer[_offset++])) continue;
                    output.Write(_buffer, start, _offset - start);
                    Rows++;
                    return true;
                }
                output.Write(_buffer, start, _offset - start);
            }
            return false;
        }

        public bool AtEnd() => !Fill();

        public string Sha256() => Convert.ToHexStringLower(_hash.GetCurrentHash());

        private bool Fill()
        {
            if (_offset < _length) return true;
            _length = _stream.Read(_buffer, 0, _buffer.Length);
            _offset = 0;
            _hash.AppendData(_buffer, 0, _length);
            return _length > 0;
        }

        public void Dispose()
        {
            _stream.Dispose();
            _hash.Dispose();
        }
    }
}
