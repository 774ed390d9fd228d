using System.Collections;
using System.Globalization;

namespace MLNetGpt.Cli.Batch;

/// <summary>
/// <c>--shard K/N</c>: which input rows shard <see cref="Index"/> of <see cref="Count"/> processes.
/// </summary>
/// <remarks>
/// <para>The rule (<see cref="Scheme"/>): rows are taken in blocks of N (row <c>i</c>, 0-based,
/// counting the records after the header as the validation pass does, is slot <c>i mod N</c> of
/// block <c>b = i div N</c>), and each block deals its N slots to the N shards in an order shuffled
/// for that block: a Fisher-Yates shuffle of <c>[0, 1, ..., N-1]</c> that, for <c>j</c> from N-1 down
/// to 1, swaps entry <c>j</c> with entry <c>floor(d * (j + 1) / 2^64)</c>, where the draws are
/// <c>d = H(H(b) + k)</c> for k = 0, 1, ... and H is splitmix64's output for a state
/// (<c>H(x) = mix(x + 0x9E3779B97F4A7C15)</c>, Steele, Lea and Flood's finaliser, as in Java's
/// SplittableRandom). Slot <c>j</c> goes to shard <c>perm[j]</c>.</para>
/// <para>Why this rather than contiguous ranges or a plain hash: a row's shard needs nothing but its
/// index, so every shard decides while streaming, and merge reads all shards at once, taking each
/// row from the shard its index names, so the merged file is in input order. Every shard gets the
/// same number of rows, give or take one, for any count (a hash per row leaves shards 30% apart on a
/// few hundred rows), and the shuffle keeps them balanced in cost too where the cost of rows drifts
/// along the file (inputs sorted by length or by source, where a contiguous last range would be the
/// slowest) or repeats with a period that a plain round-robin <c>i mod N</c> would line up with.</para>
/// </remarks>
internal sealed record ShardAssignment(int Index, int Count)
{
    /// <summary>The assignment's name in the job manifest; another rule would get another name.</summary>
    public const string Scheme = "block-shuffle-splitmix64";

    /// <summary>The most shards a job may have: merge holds every shard's file open at once.</summary>
    public const int MaxCount = 10_000;

    /// <summary>How many of an input's <paramref name="inputRows"/> rows this shard holds.</summary>
    public long RowsOf(long inputRows)
    {
        long full = inputRows / Count;
        int rest = (int)(inputRows % Count);
        if (rest == 0) return full;
        var last = ShardMap.Shuffle(inputRows / Count, Count);
        return full + (Array.IndexOf(last, Index) < rest ? 1 : 0);
    }

    public override string ToString() => $"{Index}/{Count}";

    /// <summary>
    /// Reads <c>--shard</c>: <c>K/N</c>; <c>auto</c> (a Slurm job array's task); or <c>auto/N</c>
    /// (the index from a Slurm job array or a Kubernetes Indexed Job's <c>JOB_COMPLETION_INDEX</c>, the
    /// count given). Errors name the option, the variable and its value.
    /// </summary>
    public static ShardAssignment Parse(string text, IDictionary environment)
    {
        const string forms = "K/N (shard K of N, 0 <= K < N), auto (a Slurm job array task) or auto/N (Kubernetes: JOB_COMPLETION_INDEX of N)";
        var parts = text.Split('/');
        if (parts.Length > 2 || parts[0].Length == 0) throw new UsageException($"--shard takes {forms}, not '{text}'.");
        int? count = null;
        if (parts.Length == 2)
        {
            if (!int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1)
                throw new UsageException($"--shard {text}: the shard count '{parts[1]}' is not a whole number of 1 or more.");
            if (n > MaxCount) throw new UsageException($"--shard {text}: at most {MaxCount} shards (merge reads every shard at once).");
            count = n;
        }
        if (parts[0] == "auto") return FromEnvironment(text, count, environment);
        if (count is null) throw new UsageException($"--shard takes {forms}, not '{text}'.");
        if (!int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int k))
            throw new UsageException($"--shard {text}: the shard index '{parts[0]}' is not a whole number.");
        if (k >= count) throw new UsageException($"--shard {text}: the shard index must be below the count (0 to {count - 1}).");
        return new ShardAssignment(k, count.Value);
    }

    private static ShardAssignment FromEnvironment(string text, int? count, IDictionary environment)
    {
        string? Variable(string name) => environment.Contains(name) ? environment[name] as string : null;
        long Number(string name)
        {
            string value = Variable(name)!;
            return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long number) ? number
                : throw new UsageException($"--shard {text}: {name} is '{value}', not a whole number.");
        }

        if (Variable("SLURM_ARRAY_TASK_ID") is not null)
        {
            foreach (var name in new[] { "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX" })
                if (Variable(name) is null) throw new UsageException($"--shard {text}: SLURM_ARRAY_TASK_ID is set but {name} is not; give --shard K/N.");
            long id = Number("SLURM_ARRAY_TASK_ID"), tasks = Number("SLURM_ARRAY_TASK_COUNT"), min = Number("SLURM_ARRAY_TASK_MIN"), max = Number("SLURM_ARRAY_TASK_MAX");
            long step = Variable("SLURM_ARRAY_TASK_STEP") is null ? 1 : Number("SLURM_ARRAY_TASK_STEP");
            // Only a regular range (--array=0-3, 1-8, 0-30:10) maps task ids to 0..N-1; a list such as 1,5,6 does not.
            if (step < 1 || max != min + (tasks - 1) * step || (id - min) % step != 0 || id < min || id > max)
                throw new UsageException($"--shard {text}: the Slurm array (ids {min} to {max}, step {step}, {tasks} tasks, this task {id}) " +
                    "is not a regular range; use --array=0-N or give --shard K/N.");
            if (tasks > MaxCount) throw new UsageException($"--shard {text}: the Slurm array has {tasks} tasks; at most {MaxCount} shards (merge reads every shard at once).");
            if (count is not null && count != tasks)
                throw new UsageException($"--shard {text}: the Slurm array has {tasks} tasks (SLURM_ARRAY_TASK_COUNT), not {count}.");
            return new ShardAssignment((int)((id - min) / step), (int)tasks);
        }
        if (Variable("JOB_COMPLETION_INDEX") is not null)
        {
            if (count is null)
                throw new UsageException($"--shard {text}: JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but not the number of shards; " +
                    "give --shard auto/N with N = the Job's completions.");
            long index = Number("JOB_COMPLETION_INDEX");
            if (index >= count)
                throw new UsageException($"--shard {text}: JOB_COMPLETION_INDEX is {index}, not below the shard count {count} (the Job's completions).");
            return new ShardAssignment((int)index, count.Value);
        }
        throw new UsageException($"--shard {text}: neither a Slurm job array (SLURM_ARRAY_TASK_ID) nor a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) " +
            "is in the environment; give --shard K/N.");
    }
}

/// <summary>The shard of every row under <see cref="ShardAssignment.Scheme"/>, for rows asked in increasing order (one block's order is kept).</summary>
internal sealed class ShardMap(int count)
{
    private long _block = -1;
    private int[] _order = [];

    public int Count => count;

    public int ShardOf(long row)
    {
        if (count == 1) return 0;
        long block = row / count;
        if (block != _block)
        {
            _order = Shuffle(block, count);
            _block = block;
        }
        return _order[row % count];
    }

    /// <summary>Block <paramref name="block"/>'s order: slot j goes to shard <c>order[j]</c>.</summary>
    internal static int[] Shuffle(long block, int count)
    {
        var order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        ulong seed = Splitmix64((ulong)block);
        ulong draw = 0;
        for (int j = count - 1; j >= 1; j--)
        {
            ulong d = Splitmix64(unchecked(seed + draw++));
            int r = (int)(((UInt128)d * (ulong)(j + 1)) >> 64);
            (order[j], order[r]) = (order[r], order[j]);
        }
        return order;
    }

    /// <summary>splitmix64's output for the state <paramref name="x"/>.</summary>
    internal static ulong Splitmix64(ulong x)
    {
        ulong z = unchecked(x + 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }
}
