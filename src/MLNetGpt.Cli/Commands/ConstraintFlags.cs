using System.CommandLine;
using System.Text.Json;
using MLNetGpt.Cli.Batch;

namespace MLNetGpt.Cli.Commands;

/// <summary>
/// The structured-output options of <c>generate</c>: <c>--choices</c>, <c>--choices-file</c>,
/// <c>--regex</c> or <c>--json-schema</c> (one of them), and <c>--json-columns</c>. The library compiles
/// the constraint when it is created, so an unsupported feature is refused before anything runs; its
/// message is passed on under the option's name.
/// </summary>
internal sealed class ConstraintFlags
{
    private readonly Option<string?> _choices = new("--choices")
    {
        Description = "The completion must be one of these texts, separated by commas and used as given (\" yes, no\" keeps the leading spaces). " +
            "finish_reason is then constraint or eos.",
        HelpName = "A,B,C",
    };

    private readonly Option<string?> _choicesFile = new("--choices-file")
    {
        Description = "As --choices, one choice per line (UTF-8), for choices that hold commas.",
        HelpName = "FILE",
    };

    private readonly Option<string?> _regex = new("--regex")
    {
        Description = "The whole completion must match this regular expression (a subset of .NET's: no backreferences, lookarounds or \\b).",
        HelpName = "PATTERN",
    };

    private readonly Option<string?> _jsonSchema = new("--json-schema")
    {
        Description = "The completion must be compact JSON valid against the JSON schema in FILE (a documented subset: no $ref, oneOf, allOf).",
        HelpName = "FILE",
    };

    private readonly Option<bool> _jsonColumns = new("--json-columns")
    {
        Description = "With --json-schema: also write each top-level property of the generated object into its own column, named by the property.",
    };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { _choices, _choicesFile, _regex, _jsonSchema, _jsonColumns })
            command.Add(option);
    }

    /// <summary>The constraint the options give (null: none) and, with <c>--json-columns</c>, the columns to add.</summary>
    public (OutputConstraint? Constraint, string[]? JsonColumns) Read(ParseResult p)
    {
        var given = new (Option<string?> Option, string? Value)[] { (_choices, p.GetValue(_choices)), (_choicesFile, p.GetValue(_choicesFile)),
            (_regex, p.GetValue(_regex)), (_jsonSchema, p.GetValue(_jsonSchema)) }.Where(g => g.Value is not null).ToArray();
        if (given.Length > 1)
            throw new UsageException($"give one of --choices, --choices-file, --regex and --json-schema, not {string.Join(" and ", given.Select(g => g.Option.Name))}.");
        bool columns = p.GetValue(_jsonColumns);
        if (columns && p.GetValue(_jsonSchema) is null)
            throw new UsageException("--json-columns needs --json-schema: the columns are the top-level properties the schema declares.");
        if (given.Length == 0) return (null, null);
        var (option, value) = given[0];
        if (option == _choices) return (Library(option.Name, () => OutputConstraint.Choices(TextList.FromCommaList(value!, option.Name, "choice"))), null);
        if (option == _choicesFile) return (Library(option.Name, () => OutputConstraint.Choices(TextList.FromFile(value!, option.Name, "choice"))), null);
        if (option == _regex)
        {
            if (value!.Length == 0) throw new UsageException("--regex is empty; give a pattern.");
            return (Library(option.Name, () => OutputConstraint.Regex(value)), null);
        }
        string schema = ReadSchemaFile(value!);
        var constraint = Library($"--json-schema '{value}'", () => OutputConstraint.JsonSchema(schema));
        return (constraint, columns ? TopLevelProperties(constraint.Schema!, value!) : null);
    }

    private static readonly string[] LibraryPrefixes = ["choices: ", "regex: ", "JSON schema: "];

    /// <summary>Runs a library factory, putting its refusal in the tool's voice under <paramref name="where"/>.</summary>
    private static OutputConstraint Library(string where, Func<OutputConstraint> create)
    {
        try
        {
            return create();
        }
        catch (ArgumentException e)
        {
            // The library's messages start with its own name for the source ("regex: ", "JSON schema: "); the option replaces it.
            string message = e.Message.Split(" (Parameter '", 2)[0];
            foreach (var prefix in LibraryPrefixes)
                if (message.StartsWith(prefix, StringComparison.Ordinal)) message = message[prefix.Length..];
            throw new UsageException($"{where}: {message}");
        }
    }

    private static string ReadSchemaFile(string path)
    {
        if (path.Length == 0) throw new UsageException("--json-schema is empty; give the path of a JSON schema file.");
        if (Directory.Exists(path)) throw new UsageException($"--json-schema: '{path}' is a folder; give a JSON schema file.");
        if (!File.Exists(path)) throw new UsageException($"--json-schema: the file '{path}' does not exist.");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--json-schema: cannot read '{path}': {e.Message}");
        }
        try
        {
            using var document = JsonDocument.Parse(bytes.AsMemory(bytes.AsSpan().StartsWith("\uFEFF"u8) ? 3 : 0));
            return document.RootElement.GetRawText();
        }
        catch (JsonException e)
        {
            throw new UsageException($"--json-schema: '{path}' is not valid JSON{Where(bytes, e)}: {Reason(e)}");
        }
    }

    // System.Text.Json counts lines from 0 and columns in bytes from 0; an editor counts both from 1, and columns in characters.
    private static string Where(byte[] bytes, JsonException e)
    {
        if (e.LineNumber is not long line || e.BytePositionInLine is not long position) return "";
        int start = 0;
        for (long seen = 0; seen < line && start < bytes.Length; start++)
            if (bytes[start] == (byte)'\n') seen++;
        if (start == 0 && bytes.AsSpan().StartsWith("\uFEFF"u8)) start = 3;
        int length = (int)Math.Clamp(position, 0, bytes.Length - start);
        return $" at line {line + 1}, column {System.Text.Encoding.UTF8.GetCharCount(bytes, start, length) + 1}";
    }

    private static string Reason(JsonException e)
    {
        int at = e.Message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (at >= 0 ? e.Message[..at] : e.Message).Trim();
    }

    /// <summary>The properties the schema declares for the generated object, in the schema's order (the order the object is written in).</summary>
    internal static string[] TopLevelProperties(string schema, string path)
    {
        using var document = JsonDocument.Parse(schema);
        var root = document.RootElement;
        string problem = root.ValueKind != JsonValueKind.Object ? "is not an object schema"
            : root.TryGetProperty("type", out var type) && !(type.ValueKind == JsonValueKind.String && type.GetString() == "object")
                ? $"has type {type.GetRawText()}; its top level must be \"object\""
            : !root.TryGetProperty("properties", out var properties) || properties.ValueKind != JsonValueKind.Object || !properties.EnumerateObject().Any()
                ? "declares no top-level properties"
            : "";
        if (problem.Length > 0)
            throw new UsageException($"--json-columns: the schema '{path}' {problem}, so there are no columns to write.");
        return root.GetProperty("properties").EnumerateObject().Select(property => property.Name).ToArray();
    }
}
