using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tokenization;
using Xunit;
using Xunit.Abstractions;

namespace MLNetGpt.Tests.Tokenization;

/// <summary>
/// The translation of tokenizer.json regular expressions (Oniguruma) to .NET: the spelling of each
/// construct, and the pieces a Split cuts with it against Hugging Face's tokenizers, which compiles
/// the same pattern with Oniguruma. The cut is made visible by a ByteLevel step that puts a space in
/// front of every piece (and, for Removed, by what disappears).
/// </summary>
public sealed class OnigRegexTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("a?+b", "(?>a?)b")]
    [InlineData(@"\p{L}++x", @"(?>(?:[\p{L}]|(?=[\uD800-\uDBFF])")]
    [InlineData("(?:ab)*+", "(?>(?:ab)*)")]
    [InlineData(@"\d{1,3}+", @"(?:(?:[\d]|")]
    [InlineData("a{,3}", "a{0,3}")]
    [InlineData("(?i:'s|'t)", @"(?i:'[sS\u017F]|'t)")]
    [InlineData(@"\x{41}", @"\u0041")]
    [InlineData(@"\x{1F600}", @"(?:\uD83D\uDE00)")]
    [InlineData(@"\h", "[0-9a-fA-F]")]
    [InlineData(@"\w", @"(?:[\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\u24B6-\u24E9]|")]
    [InlineData(@"[^\s\p{L}]", @"(?:[^\s\p{L}\uD800-\uDFFF]|")]
    public void Each_oniguruma_construct_is_spelled_as_dotnet_matches_it(string pattern, string expectedStart) =>
        Assert.StartsWith(expectedStart, OnigRegex.Translate(pattern));

    [Fact]
    public void A_category_matches_characters_above_the_basic_multilingual_plane_whole()
    {
        var letters = OnigRegex.Create(@"\p{L}+");
        Assert.Equal("a𝔘𝔫b", letters.Match("1a𝔘𝔫b2").Value);
        var symbols = OnigRegex.Create(@"[^\s\p{L}\p{N}]+");
        Assert.Equal("🎉🎉", symbols.Match("x🎉🎉y").Value);
        Assert.Equal("🎉", OnigRegex.Create(".").Match("🎉").Value);
        Assert.Equal("𝟏𝟐", OnigRegex.Create(@"\d+").Match("x𝟏𝟐").Value);      // mathematical digits are Nd
    }

    [Theory]
    [InlineData("^a", "'^' (a line anchor in Oniguruma) has no translation")]
    [InlineData("a$", "'$' (a line anchor in Oniguruma) has no translation")]
    [InlineData("[a-z&&[^aeiou]]", "the class intersection '&&' at 4 has no translation")]
    [InlineData(@"\p{Greek}", @"the property \p{Greek} has no translation (general categories only)")]
    [InlineData(@"a\Kb", @"the escape '\K' at 1 has no translation")]
    [InlineData(@"\R", @"the escape '\R' at 0 has no translation")]
    [InlineData("(?m:.)", "the option 'm' in '(?m:.)' has no translation")]
    [InlineData(@"[\W]", @"'\W' inside a class (at 1) has no translation")]
    public void A_construct_without_a_translation_is_refused_naming_it(string pattern, string expected) =>
        Assert.Equal(expected, Assert.Throws<FormatException>(() => OnigRegex.Translate(pattern)).Message);

    public static TheoryData<string> Patterns() => new()
    {
        // GPT-4o / o200k's split.
        """[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
        // Possessive forms.
        """[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s*[\r\n]|\s+(?!\S)|\s""",
        // An atomic group that can never give back, so \p{L}+\p{Ll} inside it always fails.
        """(?>\p{L}+)\p{Ll}|\p{L}+|\d+|\S""",
        // DeepSeek V3's CJK run and punctuation-led words.
        """[一-龥぀-ゟ゠-ヿ]+|[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
        // Case-insensitive contractions (Oniguruma folds the Kelvin sign and the long s, and ß to ss).
        """(?i:'s|'t|'re|'ve|'m|'ll|'d|k|ss)""",
        // Shorthands and word boundaries with Oniguruma's Unicode \w.
        """\b\w+\b|\W+""",
        """\h+|\H""",
        // Astral ranges and the dot.
        """[\x{1F600}-\x{1F64F}]+|\x{1F44D}|.""",
        // Empty matches (Oniguruma's iterator skips one right where the last match ended).
        """\p{N}{,2}""",
        """x*""",
    };

    [Theory]
    [MemberData(nameof(Patterns))]
    public void A_translated_pattern_cuts_text_where_hugging_face_tokenizers_cuts_it(string pattern)
    {
        var extra = new[]
        {
            "It's THE Kelvin K and the long ſ: 'ſ 'K 'S 'ss 'SS", "a𝔘𝔫𝔦b 𝟏𝟐𝟑 🄰🄱 😀😃 👍 🎉x", "Hello World hello WORLD HeLLo", "漢字かなカナ mixed 中文",
            "x1 22 333 4444 55555", "  \n\n  \t\r\n  ", "deadBEEF 0x1F", "\"quoted\" (paren) [bracket] {brace} ~tilde",
        };
        var corpus = HuggingFaceParityTests.Corpus().Where((_, i) => i % 8 == 0).Concat(extra).ToList();
        foreach (string behavior in new[] { "Isolated", "Removed" })
        {
            var document = SyntheticTokenizers.ByteLevelBpe();
            document["pre_tokenizer"] = JsonNode.Parse($$"""
                {"type":"Sequence","pretokenizers":[
                  {"type":"Split","pattern":{"Regex":{{JsonSerializer.Serialize(pattern)}}},"behavior":"{{behavior}}","invert":false},
                  {"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":false}]}
                """);
            var report = ParityRun.Run(document.Write("regex"), corpus, randomSequences: 0);
            output.WriteLine($"{behavior}: {report.Summary}");
            Assert.True(report.Failures.Count == 0, $"{pattern} ({behavior}): {report.Summary}\n{string.Join("\n", report.Failures.Take(8))}");
        }
    }
}
