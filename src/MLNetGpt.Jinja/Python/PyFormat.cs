using System.Globalization;
using System.Text;

namespace MLNetGpt.Chat;

/// <summary>Python's <c>str()</c> and <c>repr()</c> of template values, byte for byte.</summary>
internal static class PyFormat
{
    /// <summary>Python's <c>str(value)</c>, which is what <c>{{ value }}</c> prints (Undefined prints nothing).</summary>
    public static string Str(object? value) => value switch
    {
        string s => s,
        null => "None",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        Undefined => "",
        _ => Repr(value),
    };

    public static string Repr(object? value)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, value, 0);
        RenderState.ChargeString(sb.Length, "the printed value");
        return sb.ToString();
    }

    public static void AppendRepr(StringBuilder sb, object? value) => AppendRepr(sb, value, 0);

    /// <summary>
    /// Refuses a printed form before it outgrows one value: a list holding one long string a million times would
    /// otherwise be written out in full before anything looked at its size.
    /// </summary>
    private static void Guard(StringBuilder sb, long adding)
    {
        long limit = (RenderState.Current?.Limits ?? TemplateLimits.Default).MaxValueLength;
        if (sb.Length + adding > limit) RenderState.ChargeString(sb.Length + adding, "the printed value");
    }

    private static void AppendRepr(StringBuilder sb, object? value, int depth)
    {
        switch (value)
        {
            case string s:
                Guard(sb, s.Length + 2);
                AppendStringRepr(sb, s);
                Guard(sb, 0);
                break;
            case null: sb.Append("None"); break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FloatRepr(d)); break;
            case Undefined: sb.Append("Undefined"); break;
            case PyList list:
                sb.Append('[');
                AppendItems(sb, list.Items, depth);
                sb.Append(']');
                break;
            case PyTuple tuple:
                sb.Append('(');
                AppendItems(sb, tuple.Items, depth);
                if (tuple.Count == 1) sb.Append(',');
                sb.Append(')');
                break;
            case PyDict dict:
                AppendDict(sb, dict, depth);
                break;
            case Namespace ns:
                sb.Append("<Namespace ");
                AppendDict(sb, ns.Attributes, depth);
                sb.Append('>');
                break;
            case DictView view:
                sb.Append(view.TypeName).Append("([");
                AppendItems(sb, view.Iterate().ToList(), depth);
                sb.Append("])");
                break;
            case PyRange range:
                sb.Append("range(").Append(range.Start).Append(", ").Append(range.Stop);
                if (range.Step != 1) sb.Append(", ").Append(range.Step);
                sb.Append(')');
                break;
            case LoopContext loop:
                sb.Append("<LoopContext ").Append(loop.Index).Append('/').Append(loop.Length).Append('>');
                break;
            case Macro macro:
                sb.Append("<Macro ").Append(Repr(macro.Name)).Append('>');
                break;
            case BuiltinFunction f:
                // CPython adds the object's address here; templates cannot rely on it, so none is invented.
                sb.Append(f.IsMethod ? $"<built-in method {f.Name} of {PyOps.TypeName(f.Self)} object>" : $"<function {f.Name}>");
                break;
            case PyIterator it:
                sb.Append('<').Append(it.TypeName).Append(" object>");
                break;
            default:
                sb.Append('<').Append(PyOps.ObjectTypeRepr(value)).Append('>');
                break;
        }
    }

    private static void AppendItems(StringBuilder sb, IReadOnlyList<object?> items, int depth)
    {
        // CPython's repr recurses through nested containers (RecursionError past its limit); so does this, as far as
        // the depth guard allows.
        RenderState.EnsureValueDepth(depth + 1, "while getting the repr of an object");
        for (var i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                Guard(sb, 2);
                sb.Append(", ");
            }
            AppendRepr(sb, items[i], depth + 1);
        }
    }

    private static void AppendDict(StringBuilder sb, PyDict dict, int depth)
    {
        RenderState.EnsureValueDepth(depth + 1, "while getting the repr of an object");
        sb.Append('{');
        var first = true;
        foreach (var (key, item) in dict.Entries)
        {
            Guard(sb, 4);
            if (!first) sb.Append(", ");
            first = false;
            AppendRepr(sb, key, depth + 1);
            sb.Append(": ");
            AppendRepr(sb, item, depth + 1);
        }
        sb.Append('}');
    }

    /// <summary>
    /// CPython's unicode_repr: single quotes unless the text holds a single quote and no double quote; printable
    /// characters (non-ASCII included) kept, the rest escaped as \xhh, \uhhhh or \Uhhhhhhhh.
    /// </summary>
    public static void AppendStringRepr(StringBuilder sb, string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == quote || c == '\\')
            {
                sb.Append('\\').Append(c);
                continue;
            }
            switch (c)
            {
                case '\t': sb.Append("\\t"); continue;
                case '\n': sb.Append("\\n"); continue;
                case '\r': sb.Append("\\r"); continue;
            }
            if (c < ' ' || c == '\x7f')
            {
                sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                continue;
            }
            if (c < '\x7f')
            {
                sb.Append(c);
                continue;
            }
            int codePoint = c;
            var width = 1;
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                codePoint = char.ConvertToUtf32(c, s[i + 1]);
                width = 2;
            }
            if (PyStr.IsPrintable(codePoint)) sb.Append(s, i, width);
            else if (codePoint < 0x100) sb.Append("\\x").Append(codePoint.ToString("x2", CultureInfo.InvariantCulture));
            else if (codePoint < 0x10000) sb.Append("\\u").Append(codePoint.ToString("x4", CultureInfo.InvariantCulture));
            else sb.Append("\\U").Append(codePoint.ToString("x8", CultureInfo.InvariantCulture));
            i += width - 1;
        }
        sb.Append(quote);
    }

    /// <summary>
    /// Python's <c>float.__repr__</c>: the shortest digits that round-trip, positional between 1e-4 and 1e16,
    /// scientific outside (<c>1e-05</c>, <c>1e+16</c>), always with a fractional part or an exponent.
    /// </summary>
    public static string FloatRepr(double value)
    {
        if (double.IsNaN(value)) return "nan";
        if (double.IsPositiveInfinity(value)) return "inf";
        if (double.IsNegativeInfinity(value)) return "-inf";
        if (value == 0) return double.IsNegative(value) ? "-0.0" : "0.0";
        var (negative, digits, decimalPoint) = ShortestDigits(value);
        var sb = new StringBuilder();
        if (negative) sb.Append('-');
        if (decimalPoint <= -4 || decimalPoint > 16)
        {
            sb.Append(digits[0]);
            if (digits.Length > 1) sb.Append('.').Append(digits, 1, digits.Length - 1);
            var exponent = decimalPoint - 1;
            sb.Append('e').Append(exponent < 0 ? '-' : '+').Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
        }
        else if (decimalPoint <= 0)
            sb.Append("0.").Append('0', -decimalPoint).Append(digits);
        else if (decimalPoint >= digits.Length)
            sb.Append(digits).Append('0', decimalPoint - digits.Length).Append(".0");
        else
            sb.Append(digits, 0, decimalPoint).Append('.').Append(digits, decimalPoint, digits.Length - decimalPoint);
        return sb.ToString();
    }

    /// <summary>The shortest round-trip significant digits of a finite non-zero double and the position of the decimal point.</summary>
    public static (bool Negative, string Digits, int DecimalPoint) ShortestDigits(double value)
    {
        // .NET Core 3.0 and later print the shortest round-trippable form with "R".
        var text = value.ToString("R", CultureInfo.InvariantCulture);
        var negative = text[0] == '-';
        if (negative) text = text.Substring(1);
        var exponent = 0;
        var e = text.IndexOfAny(new[] { 'E', 'e' });
        if (e >= 0)
        {
            exponent = int.Parse(text.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            text = text.Substring(0, e);
        }
        var dot = text.IndexOf('.');
        var integerPart = dot >= 0 ? text.Substring(0, dot) : text;
        var fraction = dot >= 0 ? text.Substring(dot + 1) : "";
        var digits = integerPart + fraction;
        var decimalPoint = integerPart.Length + exponent;
        var leading = 0;
        while (leading < digits.Length - 1 && digits[leading] == '0') leading++;
        digits = digits.Substring(leading);
        decimalPoint -= leading;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        return (negative, digits, decimalPoint);
    }
}
