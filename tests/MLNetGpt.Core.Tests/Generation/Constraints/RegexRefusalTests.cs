using Xunit;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>Every refused regex feature is reported with its name and position.</summary>
public sealed class RegexRefusalTests
{
    [Theory]
    [InlineData(@"abc\1", @"regex: a backreference (\1) at position 3 is not supported; supported: literals, escapes, classes, '.', '|', groups, ?, *, +, {m,n}")]
    [InlineData(@"(?<x>a)\k<x>", @"a backreference (\k<name>) at position 7 is not supported")]
    [InlineData(@"a(?=b)", "a lookahead (?= at position 1 is not supported")]
    [InlineData(@"a(?!b)", "a lookahead (?! at position 1 is not supported")]
    [InlineData(@"(?<=a)b", "a lookbehind (?<= at position 0 is not supported")]
    [InlineData(@"(?<!a)b", "a lookbehind (?<! at position 0 is not supported")]
    [InlineData(@"\bword", @"a word boundary (\b) at position 0 is not supported")]
    [InlineData(@"x\B", @"a word boundary (\B) at position 1 is not supported")]
    [InlineData(@"\p{L}+", @"a Unicode category (\p{..}) at position 0 is not supported")]
    [InlineData(@"\P{Lu}", @"a Unicode category (\P{..}) at position 0 is not supported")]
    [InlineData(@"(?i)abc", "inline flags (?i at position 0 is not supported")]
    [InlineData(@"(?i:abc)", "inline flags (?i at position 0 is not supported")]
    [InlineData(@"a*+", "a possessive quantifier (*+) at position 1 is not supported")]
    [InlineData(@"a{2}+", "a possessive quantifier ({2}+) at position 1 is not supported")]
    [InlineData(@"a^b", "an anchor '^' (allowed only at the very start) at position 1 is not supported")]
    [InlineData(@"a$b", "an anchor '$' (allowed only at the very end) at position 1 is not supported")]
    [InlineData(@"\Aabc", @"an anchor (\A) at position 0 is not supported")]
    [InlineData(@"abc\z", @"an anchor (\z) at position 3 is not supported")]
    [InlineData(@"(?>ab)", "an atomic group (?> at position 0 is not supported")]
    [InlineData(@"(?(a)b|c)", "a conditional (?( at position 0 is not supported")]
    [InlineData(@"(?#note)a", "a comment group (?# at position 0 is not supported")]
    [InlineData(@"[a-z-[aeiou]]", "a class subtraction (-[...]) at position 4 is not supported")]
    [InlineData(@"[[:alpha:]]", "a POSIX class ([:name:]) at position 1 is not supported")]
    [InlineData(@"\012", @"an octal escape (\01...) at position 0 is not supported")]
    [InlineData(@"\q", @"the escape \q at position 0 is not supported")]
    public void A_refused_regex_feature_is_named_with_its_position(string pattern, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.Regex(pattern));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("regex: ", e.Message);
    }

    [Theory]
    [InlineData("(ab", "regex: the group opened at position 0 is not closed.")]
    [InlineData("ab)", "regex: an unmatched ')' at position 2.")]
    [InlineData("[ab", "regex: the class opened at position 0 is not closed.")]
    [InlineData("*a", "regex: the quantifier '*' at position 0 has nothing to repeat.")]
    [InlineData("{2}a", "regex: the quantifier '{2}' at position 0 has nothing to repeat.")]
    [InlineData("a**", "regex: a nested quantifier '*' at position 2 (a quantifier after '*').")]
    [InlineData("a{5,2}", "regex: the repetition {5,2} at position 1 has its maximum below its minimum.")]
    [InlineData("[z-a]", "regex: the class range z-a at position 1 is in reverse order.")]
    [InlineData(@"\x4", @"regex: the escape \x at position 0 needs 2 hexadecimal digits.")]
    [InlineData(@"\uD800", @"regex: the escape \uD800 at position 0 is a lone surrogate, which UTF-8 text cannot hold.")]
    [InlineData(@"ab\", @"regex: the pattern ends with a lone '\' at position 2.")]
    [InlineData(@"[^\x00-\u{10FFFF}]", @"regex: the escape \u at position 7 needs 4 hexadecimal digits.")]
    public void A_malformed_pattern_is_reported_with_the_position(string pattern, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.Regex(pattern));
        Assert.Equal(expected, e.Message);
    }

    [Fact]
    public void A_pattern_that_matches_nothing_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.Regex(@"[^\s\S]"));
        Assert.Equal(@"regex: the pattern '[^\s\S]' matches no string.", e.Message);
    }

    [Fact]
    public void A_repetition_too_large_for_the_automaton_is_named()
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.Regex("x(ab{1000}){200}"));
        Assert.StartsWith("regex: the automaton would need 200,202 states, more than the limit of 100,000; the repetition {200} at position 11 makes it that large", e.Message);
        var single = Assert.Throws<ArgumentException>(() => OutputConstraint.Regex("[a-z]{200000}"));
        Assert.Contains("the repetition {200000} at position 5 makes it that large", single.Message);
    }

    [Fact]
    public void A_pattern_whose_lazy_automaton_outgrows_its_limit_fails_with_a_clear_message()
    {
        // "an 'a' 17 characters from the end" needs one DFA state per window of 18 characters: 262,144 of them.
        var dfa = OutputConstraint.Regex("[ab]*a[ab]{17}").Automaton;
        var random = new Random(1);
        int state = dfa.Start;
        var e = Assert.Throws<InvalidOperationException>(() =>
        {
            for (int i = 0; i < 10_000_000; i++) state = dfa.Next(state, random.Next(2) == 0 ? (byte)'a' : (byte)'b');
        });
        Assert.Equal("The constraint's automaton grew past 200,000 states; the pattern is too ambiguous to run.", e.Message);
    }

    [Fact]
    public void A_brace_that_is_no_quantifier_is_a_literal_as_in_dotnet()
    {
        Assert.True(OutputConstraint.Regex("a{b").Accepts("a{b"));
        Assert.True(OutputConstraint.Regex("a{,2}").Accepts("a{,2}"));
        Assert.Matches("^a{,2}$", "a{,2}");
    }
}
