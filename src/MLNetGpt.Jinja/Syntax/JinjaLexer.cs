using System.Globalization;
using System.Text;

namespace MLNetGpt.Chat;

internal enum TokenKind { Data, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof }

internal sealed record Token(TokenKind Kind, string Text, object? Value, int Line, int Column)
{
    public bool Is(TokenKind kind, string text) => Kind == kind && Text == text;

    public bool IsOperator(string op) => Kind == TokenKind.Operator && Text == op;

    public bool IsName(string name) => Kind == TokenKind.Name && Text == name;

    /// <summary>How Jinja2 names a token in its messages.</summary>
    public string Describe() => Kind switch
    {
        TokenKind.Name or TokenKind.Operator => Text,
        TokenKind.String => "string",
        TokenKind.Integer => "integer",
        TokenKind.Float => "float",
        TokenKind.BlockBegin => "begin of statement block",
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.VariableBegin => "begin of print statement",
        TokenKind.VariableEnd => "end of print statement",
        TokenKind.Data => "template data / text",
        _ => "end of template",
    };
}

/// <summary>
/// Splits a template into tokens exactly as Jinja2 3.1's lexer does with trim_blocks and lstrip_blocks on and
/// keep_trailing_newline off: newlines normalised to \n and one trailing newline dropped; <c>-</c> strips all white
/// space on its side; trim_blocks drops the first newline after a block or comment tag (not after <c>}}</c>, not with
/// <c>+%}</c>); lstrip_blocks removes the spaces and tabs between a line start and a block or comment tag (not before
/// <c>{{</c>, not with <c>{%+</c>); block and print ends count only outside brackets.
/// </summary>
internal sealed class JinjaLexer
{
    private static readonly string[] TwoCharOperators = { "//", "**", "==", "!=", ">=", "<=" };
    private const string OneCharOperators = "+-/*%~[](){}><=.:|,;";
    private static readonly string[] OneCharOperatorTexts = OneCharOperators.Select(c => c.ToString()).ToArray();

    private readonly string source;
    private readonly int[] lineStarts;
    private readonly List<Token> tokens = new();
    private Token? lastToken;
    private bool finished;
    private int pos;

    private JinjaLexer(string source)
    {
        this.source = Normalize(source);
        var starts = new List<int> { 0 };
        for (var i = 0; i < this.source.Length; i++) if (this.source[i] == '\n') starts.Add(i + 1);
        lineStarts = starts.ToArray();
    }

    /// <summary>
    /// A lexer that produces tokens as the parser asks for them (<see cref="Pull"/>), so that a template the parser
    /// refuses early (nested too deeply, say) is never tokenized whole.
    /// </summary>
    public static JinjaLexer Create(string source) => new(source);

    /// <summary>Every token of <paramref name="source"/>, ending with the end-of-template token.</summary>
    public static List<Token> Tokenize(string source)
    {
        var lexer = new JinjaLexer(source);
        var all = new List<Token>();
        while (lexer.Pull(all)) { }
        return all;
    }

    /// <summary>Appends the next tokens (those of one tag or text run, or the end-of-template token) to <paramref name="into"/>; false once the end token was given.</summary>
    public bool Pull(List<Token> into)
    {
        while (tokens.Count == 0)
        {
            if (finished) return false;
            Step();
        }
        into.AddRange(tokens);
        tokens.Clear();
        return true;
    }

    /// <summary>Every \r\n, \r and \n becomes \n, and one newline at the very end goes (keep_trailing_newline=False).</summary>
    private static string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '\r')
            {
                sb.Append('\n');
                if (i + 1 < text.Length && text[i + 1] == '\n') i++;
            }
            else sb.Append(text[i]);
        }
        if (sb.Length > 0 && sb[^1] == '\n') sb.Length--;
        return sb.ToString();
    }

    private (int Line, int Column) Position(int offset)
    {
        var index = Array.BinarySearch(lineStarts, offset);
        if (index < 0) index = ~index - 1;
        return (index + 1, offset - lineStarts[index] + 1);
    }

    private void Add(TokenKind kind, string text, object? value, int offset)
    {
        var (line, column) = Position(offset);
        lastToken = new Token(kind, text, value, line, column);
        tokens.Add(lastToken);
    }

    private TemplateException Error(string message, int offset)
    {
        var (line, column) = Position(offset);
        return new TemplateException(TemplateErrorKind.Syntax, message, line, column);
    }

    private bool At(int offset, string text) => string.CompareOrdinal(source, offset, text, 0, text.Length) == 0;

    /// <summary>Lexes one text run and the tag after it, or ends the template.</summary>
    private void Step()
    {
        if (inside is not null)
        {
            ContinueInside();
            return;
        }
        if (pos >= source.Length)
        {
            // Jinja2's end-of-template token repeats the line of the last token; errors at the end name that line.
            if (lastToken is null) Add(TokenKind.Eof, "", null, 0);
            else tokens.Add(lastToken with { Kind = TokenKind.Eof, Text = "", Value = null });
            finished = true;
            return;
        }
        var tag = FindTagStart(pos);
        if (tag < 0)
        {
            Add(TokenKind.Data, source.Substring(pos), null, pos);
            pos = source.Length;
            return;
        }
        var kind = source[tag + 1];
        var sign = tag + 2 < source.Length && source[tag + 2] is '-' or '+' ? source[tag + 2] : '\0';
        var text = source.Substring(pos, tag - pos);
        var lineStarting = pos == 0 || source[pos - 1] == '\n';
        text = StripBefore(text, sign, kind != '{', lineStarting);
        if (text.Length > 0) Add(TokenKind.Data, text, null, pos);
        var afterStart = tag + 2 + (sign == '\0' ? 0 : 1);
        if (kind == '%' && TryRawBegin(afterStart, out var rawBodyStart))
        {
            LexRaw(rawBodyStart, tag);
            return;
        }
        switch (kind)
        {
            case '#':
                pos = CommentEnd(afterStart, tag);
                break;
            case '%':
                Add(TokenKind.BlockBegin, "{%", null, tag);
                pos = afterStart;
                LexInside(block: true);
                break;
            default:
                Add(TokenKind.VariableBegin, "{{", null, tag);
                pos = afterStart;
                LexInside(block: false);
                break;
        }
    }

    private string? TwoCharOperator(int at)
    {
        if (at + 1 >= source.Length) return null;
        foreach (var op in TwoCharOperators)
            if (source[at] == op[0] && source[at + 1] == op[1]) return op;
        return null;
    }

    private int FindTagStart(int from)
    {
        for (var i = source.IndexOf('{', from); i >= 0 && i + 1 < source.Length; i = source.IndexOf('{', i + 1))
            if (source[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>The whitespace control on the text before a tag: <c>-</c> strips, lstrip_blocks trims the indentation.</summary>
    private static string StripBefore(string text, char sign, bool lstripApplies, bool lineStarting)
    {
        if (sign == '-') return RStrip(text);
        if (sign == '+' || !lstripApplies) return text;
        var lineStart = text.LastIndexOf('\n') + 1;
        if (lineStart == 0 && !lineStarting) return text;
        if (lineStart == text.Length) return text;
        for (var i = lineStart; i < text.Length; i++) if (!PyStr.IsSpace(text[i])) return text;
        return text.Substring(0, lineStart);
    }

    private static string RStrip(string text)
    {
        var end = text.Length;
        while (end > 0 && PyStr.IsSpace(text[end - 1])) end--;
        return text.Substring(0, end);
    }

    private int SkipSpace(int at)
    {
        while (at < source.Length && PyStr.IsSpace(source[at])) at++;
        return at;
    }

    /// <summary>
    /// Where a tag's closing delimiter ends: <c>+X</c> keeps what follows, <c>-X</c> eats all white space after it,
    /// plain <c>X</c> eats one newline when trim_blocks applies (block and comment tags, never <c>}}</c>).
    /// </summary>
    private int? MatchEnd(int at, string end, bool trim)
    {
        if (at >= source.Length) return null;
        var first = source[at];
        if (first == '+' || first == '-')
        {
            if (!At(at + 1, end) || (first == '+' && !trim)) return null;
            return first == '+' ? at + 1 + end.Length : SkipSpace(at + 1 + end.Length);
        }
        if (first == end[0] && At(at, end))
        {
            var after = at + end.Length;
            if (trim && after < source.Length && source[after] == '\n') after++;
            return after;
        }
        return null;
    }

    private int CommentEnd(int from, int tagStart)
    {
        for (var i = from; i < source.Length; i++)
        {
            if (source[i] is not ('#' or '-' or '+')) continue;
            if (MatchEnd(i, "#}", trim: true) is { } end) return end;
        }
        throw Error("Missing end of comment tag", tagStart);
    }

    private bool TryRawBegin(int at, out int bodyStart)
    {
        bodyStart = 0;
        var i = SkipSpace(at);
        if (!At(i, "raw")) return false;
        i = SkipSpace(i + 3);
        // The raw opening tag takes no trim_blocks newline; only its own '-' strips.
        if (At(i, "-%}")) bodyStart = SkipSpace(i + 3);
        else if (At(i, "%}")) bodyStart = i + 2;
        else return false;
        return true;
    }

    private void LexRaw(int bodyStart, int tagStart)
    {
        for (var i = source.IndexOf("{%", bodyStart, StringComparison.Ordinal); i >= 0; i = source.IndexOf("{%", i + 1, StringComparison.Ordinal))
        {
            var sign = i + 2 < source.Length && source[i + 2] is '-' or '+' ? source[i + 2] : '\0';
            var j = SkipSpace(i + 2 + (sign == '\0' ? 0 : 1));
            if (!At(j, "endraw")) continue;
            j = SkipSpace(j + 6);
            if (MatchEnd(j, "%}", trim: true) is not { } end) continue;
            var lineStarting = source[bodyStart - 1] == '\n';
            var text = StripBefore(source.Substring(bodyStart, i - bodyStart), sign, true, lineStarting);
            if (text.Length > 0) Add(TokenKind.Data, text, null, bodyStart);
            pos = end;
            return;
        }
        throw Error("Missing end of raw directive", tagStart);
    }

    // The tag being lexed: its bracket stack and whether it is a block; a long tag is lexed a few hundred tokens
    // at a time, as the parser asks, so a tag of a million parentheses is refused before it is tokenized whole.
    private Stack<char>? inside;
    private bool insideBlock;
    private const int TokensPerStep = 256;

    private void LexInside(bool block)
    {
        inside = new Stack<char>();
        insideBlock = block;
        ContinueInside();
    }

    private void ContinueInside()
    {
        var brackets = inside!;
        var block = insideBlock;
        while (pos < source.Length)
        {
            if (tokens.Count >= TokensPerStep) return;
            if (brackets.Count == 0)
            {
                var end = block ? MatchEnd(pos, "%}", trim: true) : MatchEnd(pos, "}}", trim: false);
                if (end is { } after)
                {
                    Add(block ? TokenKind.BlockEnd : TokenKind.VariableEnd, block ? "%}" : "}}", null, pos);
                    pos = after;
                    inside = null;
                    return;
                }
            }
            var c = source[pos];
            if (PyStr.IsSpace(c))
            {
                pos++;
                continue;
            }
            if (char.IsAsciiDigit(c))
            {
                LexNumber();
                continue;
            }
            if (c == '_' || IsIdentifierStart(c))
            {
                var start = pos;
                while (pos < source.Length && IsIdentifierPart(source, pos)) pos++;
                Add(TokenKind.Name, source.Substring(start, pos - start), null, start);
                continue;
            }
            if (c is '\'' or '"')
            {
                LexString(c);
                continue;
            }
            var op = TwoCharOperator(pos) ?? (OneCharOperators.Contains(c) ? OneCharOperatorTexts[OneCharOperators.IndexOf(c)] : null);
            if (op is null) throw Error($"unexpected char {PyFormat.Repr(c.ToString())}", pos);
            switch (op)
            {
                case "(": brackets.Push(')'); break;
                case "[": brackets.Push(']'); break;
                case "{": brackets.Push('}'); break;
                case ")" or "]" or "}":
                    if (brackets.Count == 0) throw Error($"unexpected {PyFormat.Repr(op)}", pos);
                    var expected = brackets.Pop();
                    if (expected != op[0]) throw Error($"unexpected {PyFormat.Repr(op)}, expected {PyFormat.Repr(expected.ToString())}", pos);
                    break;
            }
            Add(TokenKind.Operator, op, null, pos);
            pos += op.Length;
        }
        inside = null;
    }

    private static bool IsIdentifierStart(char c) =>
        char.IsLetter(c) || CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.LetterNumber;

    private static bool IsIdentifierPart(string s, int i)
    {
        var c = s[i];
        if (c == '_' || char.IsLetterOrDigit(c)) return true;
        return CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
            or UnicodeCategory.ConnectorPunctuation or UnicodeCategory.LetterNumber;
    }

    private int ScanDigits(int at, Func<char, bool> isDigit)
    {
        // (\d+_)*\d+ : digits, single underscores between them.
        if (at >= source.Length || !isDigit(source[at])) return at;
        var i = at + 1;
        while (i < source.Length)
        {
            if (isDigit(source[i])) i++;
            else if (source[i] == '_' && i + 1 < source.Length && isDigit(source[i + 1])) i += 2;
            else break;
        }
        return i;
    }

    private void LexNumber()
    {
        var start = pos;
        // A float may not start right after a '.', so that x.0.1 reads as two item accesses.
        var floatAllowed = start == 0 || source[start - 1] != '.';
        if (floatAllowed)
        {
            var i = ScanDigits(start, char.IsAsciiDigit);
            var isFloat = false;
            if (i + 1 < source.Length && source[i] == '.' && char.IsAsciiDigit(source[i + 1]))
            {
                i = ScanDigits(i + 1, char.IsAsciiDigit);
                isFloat = true;
            }
            if (i < source.Length && source[i] is 'e' or 'E')
            {
                var e = i + 1;
                if (e < source.Length && source[e] is '+' or '-') e++;
                var end = ScanDigits(e, char.IsAsciiDigit);
                if (end > e)
                {
                    i = end;
                    isFloat = true;
                }
            }
            if (isFloat)
            {
                var text = source.Substring(start, i - start);
                Add(TokenKind.Float, text, double.Parse(text.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture), start);
                pos = i;
                return;
            }
        }
        var (endOfInteger, radix) = ScanInteger(start);
        var literal = source.Substring(start, endOfInteger - start);
        var digits = literal.Replace("_", "");
        if (radix != 10) digits = digits.Substring(2);
        long value = 0;
        try
        {
            foreach (var d in digits) value = checked(value * radix + Convert.ToInt32(d.ToString(), 16));
        }
        catch (OverflowException)
        {
            throw Error($"integer literal {literal} does not fit in 64 bits", start);
        }
        Add(TokenKind.Integer, literal, value, start);
        pos = endOfInteger;
    }

    private (int End, int Radix) ScanInteger(int start)
    {
        if (source[start] == '0' && start + 1 < source.Length)
        {
            var (radix, isDigit) = char.ToLowerInvariant(source[start + 1]) switch
            {
                'b' => (2, (Func<char, bool>)(ch => ch is '0' or '1')),
                'o' => (8, ch => ch >= '0' && ch <= '7'),
                'x' => (16, char.IsAsciiHexDigit),
                _ => (0, _ => false),
            };
            if (radix != 0)
            {
                // 0x(_?[\da-f])+
                var i = start + 2;
                var any = false;
                while (i < source.Length)
                {
                    if (isDigit(source[i])) i++;
                    else if (source[i] == '_' && i + 1 < source.Length && isDigit(source[i + 1])) i += 2;
                    else break;
                    any = true;
                }
                if (any) return (i, radix);
            }
        }
        if (source[start] == '0')
        {
            // 0(_?0)*
            var i = start + 1;
            while (i < source.Length)
            {
                if (source[i] == '0') i++;
                else if (source[i] == '_' && i + 1 < source.Length && source[i + 1] == '0') i += 2;
                else break;
            }
            return (i, 10);
        }
        return (ScanDigits(start, char.IsAsciiDigit), 10);
    }

    private void LexString(char quote)
    {
        var start = pos;
        var i = pos + 1;
        while (i < source.Length && source[i] != quote)
        {
            if (source[i] == '\\') i++;
            i++;
        }
        if (i >= source.Length) throw Error("unterminated string literal", start);
        var raw = source.Substring(start + 1, i - start - 1);
        Add(TokenKind.String, raw, Unescape(raw, start), start);
        pos = i + 1;
    }

    /// <summary>Python's unicode-escape decoding of a string literal, as Jinja2 applies it (after backslashreplace).</summary>
    private string Unescape(string raw, int offset)
    {
        if (!raw.Contains('\\')) return raw;
        var sb = new StringBuilder(raw.Length);
        for (var i = 0; i < raw.Length; i++)
        {
            var c = raw[i];
            if (c != '\\' || i + 1 >= raw.Length)
            {
                sb.Append(c);
                continue;
            }
            var e = raw[++i];
            switch (e)
            {
                case '\n': break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'v': sb.Append('\v'); break;
                case >= '0' and <= '7':
                    var octal = e - '0';
                    for (var n = 0; n < 2 && i + 1 < raw.Length && raw[i + 1] is >= '0' and <= '7'; n++) octal = octal * 8 + (raw[++i] - '0');
                    sb.Append((char)octal);
                    break;
                case 'x' or 'u' or 'U':
                    var width = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    var hex = raw.Substring(i + 1, Math.Min(width, raw.Length - i - 1));
                    if (hex.Length < width || !hex.All(char.IsAsciiHexDigit))
                        throw Error($"(unicode error) 'unicodeescape' codec can't decode bytes: truncated \\{e}{new string('X', width)} escape", offset);
                    var code = int.Parse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                    if (code > 0x10FFFF) throw Error("(unicode error) 'unicodeescape' codec can't decode bytes: illegal Unicode character", offset);
                    sb.Append(code < 0x10000 ? ((char)code).ToString() : char.ConvertFromUtf32(code));
                    i += width;
                    break;
                case 'N':
                    throw Error("\\N{...} escapes in string literals are not supported", offset);
                default:
                    // backslashreplace turned a non-ASCII character into \xhh / \uhhhh / \Uhhhhhhhh first, and the
                    // backslash before it then escaped that backslash: the text of the escape remains.
                    if (e > '\x7f')
                    {
                        // A pair is one character; a lone surrogate is escaped on its own (\udXXX), as Python's backslashreplace does.
                        var codePoint = char.IsHighSurrogate(e) && i + 1 < raw.Length && char.IsLowSurrogate(raw[i + 1]) ? char.ConvertToUtf32(e, raw[++i]) : e;
                        sb.Append('\\').Append(codePoint < 0x100 ? $"x{codePoint:x2}" : codePoint < 0x10000 ? $"u{codePoint:x4}" : $"U{codePoint:x8}");
                    }
                    else sb.Append('\\').Append(e);
                    break;
            }
        }
        return sb.ToString();
    }
}
