using System.Text;

namespace MLNetGpt.Chat;

/// <summary>An expression of the template's syntax tree; evaluation follows Python's (and Jinja2's) semantics.</summary>
internal abstract class Expr
{
    protected Expr(int line, int column)
    {
        Line = line;
        Column = column;
    }

    public int Line { get; }

    public int Column { get; }

    public virtual object? Evaluate(RenderState state, Scope scope)
    {
        state.Step();
        // A chain such as a.b.c... nests one level per link however flat its source is; the depth guard also checks
        // the stack, since a render may run on a thread with less of it than the one that parsed the template.
        state.EnterEvaluation();
        try
        {
            return Eval(state, scope);
        }
        catch (TemplateException e) when (e.AttachPosition(Line, Column))
        {
            throw;
        }
        finally
        {
            state.ExitEvaluation();
        }
    }

    protected abstract object? Eval(RenderState state, Scope scope);
}

internal sealed class ConstExpr : Expr
{
    public ConstExpr(object? value, int line, int column) : base(line, column) => Value = value;

    public object? Value { get; }

    public override object? Evaluate(RenderState state, Scope scope) => Value;

    protected override object? Eval(RenderState state, Scope scope) => Value;
}

internal sealed class NameExpr : Expr
{
    public NameExpr(string name, int line, int column) : base(line, column) => Name = name;

    public string Name { get; }

    public override object? Evaluate(RenderState state, Scope scope) => scope.Lookup(Name);

    protected override object? Eval(RenderState state, Scope scope) => scope.Lookup(Name);
}

internal sealed class ListExpr : Expr
{
    private readonly Expr[] items;

    public ListExpr(Expr[] items, int line, int column) : base(line, column) => this.items = items;

    protected override object? Eval(RenderState state, Scope scope)
    {
        state.AllocateItems(items.Length, "a list");
        var list = new List<object?>(items.Length);
        foreach (var item in items) list.Add(item.Evaluate(state, scope));
        return new PyList(list);
    }
}

internal sealed class TupleExpr : Expr
{
    public TupleExpr(Expr[] items, int line, int column) : base(line, column) => Items = items;

    public Expr[] Items { get; }

    protected override object? Eval(RenderState state, Scope scope)
    {
        state.AllocateItems(Items.Length, "a tuple");
        var values = new object?[Items.Length];
        for (var i = 0; i < Items.Length; i++) values[i] = Items[i].Evaluate(state, scope);
        return new PyTuple(values);
    }
}

internal sealed class DictExpr : Expr
{
    private readonly (Expr Key, Expr Value)[] pairs;

    public DictExpr((Expr Key, Expr Value)[] pairs, int line, int column) : base(line, column) => this.pairs = pairs;

    protected override object? Eval(RenderState state, Scope scope)
    {
        state.AllocateItems(pairs.Length, "a dictionary");
        var dict = new PyDict();
        foreach (var (key, value) in pairs) dict.Set(key.Evaluate(state, scope), value.Evaluate(state, scope));
        return dict;
    }
}

internal sealed class GetAttrExpr : Expr
{
    private readonly Expr target;
    private readonly string name;

    public GetAttrExpr(Expr target, string name, int line, int column) : base(line, column)
    {
        this.target = target;
        this.name = name;
    }

    protected override object? Eval(RenderState state, Scope scope) => PyOps.GetAttribute(target.Evaluate(state, scope), name);
}

internal sealed class GetItemExpr : Expr
{
    private readonly Expr target;
    private readonly Expr key;

    public GetItemExpr(Expr target, Expr key, int line, int column) : base(line, column)
    {
        this.target = target;
        this.key = key;
    }

    protected override object? Eval(RenderState state, Scope scope)
    {
        var obj = target.Evaluate(state, scope);
        return PyOps.GetItem(obj, key.Evaluate(state, scope));
    }
}

internal sealed class SliceExpr : Expr
{
    private readonly Expr? start;
    private readonly Expr? stop;
    private readonly Expr? step;

    public SliceExpr(Expr? start, Expr? stop, Expr? step, int line, int column) : base(line, column)
    {
        this.start = start;
        this.stop = stop;
        this.step = step;
    }

    protected override object? Eval(RenderState state, Scope scope) =>
        new PySlice(start?.Evaluate(state, scope), stop?.Evaluate(state, scope), step?.Evaluate(state, scope));
}

/// <summary>The arguments written at a call, filter or test site: positional, keyword, *args and **kwargs.</summary>
internal sealed class ArgumentList
{
    public static readonly ArgumentList Empty = new(Array.Empty<Expr>(), Array.Empty<(string, Expr)>(), null, null);

    public ArgumentList(Expr[] positional, (string Name, Expr Value)[] keywords, Expr? starArgs, Expr? starKwargs)
    {
        Positional = positional;
        Keywords = keywords;
        StarArgs = starArgs;
        StarKwargs = starKwargs;
    }

    public Expr[] Positional { get; }

    public (string Name, Expr Value)[] Keywords { get; }

    public Expr? StarArgs { get; }

    public Expr? StarKwargs { get; }

    public Arguments Evaluate(RenderState state, Scope scope, KeyValuePair<string, object?>? extraKeyword = null)
    {
        object?[] positional;
        if (StarArgs is null && Positional.Length == 0) positional = Array.Empty<object?>();
        else
        {
            var list = new List<object?>(Positional.Length);
            foreach (var p in Positional) list.Add(p.Evaluate(state, scope));
            if (StarArgs is not null) list.AddRange(PyOps.Iterate(StarArgs.Evaluate(state, scope)));
            if (list.Count > Positional.Length) state.AllocateItems(list.Count, "the *arguments");
            positional = list.ToArray();
        }
        if (Keywords.Length == 0 && StarKwargs is null && extraKeyword is null)
            return new Arguments(positional, Array.Empty<KeyValuePair<string, object?>>());
        var keywords = new List<KeyValuePair<string, object?>>(Keywords.Length + 1);
        foreach (var (name, value) in Keywords) keywords.Add(new KeyValuePair<string, object?>(name, value.Evaluate(state, scope)));
        if (extraKeyword is { } extra) keywords.Add(extra);
        if (StarKwargs is not null)
        {
            var mapping = StarKwargs.Evaluate(state, scope) as PyDict
                ?? throw TemplateException.TypeError("argument after ** must be a mapping");
            foreach (var (key, value) in mapping.Entries)
            {
                if (key is not string name) throw TemplateException.TypeError("keywords must be strings");
                if (keywords.Any(k => k.Key == name)) throw TemplateException.TypeError($"got multiple values for keyword argument {PyFormat.Repr(name)}");
                keywords.Add(new KeyValuePair<string, object?>(name, value));
            }
        }
        return new Arguments(positional, keywords.ToArray());
    }
}

internal sealed class CallExpr : Expr
{
    public CallExpr(Expr callee, ArgumentList arguments, int line, int column) : base(line, column)
    {
        Callee = callee;
        Arguments = arguments;
    }

    public Expr Callee { get; }

    public ArgumentList Arguments { get; }

    protected override object? Eval(RenderState state, Scope scope) => Call(state, scope, null);

    /// <summary>A call block passes its body as the extra keyword argument <c>caller</c>.</summary>
    public object? EvaluateWithCaller(RenderState state, Scope scope, Macro caller)
    {
        try
        {
            return Call(state, scope, new KeyValuePair<string, object?>("caller", caller));
        }
        catch (TemplateException e) when (e.AttachPosition(Line, Column))
        {
            throw;
        }
    }

    private object? Call(RenderState state, Scope scope, KeyValuePair<string, object?>? extra)
    {
        var callee = Callee.Evaluate(state, scope);
        var arguments = Arguments.Evaluate(state, scope, extra);
        return PyOps.Call(state, callee, arguments);
    }
}

/// <summary><c>value | name(args)</c>; the operand is null in filter blocks and <c>{% set x | f %}</c>, where the body is the value.</summary>
internal sealed class FilterExpr : Expr
{
    private readonly Expr? operand;
    private readonly string name;
    private readonly FilterFunction? function;
    private readonly ArgumentList arguments;

    public FilterExpr(Expr? operand, string name, FilterFunction? function, ArgumentList arguments, int line, int column) : base(line, column)
    {
        this.operand = operand;
        this.name = name;
        this.function = function;
        this.arguments = arguments;
    }

    /// <summary>The filter chain applied to a value computed elsewhere (a block body).</summary>
    public FilterExpr? Inner => operand as FilterExpr;

    protected override object? Eval(RenderState state, Scope scope) => Apply(state, scope, operand!.Evaluate(state, scope));

    public object? ApplyTo(RenderState state, Scope scope, object? value)
    {
        try
        {
            if (operand is FilterExpr inner) value = inner.ApplyTo(state, scope, value);
            return Apply(state, scope, value);
        }
        catch (TemplateException e) when (e.AttachPosition(Line, Column))
        {
            throw;
        }
    }

    private object? Apply(RenderState state, Scope scope, object? value)
    {
        // Jinja2 defers an unknown filter inside an if to the moment it runs.
        var f = function ?? throw TemplateException.Runtime($"No filter named {PyFormat.Repr(name)} found.");
        state.Read(PyOps.SizeOf(value));
        return f(state, value, arguments.Evaluate(state, scope));
    }
}

internal sealed class TestExpr : Expr
{
    private readonly Expr operand;
    private readonly string name;
    private readonly TestFunction? function;
    private readonly ArgumentList arguments;

    public TestExpr(Expr operand, string name, TestFunction? function, ArgumentList arguments, int line, int column) : base(line, column)
    {
        this.operand = operand;
        this.name = name;
        this.function = function;
        this.arguments = arguments;
    }

    protected override object? Eval(RenderState state, Scope scope)
    {
        var value = operand.Evaluate(state, scope);
        var f = function ?? throw TemplateException.Runtime($"No test named {PyFormat.Repr(name)} found.");
        state.Read(PyOps.SizeOf(value));
        return f(state, value, arguments.Evaluate(state, scope));
    }
}

internal sealed class NotExpr : Expr
{
    private readonly Expr operand;

    public NotExpr(Expr operand, int line, int column) : base(line, column) => this.operand = operand;

    protected override object? Eval(RenderState state, Scope scope) => !PyOps.Truthy(operand.Evaluate(state, scope));
}

internal sealed class UnaryExpr : Expr
{
    private readonly Expr operand;
    private readonly bool negate;

    public UnaryExpr(Expr operand, bool negate, int line, int column) : base(line, column)
    {
        this.operand = operand;
        this.negate = negate;
    }

    protected override object? Eval(RenderState state, Scope scope)
    {
        var value = operand.Evaluate(state, scope);
        return negate ? PyOps.Negate(value) : PyOps.Plus(value);
    }
}

/// <summary><c>and</c> / <c>or</c>: short-circuit, and the value is one of the operands, as in Python.</summary>
internal sealed class LogicalExpr : Expr
{
    private readonly Expr left;
    private readonly Expr right;
    private readonly bool isAnd;

    public LogicalExpr(Expr left, Expr right, bool isAnd, int line, int column) : base(line, column)
    {
        this.left = left;
        this.right = right;
        this.isAnd = isAnd;
    }

    protected override object? Eval(RenderState state, Scope scope)
    {
        var value = left.Evaluate(state, scope);
        return PyOps.Truthy(value) == isAnd ? right.Evaluate(state, scope) : value;
    }
}

internal enum BinaryOperator { Add, Subtract, Multiply, Divide, FloorDivide, Modulo, Power }

internal sealed class BinaryExpr : Expr
{
    private readonly Expr left;
    private readonly Expr right;
    private readonly BinaryOperator op;

    public BinaryExpr(Expr left, Expr right, BinaryOperator op, int line, int column) : base(line, column)
    {
        this.left = left;
        this.right = right;
        this.op = op;
    }

    protected override object? Eval(RenderState state, Scope scope)
    {
        var a = left.Evaluate(state, scope);
        var b = right.Evaluate(state, scope);
        return op switch
        {
            BinaryOperator.Add => PyOps.Add(a, b),
            BinaryOperator.Subtract => PyOps.Subtract(a, b),
            BinaryOperator.Multiply => PyOps.Multiply(a, b),
            BinaryOperator.Divide => PyOps.TrueDivide(a, b),
            BinaryOperator.FloorDivide => PyOps.FloorDivide(a, b),
            BinaryOperator.Modulo => PyOps.Modulo(a, b),
            _ => PyOps.Power(a, b),
        };
    }
}

/// <summary><c>a ~ b ~ c</c>: Python's str() of each, joined.</summary>
internal sealed class ConcatExpr : Expr
{
    private readonly Expr[] items;

    public ConcatExpr(Expr[] items, int line, int column) : base(line, column) => this.items = items;

    protected override object? Eval(RenderState state, Scope scope)
    {
        var parts = new string[items.Length];
        long length = 0;
        for (var i = 0; i < items.Length; i++)
        {
            parts[i] = PyFormat.Str(items[i].Evaluate(state, scope));
            length += parts[i].Length;
        }
        state.AllocateString(length, "the '~' concatenation");
        return string.Concat(parts);
    }
}

/// <summary>A comparison chain; <c>a &lt; b &lt; c</c> means <c>a &lt; b and b &lt; c</c> with b evaluated once.</summary>
internal sealed class CompareExpr : Expr
{
    private readonly Expr first;
    private readonly (string Op, Expr Operand)[] rest;

    public CompareExpr(Expr first, (string Op, Expr Operand)[] rest, int line, int column) : base(line, column)
    {
        this.first = first;
        this.rest = rest;
    }

    protected override object? Eval(RenderState state, Scope scope)
    {
        var left = first.Evaluate(state, scope);
        foreach (var (op, operand) in rest)
        {
            var right = operand.Evaluate(state, scope);
            state.Read(Math.Max(PyOps.SizeOf(left), PyOps.SizeOf(right)));
            var holds = op switch
            {
                "==" => PyOps.Equal(left, right),
                "!=" => !PyOps.Equal(left, right),
                "in" => PyOps.Contains(right, left),
                "not in" => !PyOps.Contains(right, left),
                _ => PyOps.Order(left, right, op),
            };
            if (!holds) return false;
            left = right;
        }
        return true;
    }
}

/// <summary><c>a if c else b</c>; without else the false branch is undefined.</summary>
internal sealed class ConditionalExpr : Expr
{
    private readonly Expr test;
    private readonly Expr whenTrue;
    private readonly Expr? whenFalse;

    public ConditionalExpr(Expr test, Expr whenTrue, Expr? whenFalse, int line, int column) : base(line, column)
    {
        this.test = test;
        this.whenTrue = whenTrue;
        this.whenFalse = whenFalse;
    }

    protected override object? Eval(RenderState state, Scope scope)
    {
        if (PyOps.Truthy(test.Evaluate(state, scope))) return whenTrue.Evaluate(state, scope);
        return whenFalse is null
            ? Undefined.WithHint($"the inline if-expression on line {Line} evaluated to false and no else section was defined.")
            : whenFalse.Evaluate(state, scope);
    }
}
