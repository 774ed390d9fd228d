using System.Globalization;

namespace MLNetGpt.Chat;

/// <summary>Python's object protocol over the closed value model: truth, equality, order, arithmetic, iteration, access.</summary>
internal static class PyOps
{
    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        PyList => "list",
        PyTuple => "tuple",
        PyDict => "dict",
        Undefined => "Undefined",
        Namespace => "Namespace",
        LoopContext => "LoopContext",
        Macro => "Macro",
        PyRange => "range",
        PyIterator it => it.TypeName,
        DictView view => view.TypeName,
        PySlice => "slice",
        BuiltinFunction f => f.IsMethod ? "builtin_function_or_method" : "function",
        Cycler => "Cycler",
        Joiner => "Joiner",
        _ => value.GetType().Name,
    };

    /// <summary>Jinja2's <c>object_type_repr</c>, used in undefined messages ("dict object", "None").</summary>
    public static string ObjectTypeRepr(object? value) => value switch
    {
        null => "None",
        Namespace => "jinja2.utils.Namespace object",
        LoopContext => "jinja2.runtime.LoopContext object",
        Macro => "jinja2.runtime.Macro object",
        Cycler => "jinja2.utils.Cycler object",
        Joiner => "jinja2.utils.Joiner object",
        Undefined => "jinja2.runtime.Undefined object",
        _ => TypeName(value) + " object",
    };

    /// <summary>The characters of a string or the items of a list, tuple or dictionary (what reading it costs); 0 otherwise.</summary>
    public static long SizeOf(object? value) => value switch
    {
        string s => s.Length,
        PyList l => l.Count,
        PyTuple t => t.Count,
        PyDict d => d.Count,
        _ => 0,
    };

    public static bool Truthy(object? value) => value switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        PyList l => l.Count > 0,
        PyTuple t => t.Count > 0,
        PyDict d => d.Count > 0,
        DictView v => v.Dict.Count > 0,
        PyRange r => r.Length > 0,
        Undefined => false,
        LoopContext loop => loop.Length > 0,
        _ => true,
    };

    public static bool IsNumber(object? value) => value is long or double or bool;

    public static bool IsInteger(object? value) => value is long or bool;

    public static long AsLong(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new InvalidOperationException("not an integer"),
    };

    public static double AsDouble(object? value) => value switch
    {
        double d => d,
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new InvalidOperationException("not a number"),
    };

    /// <summary>An integer argument where Python wants an index (rejects floats like CPython).</summary>
    public static long ToIndex(object? value, string what = "")
    {
        if (value is Undefined u) throw u.Error();
        if (IsInteger(value)) return AsLong(value);
        throw TemplateException.TypeError($"{PyFormat.Repr(TypeName(value))} object cannot be interpreted as an integer{what}");
    }

    // ---- equality and order ----

    public static bool Equal(object? a, object? b) => Equal(a, b, 0);

    private static bool Equal(object? a, object? b, int depth)
    {
        if (ReferenceEquals(a, b)) return true;
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (a is null || b is null) return false;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return NumericCompare(a, b) == 0;
            return AsLong(a) == AsLong(b);
        }
        switch (a)
        {
            case string sa: return b is string sb && string.Equals(sa, sb, StringComparison.Ordinal);
            case PyList la: return b is PyList lb && SequenceEqual(la.Items, lb.Items, depth);
            case PyTuple ta: return b is PyTuple tb && SequenceEqual(ta.Items, tb.Items, depth);
            case PyDict da:
                if (b is not PyDict db || da.Count != db.Count) return false;
                RenderState.EnsureValueDepth(depth + 1, "in comparison");
                RenderState.ChargeRead(da.Count);
                foreach (var (key, value) in da.Entries)
                    if (!db.TryGetValue(key, out var other) || !Equal(value, other, depth + 1)) return false;
                return true;
            case PyRange ra:
                return b is PyRange rb && ra.Length == rb.Length
                    && (ra.Length == 0 || (ra.Start == rb.Start && (ra.Length == 1 || ra.Step == rb.Step)));
            default: return false;
        }
    }

    private static bool SequenceEqual(IReadOnlyList<object?> a, IReadOnlyList<object?> b, int depth)
    {
        if (a.Count != b.Count) return false;
        // Python's == recurses through nested lists; a list built inside itself level by level must stop here
        // (RecursionError there) rather than on the end of the thread's stack.
        RenderState.EnsureValueDepth(depth + 1, "in comparison");
        RenderState.ChargeRead(a.Count);
        for (var i = 0; i < a.Count; i++) if (!Equal(a[i], b[i], depth + 1)) return false;
        return true;
    }

    private static int NumericCompare(object a, object b)
    {
        if (IsInteger(a) && IsInteger(b)) return AsLong(a).CompareTo(AsLong(b));
        var x = AsDouble(a);
        var y = AsDouble(b);
        if (double.IsNaN(x) || double.IsNaN(y)) return int.MinValue;
        return x.CompareTo(y);
    }

    /// <summary>Python's <c>a OP b</c> for OP in &lt; &lt;= &gt; &gt;=.</summary>
    public static bool Order(object? a, object? b, string op)
    {
        if (a is Undefined ua) throw ua.Error();
        if (b is Undefined ub) throw ub.Error();
        var c = Compare(a, b, op);
        if (c == int.MinValue) return false;
        return op switch
        {
            "<" => c < 0,
            "<=" => c <= 0,
            ">" => c > 0,
            _ => c >= 0,
        };
    }

    /// <summary>Three-way comparison with Python's rules; int.MinValue when a NaN makes every order false.</summary>
    public static int Compare(object? a, object? b, string op = "<") => Compare(a, b, op, 0);

    private static int Compare(object? a, object? b, string op, int depth)
    {
        if (a is Undefined ua) throw ua.Error();
        if (b is Undefined ub) throw ub.Error();
        if (IsNumber(a) && IsNumber(b)) return NumericCompare(a!, b!);
        if (a is string sa && b is string sb) return PyStr.CompareOrdinalCodePoints(sa, sb);
        if (a is PyList la && b is PyList lb) return CompareSequences(la.Items, lb.Items, op, depth);
        if (a is PyTuple ta && b is PyTuple tb) return CompareSequences(ta.Items, tb.Items, op, depth);
        throw TemplateException.TypeError(
            $"{PyFormat.Repr(op)} not supported between instances of {PyFormat.Repr(TypeName(a))} and {PyFormat.Repr(TypeName(b))}");
    }

    private static int CompareSequences(IReadOnlyList<object?> a, IReadOnlyList<object?> b, string op, int depth)
    {
        RenderState.EnsureValueDepth(depth + 1, "in comparison");
        var n = Math.Min(a.Count, b.Count);
        RenderState.ChargeRead(n);
        for (var i = 0; i < n; i++)
            if (!Equal(a[i], b[i], depth + 1)) return Compare(a[i], b[i], op, depth + 1);
        return a.Count.CompareTo(b.Count);
    }

    /// <summary>
    /// Python's <c>sorted(items, key=key, reverse=reverse)</c>: stable (also when reversed), keys computed once,
    /// and only <c>&lt;</c> asked of them, so a TypeError names the types in the order Python compares them.
    /// </summary>
    public static List<T> Sorted<T>(IEnumerable<T> items, Func<T, object?> key, bool reverse = false)
    {
        var entries = items.Select(item => (Key: key(item), Item: item)).ToArray();
        RenderState.ChargeItems(entries.Length, "a sorted list");
        // A merge sort compares about n log2 n times.
        RenderState.ChargeRead((long)entries.Length * (64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)Math.Max(entries.Length, 1))));
        var buffer = new (object? Key, T Item)[entries.Length];
        bool Less(object? a, object? b)
        {
            var c = reverse ? Compare(b, a) : Compare(a, b);
            return c != int.MinValue && c < 0;
        }
        for (var width = 1; width < entries.Length; width *= 2)
        {
            for (var start = 0; start < entries.Length; start += 2 * width)
            {
                var middle = Math.Min(start + width, entries.Length);
                var end = Math.Min(start + 2 * width, entries.Length);
                int left = start, right = middle, at = start;
                while (left < middle && right < end)
                    buffer[at++] = Less(entries[right].Key, entries[left].Key) ? entries[right++] : entries[left++];
                while (left < middle) buffer[at++] = entries[left++];
                while (right < end) buffer[at++] = entries[right++];
            }
            (entries, buffer) = (buffer, entries);
        }
        return entries.Select(e => e.Item).ToList();
    }

    // ---- containers ----

    /// <summary>Python's iter(value); each item taken spends one step of the current render.</summary>
    public static IEnumerable<object?> Iterate(object? value) => Counted(Items(value));

    private static IEnumerable<object?> Counted(IEnumerable<object?> items)
    {
        foreach (var item in items)
        {
            RenderState.ChargeStep();
            yield return item;
        }
    }

    private static IEnumerable<object?> Items(object? value) => value switch
    {
        PyList l => l.Iterate(),
        PyTuple t => t.Items,
        PyDict d => d.Keys,
        string s => PyStr.CodePoints(s),
        Undefined => Array.Empty<object?>(),
        PyRange r => r.Iterate(),
        PyIterator it => it.Iterate(),
        DictView v => v.Iterate(),
        LoopContext => throw TemplateException.TypeError("iterating a loop object is not supported"),
        _ => throw TemplateException.TypeError($"{PyFormat.Repr(TypeName(value))} object is not iterable"),
    };

    public static bool IsIterable(object? value) =>
        value is PyList or PyTuple or PyDict or string or Undefined or PyRange or PyIterator or DictView;

    public static long? TryLength(object? value) => value switch
    {
        string s => PyStr.Length(s),
        PyList l => l.Count,
        PyTuple t => t.Count,
        PyDict d => d.Count,
        DictView v => v.Dict.Count,
        PyRange r => r.Length,
        Undefined => 0,
        LoopContext loop => loop.Length,
        _ => null,
    };

    public static long Length(object? value) =>
        TryLength(value) ?? throw TemplateException.TypeError($"object of type {PyFormat.Repr(TypeName(value))} has no len()");

    /// <summary>Python's <c>item in container</c>.</summary>
    public static bool Contains(object? container, object? item)
    {
        switch (container)
        {
            case string s:
                if (item is not string sub)
                    throw TemplateException.TypeError($"'in <string>' requires string as left operand, not {TypeName(item)}");
                RenderState.ChargeRead(s.Length);
                return s.Contains(sub, StringComparison.Ordinal);
            case PyDict d:
                return d.ContainsKey(item);
            case DictView { Kind: DictViewKind.Keys } keys:
                return keys.Dict.ContainsKey(item);
            case PyList or PyTuple or PyRange or PyIterator or DictView or Undefined:
                foreach (var element in Iterate(container))
                    if (ReferenceEquals(element, item) || Equal(element, item)) return true;
                return false;
            default:
                throw TemplateException.TypeError($"argument of type {PyFormat.Repr(TypeName(container))} is not iterable");
        }
    }

    // ---- arithmetic ----

    public static object? Add(object? a, object? b)
    {
        FailOnUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return AsDouble(a) + AsDouble(b);
            return Checked(() => checked(AsLong(a) + AsLong(b)));
        }
        switch (a)
        {
            case string sa when b is string sb:
                RenderState.ChargeString((long)sa.Length + sb.Length, "the '+' of two strings");
                return string.Concat(sa, sb);
            case string: throw TemplateException.TypeError($"can only concatenate str (not \"{TypeName(b)}\") to str");
            case PyList la when b is PyList lb:
                RenderState.ChargeItems((long)la.Count + lb.Count, "the '+' of two lists");
                var list = new List<object?>(la.Count + lb.Count);
                list.AddRange(la.Items);
                list.AddRange(lb.Items);
                return new PyList(list);
            case PyList: throw TemplateException.TypeError($"can only concatenate list (not \"{TypeName(b)}\") to list");
            case PyTuple ta when b is PyTuple tb:
                RenderState.ChargeItems((long)ta.Count + tb.Count, "the '+' of two tuples");
                return new PyTuple(ta.Items.Concat(tb.Items).ToArray());
            case PyTuple: throw TemplateException.TypeError($"can only concatenate tuple (not \"{TypeName(b)}\") to tuple");
        }
        throw Unsupported("+", a, b);
    }

    public static object? Subtract(object? a, object? b)
    {
        FailOnUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b)) throw Unsupported("-", a, b);
        if (a is double || b is double) return AsDouble(a) - AsDouble(b);
        return Checked(() => checked(AsLong(a) - AsLong(b)));
    }

    public static object? Multiply(object? a, object? b)
    {
        FailOnUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return AsDouble(a) * AsDouble(b);
            return Checked(() => checked(AsLong(a) * AsLong(b)));
        }
        if (IsInteger(a) && b is string or PyList or PyTuple) return Repeat(b, AsLong(a));
        if (a is string or PyList or PyTuple)
        {
            if (IsInteger(b)) return Repeat(a, AsLong(b));
            if (IsNumber(b) || b is string or PyList or PyTuple)
                throw TemplateException.TypeError($"can't multiply sequence by non-int of type {PyFormat.Repr(TypeName(b))}");
        }
        throw Unsupported("*", a, b);
    }

    private static object Repeat(object? sequence, long times)
    {
        times = Math.Max(0, times);
        // The size is known before anything is built: ('a' * 1000) * 10000000 is refused here, not by the allocator.
        long length = SizeOf(sequence);
        long total = times == 0 || length == 0 ? 0 : length > long.MaxValue / times ? -1 : length * times;
        if (sequence is string) RenderState.ChargeString(total, "the repeated string");
        else RenderState.ChargeItems(total, $"the repeated {TypeName(sequence)}");
        switch (sequence)
        {
            case string s:
                return PyStr.Repeat(s, times);
            case PyList l:
                var items = new List<object?>((int)total);
                for (var i = 0; i < times; i++) items.AddRange(l.Items);
                return new PyList(items);
            default:
                var t = (PyTuple)sequence!;
                var all = new List<object?>((int)total);
                for (var i = 0; i < times; i++) all.AddRange(t.Items);
                return new PyTuple(all.ToArray());
        }
    }

    public static object? TrueDivide(object? a, object? b)
    {
        FailOnUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b)) throw Unsupported("/", a, b);
        var y = AsDouble(b);
        if (y == 0)
            throw new TemplateException(TemplateErrorKind.ZeroDivision, a is double || b is double ? "float division by zero" : "division by zero");
        return AsDouble(a) / y;
    }

    public static object? FloorDivide(object? a, object? b)
    {
        FailOnUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b)) throw Unsupported("//", a, b);
        if (a is double || b is double)
        {
            var (div, _) = FloatDivMod(AsDouble(a), AsDouble(b), "float floor division by zero");
            return div;
        }
        var x = AsLong(a);
        var y = AsLong(b);
        if (y == 0) throw new TemplateException(TemplateErrorKind.ZeroDivision, "integer division or modulo by zero");
        if (x == long.MinValue && y == -1) throw new TemplateException(TemplateErrorKind.Overflow, "integer result beyond 64 bits");
        var q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
        return q;
    }

    public static object? Modulo(object? a, object? b)
    {
        FailOnUndefined(a, b);
        if (a is string format) return PyPercentFormat.Format(format, b);
        if (!IsNumber(a) || !IsNumber(b)) throw Unsupported("%", a, b);
        if (a is double || b is double)
        {
            var (_, mod) = FloatDivMod(AsDouble(a), AsDouble(b), "float modulo");
            return mod;
        }
        var x = AsLong(a);
        var y = AsLong(b);
        if (y == 0) throw new TemplateException(TemplateErrorKind.ZeroDivision, "integer modulo by zero");
        if (y == -1) return 0L;
        var r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return r;
    }

    // CPython's float_divmod, so that // and % on floats agree with Python to the last bit.
    private static (double Div, double Mod) FloatDivMod(double vx, double wx, string zeroMessage)
    {
        if (wx == 0) throw new TemplateException(TemplateErrorKind.ZeroDivision, zeroMessage);
        var mod = vx % wx; // C#'s % on doubles is C's fmod
        var div = (vx - mod) / wx;
        if (mod != 0)
        {
            if ((wx < 0) != (mod < 0))
            {
                mod += wx;
                div -= 1.0;
            }
        }
        else mod = Math.CopySign(0.0, wx);
        double floordiv;
        if (div != 0)
        {
            floordiv = Math.Floor(div);
            if (div - floordiv > 0.5) floordiv += 1.0;
        }
        else floordiv = Math.CopySign(0.0, vx / wx);
        return (floordiv, mod);
    }

    public static object? Power(object? a, object? b)
    {
        FailOnUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b)) throw Unsupported("** or pow()", a, b);
        if (IsInteger(a) && IsInteger(b) && AsLong(b) >= 0)
        {
            var baseValue = AsLong(a);
            var exponent = AsLong(b);
            return Checked(() =>
            {
                long result = 1;
                while (exponent > 0)
                {
                    if ((exponent & 1) != 0) result = checked(result * baseValue);
                    exponent >>= 1;
                    if (exponent > 0) baseValue = checked(baseValue * baseValue);
                }
                return result;
            });
        }
        var x = AsDouble(a);
        var y = AsDouble(b);
        if (x == 0 && y < 0) throw new TemplateException(TemplateErrorKind.ZeroDivision, "0.0 cannot be raised to a negative power");
        if (x < 0 && y != Math.Floor(y)) throw TemplateException.ValueError("a negative number raised to a fractional power has a complex result, which is not supported");
        return Math.Pow(x, y);
    }

    public static object? Negate(object? a)
    {
        if (a is Undefined u) throw u.Error();
        return a switch
        {
            double d => -d,
            long l => Checked(() => checked(-l)),
            bool b => b ? -1L : 0L,
            _ => throw TemplateException.TypeError($"bad operand type for unary -: {PyFormat.Repr(TypeName(a))}"),
        };
    }

    public static object? Plus(object? a)
    {
        if (a is Undefined u) throw u.Error();
        return a switch
        {
            double or long => a,
            bool b => b ? 1L : 0L,
            _ => throw TemplateException.TypeError($"bad operand type for unary +: {PyFormat.Repr(TypeName(a))}"),
        };
    }

    private static object Checked(Func<long> compute)
    {
        try
        {
            return compute();
        }
        catch (OverflowException)
        {
            throw new TemplateException(TemplateErrorKind.Overflow, "integer result beyond 64 bits (Python would switch to a big integer)");
        }
    }

    private static void FailOnUndefined(object? a, object? b)
    {
        if (a is Undefined ua) throw ua.Error();
        if (b is Undefined ub) throw ub.Error();
    }

    private static TemplateException Unsupported(string op, object? a, object? b) => TemplateException.TypeError(
        $"unsupported operand type(s) for {op}: {PyFormat.Repr(TypeName(a))} and {PyFormat.Repr(TypeName(b))}");

    // ---- attribute and item access (the immutable sandbox's getattr / getitem) ----

    /// <summary>Jinja2's sandboxed <c>environment.getattr(obj, name)</c>: the Python attribute first, then the item.</summary>
    public static object? GetAttribute(object? obj, string name)
    {
        if (obj is Undefined u) throw u.Error();
        var found = PyAttributes.Find(obj, name, out var value);
        if (found == AttributeLookup.Found) return value;
        if (found == AttributeLookup.Unsafe) return Undefined.Unsafe(obj, name);
        if (TryGetItem(obj, name, out var item)) return item;
        return Undefined.ForMember(obj, name);
    }

    /// <summary>Jinja2's sandboxed <c>environment.getitem(obj, key)</c>: the item first, then (for a string key) the attribute.</summary>
    public static object? GetItem(object? obj, object? key)
    {
        if (obj is Undefined u) throw u.Error();
        RenderState.ChargeRead(SizeOf(key));
        if (TryGetItem(obj, key, out var item)) return item;
        if (key is string name)
        {
            var found = PyAttributes.Find(obj, name, out var value);
            if (found == AttributeLookup.Found) return value;
            if (found == AttributeLookup.Unsafe) return Undefined.Unsafe(obj, name);
        }
        return Undefined.ForMember(obj, key);
    }

    /// <summary>Python's <c>obj[key]</c>; false where Python raises TypeError or LookupError.</summary>
    private static bool TryGetItem(object? obj, object? key, out object? value)
    {
        value = null;
        switch (obj)
        {
            case PyDict d:
                if (key is PyList or PyDict) return false;
                return d.TryGetValue(key, out value);
            case PyList l:
                return TryIndex(l.Items, key, items => new PyList(items), out value);
            case PyTuple t:
                return TryIndex(t.Items, key, items => new PyTuple(items.ToArray()), out value);
            case string s:
                if (key is PySlice slice)
                {
                    value = PyStr.Slice(s, slice);
                    return true;
                }
                if (!IsInteger(key)) return false;
                var cp = PyStr.CodePointAt(s, AsLong(key));
                if (cp is null) return false;
                value = cp;
                return true;
            case PyRange r:
                if (key is PySlice rangeSlice)
                {
                    var (first, _, by, n) = ResolveSlice(rangeSlice, r.Length);
                    var start = r.Start + first * r.Step;
                    var step = r.Step * by;
                    value = new PyRange(start, start + n * step, step);
                    return true;
                }
                if (!IsInteger(key)) return false;
                var index = AsLong(key);
                if (index < 0) index += r.Length;
                if (index < 0 || index >= r.Length) return false;
                value = r[index];
                return true;
            default:
                return false;
        }
    }

    private static bool TryIndex(IReadOnlyList<object?> items, object? key, Func<List<object?>, object> make, out object? value)
    {
        value = null;
        if (key is PySlice slice)
        {
            var (start, _, step, count) = ResolveSlice(slice, items.Count);
            RenderState.ChargeItems(count, "the slice");
            var result = new List<object?>((int)count);
            for (long i = 0, at = start; i < count; i++, at += step) result.Add(items[(int)at]);
            value = make(result);
            return true;
        }
        if (!IsInteger(key)) return false;
        var index = AsLong(key);
        if (index < 0) index += items.Count;
        if (index < 0 || index >= items.Count) return false;
        value = items[(int)index];
        return true;
    }

    /// <summary>CPython's PySlice_GetIndicesEx: the first index, stop, step and number of items of a slice.</summary>
    public static (long Start, long Stop, long Step, long Count) ResolveSlice(PySlice slice, long length)
    {
        long step = 1;
        if (slice.Step is not null)
        {
            step = SliceIndex(slice.Step);
            if (step == 0) throw TemplateException.ValueError("slice step cannot be zero");
        }
        long start, stop;
        if (step > 0)
        {
            start = slice.Start is null ? 0 : Clamp(SliceIndex(slice.Start), length, 0, length);
            stop = slice.Stop is null ? length : Clamp(SliceIndex(slice.Stop), length, 0, length);
        }
        else
        {
            start = slice.Start is null ? length - 1 : Clamp(SliceIndex(slice.Start), length, -1, length - 1);
            stop = slice.Stop is null ? -1 : Clamp(SliceIndex(slice.Stop), length, -1, length - 1);
        }
        long count;
        if (step > 0) count = stop > start ? (stop - start + step - 1) / step : 0;
        else count = start > stop ? (start - stop - step - 1) / -step : 0;
        return (start, stop, step, count);

        static long Clamp(long index, long length, long low, long high)
        {
            if (index < 0) index += length;
            return Math.Min(Math.Max(index, low), high);
        }
    }

    private static long SliceIndex(object? value)
    {
        if (IsInteger(value)) return AsLong(value);
        throw TemplateException.TypeError("slice indices must be integers or None or have an __index__ method");
    }

    /// <summary>Python's call: the sandbox lets templates call only what the renderer itself offers.</summary>
    public static object? Call(RenderState state, object? callee, Arguments arguments)
    {
        state.Step();
        // A method reads the string or list it is bound to (find, count, split, ...): that costs in proportion.
        if (callee is BuiltinFunction { Self: { } self }) state.Read(SizeOf(self));
        if (callee is ICallable callable) return callable.Invoke(state, arguments);
        if (callee is Undefined u) throw u.Error();
        throw TemplateException.TypeError($"{PyFormat.Repr(TypeName(callee))} object is not callable");
    }

    public static string FormatInvariant(long value) => value.ToString(CultureInfo.InvariantCulture);
}
