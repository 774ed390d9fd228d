using System.Text;
using System.Text.Json;

namespace MLNetGpt.Chat;

/// <summary>A tool call read from generated text: the function's name and its arguments (JSON values), or why the arguments could not be read.</summary>
internal sealed record ParsedToolCall(string Name, IDictionary<string, object?>? Arguments, string? Error);

/// <summary>
/// How a template family writes an assistant's tool calls, and how to read them back out of generated text.
/// The format is told by the template's own text (the marker it teaches the model to write):
/// Hermes/Qwen <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c> blocks, or Mistral's
/// <c>[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]</c>.
/// </summary>
internal abstract class ToolCallFormat
{
    public static readonly ToolCallFormat Hermes = new TaggedJsonFormat();
    public static readonly ToolCallFormat Mistral = new MistralFormat();

    /// <summary>The text that starts the first tool call; everything before it is ordinary reply text.</summary>
    public abstract string Opener { get; }

    public abstract string Name { get; }

    /// <summary>What a required call is written between: the text before the call object and the text after it.</summary>
    public abstract (string Before, string After) RequiredCall { get; }

    /// <summary>The format a template teaches (by the marker it writes), or null when it shows none of the known ones.</summary>
    public static ToolCallFormat? For(string templateText)
    {
        if (templateText.Contains(Hermes.Opener, StringComparison.Ordinal)) return Hermes;
        if (templateText.Contains(Mistral.Opener, StringComparison.Ordinal)) return Mistral;
        return null;
    }

    /// <summary>
    /// Reads the calls in <paramref name="tail"/> (generated text from the first <see cref="Opener"/> on). Text
    /// around the calls is returned when it holds more than white space; a call that cannot be read stays text.
    /// </summary>
    public abstract (string Text, IReadOnlyList<ParsedToolCall> Calls) Parse(string tail);

    /// <summary>A JSON object <c>{"name": ..., "arguments" (or "parameters"): {...}}</c> as a call; null when it is not one.</summary>
    protected static ParsedToolCall? ReadCall(JsonElement call)
    {
        if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
            || string.IsNullOrEmpty(name.GetString()))
            return null;
        JsonElement arguments = default;
        bool found = call.TryGetProperty("arguments", out arguments) || call.TryGetProperty("parameters", out arguments);
        if (!found || arguments.ValueKind == JsonValueKind.Null) return new ParsedToolCall(name.GetString()!, new Dictionary<string, object?>(), null);
        if (arguments.ValueKind == JsonValueKind.String)
        {
            // Some models write the arguments as a JSON string holding the object (OpenAI's wire form).
            try
            {
                using var inner = JsonDocument.Parse(arguments.GetString()!);
                arguments = inner.RootElement.Clone();
            }
            catch (JsonException e)
            {
                return new ParsedToolCall(name.GetString()!, null, $"the arguments of '{name.GetString()}' are a string that is not JSON ({e.Message})");
            }
        }
        if (arguments.ValueKind != JsonValueKind.Object)
            return new ParsedToolCall(name.GetString()!, null, $"the arguments of '{name.GetString()}' must be a JSON object, but are {arguments.ValueKind}");
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var property in arguments.EnumerateObject()) result[property.Name] = property.Value.Clone();
        return new ParsedToolCall(name.GetString()!, result, null);
    }

    protected static bool TryParse(string text, out JsonElement element)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            element = document.RootElement.Clone();
            return true;
        }
        catch (JsonException)
        {
            element = default;
            return false;
        }
    }

    protected static string Meaningful(string text) => string.IsNullOrWhiteSpace(text) ? "" : text;

    /// <summary>Hermes and Qwen: one JSON object per <c>&lt;tool_call&gt;...&lt;/tool_call&gt;</c> block (a last block may lack its closing tag).</summary>
    private sealed class TaggedJsonFormat : ToolCallFormat
    {
        private const string Close = "</tool_call>";

        public override string Opener => "<tool_call>";

        public override string Name => "Hermes <tool_call> JSON";

        public override (string Before, string After) RequiredCall => (Opener, Close);

        public override (string Text, IReadOnlyList<ParsedToolCall> Calls) Parse(string tail)
        {
            var text = new StringBuilder();
            var calls = new List<ParsedToolCall>();
            int position = 0;
            while (position < tail.Length)
            {
                int open = tail.IndexOf(Opener, position, StringComparison.Ordinal);
                if (open < 0)
                {
                    text.Append(tail, position, tail.Length - position);
                    break;
                }
                text.Append(tail, position, open - position);
                int start = open + Opener.Length;
                int close = tail.IndexOf(Close, start, StringComparison.Ordinal);
                int end = close < 0 ? tail.Length : close + Close.Length;
                string body = close < 0 ? tail[start..] : tail[start..close];
                if (TryParse(body, out var json) && ReadCall(json) is { } call) calls.Add(call);
                else text.Append(tail, open, end - open);
                position = end;
            }
            return (calls.Count == 0 ? text.ToString() : Meaningful(text.ToString()), calls);
        }
    }

    /// <summary>Mistral: <c>[TOOL_CALLS]</c> followed by a JSON array of calls (or one call object).</summary>
    private sealed class MistralFormat : ToolCallFormat
    {
        public override string Opener => "[TOOL_CALLS]";

        public override string Name => "Mistral [TOOL_CALLS] JSON";

        public override (string Before, string After) RequiredCall => (Opener + "[", "]");

        public override (string Text, IReadOnlyList<ParsedToolCall> Calls) Parse(string tail)
        {
            string body = tail[Opener.Length..];
            // The array may be followed by more text: take the longest prefix that parses as JSON.
            for (int end = body.LastIndexOfAny([']', '}']); end >= 0; end = end == 0 ? -1 : body.LastIndexOfAny([']', '}'], end - 1))
            {
                if (!TryParse(body[..(end + 1)], out var json)) continue;
                var items = json.ValueKind == JsonValueKind.Array ? json.EnumerateArray().ToList() : [json];
                var calls = items.Select(ReadCall).ToList();
                if (calls.Count == 0 || calls.Any(c => c is null)) break;
                return (Meaningful(body[(end + 1)..]), calls!);
            }
            return (tail, []);
        }
    }
}

/// <summary>
/// Splits generated text, as it streams, into reply text and tool calls: text is released as soon as it cannot be
/// the start of a tool call, everything from the first call on is held and read at the end. Feeding the whole text
/// at once gives the same result as feeding it piece by piece, so streamed and whole responses agree.
/// </summary>
internal sealed class ToolCallSplitter(ToolCallFormat format)
{
    private readonly StringBuilder _pending = new();
    private readonly StringBuilder _calls = new();
    private bool _inCalls;

    /// <summary>Takes the next piece and returns the text that is now certainly reply text (possibly empty).</summary>
    public string Feed(string piece)
    {
        if (_inCalls)
        {
            _calls.Append(piece);
            return "";
        }
        _pending.Append(piece);
        string text = _pending.ToString();
        int at = text.IndexOf(format.Opener, StringComparison.Ordinal);
        if (at >= 0)
        {
            _inCalls = true;
            _calls.Append(text, at, text.Length - at);
            _pending.Clear();
            return text[..at];
        }
        int held = HeldBack(text);
        _pending.Clear().Append(text, text.Length - held, held);
        return text[..^held];
    }

    /// <summary>The text still held (reply text, or what stays of the calls' part) and the calls read from it.</summary>
    public (string Text, IReadOnlyList<ParsedToolCall> Calls) Finish() =>
        _inCalls ? format.Parse(_calls.ToString()) : (_pending.ToString(), []);

    /// <summary>The length of the longest end of <paramref name="text"/> that begins the opener.</summary>
    private int HeldBack(string text)
    {
        string opener = format.Opener;
        for (int length = Math.Min(opener.Length - 1, text.Length); length > 0; length--)
            if (string.CompareOrdinal(text, text.Length - length, opener, 0, length) == 0) return length;
        return 0;
    }
}
