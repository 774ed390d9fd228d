namespace MLNetGpt.Chat;

/// <summary>
/// The global functions a chat template sees: Jinja2's range (limited to 100,000 items by the sandbox), dict,
/// namespace, cycler and joiner, and Hugging Face's raise_exception and strftime_now.
/// </summary>
internal static class Globals
{
    private const long MaxRange = 100_000;

    public static readonly IReadOnlyDictionary<string, object?> Functions = new Dictionary<string, object?>(StringComparer.Ordinal)
    {
        ["range"] = new BuiltinFunction("safe_range", (_, a) => Range(a.NoKeywords("range").Positional)),
        ["dict"] = new BuiltinFunction("dict", (_, a) => Dict(a)),
        ["namespace"] = new BuiltinFunction("Namespace", (_, a) =>
        {
            var ns = new Namespace();
            foreach (var (key, value) in Dict(a).Entries) ns.Attributes.Set(key, value);
            return ns;
        }),
        ["cycler"] = new BuiltinFunction("Cycler", (_, a) => new Cycler(a.NoKeywords("Cycler").Positional)),
        ["joiner"] = new BuiltinFunction("Joiner", (_, a) => new Joiner(PyFormat.Str(a.Bind("Joiner", new[] { "sep" }, new object?[] { ", " })[0]))),
        ["raise_exception"] = new BuiltinFunction("raise_exception", (_, a) =>
        {
            var message = a.Bind("raise_exception", new[] { "message" }, new[] { Arguments.Required })[0];
            throw new TemplateException(TemplateErrorKind.Raised, PyFormat.Str(message));
        }),
        ["strftime_now"] = new BuiltinFunction("strftime_now", (state, a) =>
        {
            var format = a.Bind("strftime_now", new[] { "format" }, new[] { Arguments.Required })[0];
            if (format is not string text) throw TemplateException.TypeError($"strftime() argument 1 must be str, not {PyOps.TypeName(format)}");
            return PyStrftime.Format(state.Now(), text);
        }),
    };

    private static PyRange Range(object?[] args)
    {
        if (args.Length is 0 or > 3)
            throw TemplateException.TypeError(args.Length == 0 ? "range expected at least 1 argument, got 0" : $"range expected at most 3 arguments, got {args.Length}");
        var values = args.Select(a => PyOps.ToIndex(a)).ToArray();
        var range = values.Length == 1 ? new PyRange(0, values[0], 1) : new PyRange(values[0], values[1], values.Length == 3 ? values[2] : 1);
        if (range.Step == 0) throw TemplateException.ValueError("range() arg 3 must not be zero");
        if (range.Length > MaxRange)
            throw new TemplateException(TemplateErrorKind.Overflow, $"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({MaxRange}).");
        return range;
    }

    /// <summary>Python's dict(mapping_or_pairs, **kwargs).</summary>
    private static PyDict Dict(Arguments a)
    {
        if (a.Positional.Length > 1) throw TemplateException.TypeError($"dict expected at most 1 argument, got {a.Positional.Length}");
        var dict = new PyDict();
        if (a.Positional.Length == 1)
        {
            var source = a.Positional[0];
            if (source is PyDict mapping)
            {
                RenderState.ChargeItems(mapping.Count, "the dictionary copy");
                foreach (var (key, value) in mapping.Entries) dict.Set(key, value);
            }
            else
            {
                var index = 0;
                foreach (var pair in PyOps.Iterate(source))
                {
                    var items = pair is PyTuple or PyList or string ? PyOps.Iterate(pair).ToList()
                        : throw TemplateException.TypeError($"cannot convert dictionary update sequence element #{index} to a sequence");
                    if (items.Count != 2)
                        throw TemplateException.ValueError($"dictionary update sequence element #{index} has length {items.Count}; 2 is required");
                    dict.Set(items[0], items[1]);
                    index++;
                }
            }
        }
        foreach (var (key, value) in a.Keywords) dict.Set(key, value);
        return dict;
    }
}
