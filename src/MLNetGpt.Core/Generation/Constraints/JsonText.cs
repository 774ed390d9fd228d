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

    /// <summary>A JSON value written compactly: members in document order, strings minimally escaped, numbers as written.</summary>
    public static string Canonical(JsonElement value)
    {
        var sb = new StringBuilder();
        Write(value, sb);
        return sb.ToString();
    }

    private static void Write(JsonElement value, StringBuilder sb)
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
                    Write(property.Value, sb);
                }
                sb.Append('}');
                break;
            case JsonValueKind.Array:
                sb.Append('[');
                int i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    if (i++ > 0) sb.Append(',');
                    Write(item, sb);
                }
                sb.Append(']');
                break;
            case JsonValueKind.String:
                sb.Append('"').Append(EscapeString(value.GetString()!)).Append('"');
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
