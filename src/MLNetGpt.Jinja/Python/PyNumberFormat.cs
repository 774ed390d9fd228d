using System.Globalization;
using System.Numerics;
using System.Text;

namespace MLNetGpt.Chat;

/// <summary>
/// Fixed and exponent notation of doubles as C's printf (and so Python) produces them: from the exact binary value,
/// rounded half to even. .NET's own "F"/"E" round exact ties away from zero ('%.0f' % 2.5 is "2" in Python).
/// </summary>
internal static class PyNumberFormat
{
    /// <summary>The exact decimal expansion of a finite non-negative double: digits and the number of them after the point.</summary>
    private static (BigInteger Digits, int Scale) Exact(double value)
    {
        var bits = BitConverter.DoubleToInt64Bits(value);
        var exponent = (int)((bits >> 52) & 0x7FF);
        var mantissa = bits & 0xFFFFFFFFFFFFFL;
        if (exponent == 0) exponent = 1;
        else mantissa |= 1L << 52;
        exponent -= 1075;
        if (exponent >= 0) return (new BigInteger(mantissa) << exponent, 0);
        return (new BigInteger(mantissa) * BigInteger.Pow(5, -exponent), -exponent);
    }

    /// <summary>Rounds digits/10^scale to <paramref name="places"/> decimals, half to even.</summary>
    private static BigInteger RoundTo(BigInteger digits, int scale, int places)
    {
        if (places >= scale) return digits * BigInteger.Pow(10, places - scale);
        var divisor = BigInteger.Pow(10, scale - places);
        var quotient = BigInteger.DivRem(digits, divisor, out var remainder);
        var twice = remainder * 2;
        if (twice > divisor || (twice == divisor && !quotient.IsEven)) quotient += 1;
        return quotient;
    }

    // A double's exact decimal expansion ends within 1,074 places after the point and holds at most 767 significant
    // digits: every digit past these is a zero, written out without big-integer arithmetic (which grows
    // quadratically with the digits a huge precision would ask of it).
    private const int MaxExactPlaces = 1100;
    private const int MaxExactDigits = 800;

    /// <summary>printf's %.Nf of |value| (the caller adds the sign).</summary>
    public static string Fixed(double value, int precision, bool alternate = false)
    {
        if (precision > MaxExactPlaces) return Fixed(value, MaxExactPlaces, alternate) + new string('0', precision - MaxExactPlaces);
        value = Math.Abs(value);
        var (digits, scale) = Exact(value);
        var rounded = RoundTo(digits, scale, precision).ToString(CultureInfo.InvariantCulture);
        if (precision == 0) return alternate ? rounded + "." : rounded;
        if (rounded.Length <= precision) rounded = new string('0', precision - rounded.Length + 1) + rounded;
        return rounded.Substring(0, rounded.Length - precision) + "." + rounded.Substring(rounded.Length - precision);
    }

    /// <summary>printf's %.Ne of |value|: one digit, the point, N digits, e±XX.</summary>
    public static string Exponent(double value, int precision, bool upper = false, bool alternate = false)
    {
        value = Math.Abs(value);
        var (mantissa, exponent) = SignificantDigits(value, precision + 1);
        var sb = new StringBuilder();
        sb.Append(mantissa[0]);
        if (precision > 0 || alternate) sb.Append('.');
        sb.Append(mantissa, 1, mantissa.Length - 1);
        sb.Append(upper ? 'E' : 'e').Append(exponent < 0 ? '-' : '+').Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <summary>|value| rounded to <paramref name="count"/> significant digits: the digits and the decimal exponent of the first.</summary>
    public static (string Digits, int Exponent) SignificantDigits(double value, int count)
    {
        if (value == 0) return (new string('0', count), 0);
        if (count > MaxExactDigits)
        {
            var (exactDigits, firstExponent) = SignificantDigits(value, MaxExactDigits);
            return (exactDigits + new string('0', count - MaxExactDigits), firstExponent);
        }
        var (digits, scale) = Exact(value);
        var text = digits.ToString(CultureInfo.InvariantCulture);
        var exponent = text.Length - 1 - scale;
        var places = count - 1 - exponent;
        var rounded = RoundTo(digits, scale, places).ToString(CultureInfo.InvariantCulture);
        if (rounded.Length > count)
        {
            exponent++;
            rounded = rounded.Substring(0, count);
        }
        return (rounded, exponent);
    }

    /// <summary>printf's %.Ng: fixed or exponent by the exponent, trailing zeros removed unless alternate.</summary>
    public static string General(double value, int precision, bool upper = false, bool alternate = false)
    {
        if (precision == 0) precision = 1;
        var (_, exponent) = SignificantDigits(Math.Abs(value), precision);
        string text;
        if (exponent >= -4 && exponent < precision) text = Fixed(value, precision - 1 - exponent, alternate);
        else text = Exponent(value, precision - 1, upper, alternate);
        if (alternate) return text;
        var e = text.IndexOfAny(new[] { 'e', 'E' });
        var body = e >= 0 ? text.Substring(0, e) : text;
        var tail = e >= 0 ? text.Substring(e) : "";
        if (body.Contains('.')) body = body.TrimEnd('0').TrimEnd('.');
        return body + tail;
    }

    /// <summary>Python's round(value, digits) for a float: correctly rounded, half to even on the exact value.</summary>
    public static double Round(double value, long digits)
    {
        if (double.IsNaN(value) || double.IsInfinity(value) || value == 0) return value;
        if (digits > 330) return value;
        if (digits < -330) return Math.CopySign(0.0, value);
        string text;
        if (digits >= 0) text = Fixed(value, (int)digits);
        else
        {
            var (exact, scale) = Exact(Math.Abs(value));
            var unit = BigInteger.Pow(10, (int)-digits);
            var divisor = unit * BigInteger.Pow(10, scale);
            var quotient = BigInteger.DivRem(exact, divisor, out var remainder);
            var twice = remainder * 2;
            if (twice > divisor || (twice == divisor && !quotient.IsEven)) quotient += 1;
            text = (quotient * unit).ToString(CultureInfo.InvariantCulture);
        }
        var result = double.Parse(text, CultureInfo.InvariantCulture);
        return value < 0 ? -result : result;
    }

    /// <summary>Digits of an integer with a thousands separator every three.</summary>
    public static string Group(string digits, char separator, int every = 3)
    {
        if (digits.Length <= every) return digits;
        var sb = new StringBuilder();
        var first = digits.Length % every;
        if (first > 0) sb.Append(digits, 0, first);
        for (var i = first; i < digits.Length; i += every)
        {
            if (sb.Length > 0) sb.Append(separator);
            sb.Append(digits, i, every);
        }
        return sb.ToString();
    }
}
