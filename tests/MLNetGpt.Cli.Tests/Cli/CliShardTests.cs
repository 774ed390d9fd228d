using System.Text.Json;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>A batch job split over shards (--shard K/N) and joined by merge: exactly the unsharded output, or a refusal naming the shard.</summary>
public sealed class CliShardTests
{
    private static readonly string Model = Fixtures.Folder("tiny-gpt2-b");

    private static string[] Generate(string input, string output, params string[] extra) =>
        ["generate", input, "-o", output, "--model", Model, "--max-new-tokens", "6", "--temperature", "0.9", "--seed", "42", "--quiet", .. extra];

    /// <summary>Runs every shard of a job (each with another batch size, which must not matter) and returns their outputs in a shuffled order.</summary>
    private static List<string> RunShards(string folder, int count, Func<string, string[]> command, Func<int, int> expectedExit)
    {
        var outputs = new List<string>();
        for (int k = 0; k < count; k++)
        {
            var output = Path.Combine(folder, $"part-{k}-of-{count}.csv");
            var run = CliProcess.Run([.. command(output), "--shard", $"{k}/{count}", "--batch-size", (k % 3 + 1).ToString()]);
            Assert.True(run.ExitCode == expectedExit(k), $"shard {k}/{count}: exit {run.ExitCode}: {run.Stderr}");
            Assert.True(File.Exists(output + ".job.json"), "a completed shard keeps its manifest beside its output");
            Assert.False(File.Exists(output + ".partial.job.json"));
            outputs.Add(output);
        }
        return outputs.OrderBy(path => path.GetHashCode(StringComparison.Ordinal) % 5).ThenByDescending(path => path).ToList();
    }

    private static (int ExitCode, string Stdout, string Stderr) Merge(string output, IEnumerable<string> shards) =>
        CliProcess.Run(["merge", output, .. shards, "--quiet"]);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    public void Shards_merged_are_byte_for_byte_the_unsharded_seeded_output(int count)
    {
        var folder = Fixtures.TempFolder($"cli-shard-{count}");
        // Quoted commas, doubled quotes, multi-line cells, non-ASCII text, and row errors (every 41st prompt is empty).
        var input = CliFiles.MakeInput(folder, 90);
        var reference = Path.Combine(folder, "unsharded.csv");
        Assert.Equal(2, CliProcess.Run(Generate(input, reference)).ExitCode);

        // Exit 2 from the shards that hold rows 40 and 81, whose prompts are empty.
        var map = new MLNetGpt.Cli.Batch.ShardMap(count);
        var shards = RunShards(folder, count, output => Generate(input, output), k => map.ShardOf(40) == k || map.ShardOf(81) == k ? 2 : 0);
        var merged = Path.Combine(folder, "merged.csv");
        var merge = Merge(merged, shards);
        Assert.True(merge.ExitCode == 0, merge.Stderr);
        Assert.Equal(File.ReadAllBytes(reference), File.ReadAllBytes(merged));
        Assert.False(File.Exists(merged + ".lock"));
        Assert.False(File.Exists(merged + ".merging"));

        // Each shard holds its share, within one row of the others.
        var rows = shards.Select(s => JsonDocument.Parse(File.ReadAllText(s + ".job.json")).RootElement.GetProperty("shard").GetProperty("rows").GetInt64()).ToList();
        Assert.Equal(90, rows.Sum());
        Assert.True(rows.Max() - rows.Min() <= 1, string.Join(", ", rows));
    }

    [Fact]
    public void Sharded_scores_merge_to_the_unsharded_ones_byte_for_byte_one_row_per_batch_and_to_the_last_digits_otherwise()
    {
        var folder = Fixtures.TempFolder("cli-shard-score");
        var input = CliFiles.MakeInput(folder, 30);
        string[] Score(string output, string batch) =>
            ["score", input, "-o", output, "--model", Model, "--text-column", "prompt", "--format", "jsonl", "--quiet", "--batch-size", batch];

        // A score's last digits depend on the rows it shares a batch with (as under another --batch-size); one row per batch, nothing is shared.
        var single = Path.Combine(folder, "unsharded-1.jsonl");
        Assert.Equal(0, CliProcess.Run(Score(single, "1")).ExitCode);
        var shards = Enumerable.Range(0, 3).Select(k => Path.Combine(folder, $"b1-{k}.jsonl")).ToList();
        for (int k = 0; k < 3; k++) Assert.Equal(0, CliProcess.Run([.. Score(shards[k], "1"), "--shard", $"{k}/3"]).ExitCode);
        var merged = Path.Combine(folder, "merged-1.jsonl");
        Assert.Equal(0, Merge(merged, shards).ExitCode);
        Assert.Equal(File.ReadAllBytes(single), File.ReadAllBytes(merged));

        var batched = Path.Combine(folder, "unsharded-8.jsonl");
        Assert.Equal(0, CliProcess.Run(Score(batched, "8")).ExitCode);
        for (int k = 0; k < 3; k++) Assert.Equal(0, CliProcess.Run([.. Score(shards[k], "8"), "--shard", $"{k}/3"]).ExitCode);
        var mergedBatched = Path.Combine(folder, "merged-8.jsonl");
        Assert.Equal(0, Merge(mergedBatched, shards).ExitCode);
        var expected = File.ReadAllLines(batched);
        var actual = File.ReadAllLines(mergedBatched);
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            using var want = JsonDocument.Parse(expected[i]);
            using var got = JsonDocument.Parse(actual[i]);
            Assert.Equal(want.RootElement.GetProperty("id").GetString(), got.RootElement.GetProperty("id").GetString());
            Assert.Equal(want.RootElement.GetProperty("token_count").GetInt32(), got.RootElement.GetProperty("token_count").GetInt32());
            Assert.Equal(want.RootElement.GetProperty("log_likelihood").GetDouble(), got.RootElement.GetProperty("log_likelihood").GetDouble(), 3);
        }
    }

    [Fact]
    public void A_shard_resumed_after_a_stop_completes_to_the_same_output_and_a_resume_as_another_shard_is_refused()
    {
        var folder = Fixtures.TempFolder("cli-shard-resume");
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "id,prompt\n" + string.Join("", Enumerable.Range(0, 24).Select(i => $"{i},{(i == 13 ? "" : $"row {i}")}\n")));
        // Row 13 (empty) stops the shard that holds it under --fail-fast; that shard then resumes.
        string stoppedShard = $"{new MLNetGpt.Cli.Batch.ShardMap(2).ShardOf(13)}/2";
        var expected = Path.Combine(folder, "uninterrupted.csv");
        Assert.Equal(2, CliProcess.Run([.. Generate(input, expected), "--shard", stoppedShard]).ExitCode);
        var output = Path.Combine(folder, "resumed.csv");
        var stopped = CliProcess.Run([.. Generate(input, output), "--shard", stoppedShard, "--fail-fast"]);
        Assert.True(stopped.ExitCode == 2, stopped.Stderr);
        Assert.True(File.Exists(output + ".partial"));

        var before = CliFiles.Snapshot(folder);
        string wrong = stoppedShard == "0/2" ? "1/2" : "0/2";
        var refused = CliProcess.Run([.. Generate(input, output), "--shard", wrong, "--resume"]);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains($"--shard was {stoppedShard}, now {wrong}", refused.Stderr);
        CliFiles.AssertUnchanged(before, folder);

        var resumed = CliProcess.Run([.. Generate(input, output), "--shard", stoppedShard, "--resume"]);
        Assert.True(resumed.ExitCode == 2, resumed.Stderr);
        Assert.Equal(File.ReadAllBytes(expected), File.ReadAllBytes(output));
        Assert.True(File.Exists(output + ".job.json"));
    }

    [Fact]
    public void Shard_auto_reads_the_slurm_array_task_from_the_environment()
    {
        var folder = Fixtures.TempFolder("cli-shard-slurm");
        var input = CliFiles.MakeInput(folder, 12);
        var output = Path.Combine(folder, "task.csv");
        var slurm = new Dictionary<string, string>
        {
            ["SLURM_ARRAY_TASK_ID"] = "11", ["SLURM_ARRAY_TASK_MIN"] = "10", ["SLURM_ARRAY_TASK_MAX"] = "12", ["SLURM_ARRAY_TASK_COUNT"] = "3",
        };
        var run = CliProcess.Run(slurm, [.. Generate(input, output), "--shard", "auto"]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var manifest = JsonDocument.Parse(File.ReadAllText(output + ".job.json"));
        var shard = manifest.RootElement.GetProperty("shard");
        Assert.Equal(1, shard.GetProperty("index").GetInt32());
        Assert.Equal(3, shard.GetProperty("count").GetInt32());
        Assert.Equal(12, shard.GetProperty("input_rows").GetInt64());
        Assert.Equal(shard.GetProperty("rows").GetInt64(), CliFiles.ParseCsv(output).Count - 1);
    }

    /// <summary>A finished 3-shard job and its reference, for the refusal tests.</summary>
    private static (string Folder, string Input, List<string> Shards) ThreeShards(string label)
    {
        var folder = Fixtures.TempFolder(label);
        var input = Path.Combine(folder, "in.csv");
        File.WriteAllText(input, "id,prompt\n" + string.Join("", Enumerable.Range(0, 12).Select(i => $"{i},row {i}\n")));
        var shards = RunShards(folder, 3, output => Generate(input, output), _ => 0).Order().ToList();
        return (folder, input, shards);
    }

    private static string RefusedMerge(string folder, IEnumerable<string> shards)
    {
        var merged = Path.Combine(folder, "merged.csv");
        var (code, _, stderr) = Merge(merged, shards);
        Assert.Equal(1, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("mlnetgpt: error: ", lines[0]);
        Assert.False(File.Exists(merged));
        Assert.False(File.Exists(merged + ".merging"));
        return lines[0];
    }

    [Fact]
    public void A_missing_shard_is_refused_naming_it_and_the_shards_given()
    {
        var (folder, _, shards) = ThreeShards("cli-merge-missing");
        var line = RefusedMerge(folder, [shards[0], shards[2]]);
        Assert.Contains("shard 1/3 is missing; given: ", line);
        Assert.Contains($"'{shards[0]}' (shard 0/3)", line);
        Assert.Contains($"'{shards[2]}' (shard 2/3)", line);
    }

    [Fact]
    public void A_duplicated_shard_is_refused_naming_both_files()
    {
        var (folder, _, shards) = ThreeShards("cli-merge-duplicate");
        var copy = Path.Combine(folder, "copy-of-1.csv");
        File.Copy(shards[1], copy);
        File.Copy(shards[1] + ".job.json", copy + ".job.json");
        Assert.Contains($"'{shards[1]}' and '{copy}' are both shard 1/3", RefusedMerge(folder, [.. shards, copy]));
        Assert.Contains($"the shard output '{shards[2]}' is given twice", RefusedMerge(folder, [.. shards, shards[2]]));
    }

    [Fact]
    public void A_shard_of_another_job_is_refused_naming_it_and_the_difference()
    {
        var (folder, input, shards) = ThreeShards("cli-merge-foreign");
        var foreign = Path.Combine(folder, "foreign-1.csv");
        string[] other = [.. Generate(input, foreign), "--shard", "1/3"];
        other[Array.IndexOf(other, "42")] = "7";
        Assert.Equal(0, CliProcess.Run(other).ExitCode);
        var line = RefusedMerge(folder, [shards[0], foreign, shards[2]]);
        Assert.Contains($"'{foreign}' (shard 1/3) is not a shard of the same job as '{shards[0]}' (shard 0/3)", line);
        Assert.Contains("--seed was 42, now 7", line);

        var ofTwo = Path.Combine(folder, "of-two.csv");
        Assert.Equal(0, CliProcess.Run([.. Generate(input, ofTwo), "--shard", "1/2"]).ExitCode);
        Assert.Contains("--shard was 0/3, now 1/2", RefusedMerge(folder, [shards[0], ofTwo, shards[2]]));
    }

    [Fact]
    public void An_unfinished_shard_and_an_output_without_a_shard_manifest_are_refused_naming_them()
    {
        var (folder, input, shards) = ThreeShards("cli-merge-unfinished");
        var moved = shards[2] + ".moved";
        File.Move(shards[2], moved);
        File.WriteAllText(shards[2] + ".partial", "id,prompt,completion,finish_reason,error\n");
        Assert.Contains($"the shard '{shards[2]}' is unfinished ('{shards[2]}.partial' holds its rows so far): run its command again with --resume",
            RefusedMerge(folder, shards));
        File.Move(moved, shards[2]);
        Assert.Contains($"'{shards[2]}.partial' lies beside the shard output '{shards[2]}': a later run of that shard is unfinished", RefusedMerge(folder, shards));
        File.Delete(shards[2] + ".partial");

        var unsharded = Path.Combine(folder, "unsharded.csv");
        Assert.Equal(0, CliProcess.Run(Generate(input, unsharded)).ExitCode);
        Assert.False(File.Exists(unsharded + ".job.json"), "a job without --shard keeps no manifest once complete");
        Assert.Contains($"'{unsharded}' has no shard manifest ('{unsharded}.job.json')", RefusedMerge(folder, [shards[0], unsharded, shards[2]]));
        Assert.Contains($"the shard output '{Path.Combine(folder, "none.csv")}' does not exist", RefusedMerge(folder, [shards[0], Path.Combine(folder, "none.csv")]));
    }

    [Fact]
    public void A_shard_edited_or_cut_after_it_completed_is_refused_naming_it()
    {
        var (folder, _, shards) = ThreeShards("cli-merge-edited");
        var original = File.ReadAllBytes(shards[1]);
        // An edit that keeps the size: only the hash can tell.
        var edited = (byte[])original.Clone();
        int at = Array.LastIndexOf(edited, (byte)'w');
        edited[at] = (byte)'W';
        File.WriteAllBytes(shards[1], edited);
        Assert.Contains($"'{shards[1]}' (shard 1/3) was changed after its run completed: its SHA-256 is not the one its manifest records", RefusedMerge(folder, shards));

        File.WriteAllBytes(shards[1], original[..^5]);
        Assert.Contains($"'{shards[1]}' (shard 1/3) is {original.Length - 5} bytes, but its manifest records {original.Length}", RefusedMerge(folder, shards));

        File.WriteAllBytes(shards[1], original);
        var merged = Path.Combine(folder, "merged.csv");
        Assert.Equal(0, Merge(merged, shards).ExitCode);
    }

    [Theory]
    [InlineData("header-edited", "the header of '{1}' (shard 1/3) differs from that of '{0}' (shard 0/3)")]
    [InlineData("rows-joined", "'{1}' (shard 1/3) ends after 3 rows, before its share of 4")]
    [InlineData("row-split", "'{1}' (shard 1/3) holds more than its share of 4 rows")]
    [InlineData("manifest-rows", "'{1}' (shard 1/3) holds 5 rows, but its share of the input's 12 rows is 4: run the shard again.")]
    [InlineData("manifest-rule", "'{1}' (shard 1/3 (round-robin)) assigns rows by 'round-robin'")]
    [InlineData("manifest-index", "the manifest '{1}.job.json' names the shard 3/3, which cannot be.")]
    [InlineData("manifest-not-json", "cannot read the job manifest '{1}.job.json'")]
    [InlineData("folder", "the shard output '{folder}' is a folder.")]
    [InlineData("empty-name", "a shard output's name is empty.")]
    [InlineData("empty-output", "the merged output's name is empty")]
    public void A_shard_whose_file_or_manifest_was_altered_is_refused_naming_it(string alteration, string expected)
    {
        var (folder, _, shards) = ThreeShards("cli-merge-altered");
        var manifestPath = shards[1] + ".job.json";
        var manifest = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(manifestPath))!;
        var text = File.ReadAllText(shards[1]);
        string[] given = shards.ToArray();
        string output = Path.Combine(folder, "merged.csv");
        // Edits that keep the file's size, so that the size check cannot be what notices them.
        switch (alteration)
        {
            case "header-edited": File.WriteAllText(shards[1], "ID" + text[2..]); break;
            case "rows-joined":
                var end = System.Text.RegularExpressions.Regex.Match(text, ",(length|eos),\n");
                File.WriteAllText(shards[1], ReplaceAt(text, end.Index + end.Length - 1, ' '));
                break;
            case "row-split": File.WriteAllText(shards[1], ReplaceAt(text, text.IndexOf("row ", StringComparison.Ordinal) + 3, '\n')); break;
            case "manifest-rows": manifest["shard"]!["rows"] = 5; manifest["partial"]!["rows"] = 5; break;
            case "manifest-rule": manifest["shard"]!["assignment"] = "round-robin"; break;
            case "manifest-index": manifest["shard"]!["index"] = 3; break;
            case "manifest-not-json": File.WriteAllText(manifestPath, "{\"format\": \"mlnetgpt-job\", \"version\": 2, "); break;
            case "folder": given[1] = folder; break;
            case "empty-name": given[1] = ""; break;
            case "empty-output": output = ""; break;
        }
        if (alteration.StartsWith("manifest-", StringComparison.Ordinal) && alteration != "manifest-not-json")
            File.WriteAllText(manifestPath, manifest.ToJsonString());
        var (code, _, stderr) = CliProcess.Run(["merge", output, .. given]);
        Assert.Equal(1, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains(expected.Replace("{0}", shards[0]).Replace("{1}", shards[1]).Replace("{folder}", folder), lines[0]);
        Assert.False(File.Exists(Path.Combine(folder, "merged.csv")));
    }

    private static string ReplaceAt(string text, int index, char replacement) => text[..index] + replacement + text[(index + 1)..];

    [Fact]
    public void Merge_without_shards_is_a_usage_error()
    {
        var (code, _, stderr) = CliProcess.Run("merge", "out.csv");
        Assert.Equal(1, code);
        Assert.StartsWith("mlnetgpt: error: ", stderr);
        Assert.Contains("(see 'mlnetgpt merge --help')", stderr);
    }

    [Fact]
    public void The_merged_output_may_not_overwrite_a_shard()
    {
        var (folder, _, shards) = ThreeShards("cli-merge-onto-shard");
        var before = CliFiles.Snapshot(folder);
        var (code, _, stderr) = Merge(shards[0], shards);
        Assert.Equal(1, code);
        Assert.Contains($"the merged output must not be one of the shard files ('{shards[0]}')", stderr);
        CliFiles.AssertUnchanged(before, folder);
    }
}
