using System.Collections;

namespace MLNetGpt.Chat;

// The closed value model of the renderer. Python's None is null, bool is bool, int is long, float is double and
// str is string; everything else is one of the types below. No other .NET object ever reaches a template.

/// <summary>
/// Jinja2's default <c>Undefined</c>: prints as "", is falsy, iterates empty, has length 0 and equals only another
/// undefined; arithmetic, comparison, calls, attribute and item access on it raise with its message.
/// </summary>
internal sealed class Undefined
{
    private static readonly object NoObject = new();
    private readonly object? obj;

    private Undefined(string? hint, object? obj, object? name, TemplateErrorKind kind)
    {
        Hint = hint;
        this.obj = obj;
        Name = name;
        Kind = kind;
    }

    public string? Hint { get; }

    public object? Name { get; }

    /// <summary>Undefined for a missing attribute of a known object, or a security refusal.</summary>
    public TemplateErrorKind Kind { get; }

    /// <summary>A variable that was never defined.</summary>
    public static Undefined ForName(string name) => new(null, NoObject, name, TemplateErrorKind.Undefined);

    /// <summary>An attribute or element <paramref name="name"/> that <paramref name="owner"/> does not have.</summary>
    public static Undefined ForMember(object? owner, object? name) => new(null, owner, name, TemplateErrorKind.Undefined);

    /// <summary>An undefined that explains itself.</summary>
    public static Undefined WithHint(string hint, string? name = null) => new(hint, NoObject, name, TemplateErrorKind.Undefined);

    /// <summary>What the sandbox returns for an attribute it refuses: harmless to print, an error to call.</summary>
    public static Undefined Unsafe(object? owner, string attribute) => new(
        $"access to attribute {PyFormat.Repr(attribute)} of {PyFormat.Repr(PyOps.TypeName(owner))} object is unsafe.",
        owner, attribute, TemplateErrorKind.Security);

    /// <summary>Jinja2's <c>_undefined_message</c>.</summary>
    public string Message
    {
        get
        {
            if (!string.IsNullOrEmpty(Hint)) return Hint;
            if (ReferenceEquals(obj, NoObject)) return $"{PyFormat.Repr(Name)} is undefined";
            if (Name is not string) return $"{PyOps.ObjectTypeRepr(obj)} has no element {PyFormat.Repr(Name)}";
            return $"{PyFormat.Repr(PyOps.ObjectTypeRepr(obj))} has no attribute {PyFormat.Repr(Name)}";
        }
    }

    public TemplateException Error() => new(Kind, Message);
}

/// <summary>Python's list (mutable only through the few methods the immutable sandbox allows: pop, clear).</summary>
internal sealed class PyList
{
    public PyList() => Items = new List<object?>();

    public PyList(List<object?> items) => Items = items;

    public PyList(IEnumerable<object?> items) => Items = new List<object?>(items);

    public List<object?> Items { get; }

    public int Count => Items.Count;

    /// <summary>Index-based so that a pop inside a loop over the same list behaves as Python's list iterator.</summary>
    public IEnumerable<object?> Iterate()
    {
        for (var i = 0; i < Items.Count; i++) yield return Items[i];
    }
}

/// <summary>Python's tuple; <see cref="FieldNames"/> makes it a named tuple (groupby's grouper/list).</summary>
internal sealed class PyTuple
{
    public static readonly PyTuple Empty = new(Array.Empty<object?>());

    public PyTuple(object?[] items, string[]? fieldNames = null)
    {
        Items = items;
        FieldNames = fieldNames;
    }

    public object?[] Items { get; }

    public string[]? FieldNames { get; }

    public int Count => Items.Length;
}

/// <summary>Python's dict: insertion-ordered, keys compared and hashed as Python does (1 == 1.0 == True).</summary>
internal sealed class PyDict
{
    private readonly Dictionary<object, int> slots = new(PyKeyComparer.Instance);
    private readonly List<KeyValuePair<object?, object?>> entries = new();

    public int Count => entries.Count;

    public IReadOnlyList<KeyValuePair<object?, object?>> Entries => entries;

    public IEnumerable<object?> Keys
    {
        get
        {
            for (var i = 0; i < entries.Count; i++) yield return entries[i].Key;
        }
    }

    public bool TryGetValue(object? key, out object? value)
    {
        if (slots.TryGetValue(PyKeyComparer.Wrap(key), out var slot))
        {
            value = entries[slot].Value;
            return true;
        }
        value = null;
        return false;
    }

    public bool ContainsKey(object? key) => slots.ContainsKey(PyKeyComparer.Wrap(key));

    /// <summary>Python's <c>d[key] = value</c>: a new key goes last, an existing key keeps its place.</summary>
    public void Set(object? key, object? value)
    {
        var wrapped = PyKeyComparer.Wrap(key);
        if (slots.TryGetValue(wrapped, out var slot))
            entries[slot] = new KeyValuePair<object?, object?>(entries[slot].Key, value);
        else
        {
            slots.Add(wrapped, entries.Count);
            entries.Add(new KeyValuePair<object?, object?>(key, value));
        }
    }

    public PyDict Copy()
    {
        RenderState.ChargeItems(entries.Count, "the dictionary copy");
        var copy = new PyDict();
        foreach (var entry in entries) copy.Set(entry.Key, entry.Value);
        return copy;
    }
}

/// <summary>Equality and hashing of dict keys and set members with Python's rules.</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();
    private static readonly object NoneKey = new();

    public static object Wrap(object? key) => Wrap(key, 0);

    private static object Wrap(object? key, int depth)
    {
        if (key is null) return NoneKey;
        if (key is PyList or PyDict or DictView)
            throw TemplateException.TypeError($"unhashable type: {PyFormat.Repr(PyOps.TypeName(key))}");
        if (key is PyTuple tuple)
        {
            RenderState.EnsureValueDepth(depth + 1, "while hashing a tuple");
            foreach (var item in tuple.Items) Wrap(item, depth + 1);
        }
        return key;
    }

    public new bool Equals(object? x, object? y)
    {
        if (ReferenceEquals(x, y)) return true;
        if (ReferenceEquals(x, NoneKey) || ReferenceEquals(y, NoneKey)) return false;
        return PyOps.Equal(x, y);
    }

    public int GetHashCode(object obj) => obj switch
    {
        string s => HashString(s),
        bool b => b ? 1 : 0,
        long l => l.GetHashCode(),
        double d => d == Math.Floor(d) && d >= long.MinValue && d <= long.MaxValue ? ((long)d).GetHashCode() : d.GetHashCode(),
        PyTuple t => TupleHash(t),
        Undefined => 17,
        _ => System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(obj),
    };

    private static int HashString(string s)
    {
        // Hashing reads the whole key: a template looking up a long string again and again pays for it.
        RenderState.ChargeRead(s.Length);
        return s.GetHashCode(StringComparison.Ordinal);
    }

    private int TupleHash(PyTuple tuple)
    {
        // Wrap has refused unhashable items and tuples nested too deeply before a tuple is ever hashed.
        RenderState.ChargeRead(tuple.Count);
        RenderState.EnsureStack();
        var hash = new HashCode();
        foreach (var item in tuple.Items) hash.Add(GetHashCode(Wrap(item)));
        return hash.ToHashCode();
    }
}

/// <summary>Jinja2's <c>namespace(...)</c>: the one object a template may assign attributes on.</summary>
internal sealed class Namespace
{
    public PyDict Attributes { get; } = new();
}

/// <summary>Python's range object (the sandbox limits it to 100,000 items).</summary>
internal sealed class PyRange
{
    public PyRange(long start, long stop, long step)
    {
        Start = start;
        Stop = stop;
        Step = step;
    }

    public long Start { get; }

    public long Stop { get; }

    public long Step { get; }

    public long Length => Step > 0
        ? (Stop > Start ? (Stop - Start + Step - 1) / Step : 0)
        : (Start > Stop ? (Start - Stop - Step - 1) / -Step : 0);

    public long this[long index] => Start + index * Step;

    public IEnumerable<object?> Iterate()
    {
        for (long i = 0, n = Length; i < n; i++) yield return Start + i * Step;
    }
}

/// <summary>
/// A one-shot Python iterator: what map, select, reject, unique, batch, reverse and friends return. Like a Python
/// generator it is always truthy, has no length and is empty once consumed.
/// </summary>
internal sealed class PyIterator
{
    private readonly IEnumerator<object?> source;

    public PyIterator(string typeName, IEnumerable<object?> items)
    {
        TypeName = typeName;
        source = items.GetEnumerator();
    }

    /// <summary>Python's type name: generator, list_reverseiterator, ...</summary>
    public string TypeName { get; }

    public IEnumerable<object?> Iterate()
    {
        while (source.MoveNext()) yield return source.Current;
    }
}

internal enum DictViewKind { Keys, Values, Items }

/// <summary>dict.keys() / values() / items(): live views with a length.</summary>
internal sealed class DictView
{
    public DictView(PyDict dict, DictViewKind kind)
    {
        Dict = dict;
        Kind = kind;
    }

    public PyDict Dict { get; }

    public DictViewKind Kind { get; }

    public string TypeName => Kind switch
    {
        DictViewKind.Keys => "dict_keys",
        DictViewKind.Values => "dict_values",
        _ => "dict_items",
    };

    public IEnumerable<object?> Iterate()
    {
        for (var i = 0; i < Dict.Entries.Count; i++)
        {
            var entry = Dict.Entries[i];
            yield return Kind switch
            {
                DictViewKind.Keys => entry.Key,
                DictViewKind.Values => entry.Value,
                _ => new PyTuple(new[] { entry.Key, entry.Value }),
            };
        }
    }
}

/// <summary>A slice in a subscript, <c>x[a:b:c]</c>; each part may be None.</summary>
internal sealed class PySlice
{
    public PySlice(object? start, object? stop, object? step)
    {
        Start = start;
        Stop = stop;
        Step = step;
    }

    public object? Start { get; }

    public object? Stop { get; }

    public object? Step { get; }
}

/// <summary>Positional and keyword arguments of one call, already evaluated.</summary>
internal readonly struct Arguments
{
    public static readonly Arguments None = new(Array.Empty<object?>(), Array.Empty<KeyValuePair<string, object?>>());

    public Arguments(object?[] positional, KeyValuePair<string, object?>[] keywords)
    {
        Positional = positional;
        Keywords = keywords;
    }

    public object?[] Positional { get; }

    public KeyValuePair<string, object?>[] Keywords { get; }

    public static Arguments Of(params object?[] positional) => new(positional, Array.Empty<KeyValuePair<string, object?>>());

    /// <summary>
    /// Binds the arguments to named parameters as Python does. <paramref name="defaults"/> holds one entry per
    /// parameter; <see cref="Required"/> marks a parameter without default. The messages are CPython's.
    /// </summary>
    public object?[] Bind(string function, string[] names, object?[] defaults)
    {
        if (Positional.Length > names.Length)
            throw TemplateException.TypeError(names.Length == 0
                ? $"{function}() takes no arguments ({Positional.Length} given)"
                : $"{function}() takes at most {names.Length} argument{(names.Length == 1 ? "" : "s")} ({Positional.Length} given)");
        var bound = new object?[names.Length];
        var set = new bool[names.Length];
        for (var i = 0; i < Positional.Length; i++)
        {
            bound[i] = Positional[i];
            set[i] = true;
        }
        foreach (var (key, value) in Keywords)
        {
            var index = Array.IndexOf(names, key);
            if (index < 0) throw TemplateException.TypeError($"{function}() got an unexpected keyword argument {PyFormat.Repr(key)}");
            if (set[index]) throw TemplateException.TypeError($"{function}() got multiple values for argument {PyFormat.Repr(key)}");
            bound[index] = value;
            set[index] = true;
        }
        for (var i = 0; i < names.Length; i++)
        {
            if (set[i]) continue;
            if (ReferenceEquals(defaults[i], Required))
                throw TemplateException.TypeError($"{function}() missing required argument: {PyFormat.Repr(names[i])}");
            bound[i] = defaults[i];
        }
        return bound;
    }

    /// <summary>Refuses keyword arguments for a function that takes positional ones only.</summary>
    public Arguments NoKeywords(string function)
    {
        if (Keywords.Length > 0) throw TemplateException.TypeError($"{function}() takes no keyword arguments");
        return this;
    }

    /// <summary>Refuses keyword arguments for a method, named as CPython names it (dict.get).</summary>
    public Arguments NoKeywords(object? self, string method)
    {
        if (Keywords.Length > 0) throw TemplateException.TypeError($"{PyOps.TypeName(self)}.{method}() takes no keyword arguments");
        return this;
    }

    public static readonly object Required = new();
}

/// <summary>Anything a template can call.</summary>
internal interface ICallable
{
    object? Invoke(RenderState state, Arguments arguments);
}

/// <summary>A global function or a bound method of a built-in value.</summary>
internal sealed class BuiltinFunction : ICallable
{
    private readonly Func<RenderState, Arguments, object?> body;

    public BuiltinFunction(string name, Func<RenderState, Arguments, object?> body, object? self = null, bool isMethod = false)
    {
        Name = name;
        this.body = body;
        Self = self;
        IsMethod = isMethod;
    }

    public string Name { get; }

    public object? Self { get; }

    public bool IsMethod { get; }

    public object? Invoke(RenderState state, Arguments arguments) => body(state, arguments);
}

/// <summary>Jinja2's <c>cycler(*items)</c>.</summary>
internal sealed class Cycler
{
    private int position;

    public Cycler(object?[] items)
    {
        if (items.Length == 0) throw TemplateException.Runtime("at least one item has to be provided");
        Items = items;
    }

    public object?[] Items { get; }

    public object? Current => Items[position];

    public object? Next()
    {
        var value = Items[position];
        position = (position + 1) % Items.Length;
        return value;
    }

    public void Reset() => position = 0;
}

/// <summary>Jinja2's <c>joiner(sep)</c>: "" on the first call, the separator after.</summary>
internal sealed class Joiner : ICallable
{
    private readonly string separator;
    private bool used;

    public Joiner(string separator) => this.separator = separator;

    public object? Invoke(RenderState state, Arguments arguments)
    {
        if (!used)
        {
            used = true;
            return "";
        }
        return separator;
    }
}

/// <summary>An ordered string-keyed dictionary: how JSON objects reach the caller from <see cref="JinjaValues.FromJson(System.Text.Json.JsonElement)"/>.</summary>
internal sealed class OrderedStringDictionary : IReadOnlyDictionary<string, object?>
{
    private readonly Dictionary<string, int> slots = new(StringComparer.Ordinal);
    private readonly List<KeyValuePair<string, object?>> entries = new();

    public void Set(string key, object? value)
    {
        if (slots.TryGetValue(key, out var slot)) entries[slot] = new KeyValuePair<string, object?>(key, value);
        else
        {
            slots.Add(key, entries.Count);
            entries.Add(new KeyValuePair<string, object?>(key, value));
        }
    }

    public object? this[string key] => entries[slots[key]].Value;

    public IEnumerable<string> Keys => entries.Select(e => e.Key);

    public IEnumerable<object?> Values => entries.Select(e => e.Value);

    public int Count => entries.Count;

    public bool ContainsKey(string key) => slots.ContainsKey(key);

    public bool TryGetValue(string key, out object? value)
    {
        if (slots.TryGetValue(key, out var slot))
        {
            value = entries[slot].Value;
            return true;
        }
        value = null;
        return false;
    }

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
