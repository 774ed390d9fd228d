using System.Numerics;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// Exact digit automata for number ranges: integers written without leading zeros (and never
/// "-0") inside inclusive bounds, and decimals "int(.digits)?" inside bounds that are integers.
/// </summary>
internal static class DecimalRanges
{
    private static readonly ConstraintNode Digit = ConstraintNode.ByteRange((byte)'0', (byte)'9');
    private static readonly ConstraintNode NonZeroDigit = ConstraintNode.ByteRange((byte)'1', (byte)'9');
    private static readonly ConstraintNode Point = ConstraintNode.Literal(".");
    private static readonly ConstraintNode Minus = ConstraintNode.Literal("-");

    /// <summary>"." and one or more digits.</summary>
    public static ConstraintNode Fraction { get; } = ConstraintNode.Sequence(Point, ConstraintNode.Repeat(Digit, 1, -1, "a fraction"));

    /// <summary>A fraction with some non-zero digit: the value lies strictly above its integer part.</summary>
    private static readonly ConstraintNode NonZeroFraction = ConstraintNode.Sequence(Point,
        ConstraintNode.Repeat(Digit, 0, -1, "a fraction"), NonZeroDigit, ConstraintNode.Repeat(Digit, 0, -1, "a fraction"));

    /// <summary>A fraction of zeros only: the value equals its integer part.</summary>
    private static readonly ConstraintNode ZeroFraction = ConstraintNode.Sequence(Point, ConstraintNode.Repeat(ConstraintNode.Literal("0"), 1, -1, "a fraction"));

    /// <summary>Integers in [<paramref name="lo"/>, <paramref name="hi"/>]; null is unbounded.</summary>
    public static ConstraintNode Integers(BigInteger? lo, BigInteger? hi)
    {
        var branches = new List<ConstraintNode>();
        if (hi is null || hi >= 0)
            branches.Add(NonNegative(lo is { } l && l > 0 ? l : 0, hi));
        if (lo is null || lo < 0)
        {
            BigInteger magnitudeLo = hi is { } h && h < 0 ? -h : 1;
            branches.Add(ConstraintNode.Sequence(Minus, NonNegative(magnitudeLo, lo is { } l2 ? -l2 : null)));
        }
        return ConstraintNode.Choice(branches);
    }

    /// <summary>
    /// Decimals v with lo &lt;(=) v &lt;(=) hi for integer bounds (null: unbounded), written
    /// -?int(.digits)? with no exponent; negative zero is never written.
    /// </summary>
    public static ConstraintNode Decimals(BigInteger? lo, bool loOpen, BigInteger? hi, bool hiOpen)
    {
        var branches = new List<ConstraintNode>();
        // v >= 0 part.
        if (hi is null || hi > 0 || (hi == 0 && !hiOpen))
        {
            bool fromAbove = lo is { } l && l >= 0;
            branches.Add(NonNegativeDecimals(fromAbove ? lo!.Value : 0, fromAbove && loOpen, hi, hiOpen));
        }
        // v < 0 part: "-" and a magnitude m = -v > 0.
        if (lo is null || lo < 0)
        {
            bool belowZero = hi is { } h && h < 0;
            var magnitudeLo = belowZero ? -hi!.Value : 0;
            bool magnitudeLoOpen = belowZero ? hiOpen : true;
            branches.Add(ConstraintNode.Sequence(Minus, NonNegativeDecimals(magnitudeLo, magnitudeLoOpen, lo is { } l2 ? -l2 : null, loOpen)));
        }
        return ConstraintNode.Choice(branches);
    }

    private static ConstraintNode NonNegativeDecimals(BigInteger a, bool aOpen, BigInteger? b, bool bOpen)
    {
        if (b is { } bb && (bb < a || (bb == a && (aOpen || bOpen)))) return ConstraintNode.Nothing;
        if (b == a) return ConstraintNode.Sequence(Literal(a), ConstraintNode.Optional(ZeroFraction));
        var branches = new List<ConstraintNode>
        {
            ConstraintNode.Sequence(Literal(a), aOpen ? NonZeroFraction : ConstraintNode.Optional(Fraction)),
        };
        if (b is null || b.Value - a >= 2)
            branches.Add(ConstraintNode.Sequence(NonNegative(a + 1, b - 1), ConstraintNode.Optional(Fraction)));
        if (b is { } end && !bOpen)
            branches.Add(ConstraintNode.Sequence(Literal(end), ConstraintNode.Optional(ZeroFraction)));
        return ConstraintNode.Choice(branches);
    }

    private static ConstraintNode Literal(BigInteger value) => ConstraintNode.Literal(value.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Non-negative integers in [a, b] (b null: unbounded), no leading zeros.</summary>
    public static ConstraintNode NonNegative(BigInteger a, BigInteger? b)
    {
        if (b is { } end && end < a) return ConstraintNode.Nothing;
        string low = a.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var branches = new List<ConstraintNode>();
        int maxLength = b is { } e ? e.ToString(System.Globalization.CultureInfo.InvariantCulture).Length : low.Length;
        for (int length = low.Length; length <= maxLength; length++)
        {
            BigInteger lengthLo = length == 1 ? 0 : BigInteger.Pow(10, length - 1);
            BigInteger lengthHi = BigInteger.Pow(10, length) - 1;
            var lo = BigInteger.Max(a, lengthLo);
            var hi = b is { } bound ? BigInteger.Min(bound, lengthHi) : lengthHi;
            if (lo > hi) continue;
            branches.Add(SameLength(Pad(lo, length), Pad(hi, length)));
        }
        if (b is null)
        {
            // Every number with more digits than the lower bound.
            branches.Add(ConstraintNode.Sequence(NonZeroDigit, ConstraintNode.Repeat(Digit, low.Length, -1, "an unbounded integer")));
        }
        return ConstraintNode.Choice(branches);
    }

    private static string Pad(BigInteger value, int length) => value.ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(length, '0');

    /// <summary>Digit strings of one length between lo and hi inclusive (lexicographic = numeric).</summary>
    private static ConstraintNode SameLength(string lo, string hi)
    {
        if (lo.Length == 0) return ConstraintNode.Empty;
        if (lo == hi) return ConstraintNode.Literal(lo);
        bool loMin = lo.AsSpan(1).IndexOfAnyExcept('0') < 0;
        bool hiMax = hi.AsSpan(1).IndexOfAnyExcept('9') < 0;
        int rest = lo.Length - 1;
        if (lo[0] == hi[0])
            return ConstraintNode.Sequence(ConstraintNode.Literal(lo[..1]), SameLength(lo[1..], hi[1..]));
        var branches = new List<ConstraintNode>();
        char firstFull = loMin ? lo[0] : (char)(lo[0] + 1);
        char lastFull = hiMax ? hi[0] : (char)(hi[0] - 1);
        if (!loMin)
            branches.Add(ConstraintNode.Sequence(ConstraintNode.Literal(lo[..1]), SameLength(lo[1..], new string('9', rest))));
        if (firstFull <= lastFull)
            branches.Add(ConstraintNode.Sequence(ConstraintNode.ByteRange((byte)firstFull, (byte)lastFull), ConstraintNode.Repeat(Digit, rest, rest, "digits")));
        if (!hiMax)
            branches.Add(ConstraintNode.Sequence(ConstraintNode.Literal(hi[..1]), SameLength(new string('0', rest), hi[1..])));
        return ConstraintNode.Choice(branches);
    }
}
