using System.Text.Json;
using MLNetGpt.Chat;
using MLNetGpt.Tests.Infrastructure;

namespace MLNetGpt.Tests.Chat;

/// <summary>
/// The third-party chat-template corpus in <c>../shared/chat-templates</c> (read in place): 50 real templates and
/// 219 cases with the text Python Jinja2 renders for each, in the environment Hugging Face transformers uses.
/// </summary>
internal static class ChatTemplateCorpus
{
    public const string Folder = "chat-templates";

    /// <summary>The fixed moment the corpus was rendered at (strftime_now).</summary>
    public static readonly DateTime Now = new(2025, 7, 10, 12, 0, 0);

    public static string CasesFolder => SharedData.PathOf(Path.Combine(Folder, "cases"));

    public static string TemplatesFolder => SharedData.PathOf(Path.Combine(Folder, "templates"));

    public static IEnumerable<string> CaseNames() => Directory.Exists(CasesFolder)
        ? Directory.GetFiles(CasesFolder, "*.json").Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal)!
        : Enumerable.Empty<string>();

    public sealed record Case(string Name, string TemplateName, string Template, IReadOnlyDictionary<string, object?> Variables, string Expected);

    public static Case Load(string caseName)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(CasesFolder, caseName)));
        var root = document.RootElement;
        var templateName = root.GetProperty("template").GetString()!;
        var template = File.ReadAllText(Path.Combine(TemplatesFolder, templateName));
        return new Case(caseName, templateName, template, Variables(root), root.GetProperty("expected").GetString()!);
    }

    /// <summary>
    /// The render call of the corpus's render.py (transformers' render_jinja_template): messages, tools (null =
    /// defined and none), documents (only from extra), add_generation_prompt, the special tokens that are not null
    /// (a null token is not passed, so it is undefined), then the remaining extra keys.
    /// </summary>
    private static Dictionary<string, object?> Variables(JsonElement root)
    {
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = JinjaValues.FromJson(root.GetProperty("messages")),
            ["tools"] = root.TryGetProperty("tools", out var tools) ? JinjaValues.FromJson(tools) : null,
            ["documents"] = null,
            ["add_generation_prompt"] = root.TryGetProperty("add_generation_prompt", out var prompt) && prompt.ValueKind == JsonValueKind.True,
        };
        foreach (var token in new[] { "bos_token", "eos_token" })
            if (root.TryGetProperty(token, out var value) && value.ValueKind == JsonValueKind.String) variables[token] = value.GetString();
        if (root.TryGetProperty("extra", out var extra) && extra.ValueKind == JsonValueKind.Object)
            foreach (var property in extra.EnumerateObject()) variables[property.Name] = JinjaValues.FromJson(property.Value);
        return variables;
    }

    /// <summary>Where two texts first differ, with a window of each, for a readable failure message.</summary>
    public static string Difference(string expected, string actual)
    {
        var at = 0;
        while (at < expected.Length && at < actual.Length && expected[at] == actual[at]) at++;
        var from = Math.Max(0, at - 60);
        string Window(string s) => JsonSerializer.Serialize(s.Substring(Math.Min(from, s.Length), Math.Min(160, Math.Max(0, s.Length - from))));
        return $"first difference at offset {at} (expected length {expected.Length}, actual {actual.Length})\n" +
               $"  expected: {Window(expected)}\n  actual:   {Window(actual)}";
    }
}
