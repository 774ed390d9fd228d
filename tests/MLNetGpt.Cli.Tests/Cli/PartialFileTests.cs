using System.Text;
using MLNetGpt.Cli.Batch;
using MLNetGpt.Cli.Csv;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>Finding the finished rows of a partial output that a crash may have cut anywhere.</summary>
public sealed class PartialFileTests
{
    // Cells that stress the row-end search: commas, doubled quotes, CR and LF inside quotes, a quote inside
    // an unquoted cell (the reader keeps it as a character), and text that looks like a terminator.
    private static readonly string[] Raws =
    [
        "1,plain",
        "2,\"a, b\"",
        "3,\"he said \"\"hi\"\"\"",
        "4,\"multi\r\nline\rwith\nall\"",
        "5,5\" tall",
        "6,\"\"",
        "7,日本語 😀",
    ];

    [Theory]
    [InlineData("csv", "\r\n", true)]
    [InlineData("csv", "\n", false)]
    [InlineData("csv", "\r", false)]
    [InlineData("jsonl", "\n", false)]
    public void A_cut_at_every_byte_keeps_exactly_the_rows_that_ended_before_it(string formatName, string terminator, bool bom)
    {
        var format = formatName == "csv" ? OutputFormat.Csv : OutputFormat.Jsonl;
        var layout = new OutputLayout(format, ["id", "text"], "id,text", ["completion", "error"], bom, terminator);
        var rows = new List<byte[]>();
        foreach (var raw in Raws)
        {
            var record = new CsvRecord(CsvReader.ParseFields(raw), raw, 1);
            rows.Add(layout.Row(record, [OutputValue.Of("out \"q\",\nx\r"), OutputValue.Missing]));
            rows.Add(layout.Row(record, [OutputValue.Missing, OutputValue.Of("line 3: the prompt is empty")]));
        }
        var header = layout.HeaderBytes();
        var whole = header.Concat(rows.SelectMany(r => r)).ToArray();
        var path = Path.Combine(Fixtures.TempFolder("partial-cut"), "out.csv.partial");
        for (int cut = header.Length; cut <= whole.Length; cut++)
        {
            File.WriteAllBytes(path, whole[..cut]);
            var state = PartialFile.Scan(path, layout);
            int expectedRows = 0;
            long end = header.Length;
            while (expectedRows < rows.Count && end + rows[expectedRows].Length <= cut) end += rows[expectedRows++].Length;
            Assert.True(expectedRows == state.Rows && end == state.CompleteBytes, $"cut at {cut}: {state.Rows} rows ending at {state.CompleteBytes}, expected {expectedRows} ending at {end}");
            Assert.Equal(cut, state.Length);
        }
    }

    [Fact]
    public void A_partial_with_another_header_is_refused()
    {
        var layout = new OutputLayout(OutputFormat.Csv, ["id", "text"], "id,text", ["completion", "error"], false, "\n");
        var path = Path.Combine(Fixtures.TempFolder("partial-header"), "out.csv.partial");
        File.WriteAllText(path, "id,text,answer,error\n1,a,b,\n");
        var error = Assert.Throws<MLNetGpt.Cli.Batch.UsageException>(() => PartialFile.Scan(path, layout));
        Assert.Contains("does not start with the header this job writes", error.Message);
    }

    [Fact]
    public void The_prefix_hash_equals_the_hash_of_those_bytes_computed_by_dotnet()
    {
        var path = Path.Combine(Fixtures.TempFolder("partial-hash"), "file");
        var bytes = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("row of text\n", 20_000)));
        File.WriteAllBytes(path, bytes);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        string atCheckpoint = PartialFile.Hash(path, hash, 100_003, 200_000);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes.AsSpan(0, 100_003))), atCheckpoint);
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(bytes.AsSpan(0, 200_000)), hash.GetCurrentHash());
    }
}
