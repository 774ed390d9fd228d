using MLNetGpt.Cli.Batch;
using MLNetGpt.Cli.Csv;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>The partial output and its manifest, in process.</summary>
public sealed class OutputWriterTests
{
    private static readonly OutputLayout Layout = new(OutputFormat.Csv, ["id", "prompt"], "id,prompt", ["completion", "error"], false, "\n");

    private static JobManifest Manifest() => new()
    {
        Tool = "test",
        Command = "generate",
        Input = new InputIdentity("in.csv", 1, new string('a', 64)),
        Model = new ModelIdentity("model", []),
        Options = new Dictionary<string, string?>(),
        Output = Layout.Shape,
        Partial = new PartialPrefix(0, 0, ""),
    };

    [Fact]
    public void A_stop_records_the_finished_rows_and_a_failed_record_warns_and_keeps_the_earlier_one()
    {
        var paths = OutputPaths.For(Path.Combine(Fixtures.TempFolder("writer"), "out.csv"));
        var warnings = new List<string>();
        var writer = OutputWriter.Create(paths, Layout, Manifest(), warnings.Add);
        writer.Write(new CsvRecord(["1", "a"], "1,a", 2), [OutputValue.Of("x"), OutputValue.Missing]);
        writer.Close();
        var afterStop = JobManifest.Read(paths.Manifest).Partial;
        Assert.Equal(1, afterStop.Rows);
        Assert.Equal(new FileInfo(paths.Partial).Length, afterStop.Bytes);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(paths.Partial))), afterStop.Sha256);
        Assert.Empty(warnings);

        var state = PartialFile.Scan(paths.Partial, Layout);
        var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        PartialFile.Hash(paths.Partial, hash, afterStop.Bytes, state.CompleteBytes);
        var resumed = OutputWriter.Continue(paths, Layout, Manifest(), state, hash, warnings.Add);
        resumed.Write(new CsvRecord(["2", "b"], "2,b", 3), [OutputValue.Of("y"), OutputValue.Missing]);
        Directory.CreateDirectory(paths.Manifest + ".tmp");   // the manifest can no longer be replaced
        resumed.Close();
        Assert.Contains($"could not record the finished rows in '{paths.Manifest}'", Assert.Single(warnings));
        Assert.Equal(afterStop, JobManifest.Read(paths.Manifest).Partial);   // as the resume recorded it: still true of the file
        Assert.Equal("id,prompt,completion,error\n1,a,x,\n2,b,y,\n", File.ReadAllText(paths.Partial));
    }
}
