namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// The string formats a JSON schema may ask for, as fixed ASCII languages written in the regex
/// subset (none of them contains a character that JSON would escape).
/// </summary>
internal static class JsonStringFormats
{
    public const string Names = "date, time, date-time, uuid, email, ipv4";

    // Years 0001-9999 (year 0 has no calendar date in .NET or most validators); February 29 only
    // in leap years (divisible by 4, centuries only when divisible by 400).
    private const string Year = @"(\d{3}[1-9]|\d\d[1-9]\d|\d[1-9]\d\d|[1-9]\d{3})";
    private const string LeapYear = @"(\d\d(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)";
    private const string MonthDay = @"((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))";
    private const string Date = "(" + Year + "-" + MonthDay + "|" + LeapYear + "-02-29)";
    private const string Time = @"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)";

    private static readonly Dictionary<string, string> Patterns = new(StringComparer.Ordinal)
    {
        ["date"] = Date,
        ["time"] = Time,
        ["date-time"] = Date + "T" + Time,
        ["uuid"] = @"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        // A dot-atom local part; a domain of one or two labels (letters, digits, inner hyphens; at most
        // 63 characters each) and a top-level label of 2-63 letters, which keeps it under 253 characters.
        ["email"] = @"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,2}[A-Za-z]{2,63}",
        ["ipv4"] = @"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}",
    };

    /// <summary>The value language of a format (without the quotes), or null when the format is not supported.</summary>
    public static ConstraintNode? For(string format) =>
        Patterns.TryGetValue(format, out var pattern) ? RegexParser.Parse(pattern, $"format {format}") : null;

    /// <summary>The regex-subset pattern of a format, for documentation and tests.</summary>
    public static string? PatternOf(string format) => Patterns.GetValueOrDefault(format);
}
