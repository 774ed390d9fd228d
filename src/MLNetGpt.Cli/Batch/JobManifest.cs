using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace MLNetGpt.Cli.Batch;

/// <summary>
/// The job manifest, <c>OUTPUT.partial.job.json</c>: what makes a batch job the same job, written
/// beside the partial output before its first row, so that <c>--resume</c> continues only the job that
/// wrote the partial, and kept as <c>OUTPUT.job.json</c> when a shard completes, so that <c>merge</c>
/// recognises the shards of one job and checks that each is whole.
/// </summary>
/// <remarks>
/// <para>Format <c>mlnetgpt-job</c>, version 2: one JSON object (UTF-8, indented) with these members.</para>
/// <list type="bullet">
/// <item><c>format</c>: <c>"mlnetgpt-job"</c>; <c>version</c>: 2. A reader takes versions 1 and 2 and
///   refuses others.</item>
/// <item><c>tool</c>: mlnetgpt's informational version (with its commit, when built from git).</item>
/// <item><c>command</c>: <c>generate</c>, <c>score</c> or <c>classify</c>.</item>
/// <item><c>input</c>: <c>path</c> (full path, for information only: a moved input with the same
///   content is the same input), <c>bytes</c> and <c>sha256</c> (lower-case hex) of the whole file.</item>
/// <item><c>model</c>: <c>path</c> (full path of the folder) and <c>files</c>, every file under it
///   (<c>name</c> relative with <c>/</c>, <c>bytes</c>, <c>modified</c> as ISO 8601 UTC). The model's
///   identity is path + size + modification time of each file, not a content hash: hashing a model of
///   several gigabytes on every start would cost more than the check is worth, and replacing, editing
///   or copying a file changes its time.</item>
/// <item><c>options</c>: every option that changes results, by its command-line name (<c>--seed</c>,
///   <c>--temperature</c>, <c>--format</c>, ...), as canonical invariant text; <see langword="null"/>
///   when not given (the model's <c>generation_config.json</c> then decides, and the model's identity
///   covers that file). Switches hold <c>"given"</c> or null. <c>--batch-size</c> and
///   <c>--threads</c> are not recorded: a seeded row's result depends only on the seed and its prompt,
///   never on the batch it ran in or the number of threads. <c>--device</c> is: another execution
///   provider computes slightly different logits, so sampled tokens may differ.</item>
/// <item><c>output</c>: the output's <c>format</c>, <c>columns</c>, <c>byte_order_mark</c> and
///   <c>line_terminator</c>.</item>
/// <item><c>partial</c>: what the partial output holds for sure: its first <c>bytes</c> bytes, which
///   hold the header and <c>rows</c> finished rows and hash to <c>sha256</c>. Rewritten when a run starts
///   or resumes and when it stops early in an orderly way (Ctrl+C, --fail-fast); after a crash the partial
///   may hold more rows than recorded, never fewer. In a completed shard's <c>OUTPUT.job.json</c> it
///   describes the whole output file.</item>
/// <item><c>shard</c> (version 2): null for a job without <c>--shard</c>; else <c>index</c> and
///   <c>count</c> (<c>--shard K/N</c>), <c>assignment</c> (the rule that gives each row its shard,
///   <c>"splitmix64"</c>, see <see cref="ShardAssignment"/>), <c>input_rows</c> (the rows of the whole
///   input) and <c>rows</c> (this shard's share of them).</item>
/// </list>
/// <para>History: version 1 had no <c>shard</c>; it is read as a job without one.</para>
/// </remarks>
internal sealed record JobManifest
{
    public const string FormatName = "mlnetgpt-job";
    public const int CurrentVersion = 2;

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public string Format { get; init; } = FormatName;
    public int Version { get; init; } = CurrentVersion;
    public required string Tool { get; init; }
    public required string Command { get; init; }
    public required InputIdentity Input { get; init; }
    public required ModelIdentity Model { get; init; }
    public required IReadOnlyDictionary<string, string?> Options { get; init; }
    public required OutputShape Output { get; init; }
    public required PartialPrefix Partial { get; init; }
    public ShardRecord? Shard { get; init; }

    /// <summary>This build of mlnetgpt, as the manifest records it.</summary>
    public static string ToolVersion { get; } =
        typeof(JobManifest).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>Reads a manifest; errors name the file and say what is wrong with it.</summary>
    public static JobManifest Read(string path)
    {
        JobManifest? manifest;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("format", out var format) || format.GetString() != FormatName)
                throw new UsageException($"'{path}' is not an mlnetgpt job manifest.");
            int version = root.TryGetProperty("version", out var v) && v.TryGetInt32(out int number) ? number : 0;
            if (version is < 1 or > CurrentVersion)
                throw new UsageException($"the job manifest '{path}' has version {version}; this mlnetgpt ({ToolVersion}) reads versions 1 to {CurrentVersion}.");
            manifest = root.Deserialize<JobManifest>(Json);
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or NotSupportedException or InvalidOperationException)
        {
            throw new UsageException($"cannot read the job manifest '{path}': {e.Message}");
        }
        return manifest ?? throw new UsageException($"the job manifest '{path}' is empty.");
    }

    /// <summary>
    /// Writes the manifest to a temporary file beside <paramref name="path"/>, forces it to disk and
    /// renames it into place, so a crash leaves either the old manifest or the new one, never a torn one.
    /// </summary>
    public void WriteAtomically(string path)
    {
        string temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(stream, this, Json);
            stream.Flush(flushToDisk: true);
        }
        FaultPoint.Reached("manifest-written");
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>
    /// What differs between the job recorded in <paramref name="recorded"/> and this one, in words a
    /// user can act on ("--seed was 42, now 7"); empty when they are the same job. The partial's
    /// progress is not compared: it is state, not identity.
    /// </summary>
    public IReadOnlyList<string> DifferencesFrom(JobManifest recorded) => DifferencesFrom(recorded, compareShardIndex: true);

    /// <summary>
    /// As <see cref="DifferencesFrom(JobManifest)"/>; without <paramref name="compareShardIndex"/> two
    /// shards of one job are the same job (merge), but a different shard count or rule is not.
    /// </summary>
    public IReadOnlyList<string> DifferencesFrom(JobManifest recorded, bool compareShardIndex)
    {
        var differences = new List<string>();
        if (recorded.Tool != Tool) differences.Add($"mlnetgpt was {recorded.Tool}, now {Tool}");
        if (recorded.Command != Command) differences.Add($"the command was '{recorded.Command}', now '{Command}'");
        if (recorded.Input.Bytes != Input.Bytes || recorded.Input.Sha256 != Input.Sha256)
            differences.Add($"the input '{Input.Path}' changed: it was {recorded.Input.Bytes} bytes with SHA-256 {recorded.Input.Sha256[..16]}..., " +
                $"now {Input.Bytes} bytes with SHA-256 {Input.Sha256[..16]}...");
        if (recorded.Model.Path != Model.Path) differences.Add($"--model was '{recorded.Model.Path}', now '{Model.Path}'");
        else differences.AddRange(Model.DifferencesFrom(recorded.Model));
        foreach (var key in recorded.Options.Keys.Union(Options.Keys))
        {
            string? before = recorded.Options.GetValueOrDefault(key), now = Options.GetValueOrDefault(key);
            if (before != now) differences.Add($"{key} was {Show(before)}, now {Show(now)}");
        }
        if (recorded.Shard?.Count != Shard?.Count || recorded.Shard?.Assignment != Shard?.Assignment
            || (compareShardIndex && recorded.Shard?.Index != Shard?.Index))
            differences.Add($"--shard was {Show(recorded.Shard?.ToString())}, now {Show(Shard?.ToString())}");
        if (differences.Count == 0 && recorded.Output != Output)
            differences.Add($"the output was {recorded.Output}, now {Output}");
        return differences;
    }

    private static string Show(string? value) => value ?? "not given";

    /// <summary>Canonical text of an option value (invariant culture, round-trip floats).</summary>
    public static string? Canonical(object? value) => value switch
    {
        null => null,
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        IEnumerable<string> texts => JsonSerializer.Serialize(texts),
        _ => value.ToString(),
    };
}

/// <summary>The input file's identity: its content, not its name.</summary>
internal sealed record InputIdentity(string Path, long Bytes, string Sha256);

/// <summary>One file of a model folder, as the manifest identifies it.</summary>
internal sealed record ModelFileIdentity(string Name, long Bytes, DateTime Modified);

/// <summary>A model folder's identity: its path and the size and modification time of every file in it.</summary>
internal sealed record ModelIdentity(string Path, IReadOnlyList<ModelFileIdentity> Files)
{
    public static ModelIdentity Of(string folder)
    {
        var full = System.IO.Path.GetFullPath(folder);
        var files = Directory.GetFiles(full, "*", SearchOption.AllDirectories)
            .Select(file => new FileInfo(file))
            .Select(info => new ModelFileIdentity(System.IO.Path.GetRelativePath(full, info.FullName).Replace('\\', '/'), info.Length,
                DateTime.SpecifyKind(info.LastWriteTimeUtc, DateTimeKind.Utc)))
            .OrderBy(file => file.Name, StringComparer.Ordinal)
            .ToList();
        return new ModelIdentity(full, files);
    }

    public IEnumerable<string> DifferencesFrom(ModelIdentity recorded)
    {
        var before = recorded.Files.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var now = Files.ToDictionary(f => f.Name, StringComparer.Ordinal);
        foreach (var name in before.Keys.Union(now.Keys).Order(StringComparer.Ordinal))
        {
            bool had = before.TryGetValue(name, out var old), has = now.TryGetValue(name, out var current);
            if (!has) yield return $"the model file '{name}' is gone";
            else if (!had) yield return $"the model file '{name}' is new";
            else if (old!.Bytes != current!.Bytes || old.Modified != current.Modified)
                yield return $"the model file '{name}' changed: it was {old.Bytes} bytes modified {old.Modified:yyyy-MM-dd HH:mm:ss} UTC, " +
                    $"now {current.Bytes} bytes modified {current.Modified:yyyy-MM-dd HH:mm:ss} UTC";
        }
    }

    public bool Equals(ModelIdentity? other) => other is not null && Path == other.Path && Files.SequenceEqual(other.Files);

    public override int GetHashCode() => Path.GetHashCode(StringComparison.Ordinal);
}

/// <summary>The shape of the output file a job writes.</summary>
internal sealed record OutputShape(string Format, IReadOnlyList<string> Columns, bool ByteOrderMark, string LineTerminator)
{
    public bool Equals(OutputShape? other) => other is not null && Format == other.Format && Columns.SequenceEqual(other.Columns)
        && ByteOrderMark == other.ByteOrderMark && LineTerminator == other.LineTerminator;

    public override int GetHashCode() => Format.GetHashCode(StringComparison.Ordinal);

    public override string ToString() =>
        $"{Format} with columns {string.Join(", ", Columns)}{(ByteOrderMark ? ", a byte-order mark" : "")} and {LineTerminator switch { "\r\n" => "CRLF", "\n" => "LF", _ => "CR" }} line endings";
}

/// <summary>The part of the partial output known to be complete: its first <see cref="Bytes"/> bytes.</summary>
internal sealed record PartialPrefix(long Bytes, long Rows, string Sha256);

/// <summary>A sharded job's part: shard <see cref="Index"/> of <see cref="Count"/> under the rule <see cref="Assignment"/>.</summary>
internal sealed record ShardRecord(int Index, int Count, string Assignment, long InputRows, long Rows)
{
    public ShardAssignment Shard => new(Index, Count);

    public override string ToString() => Assignment == ShardAssignment.Scheme ? $"{Index}/{Count}" : $"{Index}/{Count} ({Assignment})";
}
