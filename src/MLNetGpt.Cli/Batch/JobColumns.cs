namespace MLNetGpt.Cli.Batch;

/// <summary>The columns a batch job reads and adds: defaults, the error column's name, and the checks that refuse clashes.</summary>
internal static class JobColumns
{
    /// <summary>A label's probability column: <c>p_</c> and the label without its edge spaces (" yes" gives <c>p_yes</c>).</summary>
    internal static string ProbabilityColumn(string label) => "p_" + label.Trim();

    internal static string DefaultTextColumn(string[] header) =>
        header.Contains("text") ? "text"
        : throw new UsageException($"name the text with --text-column or --template (the input has no 'text' column; columns: {string.Join(", ", header)}).");

    internal static string DefaultPromptColumn(string[] header) =>
        header.Contains("prompt") ? "prompt"
        : throw new UsageException($"name the prompt with --prompt-column or --template (the input has no 'prompt' column; columns: {string.Join(", ", header)}).");

    /// <summary>
    /// The error column: as given, else <c>error</c>, else (when the input already has an <c>error</c>
    /// column, as a <c>generate</c> output does) <c>COMMAND_error</c>, so outputs chain without editing.
    /// </summary>
    internal static string ErrorColumn(BatchRequest request, InputHeader header, string command) =>
        request.ErrorColumn ?? (header.Columns.Contains("error") ? $"{command}_error" : "error");

    internal static void CheckNewColumns(InputHeader header, (string Name, string Option)[] newColumns)
    {
        foreach (var (name, option) in newColumns)
        {
            if (name.Length == 0) throw new UsageException($"{option} is empty; give a column name.");
            if (header.Columns.Contains(name))
                throw new UsageException($"the input already has a column '{name}'; the output adds it ({option}): rename one of them.");
        }
        var twice = newColumns.GroupBy(c => c.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (twice is not null)
            throw new UsageException($"the output would have the column '{twice.Key}' twice ({string.Join(" and ", twice.Select(c => c.Option))}): choose another name.");
    }
}
