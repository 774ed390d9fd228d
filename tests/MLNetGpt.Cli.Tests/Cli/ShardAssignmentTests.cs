using System.Collections;
using MLNetGpt.Cli.Batch;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>Which rows a shard holds (--shard K/N) and how K and N are read from Slurm or Kubernetes.</summary>
public sealed class ShardAssignmentTests
{
    [Fact]
    public void The_hash_is_splitmix64_whose_first_output_from_state_zero_is_the_published_one()
    {
        // Vigna's splitmix64.c seeded with 0 first returns 0xE220A8397B1DCDAF.
        Assert.Equal(0xE220A8397B1DCDAFUL, ShardMap.Splitmix64(0));
    }

    [Theory]
    // Produced by an independent Python implementation of the rule documented on ShardAssignment.
    [InlineData(2, "0,1,1,0,1,0,0,1,0,1,0,1,0,1,0,1,1,0,0,1,1,0,0,1,0,1,0,1")]
    [InlineData(3, "2,0,1,0,2,1,0,2,1,0,1,2,0,2,1,0,1,2,1,0,2,1,0,2,1,2,0,1")]
    [InlineData(7, "6,5,1,3,2,0,4,1,0,4,6,5,3,2,0,3,1,4,6,5,2,1,2,3,6,0,4,5")]
    public void Rows_go_to_the_shards_the_documented_rule_names(int count, string expected)
    {
        var map = new ShardMap(count);
        Assert.Equal(expected, string.Join(",", Enumerable.Range(0, 28).Select(row => map.ShardOf(row))));
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(1, 17)]
    [InlineData(2, 101)]
    [InlineData(3, 32)]
    [InlineData(7, 5)]
    [InlineData(7, 1000)]
    [InlineData(64, 1001)]
    public void Every_row_goes_to_exactly_one_shard_and_shards_differ_by_at_most_one_row(int count, int rows)
    {
        var map = new ShardMap(count);
        var counted = new long[count];
        for (int row = 0; row < rows; row++) counted[map.ShardOf(row)]++;
        Assert.Equal(rows, counted.Sum());
        Assert.True(counted.Max() - counted.Min() <= 1, string.Join(", ", counted));
        for (int k = 0; k < count; k++) Assert.Equal(counted[k], new ShardAssignment(k, count).RowsOf(rows));
    }

    [Fact]
    public void A_cost_that_repeats_with_the_shard_count_as_its_period_is_still_spread_over_the_shards()
    {
        // Every fourth row is expensive: round-robin over 4 shards would give them all to one shard.
        var map = new ShardMap(4);
        var expensive = new int[4];
        for (int row = 0; row < 4000; row += 4) expensive[map.ShardOf(row)]++;
        Assert.All(expensive, n => Assert.InRange(n, 180, 320));
    }

    private static Hashtable Environment(params (string Name, string Value)[] variables)
    {
        var table = new Hashtable();
        foreach (var (name, value) in variables) table[name] = value;
        return table;
    }

    [Theory]
    [InlineData("0/1", 0, 1)]
    [InlineData("2/3", 2, 3)]
    [InlineData("6/7", 6, 7)]
    public void An_explicit_shard_is_read_as_given(string text, int index, int count)
    {
        Assert.Equal(new ShardAssignment(index, count), ShardAssignment.Parse(text, Environment()));
    }

    [Fact]
    public void Auto_reads_a_slurm_array_task_as_its_position_in_the_array()
    {
        var array = Environment(("SLURM_ARRAY_TASK_ID", "7"), ("SLURM_ARRAY_TASK_MIN", "5"), ("SLURM_ARRAY_TASK_MAX", "8"),
            ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_STEP", "1"));
        Assert.Equal(new ShardAssignment(2, 4), ShardAssignment.Parse("auto", array));
        Assert.Equal(new ShardAssignment(2, 4), ShardAssignment.Parse("auto/4", array));
        var stepped = Environment(("SLURM_ARRAY_TASK_ID", "20"), ("SLURM_ARRAY_TASK_MIN", "0"), ("SLURM_ARRAY_TASK_MAX", "30"),
            ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_STEP", "10"));
        Assert.Equal(new ShardAssignment(2, 4), ShardAssignment.Parse("auto", stepped));
    }

    [Fact]
    public void Auto_with_a_count_reads_a_kubernetes_indexed_job_completion_index()
    {
        Assert.Equal(new ShardAssignment(3, 4), ShardAssignment.Parse("auto/4", Environment(("JOB_COMPLETION_INDEX", "3"))));
    }

    [Theory]
    [InlineData("x", "", "--shard takes K/N (shard K of N, 0 <= K < N), auto (a Slurm job array task) or auto/N")]
    [InlineData("3", "", "--shard takes K/N")]
    [InlineData("1/2/3", "", "--shard takes K/N")]
    [InlineData("4/4", "", "--shard 4/4: the shard index must be below the count (0 to 3)")]
    [InlineData("-1/4", "", "--shard -1/4: the shard index '-1' is not a whole number")]
    [InlineData("1/0", "", "--shard 1/0: the shard count '0' is not a whole number of 1 or more")]
    [InlineData("0/20000", "", "--shard 0/20000: at most 10000 shards (merge reads every shard at once)")]
    [InlineData("auto", "", "--shard auto: neither a Slurm job array (SLURM_ARRAY_TASK_ID) nor a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)")]
    [InlineData("auto", "k8s", "--shard auto: JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but not the number of shards; give --shard auto/N")]
    [InlineData("auto/2", "k8s", "--shard auto/2: JOB_COMPLETION_INDEX is 3, not below the shard count 2")]
    [InlineData("auto", "slurm-list", "--shard auto: the Slurm array (ids 1 to 6, step 1, 3 tasks, this task 5) is not a regular range")]
    [InlineData("auto/5", "slurm", "--shard auto/5: the Slurm array has 4 tasks (SLURM_ARRAY_TASK_COUNT), not 5")]
    [InlineData("auto", "slurm-bad", "--shard auto: SLURM_ARRAY_TASK_ID is 'seven', not a whole number")]
    [InlineData("auto", "slurm-huge", "--shard auto: the Slurm array has 20000 tasks; at most 10000 shards (merge reads every shard at once).")]
    [InlineData("auto", "slurm-partial", "--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; give --shard K/N")]
    public void A_shard_that_cannot_be_read_is_refused_naming_the_option_and_the_value(string text, string environment, string expected)
    {
        var variables = environment switch
        {
            "k8s" => Environment(("JOB_COMPLETION_INDEX", "3")),
            "slurm" => Environment(("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_MIN", "0"), ("SLURM_ARRAY_TASK_MAX", "3"), ("SLURM_ARRAY_TASK_COUNT", "4")),
            "slurm-list" => Environment(("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_MAX", "6"), ("SLURM_ARRAY_TASK_COUNT", "3")),
            "slurm-bad" => Environment(("SLURM_ARRAY_TASK_ID", "seven"), ("SLURM_ARRAY_TASK_MIN", "0"), ("SLURM_ARRAY_TASK_MAX", "3"), ("SLURM_ARRAY_TASK_COUNT", "4")),
            "slurm-partial" => Environment(("SLURM_ARRAY_TASK_ID", "1")),
            "slurm-huge" => Environment(("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_MIN", "0"), ("SLURM_ARRAY_TASK_MAX", "19999"), ("SLURM_ARRAY_TASK_COUNT", "20000")),
            _ => Environment(),
        };
        var error = Assert.Throws<UsageException>(() => ShardAssignment.Parse(text, variables));
        Assert.Contains(expected, error.Message);
    }
}
