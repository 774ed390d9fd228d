using MLNetGpt.Chat;

namespace MLNetGpt;

/// <summary>
/// The budget of one chat-template render. A model folder's chat template is a program written by someone else; these
/// ceilings keep a faulty or hostile one from hanging the process or exhausting its memory. A render that reaches one
/// fails with a <see cref="ChatTemplateException"/> naming the template, the line, the budget and the property here
/// that raises it. The defaults render every template of a 50-template corpus of real models with a margin of more
/// than a hundredfold (docs/security.md gives the measurements).
/// </summary>
/// <remarks>
/// <para>Set it on <see cref="GptModelOptions.ChatTemplateLimits"/>; it is read when the model opens. Each setter
/// refuses a value outside its range with an <see cref="ArgumentOutOfRangeException"/>.</para>
/// <para>Fixed, not configurable: statement blocks and expressions nest at most 100 levels in the template source (as
/// in Python, whose parser Jinja2's compiled templates go through), expressions and values nest at most 1,000 levels
/// at render time (Python's recursion limit), and macros call each other at most 500 deep.</para>
/// </remarks>
public sealed class ChatTemplateLimits
{
    /// <summary>The largest value any of the length budgets accepts (a .NET string holds about 2^30 characters).</summary>
    public const long MaxLengthSetting = 1_000_000_000;

    private long _maxSteps = TemplateLimits.Default.MaxSteps;
    private long _maxOutputLength = TemplateLimits.Default.MaxOutputLength;
    private long _maxValueLength = TemplateLimits.Default.MaxValueLength;
    private long _maxAllocation = TemplateLimits.Default.MaxAllocation;
    private long _maxTemplateLength = TemplateLimits.Default.MaxTemplateLength;

    /// <summary>
    /// Steps one render may take (default 10,000,000): a step is a statement, an expression, a loop iteration or a
    /// call, and a call or comparison that reads a string or list spends one more step per 128 characters or items it
    /// reads. The cancellation token of the request is looked at every 1,024 steps. Range 1,000 to
    /// <see cref="long.MaxValue"/>.
    /// </summary>
    public long MaxSteps
    {
        get => _maxSteps;
        set => _maxSteps = value is >= 1_000 ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxSteps), value, "ChatTemplateLimits.MaxSteps must be 1,000 or more.");
    }

    /// <summary>The longest prompt a render may write, in UTF-16 characters (default 16,777,216). Range 1,024 to <see cref="MaxLengthSetting"/>.</summary>
    public long MaxOutputLength
    {
        get => _maxOutputLength;
        set => _maxOutputLength = Length(value, nameof(MaxOutputLength));
    }

    /// <summary>
    /// The longest string (in characters) or list, tuple or dictionary (in items) that one operation of a template may
    /// build (default 16,777,216). It is checked before the value is allocated: <c>'a' * n</c>, <c>ljust</c>,
    /// <c>center</c>, format widths, <c>replace</c>, <c>join</c>, <c>~</c>, <c>+</c> and list repetition know their
    /// result's size first. Range 1,024 to <see cref="MaxLengthSetting"/>.
    /// </summary>
    public long MaxValueLength
    {
        get => _maxValueLength;
        set => _maxValueLength = Length(value, nameof(MaxValueLength));
    }

    /// <summary>
    /// Everything one render may build, in characters of strings plus 8 per item of lists, tuples and dictionaries
    /// (default 268,435,456, about 512 MB of strings); the prompt itself counts against <see cref="MaxOutputLength"/>
    /// instead. Range 1,024 to <see cref="long.MaxValue"/>.
    /// </summary>
    public long MaxAllocation
    {
        get => _maxAllocation;
        set => _maxAllocation = value >= 1_024 ? value
            : throw new ArgumentOutOfRangeException(nameof(MaxAllocation), value, "ChatTemplateLimits.MaxAllocation must be 1,024 or more.");
    }

    /// <summary>The longest template source accepted, in characters (default 1,048,576). Range 1,024 to <see cref="MaxLengthSetting"/>.</summary>
    public long MaxTemplateLength
    {
        get => _maxTemplateLength;
        set => _maxTemplateLength = Length(value, nameof(MaxTemplateLength));
    }

    private static long Length(long value, string name) => value is >= 1_024 and <= MaxLengthSetting ? value
        : throw new ArgumentOutOfRangeException(name, value, $"ChatTemplateLimits.{name} must be between 1,024 and {MaxLengthSetting:N0}.");

    /// <summary>A copy, so that an opened model keeps the budget it was opened with.</summary>
    public ChatTemplateLimits Clone() => (ChatTemplateLimits)MemberwiseClone();

    internal TemplateLimits ToTemplateLimits() => new()
    {
        MaxSteps = MaxSteps,
        MaxOutputLength = MaxOutputLength,
        MaxValueLength = MaxValueLength,
        MaxAllocation = MaxAllocation,
        MaxTemplateLength = MaxTemplateLength,
    };

    /// <summary>How an error names the setting that raises a spent budget.</summary>
    internal static string Hint(string limit) => limit switch
    {
        nameof(TemplateLimits.MaxSteps) or nameof(TemplateLimits.MaxOutputLength) or nameof(TemplateLimits.MaxValueLength)
            or nameof(TemplateLimits.MaxAllocation) or nameof(TemplateLimits.MaxTemplateLength)
            => $"raise GptModelOptions.ChatTemplateLimits.{limit} to allow more",
        _ => "",
    };
}
