using System.Security.Cryptography;

namespace MLNetGpt.Cli.Batch;

/// <summary>Where a resumed job continues: checked to be the same job, with the partial's finished prefix hashed.</summary>
internal sealed class ResumePoint(PartialState state, IncrementalHash hash) : IDisposable
{
    private IncrementalHash? _hash = hash;

    public PartialState State { get; } = state;

    public IncrementalHash TakeHash()
    {
        var taken = _hash!;
        _hash = null;
        return taken;
    }

    public void Dispose() => _hash?.Dispose();

    public static ResumePoint Check(OutputPaths paths, OutputLayout layout, JobManifest job, long inputRows)
    {
        if (!File.Exists(paths.Partial))
            throw new UsageException($"--resume: there is no interrupted run to continue ('{paths.Partial}' does not exist" +
                (File.Exists(paths.Output) ? $"; '{paths.Output}' does, so the job may have completed)." : ")."));
        if (!File.Exists(paths.Manifest))
            throw new UsageException($"--resume: '{paths.Partial}' has no job manifest ('{paths.Manifest}'), so nothing shows which job wrote it; " +
                "delete it to start over.");
        var recorded = JobManifest.Read(paths.Manifest);
        var differences = job.DifferencesFrom(recorded);
        if (differences.Count > 0)
            throw new UsageException($"--resume: the job differs from the one in '{paths.Partial}': {string.Join("; ", differences)}. " +
                $"Run it as it was, or delete '{paths.Partial}' to start over.");
        var state = PartialFile.Scan(paths.Partial, layout);
        if (state.CompleteBytes < recorded.Partial.Bytes)
            throw new UsageException($"--resume: the finished rows were changed or removed: '{paths.Partial}' holds {state.Rows} finished rows, " +
                $"but held {recorded.Partial.Rows}. Delete it to start over.");
        var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        try
        {
            if (PartialFile.Hash(paths.Partial, hash, recorded.Partial.Bytes, state.CompleteBytes) != recorded.Partial.Sha256)
                throw new UsageException($"--resume: the finished rows were changed in '{paths.Partial}' since mlnetgpt wrote them. Delete it to start over.");
            if (state.Rows > inputRows)
                throw new UsageException($"--resume: '{paths.Partial}' holds {state.Rows} rows, more than the {inputRows} " +
                    $"{(job.Shard is null ? "of the input" : $"of shard {job.Shard}")}. Delete it to start over.");
        }
        catch
        {
            hash.Dispose();
            throw;
        }
        return new ResumePoint(state, hash);
    }

    /// <summary>The refusal for a run without --resume that finds an interrupted partial where its output goes.</summary>
    public static UsageException InterruptedRunInTheWay(OutputPaths paths, OutputLayout layout)
    {
        string holds;
        try
        {
            holds = $"holds {PartialFile.Scan(paths.Partial, layout).Rows} rows of an interrupted run";
        }
        catch (Exception e) when (e is UsageException or IOException)
        {
            holds = "holds an interrupted run";
        }
        return new UsageException($"'{paths.Partial}' {holds}: add --resume to continue it, or delete it to start over.");
    }
}
