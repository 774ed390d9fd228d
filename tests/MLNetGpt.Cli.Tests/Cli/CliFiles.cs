using System.Text;
using Microsoft.VisualBasic.FileIO;

namespace MLNetGpt.Tests.Cli;

/// <summary>Inputs and file inspection shared by the command-line tests.</summary>
internal static class CliFiles
{
    /// <summary>The files a batch job keeps beside its output while it runs or after it stopped early.</summary>
    public static (string Partial, string Manifest, string Lock) Beside(string output) =>
        (output + ".partial", output + ".partial.job.json", output + ".lock");

    /// <summary>
    /// Short rows of mixed shape: quoted commas, doubled quotes, a multi-line cell, non-ASCII text,
    /// and every 41st prompt empty (recorded as a row error, so error rows are part of the job too).
    /// </summary>
    public static string MakeInput(string folder, int rows, string name = "in.csv")
    {
        var path = Path.Combine(folder, name);
        var text = new StringBuilder("id,prompt,notes\n");
        for (int i = 0; i < rows; i++)
        {
            string prompt = (i % 41) switch
            {
                40 => "",
                7 => $"\"row {i}, with \"\"quotes\"\"\"",
                13 => $"\"row {i}\nacross lines\"",
                21 => $"Ελληνικά {i} 日本語",
                _ => $"\"row {i % 97}, the end\"",
            };
            text.Append(i).Append(',').Append(prompt).Append(",n").Append(i % 5).Append('\n');
        }
        File.WriteAllText(path, text.ToString());
        return path;
    }

    /// <summary>The records of a CSV file as .NET's own RFC 4180 parser reads them (an independent reference).</summary>
    public static List<string[]> ParseCsv(string path)
    {
        using var parser = new TextFieldParser(path, Encoding.UTF8) { TextFieldType = FieldType.Delimited, HasFieldsEnclosedInQuotes = true, TrimWhiteSpace = false };
        parser.SetDelimiters(",");
        var rows = new List<string[]>();
        while (!parser.EndOfData) rows.Add(parser.ReadFields()!);
        return rows;
    }

    /// <summary>Line feeds in a file that another process may be writing (a row count for CSV without multi-line cells).</summary>
    public static long CountLines(string path)
    {
        if (!File.Exists(path)) return 0;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var buffer = new byte[1 << 16];
            long lines = 0;
            int read;
            while ((read = stream.Read(buffer, 0, buffer.Length)) > 0) lines += buffer.AsSpan(0, read).Count((byte)'\n');
            return lines;
        }
        catch (FileNotFoundException)
        {
            return 0;
        }
    }

    /// <summary>Every file in a folder with its bytes, to show that a refused command changed nothing.</summary>
    public static Dictionary<string, byte[]> Snapshot(string folder) =>
        Directory.GetFiles(folder).ToDictionary(path => Path.GetFileName(path), File.ReadAllBytes);

    public static void AssertUnchanged(Dictionary<string, byte[]> before, string folder)
    {
        var after = Snapshot(folder);
        Xunit.Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (name, bytes) in before) Xunit.Assert.True(bytes.AsSpan().SequenceEqual(after[name]), $"{name} changed");
    }
}
