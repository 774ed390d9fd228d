using System.Text;
using MLNetGpt.Cli.Csv;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>The tool's streaming CSV reader, in process.</summary>
public sealed class CsvReaderTests
{
    private static string Write(byte[] bytes)
    {
        var path = Path.Combine(Fixtures.TempFolder("csv-reader"), "in.csv");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static List<CsvRecord> ReadAll(string path)
    {
        using var reader = new CsvReader(path);
        var records = new List<CsvRecord>();
        while (reader.Read() is { } record) records.Add(record);
        return records;
    }

    [Theory]
    [InlineData("\r\n")]
    [InlineData("\n")]
    [InlineData("\r")]
    public void Every_line_ending_gives_the_same_fields_and_physical_lines(string eol)
    {
        string text = string.Join(eol, "a,b", "1,\"x" + eol + "y\"", "", "2,\"q\"\"uote\"", "3,last") + eol;
        var records = ReadAll(Write(Encoding.UTF8.GetBytes(text)));
        Assert.Equal([["a", "b"], ["1", "x" + eol + "y"], ["2", "q\"uote"], ["3", "last"]], records.Select(r => r.Fields));
        Assert.Equal([1L, 2, 5, 6], records.Select(r => r.Line));   // the blank line 4 is skipped but counted
        using var reader = new CsvReader(Write(Encoding.UTF8.GetBytes(text)));
        reader.Read();
        Assert.Equal(eol, reader.FirstTerminator);
    }

    [Fact]
    public void Raw_records_and_their_terminators_give_back_the_file_byte_for_byte()
    {
        var text = "\uFEFFid,text\r\n1,\"a, b\"\r\n2,\"he said \"\"hi\"\"\"\r\n3,\"multi\nline\"\r\n4,日本語\r\n";
        var path = Write(Encoding.UTF8.GetBytes(text));
        using var reader = new CsvReader(path);
        var rebuilt = new StringBuilder();
        while (reader.Read() is { } record) rebuilt.Append(record.Raw).Append("\r\n");
        Assert.True(reader.HasByteOrderMark);
        Assert.Equal(text[1..], rebuilt.ToString());
    }

    [Fact]
    public void Invalid_utf8_inside_a_multi_line_cell_names_the_line_the_byte_is_on()
    {
        var bytes = new List<byte>(Encoding.UTF8.GetBytes("id,text\n1,\"first line\nsecond line\nthird "));
        int offset = bytes.Count;
        bytes.AddRange([0xC3, 0x28]);   // a lead byte followed by a byte that cannot continue it
        bytes.AddRange(Encoding.UTF8.GetBytes("\"\n"));
        var path = Write(bytes.ToArray());
        var error = Assert.Throws<CsvFormatException>(() => ReadAll(path));
        Assert.Contains($"{path}: line 4:", error.Message);
        Assert.Contains($"0xC3 at byte offset {offset}", error.Message);
    }

    [Fact]
    public void A_multi_byte_character_cut_off_by_the_end_of_the_file_is_invalid_utf8()
    {
        var path = Write([.. Encoding.UTF8.GetBytes("id\n1\n日"), .. Encoding.UTF8.GetBytes("本")[..2]]);
        var error = Assert.Throws<CsvFormatException>(() => ReadAll(path));
        Assert.Contains("line 3:", error.Message);
        Assert.Contains("byte offset 8", error.Message);
    }

    [Fact]
    public void An_unclosed_quote_names_the_line_its_record_starts_on()
    {
        var path = Write(Encoding.UTF8.GetBytes("id,text\n1,ok\n2,\"open\nand never closed\n"));
        var error = Assert.Throws<CsvFormatException>(() => ReadAll(path));
        Assert.Contains("line 3: a quoted field is not closed", error.Message);
    }

    [Fact]
    public void Text_after_a_closing_quote_names_its_line_and_the_character()
    {
        var path = Write(Encoding.UTF8.GetBytes("id,text\n1,\"two\nlines\"x\n"));
        var error = Assert.Throws<CsvFormatException>(() => ReadAll(path));
        Assert.Contains("line 3: unexpected 'x' after a closing quote", error.Message);
    }

    [Fact]
    public void A_quote_inside_an_unquoted_field_is_an_ordinary_character()
    {
        var records = ReadAll(Write(Encoding.UTF8.GetBytes("id,text\n1,5\" tall,x\n")));
        Assert.Equal(["1", "5\" tall", "x"], records[1].Fields);
    }
}
