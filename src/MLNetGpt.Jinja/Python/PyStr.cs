using System.Globalization;
using System.Text;

namespace MLNetGpt.Chat;

/// <summary>
/// Python's str semantics on .NET strings. Python indexes code points, .NET UTF-16 units: the two agree unless the
/// text holds characters outside the Basic Multilingual Plane (emoji), where every index, length and slice here
/// counts code points as Python does.
/// </summary>
internal static class PyStr
{
    private static bool HasSurrogates(string s)
    {
        // Every index, length and slice scans the text for surrogates: a long text costs in proportion.
        RenderState.ChargeRead(s.Length);
        return s.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0;
    }

    /// <summary>The UTF-16 offset of each code point, plus the length at the end.</summary>
    private static int[] CodePointOffsets(string s)
    {
        var offsets = new List<int>(s.Length + 1);
        for (var i = 0; i < s.Length; i++)
        {
            offsets.Add(i);
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) i++;
        }
        offsets.Add(s.Length);
        return offsets.ToArray();
    }

    public static long Length(string s)
    {
        if (!HasSurrogates(s)) return s.Length;
        long count = 0;
        for (var i = 0; i < s.Length; i++)
        {
            count++;
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) i++;
        }
        return count;
    }

    public static IEnumerable<object?> CodePoints(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                yield return s.Substring(i, 2);
                i++;
            }
            else yield return s[i].ToString();
        }
    }

    public static string? CodePointAt(string s, long index)
    {
        if (!HasSurrogates(s))
        {
            if (index < 0) index += s.Length;
            return index < 0 || index >= s.Length ? null : s[(int)index].ToString();
        }
        var offsets = CodePointOffsets(s);
        var n = offsets.Length - 1;
        if (index < 0) index += n;
        if (index < 0 || index >= n) return null;
        return s.Substring(offsets[index], offsets[index + 1] - offsets[index]);
    }

    public static string Slice(string s, PySlice slice)
    {
        var surrogates = HasSurrogates(s);
        var offsets = surrogates ? CodePointOffsets(s) : null;
        var n = surrogates ? offsets!.Length - 1 : s.Length;
        var (start, _, step, count) = PyOps.ResolveSlice(slice, n);
        RenderState.ChargeString(count * (surrogates ? 2 : 1), "the slice");
        if (step == 1)
        {
            if (count == 0) return "";
            return surrogates
                ? s.Substring(offsets![start], offsets[start + count] - offsets[start])
                : s.Substring((int)start, (int)count);
        }
        var sb = new StringBuilder();
        for (long i = 0, at = start; i < count; i++, at += step)
        {
            if (surrogates) sb.Append(s, offsets![at], offsets[at + 1] - offsets[at]);
            else sb.Append(s[(int)at]);
        }
        return sb.ToString();
    }

    /// <summary>The code-point index of a UTF-16 offset (for find/index results).</summary>
    public static long CodePointIndex(string s, int utf16Offset)
    {
        if (utf16Offset <= 0 || !HasSurrogates(s)) return utf16Offset;
        long count = 0;
        for (var i = 0; i < utf16Offset; i++)
        {
            count++;
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) i++;
        }
        return count;
    }

    /// <summary>The UTF-16 offset of a code-point index, clamped as Python clamps start/end arguments.</summary>
    public static int Utf16Offset(string s, long codePointIndex)
    {
        var n = Length(s);
        if (codePointIndex < 0) codePointIndex = Math.Max(0, codePointIndex + n);
        if (codePointIndex >= n) return s.Length;
        if (!HasSurrogates(s)) return (int)codePointIndex;
        return CodePointOffsets(s)[codePointIndex];
    }

    public static int CompareOrdinalCodePoints(string a, string b)
    {
        var n = Math.Min(a.Length, b.Length);
        for (var i = 0; i < n; i++)
        {
            if (a[i] == b[i]) continue;
            // A surrogate (U+D800..U+DFFF) encodes a code point above U+FFFF, which sorts after U+E000..U+FFFF.
            var x = char.IsSurrogate(a[i]) ? a[i] + 0x10000 : a[i];
            var y = char.IsSurrogate(b[i]) ? b[i] + 0x10000 : b[i];
            return x.CompareTo(y);
        }
        return a.Length.CompareTo(b.Length);
    }

    // ---- character classes ----

    /// <summary>Python's str.isspace for one character (adds U+001C..U+001F to .NET's white space).</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || (c >= '\x1c' && c <= '\x1f');

    /// <summary>Python's isprintable: not Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs, except the ASCII space.</summary>
    public static bool IsPrintable(int codePoint)
    {
        if (codePoint == ' ') return true;
        var category = codePoint < 0x10000
            ? CharUnicodeInfo.GetUnicodeCategory((char)codePoint)
            : CharUnicodeInfo.GetUnicodeCategory(codePoint);
        return category switch
        {
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
                or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
                or UnicodeCategory.SpaceSeparator => false,
            _ => true,
        };
    }

    private static bool IsCased(char c) => char.IsUpper(c) || char.IsLower(c) || char.GetUnicodeCategory(c) == UnicodeCategory.TitlecaseLetter;

    private static bool IsLineBreak(char c) =>
        c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029';

    // ---- case ----

    /// <summary>The code points of a string with their UTF-16 text.</summary>
    private static List<(int CodePoint, string Text)> Runes(string s)
    {
        var runes = new List<(int, string)>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                runes.Add((char.ConvertToUtf32(s[i], s[i + 1]), s.Substring(i, 2)));
                i++;
            }
            else runes.Add((s[i], s[i].ToString()));
        }
        return runes;
    }

    private static bool IsAscii(string s)
    {
        foreach (var c in s) if (c > '\x7f') return false;
        return true;
    }

    private static UnicodeCategory Category(int codePoint) => codePoint < 0x10000
        ? CharUnicodeInfo.GetUnicodeCategory((char)codePoint)
        : CharUnicodeInfo.GetUnicodeCategory(codePoint);

    private static bool IsCased(int codePoint) =>
        Category(codePoint) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(int codePoint) =>
        codePoint is '\'' or '.' or ':' or '\u00b7' or '\u2018' or '\u2019' or '\u2024' or '\u2027'
        || Category(codePoint) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
            or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol;

    /// <summary>Python's Final_Sigma rule: Σ lower-cases to ς after a cased letter and before none.</summary>
    private static bool IsFinalSigma(List<(int CodePoint, string Text)> runes, int at)
    {
        var j = at - 1;
        while (j >= 0 && IsCaseIgnorable(runes[j].CodePoint)) j--;
        if (j < 0 || !IsCased(runes[j].CodePoint)) return false;
        j = at + 1;
        while (j < runes.Count && IsCaseIgnorable(runes[j].CodePoint)) j++;
        return j == runes.Count || !IsCased(runes[j].CodePoint);
    }

    private static string LowerAt(List<(int CodePoint, string Text)> runes, int at) => runes[at].CodePoint switch
    {
        0x130 => "i\u0307",
        0x3a3 => IsFinalSigma(runes, at) ? "\u03c2" : "\u03c3",
        _ => runes[at].Text.ToLowerInvariant(),
    };

    // .NET's invariant casing agrees with Python's simple mappings for every code point but one: it keeps the
    // Turkish dotless ı, which Python upper-cases to I (checked over all code points on .NET 10).
    private static string UpperOf(int codePoint, string text) =>
        PyCaseTables.MultiCharacterUpper.TryGetValue(codePoint, out var upper) ? upper
        : codePoint == 0x131 ? "I"
        : text.ToUpperInvariant();

    private static string TitleOf(int codePoint, string text) =>
        PyCaseTables.TitleDiffersFromUpper.TryGetValue(codePoint, out var title) ? title : UpperOf(codePoint, text);

    /// <summary>Python's str.upper, with the full mappings that grow a character (ß → SS, ﬁ → FI).</summary>
    public static string Upper(string s)
    {
        RenderState.ChargeString(s.Length, "the upper-cased string");
        if (IsAscii(s)) return s.ToUpperInvariant();
        var sb = new StringBuilder(s.Length);
        foreach (var (codePoint, text) in Runes(s)) sb.Append(UpperOf(codePoint, text));
        return sb.ToString();
    }

    /// <summary>Python's str.lower: İ becomes i + combining dot above, a final Σ becomes ς.</summary>
    public static string Lower(string s)
    {
        RenderState.ChargeString(s.Length, "the lower-cased string");
        if (IsAscii(s)) return s.ToLowerInvariant();
        var runes = Runes(s);
        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < runes.Count; i++) sb.Append(LowerAt(runes, i));
        return sb.ToString();
    }

    /// <summary>Python's str.title: a character after a cased one is lower-cased, any other title-cased ("they're" → "They'Re").</summary>
    public static string Title(string s)
    {
        RenderState.ChargeString(s.Length, "the title-cased string");
        var runes = Runes(s);
        var sb = new StringBuilder(s.Length);
        var previousCased = false;
        for (var i = 0; i < runes.Count; i++)
        {
            sb.Append(previousCased ? LowerAt(runes, i) : TitleOf(runes[i].CodePoint, runes[i].Text));
            previousCased = IsCased(runes[i].CodePoint);
        }
        return sb.ToString();
    }

    /// <summary>Python's str.capitalize: the first character title-cased, the rest lower-cased.</summary>
    public static string Capitalize(string s)
    {
        RenderState.ChargeString(s.Length, "the capitalized string");
        var runes = Runes(s);
        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < runes.Count; i++) sb.Append(i == 0 ? TitleOf(runes[i].CodePoint, runes[i].Text) : LowerAt(runes, i));
        return sb.ToString();
    }

    /// <summary>Jinja2's word capitalisation: <c>item[0].upper() + item[1:].lower()</c>.</summary>
    public static string UpperFirstLowerRest(string word)
    {
        if (word.Length == 0) return word;
        var firstWidth = char.IsHighSurrogate(word[0]) && word.Length > 1 && char.IsLowSurrogate(word[1]) ? 2 : 1;
        return Upper(word.Substring(0, firstWidth)) + Lower(word.Substring(firstWidth));
    }

    public static string SwapCase(string s)
    {
        RenderState.ChargeString(s.Length, "the case-swapped string");
        var runes = Runes(s);
        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < runes.Count; i++)
        {
            var category = Category(runes[i].CodePoint);
            sb.Append(category == UnicodeCategory.UppercaseLetter ? LowerAt(runes, i)
                : category == UnicodeCategory.LowercaseLetter ? UpperOf(runes[i].CodePoint, runes[i].Text)
                : runes[i].Text);
        }
        return sb.ToString();
    }

    public static bool IsLowerText(string s)
    {
        var cased = false;
        foreach (var c in s)
        {
            if (char.IsUpper(c) || char.GetUnicodeCategory(c) == UnicodeCategory.TitlecaseLetter) return false;
            if (char.IsLower(c)) cased = true;
        }
        return cased;
    }

    public static bool IsUpperText(string s)
    {
        var cased = false;
        foreach (var c in s)
        {
            if (char.IsLower(c) || char.GetUnicodeCategory(c) == UnicodeCategory.TitlecaseLetter) return false;
            if (char.IsUpper(c)) cased = true;
        }
        return cased;
    }

    // ---- strip / split ----

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        var start = 0;
        var end = s.Length;
        Func<char, bool> strip = chars is null ? IsSpace : c => chars.Contains(c);
        if (left) while (start < end && strip(s[start])) start++;
        if (right) while (end > start && strip(s[end - 1])) end--;
        if (start == 0 && end == s.Length) return s;
        RenderState.ChargeString(end - start, "the stripped string");
        return s.Substring(start, end - start);
    }

    /// <summary>Python's str.split(sep, maxsplit).</summary>
    public static PyList Split(string s, string? separator, long maxSplit)
    {
        var parts = Charged(SplitParts(s, separator, maxSplit), s);
        return new PyList(parts);
    }

    /// <summary>Charges the parts of a split (their characters and the list's items) once they are known.</summary>
    private static List<object?> Charged(List<object?> parts, string s)
    {
        RenderState.ChargeString(s.Length, "the split parts");
        RenderState.ChargeItems(parts.Count, "the list of split parts");
        return parts;
    }

    private static List<object?> SplitParts(string s, string? separator, long maxSplit)
    {
        var parts = new List<object?>();
        if (separator is null)
        {
            var i = 0;
            while (true)
            {
                while (i < s.Length && IsSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (maxSplit >= 0 && parts.Count >= maxSplit)
                {
                    // Python keeps the remainder as it is, trailing white space included.
                    parts.Add(s.Substring(i));
                    break;
                }
                var start = i;
                while (i < s.Length && !IsSpace(s[i])) i++;
                parts.Add(s.Substring(start, i - start));
            }
            return parts;
        }
        if (separator.Length == 0) throw TemplateException.ValueError("empty separator");
        var position = 0;
        while (maxSplit < 0 || parts.Count < maxSplit)
        {
            var found = s.IndexOf(separator, position, StringComparison.Ordinal);
            if (found < 0) break;
            parts.Add(s.Substring(position, found - position));
            position = found + separator.Length;
        }
        parts.Add(s.Substring(position));
        return parts;
    }

    /// <summary>Python's str.rsplit(sep, maxsplit).</summary>
    public static PyList RSplit(string s, string? separator, long maxSplit)
    {
        if (maxSplit < 0) return Split(s, separator, maxSplit);
        return new PyList(Charged(RSplitParts(s, separator, maxSplit), s));
    }

    private static List<object?> RSplitParts(string s, string? separator, long maxSplit)
    {
        var parts = new List<object?>();
        if (separator is null)
        {
            var i = s.Length;
            while (true)
            {
                while (i > 0 && IsSpace(s[i - 1])) i--;
                if (i <= 0) break;
                if (parts.Count >= maxSplit)
                {
                    parts.Add(s.Substring(0, i));
                    break;
                }
                var end = i;
                while (i > 0 && !IsSpace(s[i - 1])) i--;
                parts.Add(s.Substring(i, end - i));
            }
            parts.Reverse();
            return parts;
        }
        if (separator.Length == 0) throw TemplateException.ValueError("empty separator");
        var position = s.Length;
        while (parts.Count < maxSplit)
        {
            var found = position - separator.Length < 0 ? -1 : s.LastIndexOf(separator, position - 1, StringComparison.Ordinal);
            if (found < 0 || found + separator.Length > position) break;
            parts.Add(s.Substring(found + separator.Length, position - found - separator.Length));
            position = found;
        }
        parts.Add(s.Substring(0, position));
        parts.Reverse();
        return parts;
    }

    /// <summary>Python's str.splitlines: every Unicode line boundary, \r\n as one.</summary>
    public static List<string> SplitLines(string s, bool keepEnds = false)
    {
        RenderState.ChargeString(s.Length, "the split lines");
        var lines = new List<string>();
        var start = 0;
        var i = 0;
        while (i < s.Length)
        {
            var c = s[i];
            if (!IsLineBreak(c))
            {
                i++;
                continue;
            }
            var breakLength = c == '\r' && i + 1 < s.Length && s[i + 1] == '\n' ? 2 : 1;
            lines.Add(s.Substring(start, (keepEnds ? i + breakLength : i) - start));
            i += breakLength;
            start = i;
        }
        if (start < s.Length) lines.Add(s.Substring(start));
        return lines;
    }

    /// <summary>
    /// Python's str.replace(old, new, count); an empty <paramref name="old"/> inserts between characters. The result's
    /// length is worked out (and charged) before it is built: ('a' * 100000).replace('a', 'a' * 100000) is refused,
    /// not allocated.
    /// </summary>
    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count == 0) return s;
        long occurrences = 0;
        if (old.Length == 0) occurrences = Length(s) + 1;
        else
        {
            RenderState.ChargeRead(s.Length);
            for (var at = s.IndexOf(old, StringComparison.Ordinal); at >= 0 && (count < 0 || occurrences < count); at = s.IndexOf(old, at + old.Length, StringComparison.Ordinal))
                occurrences++;
        }
        if (count >= 0) occurrences = Math.Min(occurrences, count);
        if (occurrences == 0) return s;
        long delta = replacement.Length - (long)old.Length;
        long length = delta > 0 && occurrences > (long.MaxValue - s.Length) / delta ? -1 : s.Length + occurrences * delta;
        RenderState.ChargeString(length, "the replaced string");
        if (old.Length == 0)
        {
            var sb = new StringBuilder((int)length);
            long done = 0;
            foreach (var cp in CodePoints(s))
            {
                if (count < 0 || done < count)
                {
                    sb.Append(replacement);
                    done++;
                }
                sb.Append((string)cp!);
            }
            if (count < 0 || done < count) sb.Append(replacement);
            return sb.ToString();
        }
        if (count < 0) return s.Replace(old, replacement, StringComparison.Ordinal);
        var result = new StringBuilder((int)length);
        var position = 0;
        for (long n = 0; n < count; n++)
        {
            var found = s.IndexOf(old, position, StringComparison.Ordinal);
            if (found < 0) break;
            result.Append(s, position, found - position).Append(replacement);
            position = found + old.Length;
        }
        result.Append(s, position, s.Length - position);
        return result.ToString();
    }

    /// <summary>Python's str.center(width, fill).</summary>
    public static string Center(string s, long width, string fill = " ")
    {
        var length = Length(s);
        if (width <= length) return s;
        // The width is checked before anything is built: 'x'|center(2000000000) is refused, not allocated.
        RenderState.ChargeString(s.Length + (width - length) * fill.Length, "the centered string");
        var margin = width - length;
        var left = margin / 2 + (margin & width & 1);
        return Fill(fill, left) + s + Fill(fill, margin - left);
    }

    /// <summary><paramref name="s"/> repeated; the caller has charged the result (see <see cref="RenderState.ChargeString"/>).</summary>
    public static string Repeat(string s, long times)
    {
        if (times <= 0 || s.Length == 0) return "";
        if (s.Length == 1) return new string(s[0], checked((int)times));
        var sb = new StringBuilder(checked((int)(s.Length * times)));
        for (long i = 0; i < times; i++) sb.Append(s);
        return sb.ToString();
    }

    /// <summary>
    /// Padding of <paramref name="count"/> copies of a one-character <paramref name="fill"/> (a code point: one or two
    /// UTF-16 units); charged before it is built, so ''.ljust(2000000000) is refused rather than allocated.
    /// </summary>
    public static string Pad(string fill, long count, string what)
    {
        if (count <= 0) return "";
        RenderState.ChargeString(count * fill.Length, what);
        return Repeat(fill, count);
    }

    private static string Fill(string fill, long count) => Repeat(fill, count);

    public static string Expand(string s, Func<char, string?> escape)
    {
        long length = s.Length;
        foreach (var c in s) if (escape(c) is { } longer) length += longer.Length - 1;
        if (length != s.Length) RenderState.ChargeString(length, "the escaped string");
        StringBuilder? sb = null;
        for (var i = 0; i < s.Length; i++)
        {
            var replacement = escape(s[i]);
            if (replacement is null)
            {
                sb?.Append(s[i]);
                continue;
            }
            sb ??= new StringBuilder(s, 0, i, s.Length + 16);
            sb.Append(replacement);
        }
        return sb?.ToString() ?? s;
    }
}
