using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace MLNetGpt.Chat;

internal delegate object? FilterFunction(RenderState state, object? value, Arguments arguments);

/// <summary>
/// Jinja2 3.1's built-in filters with their Python semantics (lazy generators included: map, select, reject,
/// unique, items, batch, slice yield one-shot iterators that are always truthy and have no length), plus Hugging
/// Face's <c>tojson</c>, which is <c>json.dumps</c> without HTML escaping.
/// </summary>
internal static class Filters
{
    private static readonly object Req = Arguments.Required;
    private static readonly Regex WordPattern = new(@"\w+", RegexOptions.CultureInvariant);

    private static readonly Dictionary<string, FilterFunction> All = new(StringComparer.Ordinal)
    {
        ["abs"] = (_, v, a) => { Bind(a, "abs"); return Abs(v); },
        ["attr"] = (_, v, a) => Attr(v, Bind(a, "do_attr", "name")[0]),
        ["batch"] = (_, v, a) => { var b = Bind(a, "do_batch", ("linecount", Req), ("fill_with", null)); return new PyIterator("generator", Batch(v, b[0], b[1])); },
        ["capitalize"] = (_, v, a) => { Bind(a, "do_capitalize"); return PyStr.Capitalize(PyFormat.Str(v)); },
        ["center"] = (_, v, a) => PyStr.Center(PyFormat.Str(v), PyOps.ToIndex(Bind(a, "do_center", ("width", 80L))[0])),
        ["count"] = (_, v, a) => { Bind(a, "len"); return PyOps.Length(v); },
        ["d"] = Default,
        ["default"] = Default,
        ["dictsort"] = DictSort,
        ["e"] = (_, v, a) => { Bind(a, "escape"); return Escape(v); },
        ["escape"] = (_, v, a) => { Bind(a, "escape"); return Escape(v); },
        ["filesizeformat"] = FileSizeFormat,
        ["first"] = (_, v, a) => { Bind(a, "do_first"); return First(v); },
        ["float"] = (_, v, a) => ToFloat(v, Bind(a, "do_float", ("default", 0.0))[0]),
        ["forceescape"] = (_, v, a) => { Bind(a, "do_forceescape"); return Escape(v); },
        ["format"] = Format,
        ["groupby"] = GroupBy,
        ["indent"] = Indent,
        ["int"] = (_, v, a) => { var b = Bind(a, "do_int", ("default", 0L), ("base", 10L)); return ToInt(v, b[0], b[1]); },
        ["items"] = (_, v, a) => { Bind(a, "do_items"); return new PyIterator("generator", Items(v)); },
        ["join"] = Join,
        ["last"] = (_, v, a) => { Bind(a, "do_last"); return Last(v); },
        ["length"] = (_, v, a) => { Bind(a, "len"); return PyOps.Length(v); },
        ["list"] = (_, v, a) => { Bind(a, "do_list"); return Listed(PyOps.Iterate(v), "the list filter's result"); },
        ["lower"] = (_, v, a) => { Bind(a, "do_lower"); return PyStr.Lower(PyFormat.Str(v)); },
        ["map"] = (s, v, a) => new PyIterator("generator", Map(s, v, a)),
        ["max"] = (_, v, a) => MinMax(v, a, "do_max", max: true),
        ["min"] = (_, v, a) => MinMax(v, a, "do_min", max: false),
        ["reject"] = (s, v, a) => new PyIterator("generator", Select(s, v, a, byAttribute: false, keep: false)),
        ["rejectattr"] = (s, v, a) => new PyIterator("generator", Select(s, v, a, byAttribute: true, keep: false)),
        ["replace"] = Replace,
        ["reverse"] = (_, v, a) => { Bind(a, "do_reverse"); return Reverse(v); },
        ["round"] = Round,
        ["safe"] = (_, v, a) => { Bind(a, "do_mark_safe"); return PyFormat.Str(v); },
        ["select"] = (s, v, a) => new PyIterator("generator", Select(s, v, a, byAttribute: false, keep: true)),
        ["selectattr"] = (s, v, a) => new PyIterator("generator", Select(s, v, a, byAttribute: true, keep: true)),
        ["slice"] = (_, v, a) => { var b = Bind(a, "do_slice", ("slices", Req), ("fill_with", null)); return new PyIterator("generator", SliceInto(v, b[0], b[1])); },
        ["sort"] = Sort,
        ["string"] = (_, v, a) => { Bind(a, "soft_str"); return PyFormat.Str(v); },
        ["sum"] = Sum,
        ["title"] = (_, v, a) => { Bind(a, "do_title"); return JinjaTitle(PyFormat.Str(v)); },
        ["tojson"] = ToJson,
        ["trim"] = (_, v, a) => PyStr.Strip(PyFormat.Str(v), StringOrNone(Bind(a, "do_trim", ("chars", null))[0], "strip"), true, true),
        ["truncate"] = Truncate,
        ["unique"] = Unique,
        ["upper"] = (_, v, a) => { Bind(a, "do_upper"); return PyStr.Upper(PyFormat.Str(v)); },
        ["wordcount"] = (_, v, a) => { Bind(a, "do_wordcount"); return (long)WordPattern.Matches(PyFormat.Str(v)).Count; },
    };

    /// <summary>Built-in Jinja2 filters this renderer leaves out (HTML/URL helpers, randomness, pretty-printing).</summary>
    private static readonly HashSet<string> NotSupported = new(StringComparer.Ordinal)
    {
        "pprint", "random", "striptags", "urlencode", "urlize", "wordwrap", "xmlattr",
    };

    public static bool TryGet(string name, out FilterFunction function) => All.TryGetValue(name, out function!);

    public static bool IsKnown(string name) => All.ContainsKey(name);

    public static string UnknownMessage(string name) => NotSupported.Contains(name)
        ? $"The Jinja2 filter {PyFormat.Repr(name)} is not supported by this renderer."
        : $"No filter named {PyFormat.Repr(name)}.";

    /// <summary>A list materialised from items (each already spent a step), charged to the render's allocation.</summary>
    private static PyList Listed(IEnumerable<object?> items, string what)
    {
        var list = new PyList(items);
        RenderState.ChargeItems(list.Count, what);
        return list;
    }

    private static object?[] Bind(Arguments a, string function, params (string Name, object? Default)[] parameters) =>
        a.Bind(function, parameters.Select(p => p.Name).ToArray(), parameters.Select(p => p.Default).ToArray());

    private static object?[] Bind(Arguments a, string function, string required) => a.Bind(function, new[] { required }, new[] { Req });

    private static string? StringOrNone(object? value, string method) => value switch
    {
        null => null,
        string s => s,
        _ => throw TemplateException.TypeError($"{method} arg must be None or str"),
    };

    private static object? Default(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "do_default", ("default_value", ""), ("boolean", false));
        return value is Undefined || (PyOps.Truthy(b[1]) && !PyOps.Truthy(value)) ? b[0] : value;
    }

    private static object? Abs(object? value) => value switch
    {
        // Each arm boxes on its own: a common arm type would turn integers into doubles.
        long l => l == long.MinValue ? throw new TemplateException(TemplateErrorKind.Overflow, "integer result beyond 64 bits") : (object)Math.Abs(l),
        double d => (object)Math.Abs(d),
        bool b => (object)(b ? 1L : 0L),
        Undefined u => throw u.Error(),
        _ => throw TemplateException.TypeError($"bad operand type for abs(): {PyFormat.Repr(PyOps.TypeName(value))}"),
    };

    private static object? Attr(object? obj, object? name)
    {
        if (name is not string attribute) throw TemplateException.TypeError("attribute name must be string");
        if (obj is Undefined u) throw u.Error();
        return PyAttributes.Find(obj, attribute, out var value) switch
        {
            AttributeLookup.Found => value,
            AttributeLookup.Unsafe => Undefined.Unsafe(obj, attribute),
            _ => Undefined.ForMember(obj, attribute),
        };
    }

    /// <summary>markupsafe.escape: &amp; &lt; &gt; " ' as HTML entities.</summary>
    private static string Escape(object? value) => PyStr.Expand(PyFormat.Str(value), c => c switch
    {
        '&' => "&amp;",
        '<' => "&lt;",
        '>' => "&gt;",
        '"' => "&#34;",
        '\'' => "&#39;",
        _ => null,
    });

    /// <summary>Jinja2's title: every run after - white space ( { [ &lt; is a word, capitalised on its own (unlike Python's str.title).</summary>
    public static string JinjaTitle(string s)
    {
        RenderState.ChargeString(s.Length, "the title-cased string");
        var sb = new StringBuilder(s.Length);
        var i = 0;
        while (i < s.Length)
        {
            var start = i;
            var separator = IsTitleSeparator(s[i]);
            while (i < s.Length && IsTitleSeparator(s[i]) == separator) i++;
            var item = s.Substring(start, i - start);
            sb.Append(separator ? item : PyStr.UpperFirstLowerRest(item));
        }
        return sb.ToString();
    }

    private static bool IsTitleSeparator(char c) => c is '-' or '(' or '{' or '[' or '<' || PyStr.IsSpace(c);

    private static IEnumerable<object?> Batch(object? value, object? lineCount, object? fill)
    {
        var size = PyOps.ToIndex(lineCount);
        var current = new List<object?>();
        foreach (var item in PyOps.Iterate(value))
        {
            if (current.Count == size)
            {
                RenderState.ChargeItems(current.Count, "a batch");
                yield return new PyList(current);
                current = new List<object?>();
            }
            current.Add(item);
        }
        if (current.Count > 0)
        {
            if (fill is not null) while (current.Count < size) current.Add(fill);
            yield return new PyList(current);
        }
    }

    private static IEnumerable<object?> SliceInto(object? value, object? slices, object? fill)
    {
        var items = PyOps.Iterate(value).ToList();
        RenderState.ChargeItems(items.Count, "the sliced items");
        var count = PyOps.ToIndex(slices);
        if (count > items.Count + 1L) RenderState.ChargeItems(count, "the list of slices");
        var perSlice = items.Count / count;
        var withExtra = items.Count % count;
        long offset = 0;
        for (long n = 0; n < count; n++)
        {
            var start = offset + n * perSlice;
            if (n < withExtra) offset++;
            var end = offset + (n + 1) * perSlice;
            var part = items.Skip((int)start).Take((int)(end - start)).ToList();
            if (fill is not null && n >= withExtra) part.Add(fill);
            yield return new PyList(part);
        }
    }

    private static object? DictSort(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "do_dictsort", ("case_sensitive", false), ("by", "key"), ("reverse", false));
        var position = b[1] switch
        {
            "key" => 0,
            "value" => 1,
            _ => throw TemplateException.Runtime("You can only sort by either \"key\" or \"value\""),
        };
        if (value is not PyDict dict) throw TemplateException.TypeError($"{PyFormat.Repr(PyOps.TypeName(value))} object has no attribute 'items'");
        var caseSensitive = PyOps.Truthy(b[0]);
        RenderState.ChargeItems(dict.Count * 3L, "the sorted pairs");
        var pairs = dict.Entries.Select(e => new PyTuple(new[] { e.Key, e.Value })).ToList();
        Func<PyTuple, object?> key = t => caseSensitive ? t.Items[position] : IgnoreCase(t.Items[position]);
        return new PyList(PyOps.Sorted(pairs, key, reverse: PyOps.Truthy(b[2])).Cast<object?>());
    }

    private static object? IgnoreCase(object? value) => value is string s ? PyStr.Lower(s) : value;

    private static object? FileSizeFormat(RenderState state, object? value, Arguments a)
    {
        var binary = PyOps.Truthy(Bind(a, "do_filesizeformat", ("binary", false))[0]);
        var bytes = value is string s ? ParseFloat(s) ?? throw TemplateException.ValueError($"could not convert string to float: {PyFormat.Repr(s)}") : ToDoubleStrict(value);
        double unitBase = binary ? 1024 : 1000;
        string[] prefixes = binary
            ? new[] { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB" }
            : new[] { "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB" };
        if (bytes == 1) return "1 Byte";
        if (bytes < unitBase) return $"{(long)bytes} Bytes";
        double unit = 0;
        for (var i = 0; i < prefixes.Length; i++)
        {
            unit = Math.Pow(unitBase, i + 2);
            if (bytes < unit) return $"{PyNumberFormat.Fixed(unitBase * bytes / unit, 1)} {prefixes[i]}";
        }
        return $"{PyNumberFormat.Fixed(unitBase * bytes / unit, 1)} {prefixes[^1]}";
    }

    private static double ToDoubleStrict(object? value) => value switch
    {
        long or double or bool => PyOps.AsDouble(value),
        Undefined u => throw u.Error(),
        _ => throw TemplateException.TypeError($"float() argument must be a string or a real number, not {PyFormat.Repr(PyOps.TypeName(value))}"),
    };

    private static object? First(object? value)
    {
        foreach (var item in PyOps.Iterate(value)) return item;
        return Undefined.WithHint("No first item, sequence was empty.");
    }

    private static object? Last(object? value)
    {
        IReadOnlyList<object?> items = value switch
        {
            PyList l => l.Items,
            PyTuple t => t.Items,
            string or PyDict or PyRange or DictView => PyOps.Iterate(value).ToList(),
            Undefined u => throw TemplateException.TypeError("'Undefined' object is not reversible"),
            _ => throw TemplateException.TypeError($"{PyFormat.Repr(PyOps.TypeName(value))} object is not reversible"),
        };
        return items.Count == 0 ? Undefined.WithHint("No last item, sequence was empty.") : items[^1];
    }

    private static object? Reverse(object? value)
    {
        switch (value)
        {
            case string s:
                return PyStr.Slice(s, new PySlice(null, null, -1L));
            case PyList l:
                RenderState.ChargeItems(l.Count, "the reversed list");
                return new PyIterator("list_reverseiterator", Enumerable.Reverse(l.Items.ToList()));
            case PyTuple t:
                return new PyIterator("reversed", Enumerable.Reverse(t.Items));
            case PyRange r:
                return new PyIterator("range_iterator", r.Iterate().Reverse());
            case PyDict d:
                return new PyIterator("dict_reversekeyiterator", d.Keys.Reverse());
            case DictView v:
                return new PyIterator("dict_reverseiterator", v.Iterate().Reverse());
        }
        if (!PyOps.IsIterable(value)) throw TemplateException.Runtime("argument must be iterable");
        var items = Listed(PyOps.Iterate(value), "the reversed items").Items;
        items.Reverse();
        return new PyList(items);
    }

    private static object? ToFloat(object? value, object? fallback) => value switch
    {
        double d => d,
        long or bool => PyOps.AsDouble(value),
        string s => ParseFloat(s) is { } parsed ? parsed : fallback,
        Undefined u => throw u.Error(),
        _ => fallback,
    };

    /// <summary>Python's float(str): surrounding white space, underscores between digits, inf/nan words.</summary>
    public static double? ParseFloat(string text)
    {
        var s = PyStr.Strip(text, null, true, true);
        var body = s.TrimStart('+', '-');
        if (s.Length - body.Length > 1) return null;
        var lower = body.ToLowerInvariant();
        var negative = s.StartsWith('-');
        if (lower is "inf" or "infinity") return negative ? double.NegativeInfinity : double.PositiveInfinity;
        if (lower == "nan") return double.NaN;
        if (!Regex.IsMatch(body, @"^(\d(_?\d)*)?(\.(\d(_?\d)*)?)?([eE][+-]?\d(_?\d)*)?$") || !Regex.IsMatch(body, @"^\.?\d")) return null;
        return double.Parse(s.Replace("_", "", StringComparison.Ordinal), NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    /// <summary>Jinja2's int filter: int(value, base), else int(float(value)), else the default.</summary>
    private static object? ToInt(object? value, object? fallback, object? numberBase)
    {
        switch (value)
        {
            case long l: return l;
            case bool b: return b ? 1L : 0L;
            case double d: return TruncateToLong(d) ?? fallback;
            case Undefined u: throw u.Error();
            case string s:
                var parsed = ParseInt(s, PyOps.ToIndex(numberBase));
                if (parsed is not null) return parsed;
                return ParseFloat(s) is { } f ? TruncateToLong(f) ?? fallback : fallback;
            default: return fallback;
        }
    }

    private static long? TruncateToLong(double d)
    {
        if (double.IsNaN(d)) return null;
        if (double.IsInfinity(d)) throw new TemplateException(TemplateErrorKind.Overflow, "cannot convert float infinity to integer");
        var t = Math.Truncate(d);
        if (t < -9.2233720368547758E18 || t >= 9.2233720368547758E18) throw new TemplateException(TemplateErrorKind.Overflow, "integer result beyond 64 bits");
        return (long)t;
    }

    /// <summary>Python's int(str, base) for bases 2 to 36 and 0, or null where Python raises ValueError.</summary>
    public static long? ParseInt(string text, long numberBase)
    {
        var s = PyStr.Strip(text, null, true, true);
        var negative = false;
        if (s.StartsWith('+') || s.StartsWith('-'))
        {
            negative = s[0] == '-';
            s = s.Substring(1);
        }
        var lower = s.ToLowerInvariant();
        if (numberBase == 0)
        {
            numberBase = lower.StartsWith("0x") ? 16 : lower.StartsWith("0o") ? 8 : lower.StartsWith("0b") ? 2 : 10;
            if (numberBase == 10 && lower.Length > 1 && lower[0] == '0' && lower.Trim('0', '_').Length > 0) return null;
        }
        if ((numberBase == 16 && lower.StartsWith("0x")) || (numberBase == 8 && lower.StartsWith("0o")) || (numberBase == 2 && lower.StartsWith("0b")))
        {
            lower = lower.Substring(2);
            if (lower.StartsWith('_')) lower = lower.Substring(1);
        }
        if (lower.Length == 0 || lower.StartsWith('_') || lower.EndsWith('_') || lower.Contains("__")) return null;
        long result = 0;
        try
        {
            foreach (var c in lower)
            {
                if (c == '_') continue;
                var digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : 99;
                if (digit >= numberBase) return null;
                result = checked(result * numberBase + digit);
            }
        }
        catch (OverflowException)
        {
            throw new TemplateException(TemplateErrorKind.Overflow, "integer result beyond 64 bits");
        }
        return negative ? -result : result;
    }

    private static object? Format(RenderState state, object? value, Arguments a)
    {
        if (a.Positional.Length > 0 && a.Keywords.Length > 0)
            throw TemplateException.Runtime("can't handle positional and keyword arguments at the same time");
        object? values;
        if (a.Keywords.Length > 0)
        {
            var mapping = new PyDict();
            foreach (var (key, item) in a.Keywords) mapping.Set(key, item);
            values = mapping;
        }
        else values = new PyTuple(a.Positional);
        return PyPercentFormat.Format(PyFormat.Str(value), values);
    }

    /// <summary>Jinja2's make_attrgetter: dotted paths, digit parts as indexes, item access first.</summary>
    private static Func<object?, object?> AttributeGetter(object? attribute, Func<object?, object?>? postprocess = null, object? fallback = null)
    {
        object?[] parts = attribute switch
        {
            null => Array.Empty<object?>(),
            string s => s.Split('.').Select(p => p.Length > 0 && p.All(char.IsAsciiDigit) ? (object?)long.Parse(p, CultureInfo.InvariantCulture) : p).ToArray(),
            _ => new[] { attribute },
        };
        return item =>
        {
            foreach (var part in parts)
            {
                item = PyOps.GetItem(item, part);
                if (fallback is not null && item is Undefined) item = fallback;
            }
            return postprocess is null ? item : postprocess(item);
        };
    }

    private static Func<object?, object?> MultiAttributeGetter(object? attribute, Func<object?, object?>? postprocess)
    {
        var getters = (attribute is string s ? s.Split(',').Cast<object?>() : new[] { attribute })
            .Select(part => AttributeGetter(part, postprocess)).ToArray();
        return item => new PyList(getters.Select(g => g(item)));
    }

    private static object? GroupBy(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "do_groupby", ("attribute", Req), ("default", null), ("case_sensitive", false));
        var caseSensitive = PyOps.Truthy(b[2]);
        var key = AttributeGetter(b[0], caseSensitive ? null : IgnoreCase, b[1]);
        var output = AttributeGetter(b[0], null, b[1]);
        var sorted = PyOps.Sorted(PyOps.Iterate(value), key);
        RenderState.ChargeItems(sorted.Count * 2L, "the groups");
        var groups = new List<object?>();
        List<object?>? current = null;
        object? currentKey = null;
        foreach (var item in sorted)
        {
            var k = key(item);
            if (current is null || !PyOps.Equal(k, currentKey))
            {
                current = new List<object?>();
                currentKey = k;
                groups.Add(current);
            }
            current.Add(item);
        }
        return new PyList(groups.Select(g =>
        {
            var members = (List<object?>)g!;
            return (object?)new PyTuple(new object?[] { caseSensitive ? key(members[0]) : output(members[0]), new PyList(members) }, new[] { "grouper", "list" });
        }));
    }

    private static object? Indent(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "do_indent", ("width", 4L), ("first", false), ("blank", false));
        var indentation = b[0] is string text ? text : (string)PyOps.Multiply(" ", b[0])!;
        // Python's s += "\n" extends a list instead of failing; splitlines then does not exist on it.
        if (value is PyList) throw new TemplateException(TemplateErrorKind.Attribute, "'list' object has no attribute 'splitlines'");
        var s = (string)PyOps.Add(value, "\n")!;
        var lines = PyStr.SplitLines(s);
        // Every line may gain the indentation: charged before the result is built.
        RenderState.ChargeString(s.Length + (long)lines.Count * indentation.Length + indentation.Length, "the indented text");
        string result;
        if (PyOps.Truthy(b[2])) result = string.Join("\n" + indentation, lines);
        else
        {
            var sb = new StringBuilder(lines[0]);
            for (var i = 1; i < lines.Count; i++)
            {
                sb.Append('\n');
                if (lines[i].Length > 0) sb.Append(indentation);
                sb.Append(lines[i]);
            }
            result = sb.ToString();
        }
        return PyOps.Truthy(b[1]) ? indentation + result : result;
    }

    private static IEnumerable<object?> Items(object? value)
    {
        if (value is Undefined) yield break;
        if (value is not PyDict dict) throw TemplateException.TypeError("Can only get item pairs from a mapping.");
        foreach (var item in new DictView(dict, DictViewKind.Items).Iterate()) yield return item;
    }

    private static object? Join(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "sync_do_join", ("d", ""), ("attribute", null));
        var items = PyOps.Iterate(value);
        if (b[1] is not null)
        {
            var getter = AttributeGetter(b[1]);
            items = items.Select(getter);
        }
        return PyAttributes.Join(PyFormat.Str(b[0]), new PyIterator("generator", items.Select(item => (object?)PyFormat.Str(item))));
    }

    private static IEnumerable<object?> Map(RenderState state, object? value, Arguments a)
    {
        if (!PyOps.Truthy(value)) yield break;
        Func<object?, object?> function;
        if (a.Positional.Length == 0 && a.Keywords.Any(k => k.Key == "attribute"))
        {
            var keywords = a.Keywords.ToList();
            var attribute = keywords.First(k => k.Key == "attribute").Value;
            keywords.RemoveAll(k => k.Key == "attribute");
            object? fallback = null;
            var d = keywords.FindIndex(k => k.Key == "default");
            if (d >= 0)
            {
                fallback = keywords[d].Value;
                keywords.RemoveAt(d);
            }
            if (keywords.Count > 0) throw TemplateException.Runtime($"Unexpected keyword argument {PyFormat.Repr(keywords[0].Key)}");
            function = AttributeGetter(attribute, null, fallback);
        }
        else
        {
            if (a.Positional.Length == 0) throw TemplateException.Runtime("map requires a filter argument");
            var name = a.Positional[0] as string ?? PyFormat.Str(a.Positional[0]);
            var rest = new Arguments(a.Positional[1..], a.Keywords);
            if (!TryGet(name, out var filter)) throw TemplateException.Runtime($"No filter named {PyFormat.Repr(name)}.");
            function = item => filter(state, item, rest);
        }
        foreach (var item in PyOps.Iterate(value)) yield return function(item);
    }

    private static IEnumerable<object?> Select(RenderState state, object? value, Arguments a, bool byAttribute, bool keep)
    {
        if (!PyOps.Truthy(value)) yield break;
        var offset = 0;
        Func<object?, object?> transform = x => x;
        if (byAttribute)
        {
            if (a.Positional.Length == 0) throw TemplateException.Runtime("Missing parameter for attribute name");
            transform = AttributeGetter(a.Positional[0]);
            offset = 1;
        }
        Func<object?, bool> test;
        if (a.Positional.Length > offset)
        {
            var name = a.Positional[offset] as string ?? PyFormat.Str(a.Positional[offset]);
            var rest = new Arguments(a.Positional[(offset + 1)..], a.Keywords);
            if (!Tests.TryGet(name, out var function)) throw TemplateException.Runtime($"No test named {PyFormat.Repr(name)}.");
            test = item => function(state, item, rest);
        }
        else test = PyOps.Truthy;
        foreach (var item in PyOps.Iterate(value))
            if (test(transform(item)) == keep) yield return item;
    }

    private static object? MinMax(object? value, Arguments a, string function, bool max)
    {
        var b = Bind(a, function, ("case_sensitive", false), ("attribute", null));
        var items = Listed(PyOps.Iterate(value), "the items to compare").Items;
        if (items.Count == 0) return Undefined.WithHint("No aggregated item, sequence was empty.");
        var key = AttributeGetter(b[1], PyOps.Truthy(b[0]) ? null : IgnoreCase);
        var best = items[0];
        var bestKey = key(best);
        foreach (var item in items.Skip(1))
        {
            var k = key(item);
            var c = PyOps.Compare(k, bestKey, max ? ">" : "<");
            if (c != int.MinValue && (max ? c > 0 : c < 0))
            {
                best = item;
                bestKey = k;
            }
        }
        return best;
    }

    private static object? Replace(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "do_replace", ("old", Req), ("new", Req), ("count", null));
        var count = b[2] is null ? -1 : PyOps.ToIndex(b[2]);
        return PyStr.Replace(PyFormat.Str(value), PyFormat.Str(b[0]), PyFormat.Str(b[1]), count);
    }

    private static object? Round(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "do_round", ("precision", 0L), ("method", "common"));
        if (b[1] is not ("common" or "ceil" or "floor")) throw TemplateException.Runtime("method must be common, ceil or floor");
        if (value is Undefined u) throw u.Error();
        if (!PyOps.IsNumber(value)) throw TemplateException.TypeError($"type {PyOps.TypeName(value)} doesn't define __round__ method");
        var precision = PyOps.ToIndex(b[0]);
        if ((string)b[1]! == "common")
        {
            if (PyOps.IsInteger(value))
            {
                var whole = PyOps.AsLong(value);
                if (precision >= 0) return whole;
                var unit = (long)Math.Pow(10, Math.Min(-precision, 18));
                var q = Math.DivRem(whole, unit, out var r);
                if (Math.Abs(r) * 2 > unit || (Math.Abs(r) * 2 == unit && q % 2 != 0)) q += Math.Sign(whole);
                return q * unit;
            }
            return PyNumberFormat.Round(PyOps.AsDouble(value), precision);
        }
        var scale = Math.Pow(10, precision);
        var scaled = PyOps.AsDouble(value) * scale;
        return ((string)b[1]! == "ceil" ? Math.Ceiling(scaled) : Math.Floor(scaled)) / scale;
    }

    private static object? Sort(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "do_sort", ("reverse", false), ("case_sensitive", false), ("attribute", null));
        var key = MultiAttributeGetter(b[2], PyOps.Truthy(b[1]) ? null : IgnoreCase);
        return new PyList(PyOps.Sorted(PyOps.Iterate(value), key, reverse: PyOps.Truthy(b[0])));
    }

    private static object? Sum(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "sync_do_sum", ("attribute", null), ("start", 0L));
        var items = PyOps.Iterate(value);
        if (b[0] is not null) items = items.Select(AttributeGetter(b[0]));
        if (b[1] is string) throw TemplateException.TypeError("sum() can't sum strings [use ''.join(seq) instead]");
        var total = b[1];
        foreach (var item in items) total = PyOps.Add(total, item);
        return total;
    }

    private static object? ToJson(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "tojson", ("ensure_ascii", false), ("indent", null), ("separators", null), ("sort_keys", false));
        return PyJson.Dumps(value, PyOps.Truthy(b[0]), b[1], b[2], PyOps.Truthy(b[3]));
    }

    private static object? Truncate(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "do_truncate", ("length", 255L), ("killwords", false), ("end", "..."), ("leeway", null));
        var s = value as string ?? throw TemplateException.TypeError($"object of type {PyFormat.Repr(PyOps.TypeName(value))} has no len()");
        var length = PyOps.ToIndex(b[0]);
        var end = PyFormat.Str(b[2]);
        var leeway = b[3] is null ? 5 : PyOps.ToIndex(b[3]);
        if (length < end.Length) throw TemplateException.Runtime($"expected length >= {end.Length}, got {length}");
        if (leeway < 0) throw TemplateException.Runtime($"expected leeway >= 0, got {leeway}");
        if (PyStr.Length(s) <= length + leeway) return s;
        var head = PyStr.Slice(s, new PySlice(null, length - end.Length, null));
        RenderState.ChargeString((long)head.Length + end.Length, "the truncated string");
        if (PyOps.Truthy(b[1])) return head + end;
        var space = head.LastIndexOf(' ');
        return (space >= 0 ? head.Substring(0, space) : head) + end;
    }

    private static object? Unique(RenderState state, object? value, Arguments a)
    {
        var b = Bind(a, "do_unique", ("case_sensitive", false), ("attribute", null));
        return new PyIterator("generator", UniqueItems(value, AttributeGetter(b[1], PyOps.Truthy(b[0]) ? null : IgnoreCase)));
    }

    private static IEnumerable<object?> UniqueItems(object? value, Func<object?, object?> key)
    {
        var seen = new HashSet<object>(PyKeyComparer.Instance);
        foreach (var item in PyOps.Iterate(value))
            if (seen.Add(PyKeyComparer.Wrap(key(item)))) yield return item;
    }
}
