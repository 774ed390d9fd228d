using System.Text;
using MLNetGpt.Generation.Constraints;
using Xunit;
using DotNetRegex = System.Text.RegularExpressions.Regex;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>The regex automaton against .NET's own Regex engine on random and mutated strings.</summary>
public sealed class RegexConstraintTests
{
    /// <summary>
    /// Our pattern; the same language in .NET syntax (ASCII classes spelled out, since .NET's \d and
    /// \w are Unicode); whether to compare only strings without astral characters (where the
    /// pattern has '.' or a negated class, which in .NET match one UTF-16 unit, not one code point).
    /// </summary>
    public static readonly TheoryData<string, string, bool> Patterns = new()
    {
        { @"[a-c]+(x|yz)*\d{2,4}", "[a-c]+(x|yz)*[0-9]{2,4}", false },
        { @"(?<year>\d{4})-(0[1-9]|1[0-2])-\d\d", "(?<year>[0-9]{4})-(0[1-9]|1[0-2])-[0-9][0-9]", false },
        { @"[^,\n]{1,5}(,[^,\n]{1,5}){0,3}", @"[^,\n]{1,5}(,[^,\n]{1,5}){0,3}", true },
        { @".{2,6}", ".{2,6}", true },
        { @"[é日-本\u00C0-\u00FF]+[ -~]?", @"[é日-本\u00C0-\u00FF]+[ -~]?", false },
        { @"(ab|a)*?b+?c??", "(ab|a)*?b+?c??", false },
        { @"\w+@\w+\.(com|org)", @"[A-Za-z0-9_]+@[A-Za-z0-9_]+\.(com|org)", false },
        { @"\s*\S+\s*", @"[ \t\n\v\f\r]*[^ \t\n\v\f\r]+[ \t\n\v\f\r]*", true },
        { @"^\x41\u00e9[\x00-\x1f]?\\\.\/\-\t$", @"\x41\u00e9[\x00-\x1f]?\\\.\/\-\t", false },
        { @"(😀|[\u4e00-\u4e0f]){1,3}z{0,2}", @"(😀|[\u4e00-\u4e0f]){1,3}z{0,2}", false },
        { @"a{3}b{2,}c{0,2}|(?:x{2})+", "a{3}b{2,}c{0,2}|(?:x{2})+", false },
        { @"[\d\-+.]{1,3}[^\d\sa-z]", @"[0-9\-+.]{1,3}[^0-9 \t\n\v\f\ra-z]", true },
    };

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Automaton_membership_agrees_with_dotnet_regex_on_random_walks_and_mutations(string pattern, string dotNetPattern, bool bmpOnly)
    {
        var constraint = OutputConstraint.Regex(pattern);
        var reference = new DotNetRegex("^(?:" + dotNetPattern + @")\z");
        var random = new Random(pattern.Length * 7919);
        int compared = 0, accepted = 0;
        var seen = new HashSet<string>();
        for (int i = 0; i < 3000; i++)
        {
            string text = Encoding.UTF8.GetString(ConstraintTestKit.RandomWalk(constraint.Automaton, random));
            if (i % 2 == 1) text = ConstraintTestKit.Mutate(text, random);
            if (bmpOnly && ConstraintTestKit.HasAstral(text)) continue;
            bool expected = reference.IsMatch(text);
            Assert.True(expected == constraint.Accepts(text),
                $"'{Escape(text)}': .NET says {(expected ? "match" : "no match")}, the automaton the opposite (pattern {pattern}).");
            compared++;
            if (expected) accepted++;
            seen.Add(text);
        }
        Assert.True(compared > 2000, $"only {compared} strings compared");
        Assert.InRange(accepted, compared / 4, compared - compared / 50);   // both sides of the boundary are exercised
    }

    [Fact]
    public void Multi_byte_class_ranges_accept_every_character_of_the_range_and_nothing_next_to_it()
    {
        // Ranges crossing UTF-8 length boundaries (1-2, 2-3, 3-4 bytes) and the surrogate gap.
        var constraint = OutputConstraint.Regex(@"[\x70-\u0100\u07F0-\u0810\uD7F0-\uE010\uFFF0-\uFFFF]");
        for (int cp = 0; cp <= 0x11000; cp++)
        {
            if (cp is >= 0xD800 and <= 0xDFFF) continue;
            bool inside = cp is >= 0x70 and <= 0x100 or >= 0x7F0 and <= 0x810 or >= 0xD7F0 and <= 0xE010 or >= 0xFFF0 and <= 0xFFFF;
            Assert.True(inside == constraint.Accepts(char.ConvertFromUtf32(cp)), $"U+{cp:X4}");
        }
    }

    [Fact]
    public void Dot_and_negated_classes_match_one_code_point_including_astral_ones()
    {
        Assert.True(OutputConstraint.Regex(".").Accepts("😀"));
        Assert.False(OutputConstraint.Regex(".").Accepts("😀😀"));
        Assert.True(OutputConstraint.Regex("[^a]").Accepts("\U0010FFFF"));
        Assert.False(OutputConstraint.Regex(".").Accepts("\n"));
        Assert.True(OutputConstraint.Regex("\\uD83D\\uDE00").Accepts("😀"));
    }

    [Fact]
    public void A_character_split_across_pieces_is_accepted_byte_by_byte()
    {
        var dfa = OutputConstraint.Regex("日本").Automaton;
        var bytes = Encoding.UTF8.GetBytes("日本");
        int state = dfa.Start;
        for (int i = 0; i < bytes.Length; i++)
        {
            state = dfa.Next(state, bytes[i]);
            Assert.NotEqual(ByteDfa.Dead, state);
            Assert.Equal(bytes.Length - i - 1, dfa.MinBytesToAccept(state));
        }
        Assert.True(dfa.IsAccepting(state));
        Assert.False(dfa.HasContinuation(state));
    }

    [Fact]
    public void State_facts_report_acceptance_continuation_and_the_shortest_completion()
    {
        var dfa = OutputConstraint.Regex("ab{2,}|abc").Automaton;
        Assert.Equal(3, dfa.MinBytesToAccept(dfa.Start));
        int a = dfa.Next(dfa.Start, (byte)'a');
        int ab = dfa.Next(a, (byte)'b');
        int abc = dfa.Next(ab, (byte)'c');
        int abb = dfa.Next(ab, (byte)'b');
        Assert.False(dfa.IsAccepting(ab));
        Assert.True(dfa.IsAccepting(abc));
        Assert.False(dfa.HasContinuation(abc));
        Assert.True(dfa.IsAccepting(abb));
        Assert.True(dfa.HasContinuation(abb));
        Assert.Equal(ByteDfa.Dead, dfa.Next(abc, (byte)'b'));
        Assert.Equal(int.MaxValue, dfa.MinBytesToAccept(ByteDfa.Dead));
    }

    [Fact]
    public void Many_threads_reading_one_lazy_automaton_agree_with_a_single_thread()
    {
        const string pattern = @"([a-f]{2}|[0-9]x)*[^q]{0,3}";
        var texts = Enumerable.Range(0, 2000).Select(i => Encoding.UTF8.GetString(ConstraintTestKit.RandomWalk(
            OutputConstraint.Regex(pattern).Automaton, new Random(i)))).Select((t, i) => i % 3 == 0 ? ConstraintTestKit.Mutate(t, new Random(i)) : t).ToArray();
        var single = OutputConstraint.Regex(pattern);
        var expected = texts.Select(single.Accepts).ToArray();
        var shared = OutputConstraint.Regex(pattern);
        var results = new bool[texts.Length];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => results[i] = shared.Accepts(texts[i]));
        Assert.Equal(expected, results);
    }

    private static string Escape(string text) => string.Concat(text.Select(c => c < ' ' || c > '~' ? $"\\u{(int)c:X4}" : c.ToString()));
}
