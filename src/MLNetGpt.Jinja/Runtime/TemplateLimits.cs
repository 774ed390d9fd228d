namespace MLNetGpt.Chat;

/// <summary>
/// What one render of a template may spend. A template is text from someone else (a downloaded model folder), so
/// every resource it can consume has a ceiling: time (steps), the prompt it writes, the size of any one value it
/// builds, and everything it allocates in all. Sizes are checked before the allocation they would cause.
/// </summary>
/// <remarks>
/// A step is one statement, one expression, one loop iteration or one call; a call or comparison that reads a string
/// or list also spends one step per <see cref="CharactersPerStep"/> characters or items it reads. Allocation is
/// counted in characters of the strings a render builds (its own output excepted, which has its own ceiling) and in
/// items of the lists, tuples and dictionaries it builds, each item weighing <see cref="ItemWeight"/> characters.
/// </remarks>
internal sealed record TemplateLimits
{
    /// <summary>The defaults (the public ChatTemplateLimits starts from them); docs/security.md gives their measured margins.</summary>
    public static readonly TemplateLimits Default = new();

    /// <summary>Characters (or items) read per step by calls and comparisons over strings and lists.</summary>
    public const int CharactersPerStep = 128;

    /// <summary>What one list, tuple or dictionary item weighs against <see cref="MaxAllocation"/>, in characters.</summary>
    public const int ItemWeight = 8;

    /// <summary>Statement blocks and expression levels nested in the source (Python's own parser stops at 100 indentation levels).</summary>
    public const int MaxSourceNesting = 100;

    /// <summary>
    /// Expressions nested at render time (a chain such as <c>a.b.c...</c> nests one level per link) and values
    /// nested inside values (lists in lists) where they are compared, printed or written as JSON.
    /// </summary>
    public const int MaxEvaluationDepth = 1000;

    public long MaxSteps { get; init; } = 10_000_000;

    /// <summary>The longest prompt a render may write, in UTF-16 characters.</summary>
    public long MaxOutputLength { get; init; } = 16L << 20;

    /// <summary>The longest string (in characters) or list (in items) one expression may build.</summary>
    public long MaxValueLength { get; init; } = 16L << 20;

    /// <summary>Characters and weighted items one render may allocate in all.</summary>
    public long MaxAllocation { get; init; } = 256L << 20;

    /// <summary>The longest template source accepted, in characters.</summary>
    public long MaxTemplateLength { get; init; } = 1L << 20;
}
