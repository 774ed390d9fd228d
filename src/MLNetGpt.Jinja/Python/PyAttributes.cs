using System.Text;

namespace MLNetGpt.Chat;

internal enum AttributeLookup { Missing, Found, Unsafe }

/// <summary>
/// The Python attributes of template values: str, dict, list and tuple methods, namespace attributes, the loop
/// object. Methods that mutate a list or dict are refused as Jinja2's ImmutableSandboxedEnvironment refuses them
/// (list.pop and list.clear are not in its list, so they stay allowed, as there).
/// </summary>
internal static class PyAttributes
{
    private static readonly HashSet<string> UnsafeListMethods = new(StringComparer.Ordinal) { "append", "reverse", "insert", "sort", "extend", "remove" };
    private static readonly HashSet<string> UnsafeDictMethods = new(StringComparer.Ordinal) { "clear", "pop", "popitem", "setdefault", "update" };

    public static AttributeLookup Find(object? obj, string name, out object? value)
    {
        value = null;
        // Every Python object has dunder attributes (__class__, __init__, ...); the sandbox refuses them all.
        if (name.Length > 4 && name.StartsWith("__", StringComparison.Ordinal) && name.EndsWith("__", StringComparison.Ordinal))
            return AttributeLookup.Unsafe;
        switch (obj)
        {
            case string s:
                return Method(StringMethod(s, name), out value);
            case PyDict d:
                if (UnsafeDictMethods.Contains(name)) return AttributeLookup.Unsafe;
                return Method(DictMethod(d, name), out value);
            case PyList l:
                if (UnsafeListMethods.Contains(name)) return AttributeLookup.Unsafe;
                return Method(ListMethod(l, name), out value);
            case PyTuple t:
                if (t.FieldNames is not null)
                {
                    var field = Array.IndexOf(t.FieldNames, name);
                    if (field >= 0)
                    {
                        value = t.Items[field];
                        return AttributeLookup.Found;
                    }
                }
                return Method(SequenceMethod(t, t.Items, name), out value);
            case Namespace ns:
                if (!ns.Attributes.TryGetValue(name, out value)) return AttributeLookup.Missing;
                return name.StartsWith('_') ? AttributeLookup.Unsafe : AttributeLookup.Found;
            case LoopContext loop:
                return loop.TryGetAttribute(name, out value) ? AttributeLookup.Found : AttributeLookup.Missing;
            case Macro macro:
                return macro.TryGetAttribute(name, out value) ? AttributeLookup.Found : AttributeLookup.Missing;
            case Cycler cycler:
                value = name switch
                {
                    "current" => cycler.Current,
                    "items" => new PyTuple(cycler.Items),
                    "next" => new BuiltinFunction("next", (_, a) => { a.NoKeywords("next").Bind("next", Array.Empty<string>(), Array.Empty<object?>()); return cycler.Next(); }, cycler, true),
                    "reset" => new BuiltinFunction("reset", (_, a) => { a.NoKeywords("reset").Bind("reset", Array.Empty<string>(), Array.Empty<object?>()); cycler.Reset(); return null; }, cycler, true),
                    _ => Missing,
                };
                break;
            case PyRange range:
                value = name switch
                {
                    "start" => range.Start,
                    "stop" => range.Stop,
                    "step" => range.Step,
                    _ => Missing,
                };
                break;
            default:
                return AttributeLookup.Missing;
        }
        if (ReferenceEquals(value, Missing))
        {
            value = null;
            return AttributeLookup.Missing;
        }
        return AttributeLookup.Found;
    }

    private static readonly object Missing = new();

    private static AttributeLookup Method(BuiltinFunction? method, out object? value)
    {
        value = method;
        return method is null ? AttributeLookup.Missing : AttributeLookup.Found;
    }

    private static BuiltinFunction Bound(object self, string name, Func<object?[], object?> body, string[] parameters, object?[] defaults) =>
        new(name, (_, args) => body(args.NoKeywords(self, name).Bind(name, parameters, defaults)), self, isMethod: true);

    private static readonly object Req = Arguments.Required;

    private static BuiltinFunction? StringMethod(string s, string name) => name switch
    {
        "strip" => Bound(s, name, a => PyStr.Strip(s, Chars(a[0], name), true, true), new[] { "chars" }, new object?[] { null }),
        "lstrip" => Bound(s, name, a => PyStr.Strip(s, Chars(a[0], name), true, false), new[] { "chars" }, new object?[] { null }),
        "rstrip" => Bound(s, name, a => PyStr.Strip(s, Chars(a[0], name), false, true), new[] { "chars" }, new object?[] { null }),
        "split" => new BuiltinFunction(name, (_, args) =>
        {
            var a = args.Bind(name, new[] { "sep", "maxsplit" }, new object?[] { null, -1L });
            return PyStr.Split(s, Chars(a[0], name), PyOps.ToIndex(a[1]));
        }, s, true),
        "rsplit" => new BuiltinFunction(name, (_, args) =>
        {
            var a = args.Bind(name, new[] { "sep", "maxsplit" }, new object?[] { null, -1L });
            return PyStr.RSplit(s, Chars(a[0], name), PyOps.ToIndex(a[1]));
        }, s, true),
        "splitlines" => new BuiltinFunction(name, (_, args) =>
        {
            var a = args.Bind(name, new[] { "keepends" }, new object?[] { false });
            return new PyList(PyStr.SplitLines(s, PyOps.Truthy(a[0])).Cast<object?>());
        }, s, true),
        "startswith" => Bound(s, name, a => Affix(s, a, name, (text, affix) => text.StartsWith(affix, StringComparison.Ordinal)), new[] { "prefix", "start", "end" }, new object?[] { Req, null, null }),
        "endswith" => Bound(s, name, a => Affix(s, a, name, (text, affix) => text.EndsWith(affix, StringComparison.Ordinal)), new[] { "suffix", "start", "end" }, new object?[] { Req, null, null }),
        "replace" => Bound(s, name, a => PyStr.Replace(s, Text(a[0], name), Text(a[1], name), PyOps.ToIndex(a[2])), new[] { "old", "new", "count" }, new object?[] { Req, Req, -1L }),
        "find" => Bound(s, name, a => Find(s, a, name, last: false), new[] { "sub", "start", "end" }, new object?[] { Req, null, null }),
        "rfind" => Bound(s, name, a => Find(s, a, name, last: true), new[] { "sub", "start", "end" }, new object?[] { Req, null, null }),
        "index" => Bound(s, name, a => NotFound(Find(s, a, name, last: false)), new[] { "sub", "start", "end" }, new object?[] { Req, null, null }),
        "rindex" => Bound(s, name, a => NotFound(Find(s, a, name, last: true)), new[] { "sub", "start", "end" }, new object?[] { Req, null, null }),
        "count" => Bound(s, name, a => Count(s, a, name), new[] { "sub", "start", "end" }, new object?[] { Req, null, null }),
        "upper" => Bound(s, name, _ => PyStr.Upper(s), Array.Empty<string>(), Array.Empty<object?>()),
        "lower" => Bound(s, name, _ => PyStr.Lower(s), Array.Empty<string>(), Array.Empty<object?>()),
        "casefold" => Bound(s, name, _ => PyStr.Lower(s).Replace("ß", "ss", StringComparison.Ordinal), Array.Empty<string>(), Array.Empty<object?>()),
        "title" => Bound(s, name, _ => PyStr.Title(s), Array.Empty<string>(), Array.Empty<object?>()),
        "capitalize" => Bound(s, name, _ => PyStr.Capitalize(s), Array.Empty<string>(), Array.Empty<object?>()),
        "swapcase" => Bound(s, name, _ => PyStr.SwapCase(s), Array.Empty<string>(), Array.Empty<object?>()),
        "join" => Bound(s, name, a => Join(s, a[0]), new[] { "iterable" }, new object?[] { Req }),
        "format" => new BuiltinFunction(name, (_, args) => PyStringFormat.Format(s, args), s, true),
        "center" => Bound(s, name, a => PyStr.Center(s, PyOps.ToIndex(a[0]), Fill(a[1], name)), new[] { "width", "fillchar" }, new object?[] { Req, " " }),
        "ljust" => Bound(s, name, a => s + Padding(s, a, name), new[] { "width", "fillchar" }, new object?[] { Req, " " }),
        "rjust" => Bound(s, name, a => Padding(s, a, name) + s, new[] { "width", "fillchar" }, new object?[] { Req, " " }),
        "zfill" => Bound(s, name, a => ZFill(s, PyOps.ToIndex(a[0])), new[] { "width" }, new object?[] { Req }),
        "partition" => Bound(s, name, a => Partition(s, Text(a[0], name), last: false), new[] { "sep" }, new object?[] { Req }),
        "rpartition" => Bound(s, name, a => Partition(s, Text(a[0], name), last: true), new[] { "sep" }, new object?[] { Req }),
        "removeprefix" => Bound(s, name, a => Text(a[0], name) is var p && s.StartsWith(p, StringComparison.Ordinal) ? s.Substring(p.Length) : s, new[] { "prefix" }, new object?[] { Req }),
        "removesuffix" => Bound(s, name, a => Text(a[0], name) is var p && p.Length > 0 && s.EndsWith(p, StringComparison.Ordinal) ? s.Substring(0, s.Length - p.Length) : s, new[] { "suffix" }, new object?[] { Req }),
        "isdigit" or "isnumeric" or "isdecimal" => Predicate(s, name, char.IsDigit),
        "isalpha" => Predicate(s, name, char.IsLetter),
        "isalnum" => Predicate(s, name, char.IsLetterOrDigit),
        "isspace" => Predicate(s, name, PyStr.IsSpace),
        "isascii" => Bound(s, name, _ => s.All(c => c < 0x80), Array.Empty<string>(), Array.Empty<object?>()),
        "islower" => Bound(s, name, _ => PyStr.IsLowerText(s), Array.Empty<string>(), Array.Empty<object?>()),
        "isupper" => Bound(s, name, _ => PyStr.IsUpperText(s), Array.Empty<string>(), Array.Empty<object?>()),
        "istitle" => Bound(s, name, _ => s.Length > 0 && PyStr.Title(s) == s && s.Any(char.IsLetter), Array.Empty<string>(), Array.Empty<object?>()),
        _ => null,
    };

    private static BuiltinFunction Predicate(string s, string name, Func<char, bool> test) =>
        Bound(s, name, _ => s.Length > 0 && s.All(test), Array.Empty<string>(), Array.Empty<object?>());

    private static string? Chars(object? value, string method) => value switch
    {
        null => null,
        string s => s,
        _ => throw TemplateException.TypeError($"{method} arg must be None or str"),
    };

    private static string Text(object? value, string method) => value as string
        ?? throw TemplateException.TypeError($"{method}() argument must be str, not {PyOps.TypeName(value)}");

    /// <summary>The fill that ljust/rjust add up to the width, refused before it is built when it would be too long.</summary>
    private static string Padding(string s, object?[] a, string method)
    {
        var fill = Fill(a[1], method);
        var count = PyOps.ToIndex(a[0]) - PyStr.Length(s);
        if (count <= 0) return "";
        RenderState.ChargeString(s.Length + count * fill.Length, $"the result of str.{method}");
        return PyStr.Repeat(fill, count);
    }

    private static string Fill(object? value, string method) => value is string { Length: 1 } s ? s
        : throw TemplateException.TypeError($"The fill character must be exactly one character long");

    /// <summary>The start/end window of find/count/startswith, as UTF-16 offsets.</summary>
    private static (int Start, int End) Window(string s, object? start, object? end)
    {
        var from = start is null ? 0 : PyStr.Utf16Offset(s, PyOps.ToIndex(start));
        var to = end is null ? s.Length : PyStr.Utf16Offset(s, PyOps.ToIndex(end));
        return (from, Math.Max(from, to));
    }

    private static bool Affix(string s, object?[] a, string method, Func<string, string, bool> test)
    {
        var (start, end) = Window(s, a[1], a[2]);
        if (a[1] is not null && PyOps.ToIndex(a[1]) > PyStr.Length(s)) return false;
        var window = s.Substring(start, end - start);
        return a[0] switch
        {
            string affix => test(window, affix),
            PyTuple tuple => tuple.Items.Any(item => item is string affix
                ? test(window, affix)
                : throw TemplateException.TypeError($"tuple for {method} must only contain str, not {PyOps.TypeName(item)}")),
            _ => throw TemplateException.TypeError($"{method} first arg must be str or a tuple of str, not {PyOps.TypeName(a[0])}"),
        };
    }

    private static long Find(string s, object?[] a, string method, bool last)
    {
        var sub = Text(a[0], method);
        var (start, end) = Window(s, a[1], a[2]);
        if (a[1] is not null && PyOps.ToIndex(a[1]) > PyStr.Length(s)) return -1;
        var window = s.Substring(start, end - start);
        var found = last ? window.LastIndexOf(sub, StringComparison.Ordinal) : window.IndexOf(sub, StringComparison.Ordinal);
        return found < 0 ? -1 : PyStr.CodePointIndex(s, start + found);
    }

    private static long NotFound(long index) => index >= 0 ? index : throw TemplateException.ValueError("substring not found");

    private static long Count(string s, object?[] a, string method)
    {
        var sub = Text(a[0], method);
        var (start, end) = Window(s, a[1], a[2]);
        var window = s.Substring(start, end - start);
        if (sub.Length == 0) return PyStr.Length(window) + 1;
        long count = 0;
        for (var i = window.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = window.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) count++;
        return count;
    }

    public static string Join(string separator, object? iterable)
    {
        var parts = new List<string>();
        long length = 0;
        foreach (var item in PyOps.Iterate(iterable))
        {
            if (item is not string text)
                throw TemplateException.TypeError($"sequence item {parts.Count}: expected str instance, {PyOps.TypeName(item)} found");
            length += text.Length + (parts.Count > 0 ? separator.Length : 0);
            // Checked as it grows: a long list of references to one long string never reaches the allocator.
            if (length > (RenderState.Current?.Limits ?? TemplateLimits.Default).MaxValueLength) RenderState.ChargeString(length, "the joined string");
            parts.Add(text);
        }
        RenderState.ChargeString(length, "the joined string");
        return string.Join(separator, parts);
    }

    private static string ZFill(string s, long width)
    {
        var padding = width - PyStr.Length(s);
        if (padding <= 0) return s;
        RenderState.ChargeString(s.Length + padding, "the result of str.zfill");
        var sign = s.Length > 0 && s[0] is '+' or '-' ? 1 : 0;
        return s.Substring(0, sign) + new string('0', (int)padding) + s.Substring(sign);
    }

    private static PyTuple Partition(string s, string separator, bool last)
    {
        if (separator.Length == 0) throw TemplateException.ValueError("empty separator");
        var found = last ? s.LastIndexOf(separator, StringComparison.Ordinal) : s.IndexOf(separator, StringComparison.Ordinal);
        if (found < 0) return last ? new PyTuple(new object?[] { "", "", s }) : new PyTuple(new object?[] { s, "", "" });
        return new PyTuple(new object?[] { s.Substring(0, found), separator, s.Substring(found + separator.Length) });
    }

    private static BuiltinFunction? DictMethod(PyDict d, string name) => name switch
    {
        "get" => Bound(d, name, a => d.TryGetValue(a[0], out var v) ? v : a[1], new[] { "key", "default" }, new object?[] { Req, null }),
        "items" => Bound(d, name, _ => new DictView(d, DictViewKind.Items), Array.Empty<string>(), Array.Empty<object?>()),
        "keys" => Bound(d, name, _ => new DictView(d, DictViewKind.Keys), Array.Empty<string>(), Array.Empty<object?>()),
        "values" => Bound(d, name, _ => new DictView(d, DictViewKind.Values), Array.Empty<string>(), Array.Empty<object?>()),
        "copy" => Bound(d, name, _ => d.Copy(), Array.Empty<string>(), Array.Empty<object?>()),
        _ => null,
    };

    private static BuiltinFunction? ListMethod(PyList l, string name) => name switch
    {
        "copy" => Bound(l, name, _ =>
        {
            RenderState.ChargeItems(l.Count, "the list copy");
            return new PyList(l.Items);
        }, Array.Empty<string>(), Array.Empty<object?>()),
        "pop" => Bound(l, name, a =>
        {
            if (l.Count == 0) throw new TemplateException(TemplateErrorKind.Lookup, "pop from empty list");
            var index = PyOps.ToIndex(a[0]);
            if (index < 0) index += l.Count;
            if (index < 0 || index >= l.Count) throw new TemplateException(TemplateErrorKind.Lookup, "pop index out of range");
            var item = l.Items[(int)index];
            l.Items.RemoveAt((int)index);
            return item;
        }, new[] { "index" }, new object?[] { -1L }),
        "clear" => Bound(l, name, _ => { l.Items.Clear(); return null; }, Array.Empty<string>(), Array.Empty<object?>()),
        _ => SequenceMethod(l, l.Items, name),
    };

    private static BuiltinFunction? SequenceMethod(object self, IReadOnlyList<object?> items, string name) => name switch
    {
        "index" => Bound(self, name, a =>
        {
            var start = a[1] is null ? 0 : Clamp(PyOps.ToIndex(a[1]), items.Count);
            var end = a[2] is null ? items.Count : Clamp(PyOps.ToIndex(a[2]), items.Count);
            for (var i = start; i < end; i++) if (PyOps.Equal(items[(int)i], a[0])) return i;
            throw TemplateException.ValueError($"{PyFormat.Repr(a[0])} is not in {PyOps.TypeName(self)}");
        }, new[] { "value", "start", "stop" }, new object?[] { Req, null, null }),
        "count" => Bound(self, name, a => (long)items.Count(item => PyOps.Equal(item, a[0])), new[] { "value" }, new object?[] { Req }),
        _ => null,
    };

    private static long Clamp(long index, int count)
    {
        if (index < 0) index += count;
        return Math.Min(Math.Max(index, 0), count);
    }
}
