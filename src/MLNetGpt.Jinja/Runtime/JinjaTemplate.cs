using System.Collections;
using System.Text;
using System.Text.Json;

namespace MLNetGpt.Chat;

/// <summary>
/// A Jinja2 template (a Hugging Face chat template) parsed once and rendered many times. Rendering reproduces
/// Python Jinja2 3.1 byte for byte in the environment transformers uses for <c>apply_chat_template</c>:
/// ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loopcontrols, autoescape off, the
/// <c>tojson</c> filter as <c>json.dumps(ensure_ascii=False)</c>, and the globals <c>raise_exception</c> and
/// <c>strftime_now</c>.
/// </summary>
/// <remarks>A parsed template is immutable; <see cref="Render(IReadOnlyDictionary{string, object?}, Func{DateTime}?, TemplateLimits?, CancellationToken)"/> may run on many threads at once.</remarks>
internal sealed class JinjaTemplate
{
    // Nothing assigns into the globals frame (assignments go to the innermost frame), so renders share it.
    private static readonly Scope GlobalScope = new(null, new Dictionary<string, object?>(Globals.Functions, StringComparer.Ordinal));
    private readonly Stmt[] body;

    private JinjaTemplate(Stmt[] body) => this.body = body;

    /// <summary>
    /// Parses <paramref name="source"/>; a <see cref="TemplateException"/> names the line, column and what was expected.
    /// A source longer than <see cref="TemplateLimits.MaxTemplateLength"/> or nesting deeper than
    /// <see cref="TemplateLimits.MaxSourceNesting"/> is refused.
    /// </summary>
    public static JinjaTemplate Parse(string source, TemplateLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        limits ??= TemplateLimits.Default;
        if (source.Length > limits.MaxTemplateLength)
            throw TemplateException.LimitExceeded(nameof(TemplateLimits.MaxTemplateLength),
                $"the template is {source.Length:N0} characters long, more than the {limits.MaxTemplateLength:N0} accepted");
        return new JinjaTemplate(JinjaParser.Parse(source));
    }

    /// <summary>
    /// Renders with <paramref name="variables"/>: strings, booleans, integers, doubles, null (Python's None), lists
    /// (<see cref="IReadOnlyList{T}"/> or any non-string <see cref="IEnumerable"/>), dictionaries
    /// (<see cref="IReadOnlyDictionary{TKey, TValue}"/> with string keys, order kept) and <see cref="JsonElement"/>s.
    /// A name left out is undefined in the template, one set to null is defined and none.
    /// <paramref name="now"/> is the clock of <c>strftime_now</c> (default: the local time).
    /// The render spends at most what <paramref name="limits"/> allow (default: <see cref="TemplateLimits.Default"/>);
    /// a spent budget is a <see cref="TemplateException"/> of kind <see cref="TemplateErrorKind.Limit"/>.
    /// <paramref name="cancellationToken"/> is looked at every thousand or so steps (an <see cref="OperationCanceledException"/>).
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, Func<DateTime>? now = null, TemplateLimits? limits = null,
        CancellationToken cancellationToken = default) =>
        Render(variables, new RenderState(now ?? (() => DateTime.Now), limits, cancellationToken));

    /// <summary>Renders with a state the caller keeps (to read what the render spent).</summary>
    internal string Render(IReadOnlyDictionary<string, object?> variables, RenderState state)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var converted = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in variables) converted[name] = JinjaValues.ToTemplateValue(value, $"variables[{PyFormat.Repr(name)}]", 0);
        var root = new Scope(new Scope(GlobalScope, converted));
        var output = new StringBuilder();
        state.Output = output;
        using (state.Activate())
        {
            try
            {
                Stmt.ExecuteBody(body, state, root, output);
            }
            catch (InsufficientExecutionStackException)
            {
                throw new TemplateException(TemplateErrorKind.Recursion, "maximum recursion depth exceeded: the template nests too deeply");
            }
        }
        return output.ToString();
    }
}

/// <summary>Turns JSON and .NET values into the values a template sees.</summary>
internal static class JinjaValues
{
    private const int MaxDepth = 256;

    /// <summary>
    /// A JSON value as .NET values for <see cref="JinjaTemplate.Render(IReadOnlyDictionary{string, object?}, Func{DateTime}?, TemplateLimits?, CancellationToken)"/>: objects become ordered string-keyed
    /// dictionaries, arrays lists, numbers long when written without fraction or exponent (as Python's json reads
    /// them) and double otherwise.
    /// </summary>
    /// <exception cref="ArgumentException">The value nests deeper than 256 levels.</exception>
    public static object? FromJson(JsonElement element) => FromJson(element, 0);

    // One frame per level (no LINQ between levels), so that MaxDepth levels fit in a small thread's stack (256 KB:
    // TemplateLimitTests); the runtime's own check stands behind it.
    private static object? FromJson(JsonElement element, int depth)
    {
        if (depth > MaxDepth) throw new ArgumentException($"a JSON value nests deeper than {MaxDepth} levels, more than a template is given", nameof(element));
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (element.ValueKind)
        {
            case JsonValueKind.String: return element.GetString();
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            case JsonValueKind.Null or JsonValueKind.Undefined: return null;
            case JsonValueKind.Number: return Number(element);
            case JsonValueKind.Array:
                var list = new List<object?>(element.GetArrayLength());
                foreach (var item in element.EnumerateArray()) list.Add(FromJson(item, depth + 1));
                return list;
            default:
                var dict = new OrderedStringDictionary();
                foreach (var property in element.EnumerateObject()) dict.Set(property.Name, FromJson(property.Value, depth + 1));
                return dict;
        }
    }

    private static object Number(JsonElement element)
    {
        var text = element.GetRawText();
        if (text.IndexOfAny(new[] { '.', 'e', 'E' }) < 0 && element.TryGetInt64(out var integer)) return integer;
        return element.GetDouble();
    }

    /// <summary>The template value of a caller's .NET value; anything outside the closed value model is refused, naming where it was.</summary>
    internal static object? ToTemplateValue(object? value, string path, int depth)
    {
        if (depth > MaxDepth) throw new ArgumentException($"{path}: values nest deeper than {MaxDepth} levels (a list or dictionary that contains itself?)", nameof(value));
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (value)
        {
            case null: return null;
            case string s: return s;
            case bool b: return b;
            case int or long or short or byte or sbyte or ushort or uint: return Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
            case ulong u:
                if (u > long.MaxValue) throw new ArgumentException($"{path}: the integer {u} does not fit in 64 signed bits", nameof(value));
                return (long)u;
            case double d: return d;
            case float f: return (double)f;
            case decimal m: return (double)m;
            case JsonElement json: return ToTemplateValue(FromJson(json, depth), path, depth);
            case IReadOnlyDictionary<string, object?> map:
                var dict = new PyDict();
                foreach (var (key, item) in map) dict.Set(key, ToTemplateValue(item, $"{path}[{PyFormat.Repr(key)}]", depth + 1));
                return dict;
            case IDictionary legacy:
                var converted = new PyDict();
                foreach (DictionaryEntry entry in legacy)
                {
                    var key = ToTemplateValue(entry.Key, path, depth + 1);
                    if (key is not (string or long or bool or double))
                        throw new ArgumentException($"{path}: dictionary keys must be strings, integers, doubles or booleans, not {entry.Key.GetType()}", nameof(value));
                    converted.Set(key, ToTemplateValue(entry.Value, $"{path}[{PyFormat.Repr(key)}]", depth + 1));
                }
                return converted;
            case IEnumerable sequence:
                var list = new List<object?>();
                var index = 0;
                foreach (var item in sequence) list.Add(ToTemplateValue(item, $"{path}[{index++}]", depth + 1));
                return new PyList(list);
            default:
                throw new ArgumentException(
                    $"{path}: a value of type {value.GetType()} cannot be passed to a template; expected a string, bool, integer, double, null, list or dictionary",
                    nameof(value));
        }
    }
}
