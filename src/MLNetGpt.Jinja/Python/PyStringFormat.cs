using System.Globalization;
using System.Text;

namespace MLNetGpt.Chat;

/// <summary>Python's <c>str.format</c> (through the sandbox's attribute rules) and its format-spec mini-language.</summary>
internal static class PyStringFormat
{
    public static string Format(string format, Arguments arguments)
    {
        var auto = 0;
        return Format(format, arguments, 2, ref auto);
    }

    // CPython's MarkupIterator allows a replacement field inside a format spec, two levels in all
    // ("Max string recursion exceeded" beyond): the same bound keeps nested braces from nesting calls.
    private static string Format(string format, Arguments arguments, int recursionDepth, ref int auto)
    {
        if (recursionDepth <= 0) throw TemplateException.ValueError("Max string recursion exceeded");
        var sb = new StringBuilder();
        var i = 0;
        while (i < format.Length)
        {
            var c = format[i];
            if (c == '}')
            {
                if (i + 1 < format.Length && format[i + 1] == '}')
                {
                    sb.Append('}');
                    i += 2;
                    continue;
                }
                throw TemplateException.ValueError("Single '}' encountered in format string");
            }
            if (c != '{')
            {
                sb.Append(c);
                i++;
                continue;
            }
            if (i + 1 < format.Length && format[i + 1] == '{')
            {
                sb.Append('{');
                i += 2;
                continue;
            }
            // A replacement field; nested braces may appear in its format spec.
            var depth = 1;
            var j = i + 1;
            while (j < format.Length && depth > 0)
            {
                if (format[j] == '{') depth++;
                else if (format[j] == '}') depth--;
                if (depth > 0) j++;
            }
            if (j >= format.Length) throw TemplateException.ValueError("expected '}' before end of string");
            var field = format.Substring(i + 1, j - i - 1);
            var text = Field(field, arguments, ref auto, recursionDepth);
            RenderState.ChargeString(sb.Length + (long)text.Length, "the formatted string");
            sb.Append(text);
            i = j + 1;
        }
        return sb.ToString();
    }

    private static string Field(string field, Arguments arguments, ref int auto, int recursionDepth)
    {
        string? spec = null;
        char? conversion = null;
        var colon = IndexOutsideBrackets(field, ':');
        if (colon >= 0)
        {
            spec = field.Substring(colon + 1);
            field = field.Substring(0, colon);
        }
        var bang = IndexOutsideBrackets(field, '!');
        if (bang >= 0)
        {
            if (bang + 2 != field.Length) throw TemplateException.ValueError("expected ':' after conversion specifier");
            conversion = field[bang + 1];
            field = field.Substring(0, bang);
        }
        var nameEnd = 0;
        while (nameEnd < field.Length && field[nameEnd] != '.' && field[nameEnd] != '[') nameEnd++;
        var first = field.Substring(0, nameEnd);
        object? value;
        if (first.Length == 0)
        {
            if (auto < 0) throw TemplateException.ValueError("cannot switch from manual field specification to automatic field numbering");
            value = Positional(arguments, auto++);
        }
        else if (first.All(char.IsAsciiDigit))
        {
            if (auto > 0) throw TemplateException.ValueError("cannot switch from automatic field numbering to manual field specification");
            auto = -1;
            value = Positional(arguments, int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out var number)
                ? number : throw TemplateException.ValueError("Too many decimal digits in format string"));
        }
        else
        {
            var match = arguments.Keywords.FirstOrDefault(k => k.Key == first);
            if (match.Key is null) throw new TemplateException(TemplateErrorKind.Lookup, PyFormat.Repr(first));
            value = match.Value;
        }
        var rest = field.Substring(nameEnd);
        while (rest.Length > 0)
        {
            if (rest[0] == '.')
            {
                var end = 1;
                while (end < rest.Length && rest[end] != '.' && rest[end] != '[') end++;
                value = PyOps.GetAttribute(value, rest.Substring(1, end - 1));
                rest = rest.Substring(end);
            }
            else
            {
                var close = rest.IndexOf(']');
                if (close < 0) throw TemplateException.ValueError("Missing ']' in format string");
                var key = rest.Substring(1, close - 1);
                value = PyOps.GetItem(value, key.Length > 0 && key.All(char.IsAsciiDigit) && long.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var index) ? index : key);
                rest = rest.Substring(close + 1);
            }
        }
        if (conversion is not null)
        {
            value = conversion switch
            {
                's' => PyFormat.Str(value),
                'r' or 'a' => PyFormat.Repr(value),
                _ => throw TemplateException.ValueError($"Unknown conversion specifier {conversion}"),
            };
        }
        // The fields of a nested spec continue the automatic numbering: '{:>{}}'.format('x', 7) pads 'x' to 7.
        if (spec is not null && spec.Contains('{')) spec = Format(spec, arguments, recursionDepth - 1, ref auto);
        return FormatValue(value, spec ?? "");
    }

    private static int IndexOutsideBrackets(string field, char target)
    {
        var inBrackets = false;
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '[') inBrackets = true;
            else if (field[i] == ']') inBrackets = false;
            else if (!inBrackets && field[i] == target) return i;
        }
        return -1;
    }

    private static object? Positional(Arguments arguments, int index) => index < arguments.Positional.Length
        ? arguments.Positional[index]
        : throw new TemplateException(TemplateErrorKind.Lookup, "tuple index out of range");

    /// <summary>Python's <c>format(value, spec)</c> for str, int, float and bool; other values only with an empty spec.</summary>
    public static string FormatValue(object? value, string spec)
    {
        if (value is Undefined u)
        {
            if (spec.Length == 0) return "";
            throw u.Error();
        }
        if (spec.Length == 0) return PyFormat.Str(value);
        var s = Spec.Parse(spec);
        switch (value)
        {
            case string text:
                if (s.Type is not (null or 's')) throw TemplateException.ValueError($"Unknown format code '{s.Type}' for object of type 'str'");
                if (s.Sign is not null) throw TemplateException.ValueError("Sign not allowed in string format specifier");
                if (s.Precision is { } p && p < PyStr.Length(text)) text = PyStr.Slice(text, new PySlice(null, (long)p, null));
                return Pad(text, s, '<');
            case long or bool:
                return FormatInteger(PyOps.AsLong(value), s);
            case double d:
                return FormatFloat(d, s);
            default:
                throw TemplateException.TypeError($"unsupported format string passed to {PyOps.TypeName(value)}.__format__");
        }
    }

    private static string FormatInteger(long value, Spec s)
    {
        if (s.Type is 'e' or 'E' or 'f' or 'F' or 'g' or 'G' or '%') return FormatFloat(value, s);
        if (s.Precision is not null) throw TemplateException.ValueError("Precision not allowed in integer format specifier");
        var magnitude = value == long.MinValue ? "9223372036854775808" : Math.Abs(value).ToString(CultureInfo.InvariantCulture);
        string prefix = "";
        switch (s.Type)
        {
            case null or 'd' or 'n': break;
            case 'x': magnitude = Convert.ToString(Math.Abs(value), 16); prefix = s.Alternate ? "0x" : ""; break;
            case 'X': magnitude = Convert.ToString(Math.Abs(value), 16).ToUpperInvariant(); prefix = s.Alternate ? "0X" : ""; break;
            case 'o': magnitude = Convert.ToString(Math.Abs(value), 8); prefix = s.Alternate ? "0o" : ""; break;
            case 'b': magnitude = Convert.ToString(Math.Abs(value), 2); prefix = s.Alternate ? "0b" : ""; break;
            case 'c': return Pad(Chr(value), s, '<');
            default: throw TemplateException.ValueError($"Unknown format code '{s.Type}' for object of type 'int'");
        }
        if (s.Grouping is { } g) magnitude = PyNumberFormat.Group(magnitude, g, s.Type is 'x' or 'X' or 'o' or 'b' ? 4 : 3);
        return PadNumber(value < 0, prefix + magnitude, s);
    }

    private static string FormatFloat(double value, Spec s)
    {
        // The digits after the point are written out: a huge precision is a huge string.
        if (s.Precision is { } digits) RenderState.ChargeString(digits, "the formatted number's digits");
        var negative = double.IsNegative(value) && !double.IsNaN(value);
        string body;
        if (double.IsNaN(value) || double.IsInfinity(value))
        {
            body = double.IsNaN(value) ? "nan" : "inf";
            if (s.Type is 'E' or 'F' or 'G') body = body.ToUpperInvariant();
            if (s.Type == '%') body += "%";
        }
        else
        {
            var magnitude = Math.Abs(value);
            body = s.Type switch
            {
                'f' or 'F' => PyNumberFormat.Fixed(magnitude, s.Precision ?? 6, s.Alternate),
                'e' or 'E' => PyNumberFormat.Exponent(magnitude, s.Precision ?? 6, s.Type == 'E', s.Alternate),
                'g' or 'G' or 'n' => PyNumberFormat.General(magnitude, s.Precision ?? 6, s.Type == 'G', s.Alternate),
                '%' => double.IsInfinity(magnitude * 100) ? "inf%" : PyNumberFormat.Fixed(magnitude * 100, s.Precision ?? 6, s.Alternate) + "%",
                null => s.Precision is { } p ? ShortGeneral(magnitude, p) : PyFormat.FloatRepr(magnitude),
                _ => throw TemplateException.ValueError($"Unknown format code '{s.Type}' for object of type 'float'"),
            };
            if (s.Grouping is { } g)
            {
                var end = 0;
                while (end < body.Length && char.IsDigit(body[end])) end++;
                body = PyNumberFormat.Group(body.Substring(0, end), g) + body.Substring(end);
            }
        }
        return PadNumber(negative, body, s);
    }

    // The empty presentation type with a precision: 'g' that keeps at least one digit after the point.
    private static string ShortGeneral(double magnitude, int precision)
    {
        var text = PyNumberFormat.General(magnitude, precision);
        return text.Contains('.') || text.Contains('e') || text.Contains("inf") ? text : text + ".0";
    }

    private static string PadNumber(bool negative, string body, Spec s)
    {
        var sign = negative ? "-" : s.Sign switch { '+' => "+", ' ' => " ", _ => "" };
        var align = s.Align ?? (s.ZeroPad ? '=' : '>');
        var fill = s.Fill ?? (s.ZeroPad && s.Align is null ? '0' : ' ');
        var width = s.Width ?? 0;
        var length = sign.Length + body.Length;
        if (length >= width) return sign + body;
        // '{:>2000000000}'.format(1): the width is charged before the padding exists.
        RenderState.ChargeString(width, "the formatted field");
        var padding = new string(fill, width - length);
        return align switch
        {
            '=' => sign + padding + body,
            '<' => sign + body + padding,
            '^' => padding.Substring(0, padding.Length / 2) + sign + body + padding.Substring(padding.Length / 2),
            _ => padding + sign + body,
        };
    }

    private static string Pad(string text, Spec s, char defaultAlign)
    {
        var width = s.Width ?? 0;
        var length = (int)PyStr.Length(text);
        if (length >= width) return text;
        var fill = s.Fill ?? ' ';
        var padding = width - length;
        RenderState.ChargeString(text.Length + (long)padding, "the formatted field");
        return (s.Align ?? defaultAlign) switch
        {
            '>' => new string(fill, padding) + text,
            '^' => new string(fill, padding / 2) + text + new string(fill, padding - padding / 2),
            '=' => throw TemplateException.ValueError("'=' alignment not allowed in string format specifier"),
            _ => text + new string(fill, padding),
        };
    }

    /// <summary>Python's chr() for the c format: any code point, a lone surrogate included; OverflowError outside the range.</summary>
    internal static string Chr(long codePoint) => codePoint switch
    {
        < 0 or > 0x10FFFF => throw new TemplateException(TemplateErrorKind.Overflow, "%c arg not in range(0x110000)"),
        < 0x10000 => ((char)codePoint).ToString(),
        _ => char.ConvertFromUtf32((int)codePoint),
    };

    /// <summary>A width or precision; CPython refuses one that does not fit its Py_ssize_t with this message.</summary>
    internal static int Number(ReadOnlySpan<char> digits) =>
        int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw TemplateException.ValueError("Too many decimal digits in format string");

    private sealed class Spec
    {
        public char? Fill;
        public char? Align;
        public char? Sign;
        public bool Alternate;
        public bool ZeroPad;
        public int? Width;
        public char? Grouping;
        public int? Precision;
        public char? Type;

        public static Spec Parse(string spec)
        {
            var s = new Spec();
            var i = 0;
            if (spec.Length >= 2 && spec[1] is '<' or '>' or '^' or '=')
            {
                s.Fill = spec[0];
                s.Align = spec[1];
                i = 2;
            }
            else if (spec.Length >= 1 && spec[0] is '<' or '>' or '^' or '=')
            {
                s.Align = spec[0];
                i = 1;
            }
            if (i < spec.Length && spec[i] is '+' or '-' or ' ') s.Sign = spec[i++];
            if (i < spec.Length && spec[i] == '#')
            {
                s.Alternate = true;
                i++;
            }
            if (i < spec.Length && spec[i] == '0')
            {
                s.ZeroPad = true;
                i++;
            }
            var start = i;
            while (i < spec.Length && char.IsAsciiDigit(spec[i])) i++;
            if (i > start) s.Width = Number(spec.AsSpan(start, i - start));
            if (i < spec.Length && spec[i] is ',' or '_') s.Grouping = spec[i++];
            if (i < spec.Length && spec[i] == '.')
            {
                i++;
                start = i;
                while (i < spec.Length && char.IsAsciiDigit(spec[i])) i++;
                if (i == start) throw TemplateException.ValueError("Format specifier missing precision");
                s.Precision = Number(spec.AsSpan(start, i - start));
            }
            if (i < spec.Length) s.Type = spec[i++];
            if (i < spec.Length) throw TemplateException.ValueError("Invalid format specifier");
            return s;
        }
    }
}

/// <summary>Python's printf-style <c>format % values</c> (and Jinja2's <c>format</c> filter).</summary>
internal static class PyPercentFormat
{
    public static string Format(string format, object? values)
    {
        object?[] positional = values is PyTuple tuple ? tuple.Items : new[] { values };
        var mapping = values as PyDict;
        var next = 0;
        var usedMapping = false;
        var sb = new StringBuilder();
        var i = 0;
        while (i < format.Length)
        {
            var c = format[i++];
            if (c != '%')
            {
                sb.Append(c);
                continue;
            }
            if (i >= format.Length) throw TemplateException.ValueError("incomplete format");
            object? argument = null;
            var haveArgument = false;
            if (format[i] == '(')
            {
                var close = format.IndexOf(')', i);
                if (close < 0) throw TemplateException.ValueError("incomplete format key");
                if (mapping is null) throw TemplateException.TypeError("format requires a mapping");
                var key = format.Substring(i + 1, close - i - 1);
                if (!mapping.TryGetValue(key, out argument)) throw new TemplateException(TemplateErrorKind.Lookup, PyFormat.Repr(key));
                haveArgument = true;
                usedMapping = true;
                i = close + 1;
            }
            var flags = "";
            while (i < format.Length && format[i] is '-' or '+' or ' ' or '#' or '0') flags += format[i++];
            int? width = null;
            if (i < format.Length && format[i] == '*')
            {
                width = (int)Math.Clamp(PyOps.ToIndex(Take(positional, ref next)), int.MinValue, int.MaxValue);
                if (width < 0)
                {
                    // Python: a negative '*' width means left alignment.
                    flags += "-";
                    width = width == int.MinValue ? int.MaxValue : -width;
                }
                i++;
            }
            else
            {
                var start = i;
                while (i < format.Length && char.IsAsciiDigit(format[i])) i++;
                if (i > start) width = PyStringFormat.Number(format.AsSpan(start, i - start));
            }
            int? precision = null;
            if (i < format.Length && format[i] == '.')
            {
                i++;
                if (i < format.Length && format[i] == '*')
                {
                    precision = (int)Math.Clamp(PyOps.ToIndex(Take(positional, ref next)), 0, int.MaxValue);
                    i++;
                }
                else
                {
                    var start = i;
                    while (i < format.Length && char.IsAsciiDigit(format[i])) i++;
                    precision = i > start ? PyStringFormat.Number(format.AsSpan(start, i - start)) : 0;
                }
            }
            while (i < format.Length && format[i] is 'h' or 'l' or 'L') i++;
            if (i >= format.Length) throw TemplateException.ValueError("incomplete format");
            var type = format[i++];
            if (type == '%')
            {
                sb.Append('%');
                continue;
            }
            if (!haveArgument) argument = mapping is not null && !usedMapping && positional.Length == 1 ? mapping : Take(positional, ref next);
            if (precision is { } digits && type is 'e' or 'E' or 'f' or 'F' or 'g' or 'G' or 'd' or 'i' or 'u')
                RenderState.ChargeString(digits, "the formatted number's digits");
            var converted = Convert(argument, type, flags, width, precision);
            RenderState.ChargeString(sb.Length + (long)converted.Length, "the formatted string");
            sb.Append(converted);
        }
        if (mapping is null && next < positional.Length)
            throw TemplateException.TypeError("not all arguments converted during string formatting");
        return sb.ToString();
    }

    private static object? Take(object?[] positional, ref int next) => next < positional.Length
        ? positional[next++]
        : throw TemplateException.TypeError("not enough arguments for format string");

    private static string Convert(object? argument, char type, string flags, int? width, int? precision)
    {
        var left = flags.Contains('-');
        var zero = flags.Contains('0') && !left;
        var sign = flags.Contains('+') ? "+" : flags.Contains(' ') ? " " : "";
        string body;
        var negative = false;
        var numeric = true;
        switch (type)
        {
            case 's' or 'r' or 'a':
                body = type == 's' ? PyFormat.Str(argument) : PyFormat.Repr(argument);
                if (precision is { } p && p < body.Length) body = body.Substring(0, p);
                numeric = false;
                break;
            case 'd' or 'i' or 'u':
                var integer = ToInteger(argument, type);
                negative = integer < 0;
                body = integer == long.MinValue ? "9223372036854775808" : Math.Abs(integer).ToString(CultureInfo.InvariantCulture);
                if (precision is { } dp && body.Length < dp) body = new string('0', dp - body.Length) + body;
                break;
            case 'x' or 'X' or 'o':
                var whole = ToInteger(argument, type);
                negative = whole < 0;
                body = System.Convert.ToString(Math.Abs(whole), type == 'o' ? 8 : 16);
                if (type == 'X') body = body.ToUpperInvariant();
                if (flags.Contains('#')) body = (type == 'o' ? "0o" : type == 'x' ? "0x" : "0X") + body;
                break;
            case 'e' or 'E' or 'f' or 'F' or 'g' or 'G':
                var real = ToReal(argument, type);
                negative = double.IsNegative(real) && !double.IsNaN(real);
                var alternate = flags.Contains('#');
                if (double.IsNaN(real) || double.IsInfinity(real)) body = double.IsNaN(real) ? "nan" : "inf";
                else body = type switch
                {
                    'e' or 'E' => PyNumberFormat.Exponent(real, precision ?? 6, type == 'E', alternate),
                    'f' or 'F' => PyNumberFormat.Fixed(real, precision ?? 6, alternate),
                    _ => PyNumberFormat.General(real, precision ?? 6, type == 'G', alternate),
                };
                if (type is 'E' or 'F' or 'G') body = body.ToUpperInvariant();
                break;
            case 'c':
                body = argument is string { Length: > 0 } ch ? ch : PyStringFormat.Chr(ToInteger(argument, type));
                numeric = false;
                break;
            default:
                throw TemplateException.ValueError($"unsupported format character {PyFormat.Repr(type.ToString())} (0x{(int)type:x})");
        }
        var signText = numeric ? (negative ? "-" : sign) : "";
        var length = signText.Length + body.Length;
        if (width is not { } w || length >= w) return signText + body;
        RenderState.ChargeString(w, "the formatted field");
        if (left) return signText + body + new string(' ', w - length);
        if (zero && numeric) return signText + new string('0', w - length) + body;
        return new string(' ', w - length) + signText + body;
    }

    private static long ToInteger(object? value, char type) => value switch
    {
        long or bool => PyOps.AsLong(value),
        double d when !double.IsNaN(d) && !double.IsInfinity(d) => (long)Math.Truncate(d),
        Undefined u => throw u.Error(),
        _ => throw TemplateException.TypeError($"%{type} format: a real number is required, not {PyOps.TypeName(value)}"),
    };

    private static double ToReal(object? value, char type) => value switch
    {
        long or bool or double => PyOps.AsDouble(value),
        Undefined u => throw u.Error(),
        _ => throw TemplateException.TypeError($"must be real number, not {PyOps.TypeName(value)}"),
    };
}
