using System.Runtime.CompilerServices;
using System.Text;

namespace MLNetGpt.Chat;

/// <summary>The state of one render: what the template may read from the environment, and the recursion guard.</summary>
internal sealed class RenderState
{
    // Python's default recursion limit is 1,000 frames and Jinja2 spends several per macro call; beyond a few
    // hundred nested calls a template is looping, and .NET must stop before its own stack does.
    private const int MaxMacroDepth = 500;
    private int macroDepth;

    public RenderState(Func<DateTime> now) => Now = now;

    /// <summary>The clock behind <c>strftime_now</c>.</summary>
    public Func<DateTime> Now { get; }

    public void EnterCall()
    {
        if (++macroDepth > MaxMacroDepth)
        {
            macroDepth = 0;
            throw new TemplateException(TemplateErrorKind.Recursion, $"maximum recursion depth exceeded: more than {MaxMacroDepth} nested macro calls");
        }
        EnsureStack();
    }

    public void ExitCall() => macroDepth--;

    public static void EnsureStack()
    {
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new TemplateException(TemplateErrorKind.Recursion, "maximum recursion depth exceeded: the template nests too deeply");
    }
}

/// <summary>
/// One frame of variables. Jinja2's scoping falls out of where frames are made: each loop iteration, macro call,
/// call block and <c>with</c> gets its own (so a <c>set</c> there does not leak out, and a loop restarts from the
/// outer values on every iteration), while <c>if</c> does not. Lookups walk outwards, ending at the render
/// variables and the globals.
/// </summary>
internal sealed class Scope
{
    private readonly Scope? parent;
    private Dictionary<string, object?>? variables;

    public Scope(Scope? parent) => this.parent = parent;

    public Scope(Scope? parent, Dictionary<string, object?> variables)
    {
        this.parent = parent;
        this.variables = variables;
    }

    public bool TryGet(string name, out object? value)
    {
        for (var scope = this; scope is not null; scope = scope.parent)
            if (scope.variables is not null && scope.variables.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }

    public object? Lookup(string name) => TryGet(name, out var value) ? value : Undefined.ForName(name);

    public void Set(string name, object? value) => (variables ??= new Dictionary<string, object?>(StringComparer.Ordinal))[name] = value;
}

/// <summary>A <c>{% macro %}</c> (or the <c>caller</c> of a call block) bound to the scope it was defined in.</summary>
internal sealed class Macro : ICallable
{
    private readonly MacroDefinition definition;
    private readonly Scope closure;

    public Macro(MacroDefinition definition, Scope closure)
    {
        this.definition = definition;
        this.closure = closure;
    }

    public string Name => definition.Name;

    public bool TryGetAttribute(string name, out object? value)
    {
        value = name switch
        {
            "name" => definition.Name,
            "arguments" => new PyTuple(definition.Parameters.Cast<object?>().ToArray()),
            "catch_kwargs" => definition.CatchKwargs,
            "catch_varargs" => definition.CatchVarargs,
            "caller" => definition.UsesCaller,
            _ => this,
        };
        return !ReferenceEquals(value, this);
    }

    /// <summary>Jinja2's <c>Macro.__call__</c>: positional, then keyword, then defaults; caller, varargs and kwargs as there.</summary>
    public object? Invoke(RenderState state, Arguments arguments)
    {
        var parameters = definition.Parameters;
        var positional = arguments.Positional;
        var keywords = new List<KeyValuePair<string, object?>>(arguments.Keywords);
        var values = new object?[parameters.Length];
        var provided = new bool[parameters.Length];
        var consumed = Math.Min(positional.Length, parameters.Length);
        for (var i = 0; i < consumed; i++)
        {
            values[i] = positional[i];
            provided[i] = true;
        }
        var foundCaller = false;
        if (consumed != parameters.Length)
        {
            for (var i = consumed; i < parameters.Length; i++)
            {
                var at = keywords.FindIndex(k => k.Key == parameters[i]);
                if (at >= 0)
                {
                    values[i] = keywords[at].Value;
                    provided[i] = true;
                    keywords.RemoveAt(at);
                }
                if (parameters[i] == "caller") foundCaller = true;
            }
        }
        else foundCaller = definition.ExplicitCaller;

        object? caller = null;
        var bindCaller = definition.UsesCaller && !foundCaller;
        if (bindCaller)
        {
            var at = keywords.FindIndex(k => k.Key == "caller");
            if (at >= 0)
            {
                caller = keywords[at].Value;
                keywords.RemoveAt(at);
            }
            if (caller is null) caller = Undefined.WithHint("No caller defined", "caller");
        }
        PyDict? extraKeywords = null;
        if (definition.CatchKwargs)
        {
            extraKeywords = new PyDict();
            foreach (var (key, value) in keywords) extraKeywords.Set(key, value);
        }
        else if (keywords.Count > 0)
        {
            if (keywords.Any(k => k.Key == "caller"))
                throw TemplateException.TypeError($"macro {PyFormat.Repr(Name)} was invoked with two values for the special caller argument. This is most likely a bug.");
            throw TemplateException.TypeError($"macro {PyFormat.Repr(Name)} takes no keyword argument {PyFormat.Repr(keywords[0].Key)}");
        }
        if (!definition.CatchVarargs && positional.Length > parameters.Length)
            throw TemplateException.TypeError($"macro {PyFormat.Repr(Name)} takes not more than {parameters.Length} argument(s)");

        var scope = new Scope(closure);
        for (var i = 0; i < parameters.Length; i++)
            if (provided[i]) scope.Set(parameters[i], values[i]);
        if (bindCaller) scope.Set("caller", caller);
        if (definition.CatchKwargs) scope.Set("kwargs", extraKeywords);
        if (definition.CatchVarargs)
            scope.Set("varargs", new PyTuple(positional.Length > parameters.Length ? positional[parameters.Length..] : Array.Empty<object?>()));

        state.EnterCall();
        try
        {
            // Defaults are evaluated at call time inside the macro's own frame, as Jinja2 compiles them.
            for (var i = 0; i < parameters.Length; i++)
            {
                if (provided[i]) continue;
                var fallback = definition.Defaults[i];
                scope.Set(parameters[i], fallback is null
                    ? Undefined.WithHint($"parameter {PyFormat.Repr(parameters[i])} was not provided", parameters[i])
                    : fallback.Evaluate(state, scope));
            }
            var output = new StringBuilder();
            Stmt.ExecuteBody(definition.Body, state, scope, output);
            return output.ToString();
        }
        finally
        {
            state.ExitCall();
        }
    }
}

/// <summary>What the parser knows about a macro or a call block's caller.</summary>
internal sealed class MacroDefinition
{
    public MacroDefinition(string name, string[] parameters, Expr?[] defaults, Stmt[] body, ISet<string> namesUsed)
    {
        Name = name;
        Parameters = parameters;
        Defaults = defaults;
        Body = body;
        UsesCaller = namesUsed.Contains("caller");
        CatchKwargs = namesUsed.Contains("kwargs");
        CatchVarargs = namesUsed.Contains("varargs");
        ExplicitCaller = parameters.Contains("caller");
    }

    public string Name { get; }

    public string[] Parameters { get; }

    /// <summary>One entry per parameter; null where the parameter has no default.</summary>
    public Expr?[] Defaults { get; }

    public Stmt[] Body { get; }

    public bool UsesCaller { get; }

    public bool CatchKwargs { get; }

    public bool CatchVarargs { get; }

    public bool ExplicitCaller { get; }
}

/// <summary>Jinja2's <c>loop</c> object, with its one-item look-ahead for <c>last</c> and <c>nextitem</c>.</summary>
internal sealed class LoopContext : ICallable
{
    private static readonly object Missing = new();
    private IEnumerator<object?> iterator;
    private long? length;
    private object? after = Missing;
    private object? current = Missing;
    private object? before = Missing;
    private object? lastChanged = Missing;
    private readonly Func<RenderState, object?, int, string>? recurse;

    public LoopContext(IEnumerable<object?> items, long? knownLength, int depth0, Func<RenderState, object?, int, string>? recurse)
    {
        iterator = items.GetEnumerator();
        length = knownLength;
        Depth0 = depth0;
        this.recurse = recurse;
    }

    public long Index0 { get; private set; } = -1;

    public long Index => Index0 + 1;

    public int Depth0 { get; }

    public long Length
    {
        get
        {
            if (length is { } known) return known;
            var rest = new List<object?>();
            while (iterator.MoveNext()) rest.Add(iterator.Current);
            iterator = rest.GetEnumerator();
            length = rest.Count + Index + (ReferenceEquals(after, Missing) ? 0 : 1);
            return length.Value;
        }
    }

    private object? PeekNext()
    {
        if (!ReferenceEquals(after, Missing)) return after;
        after = iterator.MoveNext() ? iterator.Current : Missing;
        return after;
    }

    public bool MoveNext(out object? item)
    {
        if (!ReferenceEquals(after, Missing))
        {
            item = after;
            after = Missing;
        }
        else if (iterator.MoveNext()) item = iterator.Current;
        else
        {
            item = null;
            return false;
        }
        Index0++;
        before = current;
        current = item;
        return true;
    }

    public bool TryGetAttribute(string name, out object? value)
    {
        switch (name)
        {
            case "index0": value = Index0; return true;
            case "index": value = Index; return true;
            case "length": value = Length; return true;
            case "revindex": value = Length - Index0; return true;
            case "revindex0": value = Length - Index; return true;
            case "first": value = Index0 == 0; return true;
            case "last": value = ReferenceEquals(PeekNext(), Missing); return true;
            case "depth": value = (long)Depth0 + 1; return true;
            case "depth0": value = (long)Depth0; return true;
            case "previtem":
                value = Index0 == 0 ? Undefined.WithHint("there is no previous item") : before;
                return true;
            case "nextitem":
                var next = PeekNext();
                value = ReferenceEquals(next, Missing) ? Undefined.WithHint("there is no next item") : next;
                return true;
            case "cycle":
                value = new BuiltinFunction("cycle", (_, args) =>
                {
                    var items = args.NoKeywords("cycle").Positional;
                    if (items.Length == 0) throw TemplateException.TypeError("no items for cycling given");
                    return items[Index0 % items.Length];
                }, this, isMethod: true);
                return true;
            case "changed":
                value = new BuiltinFunction("changed", (_, args) =>
                {
                    var values = new PyTuple(args.NoKeywords("changed").Positional);
                    if (lastChanged is PyTuple last && PyOps.Equal(last, values)) return false;
                    lastChanged = values;
                    return true;
                }, this, isMethod: true);
                return true;
            default:
                value = null;
                return false;
        }
    }

    /// <summary><c>loop(children)</c> inside a <c>recursive</c> loop renders the loop body again one level deeper.</summary>
    public object? Invoke(RenderState state, Arguments arguments)
    {
        if (recurse is null) throw TemplateException.TypeError("The loop must have the 'recursive' marker to be called recursively.");
        var a = arguments.NoKeywords("loop").Bind("loop", new[] { "iterable" }, new[] { Arguments.Required });
        return recurse(state, a[0], Depth0 + 1);
    }
}
