using System.Text.Json;

namespace MLNetGpt.Cli.Batch;

/// <summary>
/// <c>--json-columns</c>: the top-level properties of a generated JSON object, one output column each.
/// A string property gives its text; a number, boolean, object or array its compact JSON (a JSON value
/// in JSONL); null or an absent optional property an empty cell.
/// </summary>
internal sealed class JsonColumns(string[] properties)
{
    public IReadOnlyList<string> Properties => properties;

    /// <summary>The property values of <paramref name="completion"/>, or why there are none (the text is not one whole JSON object).</summary>
    public (OutputValue[] Values, string? Problem) Split(string completion)
    {
        var values = new OutputValue[properties.Length];
        JsonDocument document;
        try
        {
            // The schema's top level is an object, so the output is one unless it was cut short (max_new_tokens, a stop string).
            document = JsonDocument.Parse(completion);
        }
        catch (JsonException)
        {
            return (values, "is not a complete JSON object");
        }
        using (document)
        {
            var root = document.RootElement;
            for (int i = 0; i < properties.Length; i++)
            {
                if (!root.TryGetProperty(properties[i], out var value)) continue;
                values[i] = value.ValueKind switch
                {
                    JsonValueKind.String => OutputValue.Of(value.GetString()!),
                    JsonValueKind.Null => OutputValue.Missing,
                    _ => OutputValue.Json(value.GetRawText()),
                };
            }
            return (values, null);
        }
    }
}
