using System.Text;

namespace MLNetGpt.Cli.Csv;

/// <summary>RFC 4180 field quoting.</summary>
internal static class CsvText
{
    /// <summary>The field as CSV: quoted (with doubled quotes) when it holds a comma, quote, CR or LF, or edge spaces.</summary>
    public static string Quote(string value)
    {
        if (value.Length == 0) return "";
        bool needs = value.IndexOfAny([',', '"', '\r', '\n']) >= 0 || value[0] == ' ' || value[^1] == ' ';
        return needs ? "\"" + value.Replace("\"", "\"\"") + "\"" : value;
    }

    public static string Join(IEnumerable<string> fields) => string.Join(",", fields.Select(Quote));
}
