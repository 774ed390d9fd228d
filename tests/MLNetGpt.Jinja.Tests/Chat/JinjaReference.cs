using System.Text.Json;
using MLNetGpt.Chat;
using MLNetGpt.Tests.Infrastructure;

namespace MLNetGpt.Tests.Chat;

/// <summary>
/// The renderer's own reference snippets (Reference/jinja-reference.json): hand-written templates whose result
/// Python Jinja2 3.1.2 produced (tools/jinja_reference.py), either the rendered text or the exception it raised.
/// </summary>
internal static class JinjaReference
{
    public sealed record PythonError(string Type, string Message, int? Line);

    public sealed record Snippet(string Name, string Template, JsonElement? Context, string? Expected, PythonError? Error);

    private static readonly Lazy<IReadOnlyDictionary<string, Snippet>> All = new(Load);

    public static string Path => System.IO.Path.Combine(SharedData.RepositoryRoot, "tests", "MLNetGpt.Jinja.Tests", "Chat", "Reference", "jinja-reference.json");

    public static IEnumerable<string> Names() => All.Value.Keys;

    public static Snippet Get(string name) => All.Value[name];

    private static IReadOnlyDictionary<string, Snippet> Load()
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path));
        var snippets = new Dictionary<string, Snippet>(StringComparer.Ordinal);
        foreach (var item in document.RootElement.EnumerateArray())
        {
            PythonError? error = null;
            if (item.TryGetProperty("error", out var e))
                error = new PythonError(e.GetProperty("type").GetString()!, e.GetProperty("message").GetString()!,
                    e.TryGetProperty("line", out var line) ? line.GetInt32() : null);
            var name = item.GetProperty("name").GetString()!;
            snippets.Add(name, new Snippet(name, item.GetProperty("template").GetString()!,
                item.TryGetProperty("context", out var context) ? context.Clone() : null,
                item.TryGetProperty("expected", out var expected) ? expected.GetString() : null, error));
        }
        return snippets;
    }

    public static IReadOnlyDictionary<string, object?> Variables(Snippet snippet)
    {
        var variables = new Dictionary<string, object?>();
        if (snippet.Context is { } context)
            foreach (var property in context.EnumerateObject()) variables[property.Name] = JinjaValues.FromJson(property.Value);
        return variables;
    }

    /// <summary>The renderer's error kind for the Python exception class Jinja2 raised.</summary>
    public static TemplateErrorKind KindOf(string pythonType) => pythonType switch
    {
        "TemplateSyntaxError" or "TemplateAssertionError" or "SyntaxError" => TemplateErrorKind.Syntax,
        "UndefinedError" => TemplateErrorKind.Undefined,
        "SecurityError" => TemplateErrorKind.Security,
        "TemplateError" => TemplateErrorKind.Raised,
        "TemplateRuntimeError" or "FilterArgumentError" => TemplateErrorKind.Runtime,
        "TypeError" => TemplateErrorKind.Type,
        "ValueError" => TemplateErrorKind.Value,
        "ZeroDivisionError" => TemplateErrorKind.ZeroDivision,
        "OverflowError" => TemplateErrorKind.Overflow,
        "KeyError" or "IndexError" => TemplateErrorKind.Lookup,
        "RecursionError" => TemplateErrorKind.Recursion,
        "AttributeError" => TemplateErrorKind.Attribute,
        _ => throw new ArgumentException($"no error kind for the Python exception {pythonType}", nameof(pythonType)),
    };
}
