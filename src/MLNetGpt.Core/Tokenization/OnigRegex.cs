using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace MLNetGpt.Tokenization;

/// <summary>
/// Translates the regular expressions of tokenizer.json files (written for Oniguruma, which Hugging
/// Face tokenizers compiles them with) into .NET regular expressions with the same matches.
/// </summary>
/// <remarks>
/// <para>What changes: possessive quantifiers (<c>a++</c>, <c>a?+</c>, <c>a*+</c>) become atomic groups,
/// while <c>a{n,m}+</c> repeats the interval as Oniguruma reads it; <c>{,n}</c> becomes <c>{0,n}</c>;
/// <c>\x{...}</c> becomes <c>\uXXXX</c>; Oniguruma's Unicode <c>\w</c> (Alphabetic, marks, decimal digits,
/// connector punctuation), <c>\h</c> (hex digit) and <c>\b</c> are spelled out; under <c>(?i)</c> the letters
/// s and k also match 'ſ' and the Kelvin sign, and "ss", "st", "ff", "fi", "fl", "ffi", "ffl" also match the
/// character that folds to them (ß, the ligatures), as Oniguruma's case folding does.</para>
/// <para>Code points above U+FFFF: Oniguruma matches them as one character, .NET as two surrogates
/// that belong to no letter or number class. So every class, property, shorthand and <c>.</c> gets
/// its astral members as surrogate-pair alternatives, and the BMP part never matches a lone
/// surrogate: <c>\p{L}</c> matches 𝔘, <c>[^\s\p{L}]</c> matches 🎉 whole.</para>
/// <para>Refused, naming the construct: line anchors (<c>^</c>, <c>$</c>), nested or intersected
/// classes, POSIX brackets, <c>\W</c>/<c>\H</c> inside a class, properties other than general
/// categories (scripts, blocks), <c>\K</c>, <c>\R</c>, <c>\X</c>, subexpression calls and options
/// other than i and x (Oniguruma's m, "dot matches newline", included).</para>
/// </remarks>
internal static class OnigRegex
{
    // Oniguruma's Unicode \w: Alphabetic (letters, letter numbers, Other_Alphabetic: marks and the circled and
    // squared Latin letters), marks, decimal digits and connector punctuation; not No (①), not the joiners.
    private const string Word = @"\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\u24B6-\u24E9";
    private const string Surrogates = @"\uD800-\uDFFF";
    private const string AnyPair = @"[\uD800-\uDBFF][\uDC00-\uDFFF]";

    private static readonly UnicodeCategory[] WordCategories =
    [
        UnicodeCategory.UppercaseLetter, UnicodeCategory.LowercaseLetter, UnicodeCategory.TitlecaseLetter, UnicodeCategory.ModifierLetter,
        UnicodeCategory.OtherLetter, UnicodeCategory.NonSpacingMark, UnicodeCategory.SpacingCombiningMark, UnicodeCategory.EnclosingMark,
        UnicodeCategory.DecimalDigitNumber, UnicodeCategory.LetterNumber, UnicodeCategory.ConnectorPunctuation,
    ];

    private static readonly Lazy<AstralSet> WordAstral = new(() => AstralSet.Of(WordCategories)
        .Union(AstralSet.Range(0x1F130, 0x1F149)).Union(AstralSet.Range(0x1F150, 0x1F169)).Union(AstralSet.Range(0x1F170, 0x1F189)));

    // Property names Oniguruma and .NET both know, by Oniguruma's spelling (case, spaces,
    // underscores and hyphens ignored), mapped to .NET's general category names.
    private static readonly Dictionary<string, string[]> Properties = BuildProperties();

    /// <summary>A compiled .NET regex that matches what Oniguruma matches for <paramref name="pattern"/>.</summary>
    /// <exception cref="FormatException">The pattern uses a construct without a translation (the message names it) or is not a valid regex.</exception>
    public static Regex Create(string pattern)
    {
        string translated = Translate(pattern);
        try
        {
            // A generous limit: a tokenizer file is untrusted, and a pathological pattern must not hang encoding.
            return new Regex(translated, RegexOptions.CultureInvariant | RegexOptions.Compiled, TimeSpan.FromSeconds(10));
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"it is not a valid regular expression ({e.Message})", e);
        }
    }

    /// <summary>The .NET spelling of <paramref name="pattern"/>.</summary>
    /// <exception cref="FormatException">The pattern uses a construct without a translation; the message names it.</exception>
    public static string Translate(string pattern)
    {
        var output = new StringBuilder(pattern.Length + 16);
        var groupStarts = new Stack<int>();
        // Case-insensitivity per group, restored at its end: Oniguruma folds 'ſ' to 's' and 'K' (Kelvin) to 'k', .NET's ignore-case does not.
        var caseScopes = new Stack<bool>();
        bool ignoreCase = false;
        int atomStart = -1;         // where the last complete atom begins in the output (for possessive quantifiers)
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            switch (c)
            {
                case '\\':
                    atomStart = output.Length;
                    i = Escape(pattern, i, output);
                    break;
                case '[':
                    atomStart = output.Length;
                    i = CharacterClass(pattern, i, output);
                    break;
                case '.':
                    atomStart = output.Length;
                    output.Append($"(?:[^\\n{Surrogates}]|{AnyPair})");
                    i++;
                    break;
                case '(':
                    {
                        int depth = groupStarts.Count;
                        i = OpenGroup(pattern, i, output, groupStarts, out bool isGroup, out bool? caseOption);
                        if (groupStarts.Count > depth) caseScopes.Push(ignoreCase);
                        if (caseOption is bool option) ignoreCase = option;
                        if (!isGroup) atomStart = -1;
                        break;
                    }
                case ')':
                    if (groupStarts.Count == 0) throw new FormatException($"the ')' at {i} closes no group");
                    output.Append(')');
                    atomStart = groupStarts.Pop();
                    ignoreCase = caseScopes.Pop();
                    i++;
                    break;
                case '*' or '+' or '?':
                    i = Quantifier(pattern, i, output, atomStart);
                    break;
                case '{' when IsInterval(pattern, i, out _):
                    i = Quantifier(pattern, i, output, atomStart);
                    break;
                case '^' or '$':
                    throw new FormatException($"'{c}' (a line anchor in Oniguruma) has no translation");
                case '|':
                    output.Append('|');
                    atomStart = -1;
                    i++;
                    break;
                default:
                    atomStart = output.Length;
                    if (char.IsHighSurrogate(c) && i + 1 < pattern.Length && char.IsLowSurrogate(pattern[i + 1]))
                    {
                        // One character for Oniguruma, two UTF-16 units for .NET: grouped so a quantifier takes both.
                        output.Append("(?:").Append(c).Append(pattern[i + 1]).Append(')');
                        i += 2;
                    }
                    else if (ignoreCase && MultiCharFold(pattern, i) is var (length, alternatives))
                    {
                        // Oniguruma's case folding also matches "ss" with ß, "fi" with ﬁ and the like: one unit here.
                        string letters = string.Concat(pattern.AsSpan(i, length).ToArray().Select(ch => ch is 's' or 'S' ? @"[sS\u017F]" : ch.ToString()));
                        output.Append("(?:").Append(letters).Append('|').Append(alternatives).Append(')');
                        i += length;
                    }
                    else
                    {
                        // Without IgnorePatternWhitespace .NET reads '#' and white space literally, as Oniguruma does.
                        output.Append(!ignoreCase ? c.ToString() : c switch
                        {
                            's' or 'S' => @"[sS\u017F]",
                            'k' or 'K' => @"[kK\u212A]",
                            _ => c.ToString(),
                        });
                        i++;
                    }
                    break;
            }
        }
        if (groupStarts.Count > 0) throw new FormatException("a group is not closed");
        return output.ToString();
    }

    // Letter sequences that a single character folds to (Unicode's full case folding), and those characters.
    private static readonly (string Letters, string Characters)[] MultiCharFolds =
    [
        ("ffi", "\uFB03"), ("ffl", "\uFB04"), ("ss", "\u00DF\u1E9E"), ("st", "\uFB05\uFB06"), ("ff", "\uFB00"), ("fi", "\uFB01"), ("fl", "\uFB02"),
    ];

    /// <summary>A letter sequence at <paramref name="i"/> that a ligature or ß folds to (not followed by a quantifier), with the characters as a class.</summary>
    private static (int Length, string Class)? MultiCharFold(string pattern, int i)
    {
        foreach (var (letters, characters) in MultiCharFolds)
        {
            if (i + letters.Length > pattern.Length || !pattern.AsSpan(i, letters.Length).Equals(letters, StringComparison.OrdinalIgnoreCase)) continue;
            int next = i + letters.Length;
            if (next < pattern.Length && (pattern[next] is '*' or '+' or '?' || (pattern[next] == '{' && IsInterval(pattern, next, out _)))) continue;
            return (letters.Length, $"[{characters}]");
        }
        return null;
    }

    /// <summary>A set of characters as .NET regex: the BMP part (never a lone surrogate) and the astral members as pairs.</summary>
    private static string Set(string body, bool negated, AstralSet astral)
    {
        // Subtracting the surrogates costs .NET its fast class checks, so it is done only where the class could match one.
        string? bmp = negated ? $"[^{body}{Surrogates}]" : body.Length == 0 ? null : MatchesSurrogates(body) ? $"[{body}-[{Surrogates}]]" : $"[{body}]";
        if (astral.IsEmpty) return bmp ?? "(?!)";
        // The pairs only after a look at the next unit: most text has no surrogates, and a class miss stays one check.
        string pairs = $"(?=[\\uD800-\\uDBFF]){astral.ToRegex()}";
        return bmp is null ? $"(?:{pairs})" : $"(?:{bmp}|{pairs})";
    }

    private static bool MatchesSurrogates(string body)
    {
        var regex = new Regex($"[{body}]", RegexOptions.CultureInvariant);
        return regex.IsMatch("\uD800") || regex.IsMatch("\uDBFF") || regex.IsMatch("\uDC00") || regex.IsMatch("\uDFFF");
    }

    private static int OpenGroup(string pattern, int i, StringBuilder output, Stack<int> groupStarts, out bool isGroup, out bool? ignoreCase)
    {
        isGroup = true;
        ignoreCase = null;
        if (i + 1 >= pattern.Length || pattern[i + 1] != '?')
        {
            groupStarts.Push(output.Length);
            output.Append('(');
            return i + 1;
        }
        string rest = pattern[(i + 2)..];
        foreach (string kind in new[] { ":", "=", "!", "<=", "<!", ">" })
        {
            if (rest.StartsWith(kind, StringComparison.Ordinal))
            {
                groupStarts.Push(output.Length);
                output.Append("(?").Append(kind);
                return i + 2 + kind.Length;
            }
        }
        if (rest.StartsWith('#'))
        {
            int end = pattern.IndexOf(')', i);
            if (end < 0) throw new FormatException("a (?# comment is not closed");
            isGroup = false;
            return end + 1;
        }
        if (rest.StartsWith('<'))
        {
            int end = pattern.IndexOf('>', i);
            string name = end < 0 ? "" : pattern[(i + 3)..end];
            if (name.Length == 0 || !name.All(ch => char.IsAsciiLetterOrDigit(ch) || ch == '_') || char.IsAsciiDigit(name[0]))
                throw new FormatException($"the group at {i} ('{Excerpt(pattern, i)}') has no translation");
            groupStarts.Push(output.Length);
            output.Append("(?<").Append(name).Append('>');
            return end + 1;
        }
        // Options: (?imx-imx) for the rest of the group, or (?imx-imx:...) for a group.
        int j = i + 2;
        var options = new StringBuilder();
        bool off = false;
        while (j < pattern.Length && pattern[j] is not (':' or ')'))
        {
            char option = pattern[j];
            if (option == '-') off = true;
            if (option == 'i') ignoreCase = !off;
            options.Append(option switch
            {
                'i' => 'i',
                'x' => 'x',
                '-' => '-',
                _ => throw new FormatException($"the option '{option}' in '{Excerpt(pattern, i)}' has no translation"),
            });
            j++;
        }
        if (j >= pattern.Length) throw new FormatException($"the group at {i} is not closed");
        if (pattern[j] == ')')
        {
            isGroup = false;
            output.Append("(?").Append(options).Append(')');
            return j + 1;
        }
        groupStarts.Push(output.Length);
        output.Append("(?").Append(options).Append(':');
        return j + 1;
    }

    private static int Quantifier(string pattern, int i, StringBuilder output, int atomStart)
    {
        if (atomStart < 0) throw new FormatException($"the quantifier at {i} ('{Excerpt(pattern, i)}') follows nothing it could repeat");
        char c = pattern[i];
        if (c == '{')
        {
            IsInterval(pattern, i, out int end);
            string body = pattern[(i + 1)..end];
            output.Append('{').Append(body.StartsWith(',') ? "0" + body : body).Append('}');
            i = end + 1;
            if (i < pattern.Length && pattern[i] == '+')
            {
                // Not possessive after an interval in Oniguruma's syntax: "x{1,3}+" repeats the interval, (?:x{1,3})+.
                output.Insert(atomStart, "(?:");
                output.Append(")+");
                return i + 1;
            }
        }
        else
        {
            output.Append(c);
            i++;
        }
        if (i < pattern.Length && pattern[i] == '?')
        {
            output.Append('?');
            i++;
        }
        else if (i < pattern.Length && pattern[i] == '+')
        {
            // Possessive: once matched, never given back; .NET spells it as an atomic group.
            output.Insert(atomStart, "(?>");
            output.Append(')');
            i++;
        }
        return i;
    }

    /// <summary>Whether a '{' at <paramref name="i"/> opens an interval ({n}, {n,}, {n,m}, {,m}) rather than a literal brace.</summary>
    private static bool IsInterval(string pattern, int i, out int end)
    {
        end = pattern.IndexOf('}', i);
        if (end < 0) return false;
        string body = pattern[(i + 1)..end];
        int comma = body.IndexOf(',');
        static bool Digits(string s) => s.Length > 0 && s.All(char.IsAsciiDigit);
        return comma < 0 ? Digits(body)
            : (Digits(body[..comma]) || comma == 0) && (comma == body.Length - 1 ? comma > 0 : Digits(body[(comma + 1)..]));
    }

    private static int Escape(string pattern, int i, StringBuilder output)
    {
        if (i + 1 >= pattern.Length) throw new FormatException("the pattern ends with a lone backslash");
        char e = pattern[i + 1];
        switch (e)
        {
            case 'w':
                output.Append(Set(Word, false, WordAstral.Value));
                return i + 2;
            case 'W':
                output.Append(Set(Word, true, WordAstral.Value.Complement()));
                return i + 2;
            case 'd':
                output.Append(Set(@"\d", false, AstralSet.Of(UnicodeCategory.DecimalDigitNumber)));
                return i + 2;
            case 'D':
                output.Append(Set(@"\d", true, AstralSet.Of(UnicodeCategory.DecimalDigitNumber).Complement()));
                return i + 2;
            case 's':
                output.Append(@"\s");
                return i + 2;
            case 'S':
                output.Append(Set(@"\s", true, AstralSet.All));
                return i + 2;
            case 'h':
                output.Append("[0-9a-fA-F]");
                return i + 2;
            case 'H':
                output.Append(Set("0-9a-fA-F", true, AstralSet.All));
                return i + 2;
            case 'p' or 'P':
                {
                    int end = Property(pattern, i, out string body, out bool negated, out AstralSet astral);
                    output.Append(Set(body, negated, negated ? astral.Complement() : astral));
                    return end;
                }
            case 'b':
                {
                    string w = Set(Word, false, WordAstral.Value);
                    output.Append($"(?:(?<={w})(?!{w})|(?<!{w})(?={w}))");
                    return i + 2;
                }
            case 'B':
                {
                    string w = Set(Word, false, WordAstral.Value);
                    output.Append($"(?:(?<={w})(?={w})|(?<!{w})(?!{w}))");
                    return i + 2;
                }
            case 'A' or 'z' or 'Z' or 'G':
                output.Append('\\').Append(e);
                return i + 2;
            case >= '1' and <= '9':
                output.Append('\\').Append(e);
                return i + 2;
            default:
                {
                    int end = Literal(pattern, i, out int value);
                    if (value > 0xFFFF)
                    {
                        string pair = char.ConvertFromUtf32(value);
                        output.Append($"(?:\\u{(int)pair[0]:X4}\\u{(int)pair[1]:X4})");
                    }
                    else output.Append($"\\u{value:X4}");
                    return end;
                }
        }
    }

    /// <summary>One literal character at <paramref name="i"/> (an escape or a plain character, a surrogate pair as one), as a code point.</summary>
    private static int Literal(string pattern, int i, out int value)
    {
        char c = pattern[i];
        if (c != '\\')
        {
            if (char.IsHighSurrogate(c) && i + 1 < pattern.Length && char.IsLowSurrogate(pattern[i + 1]))
            {
                value = char.ConvertToUtf32(c, pattern[i + 1]);
                return i + 2;
            }
            value = c;
            return i + 1;
        }
        if (i + 1 >= pattern.Length) throw new FormatException("the pattern ends with a lone backslash");
        char e = pattern[i + 1];
        switch (e)
        {
            case 't': value = '\t'; return i + 2;
            case 'n': value = '\n'; return i + 2;
            case 'r': value = '\r'; return i + 2;
            case 'f': value = '\f'; return i + 2;
            case 'v': value = '\v'; return i + 2;
            case 'a': value = '\a'; return i + 2;
            case 'e': value = 0x1B; return i + 2;
            case 'x' when i + 2 < pattern.Length && pattern[i + 2] == '{':
                {
                    int end = pattern.IndexOf('}', i);
                    if (end < 0 || !int.TryParse(pattern.AsSpan(i + 3, end - i - 3), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
                        || value > 0x10FFFF || value is >= 0xD800 and <= 0xDFFF)
                        throw new FormatException($"'{Excerpt(pattern, i)}' is not a valid \\x{{...}} escape");
                    return end + 1;
                }
            case 'x':
                return Hex(pattern, i + 2, 2, out value);
            case 'u':
                return Hex(pattern, i + 2, 4, out value);
            case '0':
                {
                    int j = i + 2;
                    value = 0;
                    while (j < pattern.Length && j < i + 4 && pattern[j] is >= '0' and <= '7') value = value * 8 + (pattern[j++] - '0');
                    return j;
                }
            default:
                if (char.IsAsciiLetterOrDigit(e))
                    throw new FormatException($"the escape '\\{e}' at {i} has no translation");
                if (char.IsHighSurrogate(e) && i + 2 < pattern.Length && char.IsLowSurrogate(pattern[i + 2]))
                {
                    value = char.ConvertToUtf32(e, pattern[i + 2]);
                    return i + 3;
                }
                value = e;      // an escaped punctuation character stands for itself
                return i + 2;
        }
    }

    private static int Hex(string pattern, int start, int digits, out int value)
    {
        if (start + digits > pattern.Length
            || !int.TryParse(pattern.AsSpan(start, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value))
            throw new FormatException($"'{Excerpt(pattern, start - 2)}' is not a valid hexadecimal escape");
        return start + digits;
    }

    private static int CharacterClass(string pattern, int i, StringBuilder output)
    {
        int open = i;
        var body = new StringBuilder();
        var astral = AstralSet.Empty;
        i++;
        bool negated = false;
        if (i < pattern.Length && pattern[i] == '^')
        {
            negated = true;
            i++;
        }
        bool first = true;
        while (true)
        {
            if (i >= pattern.Length) throw new FormatException($"the character class at {open} is not closed");
            char c = pattern[i];
            if (c == ']' && !first) break;
            first = false;
            if (c == '[') throw new FormatException($"the nested or POSIX class at {i} ('{Excerpt(pattern, i)}') has no translation");
            if (c == '&' && i + 1 < pattern.Length && pattern[i + 1] == '&') throw new FormatException($"the class intersection '&&' at {i} has no translation");
            if (c == '\\' && i + 1 < pattern.Length && pattern[i + 1] is 'w' or 'd' or 'D' or 's' or 'S' or 'h' or 'p' or 'P' or 'W' or 'H')
            {
                char e = pattern[i + 1];
                switch (e)
                {
                    case 'w':
                        body.Append(Word);
                        astral = astral.Union(WordAstral.Value);
                        break;
                    case 'd':
                        body.Append(@"\d");
                        astral = astral.Union(AstralSet.Of(UnicodeCategory.DecimalDigitNumber));
                        break;
                    case 'D':
                        body.Append(@"\D");
                        astral = astral.Union(AstralSet.Of(UnicodeCategory.DecimalDigitNumber).Complement());
                        break;
                    case 's':
                        body.Append(@"\s");
                        break;
                    case 'S':
                        body.Append(@"\S");
                        astral = AstralSet.All;
                        break;
                    case 'h':
                        body.Append("0-9a-fA-F");
                        break;
                    case 'p' or 'P':
                        {
                            i = Property(pattern, i, out string property, out bool propertyNegated, out var set);
                            body.Append(property.Replace(@"\p{", propertyNegated ? @"\P{" : @"\p{", StringComparison.Ordinal));
                            if (propertyNegated && property.Count(ch => ch == '{') > 1)
                                throw new FormatException($"the negated property at {i} stands for several categories, which a class cannot negate one by one");
                            astral = astral.Union(propertyNegated ? set.Complement() : set);
                            continue;
                        }
                    default:
                        throw new FormatException($"'\\{e}' inside a class (at {i}) has no translation");
                }
                i += 2;
                continue;
            }
            // A literal, or a range of two literals.
            int next = Literal(pattern, i, out int from);
            int to = from;
            if (next + 1 < pattern.Length && pattern[next] == '-' && pattern[next + 1] != ']')
                next = Literal(pattern, next + 1, out to);
            if (to < from) throw new FormatException($"the range at {i} in the class goes backwards");
            if (from <= 0xFFFF)
            {
                body.Append($"\\u{from:X4}");
                if (to > from) body.Append($"-\\u{Math.Min(to, 0xFFFF):X4}");
            }
            if (to > 0xFFFF) astral = astral.Union(AstralSet.Range(Math.Max(from, AstralSet.First), to));
            i = next;
        }
        output.Append(Set(body.ToString(), negated, negated ? astral.Complement() : astral));
        return i + 1;
    }

    /// <summary>Reads <c>\p{...}</c> or <c>\P{...}</c>: the .NET class body (positive), whether it is negated, and the property's astral members.</summary>
    private static int Property(string pattern, int i, out string body, out bool negated, out AstralSet astral)
    {
        negated = pattern[i + 1] == 'P';
        if (i + 2 >= pattern.Length || pattern[i + 2] != '{') throw new FormatException($"'{Excerpt(pattern, i)}' names no property in braces");
        int end = pattern.IndexOf('}', i);
        if (end < 0) throw new FormatException($"the property at {i} is not closed");
        string name = pattern[(i + 3)..end];
        if (name.StartsWith('^'))
        {
            negated = !negated;
            name = name[1..];
        }
        if (!Properties.TryGetValue(Canonical(name), out var categories))
            throw new FormatException($"the property \\p{{{name}}} has no translation (general categories only)");
        body = string.Concat(categories.Select(category => $@"\p{{{category}}}"));
        astral = AstralSet.Of(categories.SelectMany(Expand).ToArray());
        return end + 1;
    }

    private static IEnumerable<UnicodeCategory> Expand(string category) =>
        Enum.GetValues<UnicodeCategory>().Where(c => Abbreviation(c).StartsWith(category, StringComparison.Ordinal));

    private static string Abbreviation(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => "Lu", UnicodeCategory.LowercaseLetter => "Ll", UnicodeCategory.TitlecaseLetter => "Lt",
        UnicodeCategory.ModifierLetter => "Lm", UnicodeCategory.OtherLetter => "Lo",
        UnicodeCategory.NonSpacingMark => "Mn", UnicodeCategory.SpacingCombiningMark => "Mc", UnicodeCategory.EnclosingMark => "Me",
        UnicodeCategory.DecimalDigitNumber => "Nd", UnicodeCategory.LetterNumber => "Nl", UnicodeCategory.OtherNumber => "No",
        UnicodeCategory.ConnectorPunctuation => "Pc", UnicodeCategory.DashPunctuation => "Pd", UnicodeCategory.OpenPunctuation => "Ps",
        UnicodeCategory.ClosePunctuation => "Pe", UnicodeCategory.InitialQuotePunctuation => "Pi", UnicodeCategory.FinalQuotePunctuation => "Pf",
        UnicodeCategory.OtherPunctuation => "Po",
        UnicodeCategory.MathSymbol => "Sm", UnicodeCategory.CurrencySymbol => "Sc", UnicodeCategory.ModifierSymbol => "Sk", UnicodeCategory.OtherSymbol => "So",
        UnicodeCategory.SpaceSeparator => "Zs", UnicodeCategory.LineSeparator => "Zl", UnicodeCategory.ParagraphSeparator => "Zp",
        UnicodeCategory.Control => "Cc", UnicodeCategory.Format => "Cf", UnicodeCategory.Surrogate => "Cs", UnicodeCategory.PrivateUse => "Co",
        _ => "Cn",
    };

    private static string Canonical(string name) =>
        new string(name.Where(ch => ch is not (' ' or '_' or '-')).Select(char.ToLowerInvariant).ToArray());

    private static Dictionary<string, string[]> BuildProperties()
    {
        var map = new Dictionary<string, string[]>(StringComparer.Ordinal);
        void Add(string category, params string[] names)
        {
            map[Canonical(category)] = [category];
            foreach (var name in names) map[Canonical(name)] = [category];
        }
        Add("L", "Letter"); Add("Lu", "Uppercase_Letter"); Add("Ll", "Lowercase_Letter"); Add("Lt", "Titlecase_Letter");
        Add("Lm", "Modifier_Letter"); Add("Lo", "Other_Letter");
        Add("M", "Mark", "Combining_Mark"); Add("Mn", "Nonspacing_Mark"); Add("Mc", "Spacing_Mark"); Add("Me", "Enclosing_Mark");
        Add("N", "Number"); Add("Nd", "Decimal_Number", "Digit"); Add("Nl", "Letter_Number"); Add("No", "Other_Number");
        Add("P", "Punctuation", "Punct"); Add("Pc", "Connector_Punctuation"); Add("Pd", "Dash_Punctuation"); Add("Ps", "Open_Punctuation");
        Add("Pe", "Close_Punctuation"); Add("Pi", "Initial_Punctuation"); Add("Pf", "Final_Punctuation"); Add("Po", "Other_Punctuation");
        Add("S", "Symbol"); Add("Sm", "Math_Symbol"); Add("Sc", "Currency_Symbol"); Add("Sk", "Modifier_Symbol"); Add("So", "Other_Symbol");
        Add("Z", "Separator"); Add("Zs", "Space_Separator"); Add("Zl", "Line_Separator"); Add("Zp", "Paragraph_Separator");
        Add("C", "Other"); Add("Cc", "Control", "Cntrl"); Add("Cf", "Format"); Add("Cs", "Surrogate"); Add("Co", "Private_Use"); Add("Cn", "Unassigned");
        // Oniguruma's cased letter: Lu, Ll and Lt.
        map[Canonical("LC")] = ["Lu", "Ll", "Lt"];
        map[Canonical("Cased_Letter")] = ["Lu", "Ll", "Lt"];
        return map;
    }

    private static string Excerpt(string pattern, int i) => pattern.Substring(i, Math.Min(12, pattern.Length - i));
}
