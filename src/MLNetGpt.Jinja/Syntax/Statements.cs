using System.Text;

namespace MLNetGpt.Chat;

internal enum Flow { Normal, Break, Continue }

/// <summary>A statement of the template's syntax tree; it writes its output and says whether a loop was broken.</summary>
internal abstract class Stmt
{
    protected Stmt(int line, int column)
    {
        Line = line;
        Column = column;
    }

    public int Line { get; }

    public int Column { get; }

    public abstract Flow Execute(RenderState state, Scope scope, StringBuilder output);

    public static Flow ExecuteBody(Stmt[] body, RenderState state, Scope scope, StringBuilder output)
    {
        foreach (var statement in body)
        {
            Flow flow;
            try
            {
                state.Step();
                flow = statement.Execute(state, scope, output);
            }
            catch (TemplateException e) when (e.AttachPosition(statement.Line, statement.Column))
            {
                throw;
            }
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    protected static string Capture(Stmt[] body, RenderState state, Scope scope)
    {
        var output = new StringBuilder();
        ExecuteBody(body, state, scope, output);
        return output.ToString();
    }
}

/// <summary>Template text and <c>{{ }}</c> expressions, printed with Python's str().</summary>
internal sealed class OutputStmt : Stmt
{
    private readonly object[] parts;

    public OutputStmt(object[] parts, int line, int column) : base(line, column) => this.parts = parts;

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output)
    {
        foreach (var part in parts)
        {
            if (part is string text) state.Write(output, text);
            else state.Write(output, PyFormat.Str(((Expr)part).Evaluate(state, scope)));
        }
        return Flow.Normal;
    }
}

/// <summary><c>if / elif / else</c>: no scope of its own, so a set inside is seen after it.</summary>
internal sealed class IfStmt : Stmt
{
    private readonly (Expr Test, Stmt[] Body)[] branches;
    private readonly Stmt[] otherwise;

    public IfStmt((Expr Test, Stmt[] Body)[] branches, Stmt[] otherwise, int line, int column) : base(line, column)
    {
        this.branches = branches;
        this.otherwise = otherwise;
    }

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output)
    {
        foreach (var (test, body) in branches)
            if (PyOps.Truthy(test.Evaluate(state, scope))) return ExecuteBody(body, state, scope, output);
        return ExecuteBody(otherwise, state, scope, output);
    }
}

internal sealed class ForStmt : Stmt
{
    private readonly Target target;
    private readonly Expr iterable;
    private readonly Expr? filter;
    private readonly Stmt[] body;
    private readonly Stmt[] otherwise;
    private readonly bool recursive;

    public ForStmt(Target target, Expr iterable, Expr? filter, Stmt[] body, Stmt[] otherwise, bool recursive, int line, int column)
        : base(line, column)
    {
        this.target = target;
        this.iterable = iterable;
        this.filter = filter;
        this.body = body;
        this.otherwise = otherwise;
        this.recursive = recursive;
    }

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output)
    {
        Run(state, scope, iterable.Evaluate(state, scope), 0, output);
        return Flow.Normal;
    }

    private void Run(RenderState state, Scope scope, object? values, int depth0, StringBuilder output)
    {
        IEnumerable<object?> items;
        try
        {
            items = PyOps.Iterate(values);
        }
        catch (TemplateException e) when (e.AttachPosition(iterable.Line, iterable.Column))
        {
            throw;
        }
        long? knownLength = null;
        if (filter is null) knownLength = PyOps.TryLength(values);
        else items = Filtered(state, scope, items);
        Func<RenderState, object?, int, string>? recurse = recursive
            ? (s, children, depth) =>
            {
                var nested = new StringBuilder();
                Run(s, scope, children, depth, nested);
                return nested.ToString();
            }
            : null;
        var loop = new LoopContext(items, knownLength, depth0, recurse);
        var iterated = false;
        while (loop.MoveNext(out var item))
        {
            iterated = true;
            var iteration = new Scope(scope);
            target.Assign(iteration, item);
            iteration.Set("loop", loop);
            if (ExecuteBody(body, state, iteration, output) == Flow.Break) break;
        }
        if (!iterated && otherwise.Length > 0) ExecuteBody(otherwise, state, new Scope(scope), output);
    }

    private IEnumerable<object?> Filtered(RenderState state, Scope scope, IEnumerable<object?> items)
    {
        foreach (var item in items)
        {
            var test = new Scope(scope);
            target.Assign(test, item);
            if (PyOps.Truthy(filter!.Evaluate(state, test))) yield return item;
        }
    }
}

internal sealed class SetStmt : Stmt
{
    private readonly Target target;
    private readonly Expr value;

    public SetStmt(Target target, Expr value, int line, int column) : base(line, column)
    {
        this.target = target;
        this.value = value;
    }

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output)
    {
        var result = value.Evaluate(state, scope);
        try
        {
            target.Assign(scope, result);
        }
        catch (TemplateException e) when (e.AttachPosition(Line, Column))
        {
            throw;
        }
        return Flow.Normal;
    }
}

/// <summary><c>{% set x %}...{% endset %}</c>, optionally through filters: the rendered body is the value.</summary>
internal sealed class SetBlockStmt : Stmt
{
    private readonly Target target;
    private readonly FilterExpr? filter;
    private readonly Stmt[] body;

    public SetBlockStmt(Target target, FilterExpr? filter, Stmt[] body, int line, int column) : base(line, column)
    {
        this.target = target;
        this.filter = filter;
        this.body = body;
    }

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output)
    {
        // The body renders in its own frame (Jinja2 compiles it as a nested block), then is assigned here.
        object? value = Capture(body, state, new Scope(scope));
        if (filter is not null) value = filter.ApplyTo(state, scope, value);
        try
        {
            target.Assign(scope, value);
        }
        catch (TemplateException e) when (e.AttachPosition(Line, Column))
        {
            throw;
        }
        return Flow.Normal;
    }
}

internal sealed class MacroStmt : Stmt
{
    private readonly MacroDefinition definition;

    public MacroStmt(MacroDefinition definition, int line, int column) : base(line, column) => this.definition = definition;

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output)
    {
        scope.Set(definition.Name, new Macro(definition, scope));
        return Flow.Normal;
    }
}

/// <summary><c>{% call(args) m(...) %}body{% endcall %}</c>: m receives the body as <c>caller</c>.</summary>
internal sealed class CallBlockStmt : Stmt
{
    private readonly CallExpr call;
    private readonly MacroDefinition caller;

    public CallBlockStmt(CallExpr call, MacroDefinition caller, int line, int column) : base(line, column)
    {
        this.call = call;
        this.caller = caller;
    }

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output)
    {
        state.Write(output, PyFormat.Str(call.EvaluateWithCaller(state, scope, new Macro(caller, scope))));
        return Flow.Normal;
    }
}

/// <summary><c>{% filter f %}body{% endfilter %}</c>.</summary>
internal sealed class FilterBlockStmt : Stmt
{
    private readonly FilterExpr filter;
    private readonly Stmt[] body;

    public FilterBlockStmt(FilterExpr filter, Stmt[] body, int line, int column) : base(line, column)
    {
        this.filter = filter;
        this.body = body;
    }

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output)
    {
        var inner = new Scope(scope);
        state.Write(output, PyFormat.Str(filter.ApplyTo(state, inner, Capture(body, state, inner))));
        return Flow.Normal;
    }
}

/// <summary><c>{% with a = 1 %}...{% endwith %}</c>: the values are computed outside, bound inside a new frame.</summary>
internal sealed class WithStmt : Stmt
{
    private readonly (Target Target, Expr Value)[] bindings;
    private readonly Stmt[] body;

    public WithStmt((Target Target, Expr Value)[] bindings, Stmt[] body, int line, int column) : base(line, column)
    {
        this.bindings = bindings;
        this.body = body;
    }

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output)
    {
        var inner = new Scope(scope);
        foreach (var (target, value) in bindings) target.Assign(inner, value.Evaluate(state, scope));
        return ExecuteBody(body, state, inner, output);
    }
}

/// <summary>
/// <c>{% generation %}...{% endgeneration %}</c> of Hugging Face transformers: renders its body. It is a call block
/// there, so the body has its own frame (a set inside does not leak out).
/// </summary>
internal sealed class GenerationStmt : Stmt
{
    private readonly Stmt[] body;

    public GenerationStmt(Stmt[] body, int line, int column) : base(line, column) => this.body = body;

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output)
    {
        state.EnterCall();
        try
        {
            state.Write(output, Capture(body, state, new Scope(scope)));
        }
        finally
        {
            state.ExitCall();
        }
        return Flow.Normal;
    }
}

internal sealed class LoopControlStmt : Stmt
{
    private readonly Flow flow;

    public LoopControlStmt(Flow flow, int line, int column) : base(line, column) => this.flow = flow;

    public override Flow Execute(RenderState state, Scope scope, StringBuilder output) => flow;
}

/// <summary>The left side of an assignment or a loop variable.</summary>
internal abstract class Target
{
    public abstract void Assign(Scope scope, object? value);
}

internal sealed class NameTarget : Target
{
    public NameTarget(string name) => Name = name;

    public string Name { get; }

    public override void Assign(Scope scope, object? value) => scope.Set(Name, value);
}

/// <summary>Tuple unpacking, <c>for k, v in ...</c>, with Python's errors when the counts differ.</summary>
internal sealed class TupleTarget : Target
{
    private readonly Target[] items;

    public TupleTarget(Target[] items) => this.items = items;

    public override void Assign(Scope scope, object? value)
    {
        if (!PyOps.IsIterable(value)) throw TemplateException.TypeError($"cannot unpack non-iterable {PyOps.TypeName(value)} object");
        var values = PyOps.Iterate(value).Take(items.Length + 1).ToList();
        if (values.Count > items.Length) throw TemplateException.ValueError($"too many values to unpack (expected {items.Length})");
        if (values.Count < items.Length) throw TemplateException.ValueError($"not enough values to unpack (expected {items.Length}, got {values.Count})");
        for (var i = 0; i < items.Length; i++) items[i].Assign(scope, values[i]);
    }
}

/// <summary><c>set ns.attr = value</c>: the only attribute assignment Jinja2 allows, on a namespace.</summary>
internal sealed class NamespaceTarget : Target
{
    private readonly string name;
    private readonly string attribute;

    public NamespaceTarget(string name, string attribute)
    {
        this.name = name;
        this.attribute = attribute;
    }

    public override void Assign(Scope scope, object? value)
    {
        if (scope.Lookup(name) is not Namespace ns) throw TemplateException.Runtime("cannot assign attribute on non-namespace object");
        ns.Attributes.Set(attribute, value);
    }
}
