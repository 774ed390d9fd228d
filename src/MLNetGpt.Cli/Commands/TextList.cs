using System.Text;
using MLNetGpt.Cli.Batch;

namespace MLNetGpt.Cli.Commands;

/// <summary>
/// A list of strings from the command line (<c>--choices a,b,c</c>, <c>--labels " yes, no"</c>) or
/// from a file with one entry per line (<c>--choices-file</c>, <c>--labels-file</c>). Entries are used
/// exactly as given: no trimming, because a leading space is usually part of a label (GPT tokenizers
/// spell " yes" and "yes" with different tokens).
/// </summary>
internal static class TextList
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Splits a comma-separated value; an empty or repeated entry is refused naming its position.</summary>
    public static string[] FromCommaList(string value, string option, string noun)
    {
        if (value.Length == 0) throw new UsageException($"{option} is empty; give {noun}s separated by commas.");
        var entries = value.Split(',');
        Check(entries, i => $"{option}: {noun} {i + 1}", i => $"{noun} {i + 1}");
        return entries;
    }

    /// <summary>
    /// Reads one entry per line (UTF-8, with or without a byte-order mark; CRLF, LF or CR). A final
    /// line terminator ends the last entry and adds none; an empty line elsewhere is refused, naming it.
    /// </summary>
    public static string[] FromFile(string path, string option, string noun)
    {
        if (path.Length == 0) throw new UsageException($"{option} is empty; give the path of a file with one {noun} per line.");
        if (Directory.Exists(path)) throw new UsageException($"{option}: '{path}' is a folder; give a file with one {noun} per line.");
        if (!File.Exists(path)) throw new UsageException($"{option}: the file '{path}' does not exist.");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"{option}: cannot read '{path}': {e.Message}");
        }
        int start = bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;
        string text;
        try
        {
            text = StrictUtf8.GetString(bytes, start, bytes.Length - start);
        }
        catch (DecoderFallbackException e)
        {
            throw new UsageException($"{option}: '{path}' is not valid UTF-8 (the byte at offset {start + e.Index} cannot start a character); save it as UTF-8.");
        }
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n').Split('\n').ToList();
        if (lines.Count > 1 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        if (lines.Count == 1 && lines[0].Length == 0) throw new UsageException($"{option}: '{path}' is empty; write one {noun} per line.");
        var entries = lines.ToArray();
        Check(entries, i => $"{option}: '{path}' line {i + 1}", i => $"line {i + 1}");
        return entries;
    }

    private static void Check(string[] entries, Func<int, string> where, Func<int, string> shortly)
    {
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < entries.Length; i++)
        {
            if (entries[i].Length == 0) throw new UsageException($"{where(i)} is empty.");
            if (seen.TryGetValue(entries[i], out int first))
                throw new UsageException($"{where(i)} repeats '{entries[i]}' (as {shortly(first)} does).");
            seen[entries[i]] = i;
        }
    }
}
