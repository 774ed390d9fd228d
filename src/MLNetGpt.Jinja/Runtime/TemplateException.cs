namespace MLNetGpt.Chat;

/// <summary>The Python exception class that Jinja2 raises for the same failure.</summary>
internal enum TemplateErrorKind
{
    /// <summary>TemplateSyntaxError (also TemplateAssertionError, e.g. an unknown filter).</summary>
    Syntax,
    /// <summary>UndefinedError: an undefined value was used where a value is needed.</summary>
    Undefined,
    /// <summary>SecurityError: the sandbox refused an attribute or a call.</summary>
    Security,
    /// <summary>TemplateError raised by the template itself through <c>raise_exception(message)</c>.</summary>
    Raised,
    /// <summary>TemplateRuntimeError / FilterArgumentError.</summary>
    Runtime,
    /// <summary>TypeError.</summary>
    Type,
    /// <summary>ValueError.</summary>
    Value,
    /// <summary>ZeroDivisionError.</summary>
    ZeroDivision,
    /// <summary>OverflowError (also integer results beyond 64 bits, which Python would still compute).</summary>
    Overflow,
    /// <summary>KeyError / IndexError.</summary>
    Lookup,
    /// <summary>AttributeError (a Python attribute missing where Jinja2 does not catch it).</summary>
    Attribute,
    /// <summary>RecursionError: macros or expressions nested too deeply.</summary>
    Recursion,
    /// <summary>A budget of <see cref="TemplateLimits"/> was spent (steps, output, value size, allocation, source length); <see cref="TemplateException.Limit"/> names it.</summary>
    Limit,
}

/// <summary>
/// A template failed to parse or to render. <see cref="Line"/> and <see cref="Column"/> (1-based) locate the
/// innermost construct that failed, where known. For <c>raise_exception(message)</c> the message is exactly the
/// template's text; every other message ends with the position.
/// </summary>
internal sealed class TemplateException : Exception
{
    public TemplateException(TemplateErrorKind kind, string description, int? line = null, int? column = null)
        : base(description)
    {
        Kind = kind;
        Description = description;
        Line = line;
        Column = column;
    }

    public TemplateErrorKind Kind { get; }

    /// <summary>The message without the position.</summary>
    public string Description { get; }

    public int? Line { get; private set; }

    /// <summary>For <see cref="TemplateErrorKind.Limit"/>: the <see cref="TemplateLimits"/> property whose budget was spent.</summary>
    public string? Limit { get; private init; }

    public int? Column { get; private set; }

    public override string Message => Kind == TemplateErrorKind.Raised || Line is null
        ? Description
        : $"{Description} (line {Line}, column {Column})";

    /// <summary>
    /// Records where the error happened if no inner construct has done so yet. Always returns false so that it can
    /// serve as an exception filter: the innermost node that sees the exception pass stamps it, nothing is caught.
    /// </summary>
    internal bool AttachPosition(int line, int column)
    {
        if (Line is null)
        {
            Line = line;
            Column = column;
        }
        return false;
    }

    internal static TemplateException LimitExceeded(string limit, string message) => new(TemplateErrorKind.Limit, message) { Limit = limit };

    internal static TemplateException TypeError(string message) => new(TemplateErrorKind.Type, message);

    internal static TemplateException ValueError(string message) => new(TemplateErrorKind.Value, message);

    internal static TemplateException Runtime(string message) => new(TemplateErrorKind.Runtime, message);
}
