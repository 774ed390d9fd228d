using Xunit;

namespace MLNetGpt.Tests.Quantization;

public sealed class QuantizationOptionsTests
{
    [Fact]
    public void The_defaults_are_4_bits_blocks_of_32_with_zero_points_and_accuracy_level_4()
    {
        var options = new QuantizationOptions();
        Assert.Equal((4, 32, false, 4), (options.Bits, options.BlockSize, options.Symmetric, options.AccuracyLevel));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(16)]
    public void Bits_other_than_4_or_8_are_refused_naming_the_option_and_the_value(int bits)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new QuantizationOptions { Bits = bits });
        Assert.Equal("Bits", error.ParamName);
        Assert.StartsWith($"Bits must be 4 or 8, not {bits}.", error.Message);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(0)]
    [InlineData(-32)]
    [InlineData(48)]
    public void A_block_size_that_is_not_a_power_of_two_of_at_least_16_is_refused(int size)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new QuantizationOptions { BlockSize = size });
        Assert.Equal("BlockSize", error.ParamName);
        Assert.StartsWith($"BlockSize must be a power of two of at least 16 (16, 32, 64, ...), not {size}.", error.Message);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(5)]
    public void An_accuracy_level_outside_0_to_4_is_refused(int level)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new QuantizationOptions { AccuracyLevel = level });
        Assert.Equal("AccuracyLevel", error.ParamName);
        Assert.StartsWith($"AccuracyLevel must be 0, 1, 2, 3 or 4, not {level}.", error.Message);
    }

    [Fact]
    public void Valid_values_are_kept()
    {
        var options = new QuantizationOptions { Bits = 8, BlockSize = 256, Symmetric = true, AccuracyLevel = 0 };
        Assert.Equal((8, 256, true, 0), (options.Bits, options.BlockSize, options.Symmetric, options.AccuracyLevel));
    }
}
