namespace MLNetGpt;

/// <summary>
/// Thrown when a model's chat template cannot be parsed or rendered: a syntax the renderer does not know, or a
/// failure while rendering, most often the template's own <c>raise_exception(...)</c> refusing the conversation
/// (for example "Conversation roles must alternate user/assistant/user/assistant/..."). The message names the
/// template and the file it came from and, except for the template's own message, the line and column.
/// </summary>
public sealed class ChatTemplateException : Exception
{
    internal ChatTemplateException(string message, string templateName, int? line, int? column, bool raisedByTemplate, Exception innerException)
        : base(message, innerException)
    {
        TemplateName = templateName;
        Line = line;
        Column = column;
        RaisedByTemplate = raisedByTemplate;
    }

    /// <summary>The name of the template that failed (<c>default</c> for a folder's only template).</summary>
    public string TemplateName { get; }

    /// <summary>The 1-based template line of the construct that failed, where known.</summary>
    public int? Line { get; }

    /// <summary>The 1-based column of the construct that failed, where known.</summary>
    public int? Column { get; }

    /// <summary>Whether the template itself refused the input through <c>raise_exception(message)</c>.</summary>
    public bool RaisedByTemplate { get; }
}
