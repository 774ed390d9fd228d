using MLNetGpt.Cli.Batch;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>The job manifest: its file format and how two jobs are compared.</summary>
public sealed class JobManifestTests
{
    private static JobManifest Sample() => new()
    {
        Tool = "0.1.0+abc",
        Command = "generate",
        Input = new InputIdentity("/data/in.csv", 1234, new string('a', 64)),
        Model = new ModelIdentity("/models/m", [new ModelFileIdentity("model.onnx", 99, new DateTime(2026, 12, 1, 20, 0, 0, DateTimeKind.Utc))]),
        Options = new Dictionary<string, string?> { ["--seed"] = "42", ["--max-new-tokens"] = null, ["--stop"] = "[\"\\n\"]" },
        Output = new OutputShape("csv", ["id", "prompt", "completion", "finish_reason", "error"], false, "\n"),
        Partial = new PartialPrefix(40, 0, new string('b', 64)),
    };

    [Fact]
    public void A_written_manifest_reads_back_equal_and_is_documented_json()
    {
        var path = Path.Combine(Fixtures.TempFolder("manifest"), "out.csv.partial.job.json");
        var manifest = Sample();
        manifest.WriteAtomically(path);
        Assert.False(File.Exists(path + ".tmp"));
        var read = JobManifest.Read(path);
        Assert.Empty(read.DifferencesFrom(manifest));
        Assert.Equal(manifest.Partial, read.Partial);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        var root = json.RootElement;
        Assert.Equal("mlnetgpt-job", root.GetProperty("format").GetString());
        Assert.Equal(2, root.GetProperty("version").GetInt32());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, root.GetProperty("shard").ValueKind);
        Assert.Equal(1234, root.GetProperty("input").GetProperty("bytes").GetInt64());
        Assert.Equal("42", root.GetProperty("options").GetProperty("--seed").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, root.GetProperty("options").GetProperty("--max-new-tokens").ValueKind);
        Assert.Equal("model.onnx", root.GetProperty("model").GetProperty("files")[0].GetProperty("name").GetString());
        Assert.Equal(40, root.GetProperty("partial").GetProperty("bytes").GetInt64());
    }

    [Fact]
    public void Every_difference_is_named_with_both_values()
    {
        var recorded = Sample();
        var now = recorded with
        {
            Tool = "0.2.0",
            Input = recorded.Input with { Bytes = 1200, Sha256 = new string('c', 64) },
            Model = new ModelIdentity("/models/m", [new ModelFileIdentity("model.onnx", 100, new DateTime(2026, 12, 2, 8, 0, 0, DateTimeKind.Utc)),
                new ModelFileIdentity("extra.json", 1, DateTime.UnixEpoch)]),
            Options = new Dictionary<string, string?> { ["--seed"] = "7", ["--max-new-tokens"] = "12", ["--stop"] = "[\"\\n\"]" },
        };
        var differences = now.DifferencesFrom(recorded);
        Assert.Equal(
        [
            "mlnetgpt was 0.1.0+abc, now 0.2.0",
            "the input '/data/in.csv' changed: it was 1234 bytes with SHA-256 aaaaaaaaaaaaaaaa..., now 1200 bytes with SHA-256 cccccccccccccccc...",
            "the model file 'extra.json' is new",
            "the model file 'model.onnx' changed: it was 99 bytes modified 2026-12-01 20:00:00 UTC, now 100 bytes modified 2026-12-02 08:00:00 UTC",
            "--seed was 42, now 7",
            "--max-new-tokens was not given, now 12",
        ], differences);
        Assert.Empty(recorded.DifferencesFrom(recorded with { Partial = new PartialPrefix(900, 12, new string('d', 64)) }));
    }

    [Fact]
    public void A_manifest_of_another_version_is_refused_naming_both_versions()
    {
        var path = Path.Combine(Fixtures.TempFolder("manifest-version"), "job.json");
        File.WriteAllText(path, "{\"format\": \"mlnetgpt-job\", \"version\": 3}");
        var error = Assert.Throws<UsageException>(() => JobManifest.Read(path));
        Assert.Contains("has version 3", error.Message);
        Assert.Contains("reads versions 1 to 2", error.Message);
        File.WriteAllText(path, "{\"format\": \"mlnetgpt-job\", \"version\": ");
        Assert.Contains($"cannot read the job manifest '{path}'", Assert.Throws<UsageException>(() => JobManifest.Read(path)).Message);
    }

    [Fact]
    public void A_version_1_manifest_reads_as_a_job_without_shards()
    {
        var path = Path.Combine(Fixtures.TempFolder("manifest-v1"), "out.csv.partial.job.json");
        Sample().WriteAtomically(path);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json["version"] = 1;
        json.Remove("shard");
        File.WriteAllText(path, json.ToJsonString());
        var read = JobManifest.Read(path);
        Assert.Null(read.Shard);
        Assert.Empty(read.DifferencesFrom(Sample()));
    }

    [Fact]
    public void Shards_of_one_job_differ_only_in_their_index_and_a_resume_names_the_shard()
    {
        var zero = Sample() with { Shard = new ShardRecord(0, 3, ShardAssignment.Scheme, 10, 4) };
        var one = zero with { Shard = new ShardRecord(1, 3, ShardAssignment.Scheme, 10, 3) };
        Assert.Empty(one.DifferencesFrom(zero, compareShardIndex: false));
        Assert.Equal(["--shard was 0/3, now 1/3"], one.DifferencesFrom(zero));
        var ofTwo = zero with { Shard = new ShardRecord(1, 2, ShardAssignment.Scheme, 10, 5) };
        Assert.Equal(["--shard was 0/3, now 1/2"], ofTwo.DifferencesFrom(zero, compareShardIndex: false));
        Assert.Equal(["--shard was 0/3, now not given"], Sample().DifferencesFrom(zero));
    }
}
