using System.Text;

namespace MLNetGpt.Cli.Batch;

/// <summary>A usage problem: one clear line for the user, exit code 1.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Builds each row's model input from the header and a record: one column's cell, or a template
/// with <c>{column}</c> placeholders (<c>{{</c>/<c>}}</c> for braces; <c>\n</c>, <c>\t</c>, <c>\\</c> escapes).
/// </summary>
internal sealed class PromptBuilder
{
    private readonly List<(string? Literal, int Column, string Name)> _parts = [];
    private readonly int _columns;
    private string _noun = "prompt";

    private PromptBuilder(int columns) => _columns = columns;

    /// <summary>What the built text is called in row errors ("prompt", "text").</summary>
    public PromptBuilder Called(string noun)
    {
        _noun = noun;
        return this;
    }

    public static PromptBuilder ForColumn(string[] header, string column, string option)
    {
        if (column.Length == 0) throw new UsageException($"{option} is empty; give a column name.");
        int index = Array.IndexOf(header, column);
        if (index < 0)
            throw new UsageException($"{option} '{column}' is not a column of the input (columns: {string.Join(", ", header)}).");
        var builder = new PromptBuilder(header.Length);
        builder._parts.Add((null, index, column));
        return builder;
    }

    public static PromptBuilder ForTemplate(string[] header, string template)
    {
        if (template.Length == 0) throw new UsageException("--template is empty; give a text with {column} placeholders.");
        var builder = new PromptBuilder(header.Length);
        var literal = new StringBuilder();
        for (int i = 0; i < template.Length; i++)
        {
            char c = template[i];
            if (c == '\\' && i + 1 < template.Length && template[i + 1] is 'n' or 't' or '\\')
            {
                literal.Append(template[++i] switch { 'n' => '\n', 't' => '\t', _ => '\\' });
            }
            else if (c == '{' && i + 1 < template.Length && template[i + 1] == '{')
            {
                literal.Append('{');
                i++;
            }
            else if (c == '}' && i + 1 < template.Length && template[i + 1] == '}')
            {
                literal.Append('}');
                i++;
            }
            else if (c == '{')
            {
                int end = template.IndexOf('}', i);
                if (end < 0) throw new UsageException($"--template has an unclosed '{{' at position {i}.");
                string name = template[(i + 1)..end];
                int index = Array.IndexOf(header, name);
                if (index < 0)
                    throw new UsageException($"--template names the column '{name}', which is not in the input (columns: {string.Join(", ", header)}).");
                if (literal.Length > 0) builder._parts.Add((literal.ToString(), -1, ""));
                literal.Clear();
                builder._parts.Add((null, index, name));
                i = end;
            }
            else if (c == '}')
            {
                throw new UsageException($"--template has a '}}' without '{{' at position {i} (write '}}}}' for a literal brace).");
            }
            else
            {
                literal.Append(c);
            }
        }
        if (literal.Length > 0) builder._parts.Add((literal.ToString(), -1, ""));
        if (!builder._parts.Any(p => p.Literal is null))
            throw new UsageException("--template has no {column} placeholder.");
        return builder;
    }

    /// <summary>The input for a record, or an error message for the row naming its physical <paramref name="line"/>.</summary>
    public (string? Text, string? Error) Build(string[] fields, long line)
    {
        var text = new StringBuilder();
        foreach (var (literal, column, name) in _parts)
        {
            if (literal is not null)
            {
                text.Append(literal);
                continue;
            }
            if (column >= fields.Length)
                return (null, $"line {line} has no value for column '{name}' (it has {fields.Length} of {_columns} fields)");
            text.Append(fields[column]);
        }
        if (text.Length == 0 || text.ToString().Trim().Length == 0) return (null, $"line {line}: the {_noun} is empty");
        return (text.ToString(), null);
    }
}
