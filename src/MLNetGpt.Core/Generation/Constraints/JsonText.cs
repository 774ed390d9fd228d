using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MLNetGpt.Generation.Constraints;

/// <summary>The compact canonical JSON text that constrained outputs use.</summary>
internal static class JsonText
{
    /// <summary>
    /// A string's content with the minimal escapes: \" \\ \b \f \n \r \t, \u00xx (lowercase hex)
    /// for the other control characters; every other character as itself.
    /// </summary>
    public static string EscapeString(string value)
    {
        var sb = new StringBuilder(value.Length + 2);
        foreach (char c in value) sb.Append(Escape(c) ?? c.ToString());
        return sb.ToString();
    }

    /// <summary>The canonical escape of an ASCII character that needs one, or null.</summary>
    public static string? Escape(int c) => c switch
    {
        '"' => "\\\"",
        '\\' => "\\\\",
        '\b' => "\\b",
        '\f' => "\\f",
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        < 0x20 => "\\u" + c.ToString("x4", CultureInfo.InvariantCulture),
        _ => null,
    };

    /// <summary>
    /// A JSON value written compactly: members in document order, strings minimally escaped, numbers as written, or
    /// with <paramref name="shortestNumbers"/> in their <see cref="ShortestNumber"/> spelling where it has one (as
    /// generation writes them).
    /// </summary>
    public static string Canonical(JsonElement value, bool shortestNumbers = false)
    {
        var sb = new StringBuilder();
        Write(value, sb, shortestNumbers);
        return sb.ToString();
    }

    /// <summary>A number's shortest decimal spelling (no exponent, no trailing zeros), or null beyond decimal's range.</summary>
    public static string? ShortestNumber(JsonElement value)
    {
        if (!decimal.TryParse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out decimal d)) return null;
        string text = (d / 1.000000000000000000000000000000000m).ToString(CultureInfo.InvariantCulture);
        if (text.Contains('.')) text = text.TrimEnd('0').TrimEnd('.');
        return text == "-0" ? "0" : text;
    }

    private static void Write(JsonElement value, StringBuilder sb, bool shortestNumbers)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                sb.Append('{');
                bool first = true;
                foreach (var property in value.EnumerateObject())
                {
                    if (!first) sb.Append(',');
                    first = false;
                    sb.Append('"').Append(EscapeString(property.Name)).Append("\":");
                    Write(property.Value, sb, shortestNumbers);
                }
                sb.Append('}');
                break;
            case JsonValueKind.Array:
                sb.Append('[');
                int i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    if (i++ > 0) sb.Append(',');
                    Write(item, sb, shortestNumbers);
                }
                sb.Append(']');
                break;
            case JsonValueKind.String:
                sb.Append('"').Append(EscapeString(value.GetString()!)).Append('"');
                break;
            case JsonValueKind.Number when shortestNumbers && ShortestNumber(value) is { } shortest:
                sb.Append(shortest);
                break;
            default:
                sb.Append(value.GetRawText());
                break;
        }
    }

    /// <summary>The document re-written without insignificant whitespace (for equality and persistence).</summary>
    public static string Compact(JsonElement value)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            value.WriteTo(writer);
        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
