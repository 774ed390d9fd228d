using Xunit;

namespace MLNetGpt.Tests.Infrastructure;

public static class Tolerance
{
    /// <summary>Relative tolerance for logits against torch (fp32 on both sides).</summary>
    public const double Relative = 1e-4;

    /// <summary>Asserts |actual - expected| &lt;= Relative * max(|expected|, 1).</summary>
    public static void Close(double expected, double actual, string what)
    {
        if (double.IsNegativeInfinity(expected) && double.IsNegativeInfinity(actual)) return;
        double allowed = Relative * Math.Max(Math.Abs(expected), 1.0);
        Assert.True(Math.Abs(actual - expected) <= allowed,
            $"{what}: expected {expected:R}, got {actual:R} (difference {Math.Abs(actual - expected):E2} > {allowed:E2})");
    }
}
