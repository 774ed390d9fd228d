using System.Globalization;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// Parses the regex subset of <see cref="OutputConstraint.Regex(string)"/> into a <see cref="ConstraintNode"/>.
/// The whole output must match, so <c>^</c> and <c>$</c> are accepted only at the very start and
/// end, where they change nothing. Every refused construct is named with its position.
/// </summary>
internal sealed class RegexParser
{
    public const string Supported = "supported: literals, escapes, classes, '.', '|', groups, ?, *, +, {m,n}";

    /// <summary>\d: ASCII digits only.</summary>
    public static readonly CodePointSet Digit = CodePointSet.Range('0', '9');

    /// <summary>\w: ASCII letters, digits and underscore.</summary>
    public static readonly CodePointSet Word = CodePointSet.Of([('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')]);

    /// <summary>\s: space, \t, \n, \v, \f, \r.</summary>
    public static readonly CodePointSet Space = CodePointSet.Of([(' ', ' '), ('\t', '\r')]);

    private static readonly CodePointSet AnyButNewline = CodePointSet.Single('\n').Complement();

    /// <summary>
    /// Groups nested deeper than this are refused: real patterns nest a handful of levels, and the parser recurses
    /// once per level (a hundred levels fit a 256 KB thread stack with room to spare).
    /// </summary>
    public const int MaxGroupDepth = 100;

    private readonly string _pattern;
    private readonly string _what;
    private readonly CancellationToken _cancellation;
    private int _position;
    private int _end;
    private int _depth;
    private int _atoms;

    private RegexParser(string pattern, string what, CancellationToken cancellation)
    {
        _pattern = pattern;
        _what = what;
        _end = pattern.Length;
        _cancellation = cancellation;
    }

    /// <summary>
    /// Parses <paramref name="pattern"/> (full match). <paramref name="what"/> prefixes errors
    /// ("regex", or "JSON schema: pattern at /properties/a"). <paramref name="anchoredStart"/> and
    /// <paramref name="anchoredEnd"/> tell, for JSON Schema's search semantics, whether the
    /// pattern began with ^ and ended with $.
    /// </summary>
    public static ConstraintNode Parse(string pattern, string what, out bool anchoredStart, out bool anchoredEnd) =>
        Parse(pattern, what, CancellationToken.None, out anchoredStart, out anchoredEnd);

    /// <summary>As <see cref="Parse(string, string, out bool, out bool)"/>, looking at <paramref name="cancellation"/> as it goes.</summary>
    public static ConstraintNode Parse(string pattern, string what, CancellationToken cancellation, out bool anchoredStart, out bool anchoredEnd)
    {
        try
        {
            return ParseChecked(pattern, what, cancellation, out anchoredStart, out anchoredEnd);
        }
        catch (ConstraintDepthException e)
        {
            throw new ArgumentException($"{what}: {e.Message}.");
        }
    }

    private static ConstraintNode ParseChecked(string pattern, string what, CancellationToken cancellation, out bool anchoredStart, out bool anchoredEnd)
    {
        var parser = new RegexParser(pattern, what, cancellation);
        anchoredStart = anchoredEnd = false;
        if (parser._end > 0 && pattern[0] == '^')
        {
            parser._position = 1;
            anchoredStart = true;
        }
        if (parser._end > parser._position && pattern[parser._end - 1] == '$' && !parser.IsEscaped(parser._end - 1))
        {
            parser._end--;
            anchoredEnd = true;
        }
        var node = parser.ParseAlternation();
        if (parser._position < parser._end)
            throw parser.Error($"an unmatched ')' at position {parser._position}");
        return node;
    }

    public static ConstraintNode Parse(string pattern, string what, CancellationToken cancellation = default) => Parse(pattern, what, cancellation, out _, out _);

    private bool IsEscaped(int index)
    {
        int backslashes = 0;
        for (int i = index - 1; i >= 0 && _pattern[i] == '\\'; i--) backslashes++;
        return backslashes % 2 == 1;
    }

    private ArgumentException Error(string problem) => new($"{_what}: {problem}.");

    private ArgumentException Unsupported(string feature, int at) => new($"{_what}: {feature} at position {at} is not supported; {Supported}");

    private bool AtEnd => _position >= _end;

    private char Peek => _pattern[_position];

    private ConstraintNode ParseAlternation()
    {
        var branches = new List<ConstraintNode> { ParseConcatenation() };
        while (!AtEnd && Peek == '|')
        {
            _position++;
            branches.Add(ParseConcatenation());
        }
        return branches.Count == 1 ? branches[0] : ConstraintNode.Choice(branches.ToArray());
    }

    private ConstraintNode ParseConcatenation()
    {
        var items = new List<ConstraintNode>();
        while (!AtEnd && Peek != '|' && Peek != ')')
        {
            if ((++_atoms & 4095) == 0) _cancellation.ThrowIfCancellationRequested();
            var atom = ParseAtom();
            items.Add(ParseQuantifiers(atom));
        }
        return ConstraintNode.Sequence(items.ToArray());
    }

    private ConstraintNode ParseQuantifiers(ConstraintNode atom)
    {
        if (AtEnd) return atom;
        int at = _position;
        int min, max;
        switch (Peek)
        {
            case '*': min = 0; max = -1; _position++; break;
            case '+': min = 1; max = -1; _position++; break;
            case '?': min = 0; max = 1; _position++; break;
            case '{' when TryParseBraces(out min, out max): break;
            default: return atom;
        }
        string text = _pattern[at.._position];
        if (!AtEnd && Peek == '?') _position++;                 // lazy: the full-match language is the same
        else if (!AtEnd && Peek == '+') throw Unsupported($"a possessive quantifier ({text}+)", at);
        if (!AtEnd && (Peek is '*' or '+' or '?' || (Peek == '{' && LooksLikeBraces(_position))))
            throw Error($"a nested quantifier '{_pattern[_position]}' at position {_position} (a quantifier after '{text}')");
        return ConstraintNode.Repeat(atom, min, max, $"the repetition {text} at position {at}");
    }

    private bool LooksLikeBraces(int at)
    {
        int saved = _position;
        _position = at;
        bool ok = TryParseBraces(out _, out _, validateOnly: true);
        _position = saved;
        return ok;
    }

    /// <summary>{m}, {m,}, {m,n}; anything else leaves '{' a literal, as in .NET.</summary>
    private bool TryParseBraces(out int min, out int max, bool validateOnly = false)
    {
        min = max = 0;
        int at = _position, i = _position + 1;
        int digitsStart = i;
        while (i < _end && char.IsAsciiDigit(_pattern[i])) i++;
        if (i == digitsStart) return false;
        string first = _pattern[digitsStart..i];
        string? second = null;
        bool comma = false;
        if (i < _end && _pattern[i] == ',')
        {
            comma = true;
            i++;
            int secondStart = i;
            while (i < _end && char.IsAsciiDigit(_pattern[i])) i++;
            if (i > secondStart) second = _pattern[secondStart..i];
        }
        if (i >= _end || _pattern[i] != '}') return false;
        if (validateOnly) return true;
        _position = i + 1;
        if (!int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out min))
            throw Error($"the repetition count {first} at position {at} is too large");
        if (!comma) max = min;
        else if (second is null) max = -1;
        else if (!int.TryParse(second, NumberStyles.None, CultureInfo.InvariantCulture, out max))
            throw Error($"the repetition count {second} at position {at} is too large");
        if (max >= 0 && max < min)
            throw Error($"the repetition {_pattern[at.._position]} at position {at} has its maximum below its minimum");
        return true;
    }

    private ConstraintNode ParseAtom()
    {
        int at = _position;
        char c = Peek;
        switch (c)
        {
            case '(':
                return ParseGroup();
            case '[':
                return ConstraintNode.Chars(ParseClass());
            case '.':
                _position++;
                return ConstraintNode.Chars(AnyButNewline);
            case '^':
                throw Unsupported("an anchor '^' (allowed only at the very start)", at);
            case '$':
                throw Unsupported("an anchor '$' (allowed only at the very end)", at);
            case '*' or '+' or '?':
                throw Error($"the quantifier '{c}' at position {at} has nothing to repeat");
            case '{' when LooksLikeBraces(at):
                throw Error($"the quantifier '{_pattern[at..(_pattern.IndexOf('}', at) + 1)]}' at position {at} has nothing to repeat");
            case '\\':
                return ConstraintNode.Chars(ParseEscape(inClass: false));
            default:
                return ConstraintNode.Chars(CodePointSet.Single(ReadLiteralCodePoint()));
        }
    }

    private int ReadLiteralCodePoint()
    {
        char c = _pattern[_position++];
        if (char.IsHighSurrogate(c) && _position < _pattern.Length && char.IsLowSurrogate(_pattern[_position]))
            return char.ConvertToUtf32(c, _pattern[_position++]);
        if (char.IsSurrogate(c))
            throw Error($"a lone surrogate U+{(int)c:X4} at position {_position - 1}");
        return c;
    }

    private ConstraintNode ParseGroup()
    {
        int at = _position;
        _position++;
        if (!AtEnd && Peek == '?')
        {
            string rest = _pattern[_position..Math.Min(_pattern.Length, _position + 3)];
            if (rest.StartsWith("?:", StringComparison.Ordinal)) _position += 2;
            else if (rest.StartsWith("?=", StringComparison.Ordinal) || rest.StartsWith("?!", StringComparison.Ordinal))
                throw Unsupported($"a lookahead ({rest[..2]}", at);
            else if (rest.StartsWith("?<=", StringComparison.Ordinal) || rest.StartsWith("?<!", StringComparison.Ordinal))
                throw Unsupported($"a lookbehind ({rest}", at);
            else if (rest.StartsWith("?<", StringComparison.Ordinal) || rest.StartsWith("?'", StringComparison.Ordinal))
            {
                char close = rest[1] == '<' ? '>' : '\'';
                int nameStart = _position + 2, i = nameStart;
                while (i < _end && (char.IsAsciiLetterOrDigit(_pattern[i]) || _pattern[i] == '_')) i++;
                if (i == nameStart || i >= _end || _pattern[i] != close)
                    throw Unsupported($"a group construct '(?{rest[1]}' (a balancing group or a malformed name)", at);
                _position = i + 1;
            }
            else if (rest.StartsWith("?>", StringComparison.Ordinal))
                throw Unsupported("an atomic group (?>", at);
            else if (rest.StartsWith("?#", StringComparison.Ordinal))
                throw Unsupported("a comment group (?#", at);
            else if (rest.Length >= 2 && (char.IsAsciiLetter(rest[1]) || rest[1] == '-'))
                throw Unsupported($"inline flags ({rest[..2]}", at);
            else if (rest.StartsWith("?(", StringComparison.Ordinal))
                throw Unsupported("a conditional (?(", at);
            else
                throw Unsupported($"the group construct '(?{(rest.Length > 1 ? rest[1].ToString() : "")}'", at);
        }
        if (++_depth > MaxGroupDepth)
            throw Error($"groups nest more than {MaxGroupDepth} levels deep (the group at position {at})");
        if (!System.Runtime.CompilerServices.RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw Error($"groups nest too deeply for the stack of this thread (the group at position {at})");
        var inner = ParseAlternation();
        _depth--;
        if (AtEnd || Peek != ')') throw Error($"the group opened at position {at} is not closed");
        _position++;
        return inner;
    }

    /// <summary>The characters a backslash escape at the current position denotes.</summary>
    private CodePointSet ParseEscape(bool inClass)
    {
        int at = _position;
        _position++;
        if (_position >= _pattern.Length) throw Error($"the pattern ends with a lone '\\' at position {at}");
        char c = _pattern[_position++];
        switch (c)
        {
            case 'n': return CodePointSet.Single('\n');
            case 't': return CodePointSet.Single('\t');
            case 'r': return CodePointSet.Single('\r');
            case 'f': return CodePointSet.Single('\f');
            case 'v': return CodePointSet.Single('\v');
            case '0':
                if (_position < _pattern.Length && char.IsAsciiDigit(_pattern[_position]))
                    throw Unsupported($"an octal escape (\\0{_pattern[_position]}...)", at);
                return CodePointSet.Single(0);
            case 'x': return CodePointSet.Single(ReadHex(2, at, "\\x"));
            case 'u': return CodePointSet.Single(ReadUnicodeEscape(at));
            case 'd': return Digit;
            case 'D': return Digit.Complement();
            case 'w': return Word;
            case 'W': return Word.Complement();
            case 's': return Space;
            case 'S': return Space.Complement();
            case 'b' when inClass: return CodePointSet.Single('\b');
            case 'b' or 'B': throw Unsupported($"a word boundary (\\{c})", at);
            case 'A' or 'z' or 'Z' or 'G': throw Unsupported($"an anchor (\\{c})", at);
            case 'p' or 'P': throw Unsupported($"a Unicode category (\\{c}{{..}})", at);
            case 'k': throw Unsupported("a backreference (\\k<name>)", at);
            case >= '1' and <= '9': throw Unsupported($"a backreference (\\{c})", at);
            default:
                if (c < 128 && !char.IsAsciiLetterOrDigit(c)) return CodePointSet.Single(c);
                throw Unsupported($"the escape \\{c}", at);
        }
    }

    private int ReadHex(int digits, int at, string escape)
    {
        if (_position + digits > _pattern.Length
            || !int.TryParse(_pattern.AsSpan(_position, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int value)
            || _pattern.AsSpan(_position, digits).ContainsAny("+- "))
            throw Error($"the escape {escape} at position {at} needs {digits} hexadecimal digits");
        _position += digits;
        return value;
    }

    /// <summary>\uHHHH; a high surrogate must be followed by \uHHHH of a low one, and the pair is one character.</summary>
    private int ReadUnicodeEscape(int at)
    {
        int value = ReadHex(4, at, "\\u");
        if (value is >= 0xD800 and <= 0xDBFF && _position + 6 <= _pattern.Length && _pattern[_position] == '\\' && _pattern[_position + 1] == 'u')
        {
            int saved = _position;
            _position += 2;
            int low = ReadHex(4, saved, "\\u");
            if (low is >= 0xDC00 and <= 0xDFFF) return char.ConvertToUtf32((char)value, (char)low);
            _position = saved;
        }
        if (value is >= 0xD800 and <= 0xDFFF)
            throw Error($"the escape \\u{value:X4} at position {at} is a lone surrogate, which UTF-8 text cannot hold");
        return value;
    }

    private CodePointSet ParseClass()
    {
        int at = _position;
        _position++;
        bool negated = false;
        if (_position < _pattern.Length && _pattern[_position] == '^')
        {
            negated = true;
            _position++;
        }
        var ranges = new List<(int, int)>();
        var sets = new List<CodePointSet>();
        bool first = true;
        while (true)
        {
            if (_position >= _pattern.Length) throw Error($"the class opened at position {at} is not closed");
            char c = _pattern[_position];
            if (c == ']' && !first)
            {
                _position++;
                break;
            }
            first = false;
            if (c == '[' && _position + 1 < _pattern.Length && _pattern[_position + 1] == ':')
                throw Unsupported("a POSIX class ([:name:])", _position);
            if (c == '-' && _position + 1 < _pattern.Length && _pattern[_position + 1] == '[')
                throw Unsupported("a class subtraction (-[...])", _position);
            int itemAt = _position;
            var (lo, loSet) = ReadClassItem();
            if (loSet is null && _position + 1 < _pattern.Length && _pattern[_position] == '-' && _pattern[_position + 1] != ']')
            {
                _position++;
                if (_pattern[_position] == '[') throw Unsupported("a class subtraction (-[...])", _position - 1);
                var (hi, hiSet) = ReadClassItem();
                if (hiSet is not null) throw Error($"the class range at position {itemAt} ends in a class escape");
                if (hi < lo) throw Error($"the class range {_pattern[itemAt.._position]} at position {itemAt} is in reverse order");
                ranges.Add((lo, hi));
            }
            else if (loSet is not null) sets.Add(loSet);
            else ranges.Add((lo, lo));
        }
        var set = CodePointSet.Of(ranges);
        foreach (var s in sets) set = set.Union(s);
        return negated ? set.Complement() : set;
    }

    private (int CodePoint, CodePointSet? Set) ReadClassItem()
    {
        if (_pattern[_position] != '\\') return (ReadLiteralCodePoint(), null);
        bool isClass = _position + 1 < _pattern.Length && IsClassEscape(_pattern[_position + 1]);
        var set = ParseEscape(inClass: true);
        return isClass ? (0, set) : (set.Ranges[0].Lo, null);
    }

    private static bool IsClassEscape(char c) => c is 'd' or 'D' or 'w' or 'W' or 's' or 'S';
}
