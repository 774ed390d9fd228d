namespace MLNetGpt.Chat;

internal delegate bool TestFunction(RenderState state, object? value, Arguments arguments);

/// <summary>Jinja2 3.1's built-in tests (<c>x is defined</c>, <c>x is mapping</c>, <c>x is equalto y</c>, ...).</summary>
internal static class Tests
{
    private static readonly Dictionary<string, TestFunction> All = new(StringComparer.Ordinal)
    {
        ["odd"] = (_, v, a) => { NoArgs(a, "test_odd"); return PyOps.Equal(PyOps.Modulo(v, 2L), 1L); },
        ["even"] = (_, v, a) => { NoArgs(a, "test_even"); return PyOps.Equal(PyOps.Modulo(v, 2L), 0L); },
        ["divisibleby"] = (_, v, a) => PyOps.Equal(PyOps.Modulo(v, One(a, "test_divisibleby", "num")), 0L),
        ["defined"] = (_, v, a) => { NoArgs(a, "test_defined"); return v is not Undefined; },
        ["undefined"] = (_, v, a) => { NoArgs(a, "test_undefined"); return v is Undefined; },
        ["filter"] = (_, v, a) => { NoArgs(a, "test_filter"); return v is string name && Filters.IsKnown(name); },
        ["test"] = (_, v, a) => { NoArgs(a, "test_test"); return v is string name && All!.ContainsKey(name); },
        ["none"] = (_, v, a) => { NoArgs(a, "test_none"); return v is null; },
        ["boolean"] = (_, v, a) => { NoArgs(a, "test_boolean"); return v is bool; },
        ["false"] = (_, v, a) => { NoArgs(a, "test_false"); return v is false; },
        ["true"] = (_, v, a) => { NoArgs(a, "test_true"); return v is true; },
        ["integer"] = (_, v, a) => { NoArgs(a, "test_integer"); return v is long; },
        ["float"] = (_, v, a) => { NoArgs(a, "test_float"); return v is double; },
        ["lower"] = (_, v, a) => { NoArgs(a, "test_lower"); return PyStr.IsLowerText(PyFormat.Str(v)); },
        ["upper"] = (_, v, a) => { NoArgs(a, "test_upper"); return PyStr.IsUpperText(PyFormat.Str(v)); },
        ["string"] = (_, v, a) => { NoArgs(a, "test_string"); return v is string; },
        ["mapping"] = (_, v, a) => { NoArgs(a, "test_mapping"); return v is PyDict; },
        ["number"] = (_, v, a) => { NoArgs(a, "test_number"); return PyOps.IsNumber(v); },
        // len(value) and value.__getitem__ both exist: str, list, tuple, dict, range, and Undefined (len 0).
        ["sequence"] = (_, v, a) => { NoArgs(a, "test_sequence"); return v is string or PyList or PyTuple or PyDict or PyRange or Undefined; },
        ["iterable"] = (_, v, a) => { NoArgs(a, "test_iterable"); return PyOps.IsIterable(v) || v is LoopContext; },
        // Undefined defines __call__ (to raise), so Python's callable() says True for it.
        ["callable"] = (_, v, a) => { NoArgs(a, "callable"); return v is ICallable or Undefined; },
        ["sameas"] = (_, v, a) => SameAs(v, One(a, "test_sameas", "other")),
        ["escaped"] = (_, v, a) => { NoArgs(a, "test_escaped"); return false; },
        ["in"] = (_, v, a) => PyOps.Contains(One(a, "test_in", "seq"), v),
        ["=="] = Equal,
        ["eq"] = Equal,
        ["equalto"] = Equal,
        ["!="] = (s, v, a) => !Equal(s, v, a),
        ["ne"] = (s, v, a) => !Equal(s, v, a),
        [">"] = (_, v, a) => PyOps.Order(v, One(a, "gt", "b"), ">"),
        ["gt"] = (_, v, a) => PyOps.Order(v, One(a, "gt", "b"), ">"),
        ["greaterthan"] = (_, v, a) => PyOps.Order(v, One(a, "gt", "b"), ">"),
        [">="] = (_, v, a) => PyOps.Order(v, One(a, "ge", "b"), ">="),
        ["ge"] = (_, v, a) => PyOps.Order(v, One(a, "ge", "b"), ">="),
        ["<"] = (_, v, a) => PyOps.Order(v, One(a, "lt", "b"), "<"),
        ["lt"] = (_, v, a) => PyOps.Order(v, One(a, "lt", "b"), "<"),
        ["lessthan"] = (_, v, a) => PyOps.Order(v, One(a, "lt", "b"), "<"),
        ["<="] = (_, v, a) => PyOps.Order(v, One(a, "le", "b"), "<="),
        ["le"] = (_, v, a) => PyOps.Order(v, One(a, "le", "b"), "<="),
    };

    public static bool TryGet(string name, out TestFunction function) => All.TryGetValue(name, out function!);

    public static bool IsKnown(string name) => All.ContainsKey(name);

    private static bool Equal(RenderState state, object? value, Arguments a) => PyOps.Equal(value, One(a, "eq", "b"));

    private static void NoArgs(Arguments a, string function) => a.Bind(function, Array.Empty<string>(), Array.Empty<object?>());

    private static object? One(Arguments a, string function, string parameter) =>
        a.Bind(function, new[] { parameter }, new[] { Arguments.Required })[0];

    /// <summary>Python's <c>is</c>: the singletons, CPython's cached small integers, otherwise the same object.</summary>
    private static bool SameAs(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (bool x, bool y) => x == y,
        (long x, long y) => x == y && x >= -5 && x <= 256,
        (Undefined, _) or (_, Undefined) => false,
        _ => a is not null && ReferenceEquals(a, b),
    };
}
