using System.Globalization;
using System.Text;

namespace MLNetGpt.Chat;

/// <summary>
/// Python's <c>datetime.strftime</c> for a naive moment as it behaves on Linux (glibc, C locale): the C99 and
/// POSIX conversions, glibc's padding flags (<c>%-d</c>, <c>%_d</c>, <c>%0e</c>, <c>%^a</c>), unknown conversions
/// copied through, and empty <c>%z</c>/<c>%Z</c> for a moment without a time zone.
/// </summary>
internal static class PyStrftime
{
    private static readonly string[] Days = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" };
    private static readonly string[] Months = { "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December" };

    public static string Format(DateTime moment, string format)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            var c = format[i];
            if (c != '%' || i + 1 >= format.Length)
            {
                sb.Append(c);
                continue;
            }
            var start = i;
            char? flag = null;
            if (format[i + 1] is '-' or '_' or '0' or '^' or '#')
            {
                flag = format[i + 1];
                i++;
                if (i + 1 >= format.Length)
                {
                    sb.Append(format, start, format.Length - start);
                    break;
                }
            }
            var conversion = format[++i];
            var text = Convert(moment, conversion, flag);
            if (text is null) sb.Append(format, start, i - start + 1);
            else sb.Append(text);
        }
        return sb.ToString();
    }

    private static string? Convert(DateTime t, char conversion, char? flag)
    {
        var hour12 = t.Hour % 12 == 0 ? 12 : t.Hour % 12;
        var weekday = (int)t.DayOfWeek;
        string? text = conversion switch
        {
            'a' => Days[weekday].Substring(0, 3),
            'A' => Days[weekday],
            'b' or 'h' => Months[t.Month - 1].Substring(0, 3),
            'B' => Months[t.Month - 1],
            'c' => $"{Days[weekday].Substring(0, 3)} {Months[t.Month - 1].Substring(0, 3)} {Number(t.Day, 2, ' ', null)} {t:HH:mm:ss} {t.Year}",
            'C' => Number(t.Year / 100, 2, '0', flag),
            'd' => Number(t.Day, 2, '0', flag),
            'D' => $"{t.Month:00}/{t.Day:00}/{t.Year % 100:00}",
            'e' => Number(t.Day, 2, ' ', flag),
            'f' => t.ToString("ffffff", CultureInfo.InvariantCulture),
            'F' => $"{t.Year}-{t.Month:00}-{t.Day:00}",
            'G' => Number(ISOWeek.GetYear(t), 4, '0', flag),
            'g' => Number(ISOWeek.GetYear(t) % 100, 2, '0', flag),
            'H' => Number(t.Hour, 2, '0', flag),
            'I' => Number(hour12, 2, '0', flag),
            'j' => Number(t.DayOfYear, 3, '0', flag),
            'k' => Number(t.Hour, 2, ' ', flag),
            'l' => Number(hour12, 2, ' ', flag),
            'm' => Number(t.Month, 2, '0', flag),
            'M' => Number(t.Minute, 2, '0', flag),
            'n' => "\n",
            'p' => t.Hour < 12 ? "AM" : "PM",
            'P' => t.Hour < 12 ? "am" : "pm",
            'r' => $"{hour12:00}:{t.Minute:00}:{t.Second:00} {(t.Hour < 12 ? "AM" : "PM")}",
            'R' => $"{t.Hour:00}:{t.Minute:00}",
            'S' => Number(t.Second, 2, '0', flag),
            't' => "\t",
            'T' => $"{t.Hour:00}:{t.Minute:00}:{t.Second:00}",
            'u' => Number(weekday == 0 ? 7 : weekday, 1, '0', flag),
            'U' => Number((t.DayOfYear + 6 - weekday) / 7, 2, '0', flag),
            'V' => Number(ISOWeek.GetWeekOfYear(t), 2, '0', flag),
            'w' => Number(weekday, 1, '0', flag),
            'W' => Number((t.DayOfYear + 6 - (weekday + 6) % 7) / 7, 2, '0', flag),
            'x' => $"{t.Month:00}/{t.Day:00}/{t.Year % 100:00}",
            'X' => $"{t.Hour:00}:{t.Minute:00}:{t.Second:00}",
            'y' => Number(t.Year % 100, 2, '0', flag),
            'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
            'z' or 'Z' => "",
            '%' => "%",
            _ => null,
        };
        if (text is null) return null;
        return flag switch
        {
            '^' => text.ToUpperInvariant(),
            '#' => conversion is 'a' or 'A' or 'b' or 'B' or 'h' ? text.ToUpperInvariant() : conversion is 'p' ? text.ToLowerInvariant() : text,
            _ => text,
        };
    }

    private static string Number(int value, int width, char pad, char? flag)
    {
        var digits = value.ToString(CultureInfo.InvariantCulture);
        var padChar = flag switch { '-' => '\0', '_' => ' ', '0' => '0', _ => pad };
        if (padChar == '\0' || digits.Length >= width) return digits;
        return new string(padChar, width - digits.Length) + digits;
    }
}
