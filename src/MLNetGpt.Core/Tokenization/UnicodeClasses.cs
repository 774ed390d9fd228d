using System.Globalization;
using System.Text;

namespace MLNetGpt.Tokenization;

/// <summary>
/// The character classes Hugging Face tokenizers tests with Rust's own definitions (not .NET's,
/// which differ at the edges: .NET's <c>\w</c> leaves out spacing marks and letter numbers,
/// <c>char.IsWhiteSpace</c> is UTF-16 based). Every predicate takes a Unicode scalar value.
/// </summary>
internal static class UnicodeClasses
{
    /// <summary>Rust's <c>char::is_whitespace</c>: the Unicode White_Space property.</summary>
    public static bool IsWhiteSpace(int c) => c switch
    {
        >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or >= 0x2000 and <= 0x200A or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };

    /// <summary>
    /// The <c>regex</c> crate's Unicode <c>\w</c> (used by added tokens' <c>single_word</c> and the
    /// Whitespace pre-tokenizer): Alphabetic, marks, decimal digits, connector punctuation and the
    /// joiners. Alphabetic is the letters, letter numbers and Other_Alphabetic, whose members
    /// outside the marks are the circled and squared Latin letters.
    /// </summary>
    public static bool IsWordCharacter(int c)
    {
        if (c is 0x200C or 0x200D or >= 0x24B6 and <= 0x24E9 or >= 0x1F130 and <= 0x1F149 or >= 0x1F150 and <= 0x1F169 or >= 0x1F170 and <= 0x1F189)
            return true;
        return Category(c) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.LetterNumber
                or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation => true,
            _ => false,
        };
    }

    /// <summary>Rust's <c>char::is_numeric</c>: the Nd, Nl and No categories.</summary>
    public static bool IsNumeric(int c) =>
        Category(c) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    /// <summary>The Punctuation pre-tokenizer's test: ASCII punctuation (symbols such as <c>$+&lt;=&gt;^`|~</c> included) or a P* category.</summary>
    public static bool IsPunctuation(int c)
    {
        if (c < 0x80) return c is >= 0x21 and <= 0x2F or >= 0x3A and <= 0x40 or >= 0x5B and <= 0x60 or >= 0x7B and <= 0x7E;
        return Category(c) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;
    }

    /// <summary>StripAccents' test: General_Category Mark (Mn, Mc, Me).</summary>
    public static bool IsCombiningMark(int c) =>
        Category(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark;

    private static UnicodeCategory Category(int c) => CharUnicodeInfo.GetUnicodeCategory(c);

    /// <summary>The scalar value at <paramref name="index"/> and how many UTF-16 units it takes (a lone surrogate counts as U+FFFD).</summary>
    public static (int Value, int Length) ScalarAt(ReadOnlySpan<char> text, int index)
    {
        char c = text[index];
        if (char.IsHighSurrogate(c) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
            return (char.ConvertToUtf32(c, text[index + 1]), 2);
        return (char.IsSurrogate(c) ? 0xFFFD : c, 1);
    }

    /// <summary>The text with every lone surrogate replaced by U+FFFD, as UTF-8 encoding would (the same string when there is none).</summary>
    public static string WithoutLoneSurrogates(string text)
    {
        int i = 0;
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (!char.IsSurrogate(c)) continue;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            break;
        }
        if (i == text.Length) return text;
        var builder = new StringBuilder(text.Length);
        for (int j = 0; j < text.Length;)
        {
            var (value, length) = ScalarAt(text, j);
            builder.Append(Rune.IsValid(value) ? new Rune(value).ToString() : "\uFFFD");
            j += length;
        }
        return builder.ToString();
    }
}
