using System.Runtime.CompilerServices;
using System.Text;

namespace MLNetGpt.Chat;

/// <summary>
/// The state of one render: what the template may read from the environment, its budget (steps, output, values,
/// allocation; see <see cref="TemplateLimits"/>), the cancellation token, and the recursion guards. The render's
/// thread sees it as <see cref="Current"/>, so that value helpers deep inside an operation (repeat, pad, join,
/// repr) charge the same budget as the statements.
/// </summary>
internal sealed class RenderState
{
    // Python's default recursion limit is 1,000 frames and Jinja2 spends several per macro call; beyond a few
    // hundred nested calls a template is looping, and .NET must stop before its own stack does.
    private const int MaxMacroDepth = 500;

    // Cancellation is looked at every this many steps: a step is well under a microsecond, so a cancelled render
    // stops within about a millisecond without paying for the check on every node.
    private const int CancellationInterval = 1024;

    [ThreadStatic] private static RenderState? t_current;

    private readonly CancellationToken _cancellation;
    private int macroDepth;
    private int evaluationDepth;
    private long steps;
    private long allocated;

    public RenderState(Func<DateTime> now, TemplateLimits? limits = null, CancellationToken cancellationToken = default)
    {
        Now = now;
        Limits = limits ?? TemplateLimits.Default;
        _cancellation = cancellationToken;
    }

    /// <summary>The clock behind <c>strftime_now</c>.</summary>
    public Func<DateTime> Now { get; }

    public TemplateLimits Limits { get; }

    /// <summary>Steps spent so far (for measurements).</summary>
    public long Steps => steps;

    /// <summary>Characters and weighted items allocated so far (for measurements).</summary>
    public long Allocated => allocated;

    /// <summary>The deepest evaluation reached so far (for measurements).</summary>
    public int MaxEvaluationDepthSeen { get; private set; }

    /// <summary>The render running on this thread, or null outside a render.</summary>
    public static RenderState? Current => t_current;

    /// <summary>Makes this the thread's current render until the returned scope is disposed.</summary>
    public Activation Activate()
    {
        var previous = t_current;
        t_current = this;
        return new Activation(previous);
    }

    public readonly struct Activation(RenderState? previous) : IDisposable
    {
        public void Dispose() => t_current = previous;
    }

    /// <summary>Spends one step (a statement, an expression, a loop iteration, a call).</summary>
    public void Step()
    {
        if (++steps > Limits.MaxSteps) throw StepsExceeded();
        if ((steps & (CancellationInterval - 1)) == 0) _cancellation.ThrowIfCancellationRequested();
    }

    /// <summary>Spends steps for reading <paramref name="length"/> characters or items.</summary>
    public void Read(long length)
    {
        if (length < CharactersPerStepThreshold) return;
        long cost = length / TemplateLimits.CharactersPerStep;
        long before = steps;
        steps += cost;
        if (steps > Limits.MaxSteps) throw StepsExceeded();
        if (before / CancellationInterval != steps / CancellationInterval) _cancellation.ThrowIfCancellationRequested();
    }

    private const int CharactersPerStepThreshold = TemplateLimits.CharactersPerStep;

    private TemplateException StepsExceeded() => TemplateException.LimitExceeded(nameof(TemplateLimits.MaxSteps),
        $"the template ran past its budget of {Limits.MaxSteps:N0} steps (statements, expressions, loop iterations and calls)");

    /// <summary>
    /// Charges a string of <paramref name="characters"/> about to be built: refused before the allocation when it is
    /// longer than one value may be, or when the render's allocation budget would be spent.
    /// </summary>
    public void AllocateString(long characters, string what) => Allocate(characters, characters, what, "characters");

    /// <summary>Charges a list, tuple or dictionary of <paramref name="items"/> about to be built.</summary>
    public void AllocateItems(long items, string what) => Allocate(items, items * TemplateLimits.ItemWeight, what, "items");

    private void Allocate(long length, long weight, string what, string unit)
    {
        if (length < 0 || length > Limits.MaxValueLength)
            throw TemplateException.LimitExceeded(nameof(TemplateLimits.MaxValueLength),
                $"{what} would be {(length < 0 ? "beyond 2^63" : length.ToString("N0"))} {unit} long, more than the {Limits.MaxValueLength:N0} one value may hold");
        allocated += weight;
        if (allocated > Limits.MaxAllocation)
            throw TemplateException.LimitExceeded(nameof(TemplateLimits.MaxAllocation),
                $"{what} would take the render's allocations past their budget of {Limits.MaxAllocation:N0} characters (list items count {TemplateLimits.ItemWeight} each)");
    }

    /// <summary>The render's own output (the prompt); any other builder a statement writes to is a captured value.</summary>
    public StringBuilder? Output { get; set; }

    /// <summary>
    /// Appends <paramref name="text"/> to <paramref name="target"/> within the budget: the prompt within
    /// <see cref="TemplateLimits.MaxOutputLength"/>, a captured block (a macro's or a call block's body, a set block)
    /// within <see cref="TemplateLimits.MaxValueLength"/> and the allocation budget.
    /// </summary>
    public void Write(StringBuilder target, string text)
    {
        if (text.Length == 0) return;
        if (ReferenceEquals(target, Output)) CheckOutput(target.Length, text.Length);
        else Allocate(target.Length + (long)text.Length, text.Length, "a captured block", "characters");
        target.Append(text);
    }

    /// <summary>Checks the prompt before <paramref name="adding"/> more characters are written to it.</summary>
    public void CheckOutput(long current, long adding)
    {
        if (current + adding > Limits.MaxOutputLength)
            throw TemplateException.LimitExceeded(nameof(TemplateLimits.MaxOutputLength),
                $"the rendered prompt would be {current + adding:N0} characters long, more than its budget of {Limits.MaxOutputLength:N0}");
    }

    /// <summary>Charges a string of the current render, or checks it against the default limits outside a render.</summary>
    public static void ChargeString(long characters, string what)
    {
        if (t_current is { } state) state.AllocateString(characters, what);
        else if (characters < 0 || characters > TemplateLimits.Default.MaxValueLength)
            throw TemplateException.LimitExceeded(nameof(TemplateLimits.MaxValueLength),
                $"{what} would be {(characters < 0 ? "beyond 2^63" : characters.ToString("N0"))} characters long, more than the {TemplateLimits.Default.MaxValueLength:N0} one value may hold");
    }

    /// <summary>Charges a list or tuple of the current render, or checks it against the default limits outside a render.</summary>
    public static void ChargeItems(long items, string what)
    {
        if (t_current is { } state) state.AllocateItems(items, what);
        else if (items < 0 || items > TemplateLimits.Default.MaxValueLength)
            throw TemplateException.LimitExceeded(nameof(TemplateLimits.MaxValueLength),
                $"{what} would be {(items < 0 ? "beyond 2^63" : items.ToString("N0"))} items long, more than the {TemplateLimits.Default.MaxValueLength:N0} one value may hold");
    }

    /// <summary>Spends the steps of reading a value of the current render (nothing outside a render).</summary>
    public static void ChargeRead(long length) => t_current?.Read(length);

    /// <summary>Spends one step of the current render (nothing outside a render).</summary>
    public static void ChargeStep() => t_current?.Step();

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

    /// <summary>Enters one level of expression evaluation; refused beyond <see cref="TemplateLimits.MaxEvaluationDepth"/>.</summary>
    public void EnterEvaluation()
    {
        if (++evaluationDepth > TemplateLimits.MaxEvaluationDepth)
        {
            evaluationDepth--;
            throw new TemplateException(TemplateErrorKind.Recursion,
                $"maximum recursion depth exceeded: expressions nest more than {TemplateLimits.MaxEvaluationDepth} levels deep");
        }
        if (evaluationDepth > MaxEvaluationDepthSeen) MaxEvaluationDepthSeen = evaluationDepth;
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
        {
            evaluationDepth--;
            throw StackExhausted();
        }
    }

    public void ExitEvaluation() => evaluationDepth--;

    public static void EnsureStack()
    {
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack()) throw StackExhausted();
    }

    /// <summary>
    /// Values nested deeper than <see cref="TemplateLimits.MaxEvaluationDepth"/> (a list built inside itself level by
    /// level) are refused where they are walked: compared, hashed, printed or written as JSON.
    /// </summary>
    public static void EnsureValueDepth(int depth, string operation)
    {
        if (depth > TemplateLimits.MaxEvaluationDepth)
            throw new TemplateException(TemplateErrorKind.Recursion, $"maximum recursion depth exceeded {operation}: values nest more than {TemplateLimits.MaxEvaluationDepth} levels deep");
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack()) throw StackExhausted();
    }

    private static TemplateException StackExhausted() => new(TemplateErrorKind.Recursion,
        "maximum recursion depth exceeded: the template nests too deeply for the stack of the thread rendering it");
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
