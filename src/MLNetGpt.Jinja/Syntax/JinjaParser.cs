namespace MLNetGpt.Chat;

/// <summary>
/// Jinja2 3.1's grammar (parser.py) over the lexer's tokens: operator precedence, tuples without parentheses,
/// filters binding tighter than arithmetic, tests after <c>is</c>, and the statements chat templates use, including
/// the loopcontrols extension and Hugging Face's <c>{% generation %}</c>.
/// </summary>
internal sealed class JinjaParser
{
    private static readonly HashSet<string> CompareOperators = new(StringComparer.Ordinal) { "==", "!=", "<", "<=", ">", ">=" };
    private static readonly HashSet<string> UnsupportedTags = new(StringComparer.Ordinal)
    {
        "block", "extends", "include", "import", "from", "autoescape",
    };

    private readonly JinjaLexer lexer;
    private readonly List<Token> tokens = new();
    private int index;
    private int nesting;
    private readonly List<string[]> endTokenStack = new();
    private readonly List<string> tagStack = new();
    private readonly List<HashSet<string>> nameCollectors = new();
    private int loopDepth;
    private int softDepth;

    private JinjaParser(JinjaLexer lexer) => this.lexer = lexer;

    public static Stmt[] Parse(string source) => Parse(source, out _);

    /// <summary>Parses; <paramref name="deepestNesting"/> is the deepest nesting of blocks and expressions met (for measurements).</summary>
    public static Stmt[] Parse(string source, out int deepestNesting)
    {
        var parser = new JinjaParser(JinjaLexer.Create(source));
        var body = parser.SubParse(null);
        deepestNesting = parser.deepest;
        return body;
    }

    // ---- token stream ----
    // Tokens come from the lexer as they are needed; those behind the parser are dropped, so a template refused early
    // (too deeply nested, say) costs only what was read of it.

    private int deepest;

    private Token Peek(int ahead)
    {
        while (index + ahead >= tokens.Count && lexer.Pull(tokens)) { }
        return tokens[Math.Min(index + ahead, tokens.Count - 1)];
    }

    private Token Current => Peek(0);

    private Token Look => Peek(1);

    private Token Next()
    {
        var token = Current;
        if (token.Kind != TokenKind.Eof || index < tokens.Count - 1) index++;
        if (index > 4096)
        {
            tokens.RemoveRange(0, index);
            index = 0;
        }
        return token;
    }

    /// <summary>
    /// One more level of nesting (a block inside a block, an expression inside an expression); Python's parser stops
    /// where this does, and no template of a real model comes near it.
    /// </summary>
    private void Enter()
    {
        if (++nesting > TemplateLimits.MaxSourceNesting)
            throw Fail(Recursion, $"the template nests blocks and expressions more than {TemplateLimits.MaxSourceNesting} levels deep", Current);
        if (nesting > deepest) deepest = nesting;
        if (!System.Runtime.CompilerServices.RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw Fail(Recursion, "the template nests too deeply for the stack of the thread parsing it", Current);
    }

    private void Exit() => nesting--;

    private const TemplateErrorKind Recursion = TemplateErrorKind.Recursion;

    private static TemplateException Fail(TemplateErrorKind kind, string message, Token at) => new(kind, $"maximum recursion depth exceeded: {message}", at.Line, at.Column);

    private bool SkipIfOperator(string op)
    {
        if (!Current.IsOperator(op)) return false;
        Next();
        return true;
    }

    private bool SkipIfName(string name)
    {
        if (!Current.IsName(name)) return false;
        Next();
        return true;
    }

    private TemplateException Fail(string message, Token at) => new(TemplateErrorKind.Syntax, message, at.Line, at.Column);

    private Token Expect(TokenKind kind, string? text = null)
    {
        var token = Current;
        if (token.Kind == kind && (text is null || token.Text == text)) return Next();
        var wanted = text ?? new Token(kind, "", null, 0, 0).Describe();
        if (token.Kind == TokenKind.Eof)
            throw Fail($"unexpected end of template, expected {PyFormat.Repr(wanted)}.", token);
        throw Fail($"expected token {PyFormat.Repr(wanted)}, got {PyFormat.Repr(token.Describe())}", token);
    }

    private Token ExpectOperator(string op) => Expect(TokenKind.Operator, op);

    private Token ExpectName() => Expect(TokenKind.Name);

    // ---- statements ----

    private Stmt[] SubParse(string[]? endTokens)
    {
        var body = new List<Stmt>();
        var parts = new List<object>();
        Token? partsStart = null;
        if (endTokens is not null)
        {
            Enter();
            endTokenStack.Add(endTokens);
        }
        try
        {
            void Flush()
            {
                if (parts.Count == 0) return;
                body.Add(new OutputStmt(parts.ToArray(), partsStart!.Line, partsStart.Column));
                parts.Clear();
            }

            while (Current.Kind != TokenKind.Eof)
            {
                var token = Current;
                switch (token.Kind)
                {
                    case TokenKind.Data:
                        if (parts.Count == 0) partsStart = token;
                        parts.Add(token.Text);
                        Next();
                        break;
                    case TokenKind.VariableBegin:
                        if (parts.Count == 0) partsStart = token;
                        Next();
                        parts.Add(ParseTuple(withCondExpr: true));
                        Expect(TokenKind.VariableEnd);
                        break;
                    case TokenKind.BlockBegin:
                        Flush();
                        Next();
                        if (endTokens is not null && Current.Kind == TokenKind.Name && endTokens.Contains(Current.Text)) return body.ToArray();
                        body.Add(ParseStatement());
                        Expect(TokenKind.BlockEnd);
                        break;
                    default:
                        throw Fail($"unexpected {PyFormat.Repr(token.Describe())}", token);
                }
            }
            Flush();
            return body.ToArray();
        }
        finally
        {
            if (endTokens is not null)
            {
                endTokenStack.RemoveAt(endTokenStack.Count - 1);
                Exit();
            }
        }
    }

    private Stmt[] ParseStatements(string[] endTokens, bool dropNeedle = false)
    {
        SkipIfOperator(":");
        Expect(TokenKind.BlockEnd);
        var result = SubParse(endTokens);
        if (Current.Kind == TokenKind.Eof) throw FailUnknownTag(null, Current);
        if (dropNeedle) Next();
        return result;
    }

    private TemplateException FailUnknownTag(string? name, Token at)
    {
        var expected = new HashSet<string>(endTokenStack.SelectMany(e => e));
        var message = new List<string> { name is null ? "Unexpected end of template." : $"Encountered unknown tag {PyFormat.Repr(name)}." };
        if (endTokenStack.Count > 0)
        {
            var looking = string.Join(" or ", endTokenStack[^1].Select(e => PyFormat.Repr(e)));
            message.Add(name is not null && expected.Contains(name)
                ? $"You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for {looking}."
                : $"Jinja was looking for the following tags: {looking}.");
        }
        if (tagStack.Count > 0) message.Add($"The innermost block that needs to be closed is {PyFormat.Repr(tagStack[^1])}.");
        return Fail(string.Join(" ", message), at);
    }

    private Stmt ParseStatement()
    {
        var token = Current;
        if (token.Kind != TokenKind.Name) throw Fail("tag name expected", token);
        if (UnsupportedTags.Contains(token.Text))
            throw Fail($"The {PyFormat.Repr(token.Text)} tag is not supported: chat templates render alone, without a loader or autoescaping.", token);
        tagStack.Add(token.Text);
        try
        {
            switch (token.Text)
            {
                case "for": return ParseFor();
                case "if": return ParseIf();
                case "set": return ParseSet();
                case "macro": return ParseMacro();
                case "call": return ParseCallBlock();
                case "filter": return ParseFilterBlock();
                case "with": return ParseWith();
                case "print": return ParsePrint();
                case "generation": return ParseGeneration();
                case "break" or "continue":
                    Next();
                    if (loopDepth == 0) throw Fail($"{PyFormat.Repr(token.Text)} outside loop", token);
                    return new LoopControlStmt(token.Text == "break" ? Flow.Break : Flow.Continue, token.Line, token.Column);
            }
            tagStack.RemoveAt(tagStack.Count - 1);
            var failure = FailUnknownTag(token.Text, token);
            tagStack.Add(token.Text);
            throw failure;
        }
        finally
        {
            tagStack.RemoveAt(tagStack.Count - 1);
        }
    }

    private Stmt ParseFor()
    {
        var start = Next();
        var target = ParseAssignTarget(extraEndRules: new[] { "in" });
        Expect(TokenKind.Name, "in");
        var iterable = ParseTuple(withCondExpr: false, extraEndRules: new[] { "recursive" });
        Expr? filter = null;
        if (SkipIfName("if")) filter = ParseExpression();
        var recursive = SkipIfName("recursive");
        var savedSoft = softDepth;
        softDepth = 0;
        loopDepth++;
        Stmt[] body;
        try
        {
            body = ParseStatements(new[] { "endfor", "else" });
        }
        finally
        {
            loopDepth--;
        }
        Stmt[] otherwise = Array.Empty<Stmt>();
        if (Next().Text != "endfor") otherwise = ParseStatements(new[] { "endfor" }, dropNeedle: true);
        softDepth = savedSoft;
        return new ForStmt(target, iterable, filter, body, otherwise, recursive, start.Line, start.Column);
    }

    private Stmt ParseIf()
    {
        var start = Next();
        var branches = new List<(Expr, Stmt[])>();
        Stmt[] otherwise = Array.Empty<Stmt>();
        softDepth++;
        try
        {
            while (true)
            {
                var test = ParseTuple(withCondExpr: false);
                var body = ParseStatements(new[] { "elif", "else", "endif" });
                branches.Add((test, body));
                var token = Next();
                if (token.IsName("elif")) continue;
                if (token.IsName("else")) otherwise = ParseStatements(new[] { "endif" }, dropNeedle: true);
                break;
            }
        }
        finally
        {
            softDepth--;
        }
        return new IfStmt(branches.ToArray(), otherwise, start.Line, start.Column);
    }

    private Stmt ParseSet()
    {
        var start = Next();
        var target = ParseAssignTarget(withNamespace: true);
        if (SkipIfOperator("=")) return new SetStmt(target, ParseTuple(withCondExpr: true), start.Line, start.Column);
        var filter = (FilterExpr?)ParseFilter(null);
        var body = ParseStatements(new[] { "endset" }, dropNeedle: true);
        return new SetBlockStmt(target, filter, body, start.Line, start.Column);
    }

    private (string[] Names, Expr?[] Defaults) ParseSignature()
    {
        var names = new List<string>();
        var defaults = new List<Expr?>();
        ExpectOperator("(");
        while (!Current.IsOperator(")"))
        {
            if (names.Count > 0) ExpectOperator(",");
            var name = ExpectName();
            if (SkipIfOperator("=")) defaults.Add(ParseExpression());
            else if (defaults.Any(d => d is not null)) throw Fail("non-default argument follows default argument", name);
            else if (name.Text == "caller")
                throw Fail("When defining macros or call blocks the special \"caller\" argument must be omitted or be given a default.", name);
            else defaults.Add(null);
            names.Add(name.Text);
        }
        ExpectOperator(")");
        return (names.ToArray(), defaults.ToArray());
    }

    /// <summary>A macro-like body: its own frame, no enclosing loop for break/continue, names collected for caller/varargs/kwargs.</summary>
    private (Stmt[] Body, HashSet<string> Names) ParseFunctionBody(string endTag)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        nameCollectors.Add(names);
        var savedLoops = loopDepth;
        var savedSoft = softDepth;
        loopDepth = 0;
        softDepth = 0;
        try
        {
            return (ParseStatements(new[] { endTag }, dropNeedle: true), names);
        }
        finally
        {
            nameCollectors.RemoveAt(nameCollectors.Count - 1);
            loopDepth = savedLoops;
            softDepth = savedSoft;
        }
    }

    private Stmt ParseMacro()
    {
        var start = Next();
        var name = ExpectName().Text;
        var (parameters, defaults) = ParseSignature();
        var (body, names) = ParseFunctionBody("endmacro");
        return new MacroStmt(new MacroDefinition(name, parameters, defaults, body, names), start.Line, start.Column);
    }

    private Stmt ParseCallBlock()
    {
        var start = Next();
        var (parameters, defaults) = Current.IsOperator("(") ? ParseSignature() : (Array.Empty<string>(), Array.Empty<Expr?>());
        var callToken = Current;
        if (ParseExpression() is not CallExpr call) throw Fail("expected call", callToken);
        var (body, names) = ParseFunctionBody("endcall");
        return new CallBlockStmt(call, new MacroDefinition("caller", parameters, defaults, body, names), start.Line, start.Column);
    }

    private Stmt ParseFilterBlock()
    {
        var start = Next();
        var filter = (FilterExpr)ParseFilter(null, startInline: true)!;
        var body = ParseStatements(new[] { "endfilter" }, dropNeedle: true);
        return new FilterBlockStmt(filter, body, start.Line, start.Column);
    }

    private Stmt ParseWith()
    {
        var start = Next();
        var bindings = new List<(Target, Expr)>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (bindings.Count > 0) ExpectOperator(",");
            var target = ParseAssignTarget();
            ExpectOperator("=");
            bindings.Add((target, ParseExpression()));
        }
        var body = ParseStatements(new[] { "endwith" }, dropNeedle: true);
        return new WithStmt(bindings.ToArray(), body, start.Line, start.Column);
    }

    private Stmt ParsePrint()
    {
        var start = Next();
        var parts = new List<object>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (parts.Count > 0) ExpectOperator(",");
            parts.Add(ParseExpression());
        }
        return new OutputStmt(parts.ToArray(), start.Line, start.Column);
    }

    private Stmt ParseGeneration()
    {
        var start = Next();
        var (body, _) = ParseFunctionBody("endgeneration");
        return new GenerationStmt(body, start.Line, start.Column);
    }

    private Target ParseAssignTarget(string[]? extraEndRules = null, bool withNamespace = false)
    {
        if (withNamespace && Current.Kind == TokenKind.Name && Look.IsOperator("."))
        {
            var ns = Next();
            Next();
            var attribute = ExpectName();
            return new NamespaceTarget(ns.Text, attribute.Text);
        }
        var start = Current;
        var items = new List<Target>();
        var isTuple = false;
        while (true)
        {
            if (items.Count > 0) ExpectOperator(",");
            if (IsTupleEnd(extraEndRules)) break;
            items.Add(ParseTargetPrimary());
            if (Current.IsOperator(",")) isTuple = true;
            else break;
        }
        if (!isTuple)
        {
            if (items.Count == 1) return items[0];
            throw Fail($"Expected an expression, got {PyFormat.Repr(Current.Describe())}", Current);
        }
        if (items.Count == 0) throw Fail("can't assign to 'tuple'", start);
        return new TupleTarget(items.ToArray());
    }

    private Target ParseTargetPrimary()
    {
        var token = Current;
        if (token.Kind == TokenKind.Name)
        {
            if (token.Text is "true" or "false" or "True" or "False" or "none" or "None")
                throw Fail("can't assign to 'const'", token);
            Next();
            return new NameTarget(token.Text);
        }
        if (token.IsOperator("("))
        {
            Next();
            Enter();
            var inner = ParseAssignTarget();
            Exit();
            ExpectOperator(")");
            return inner;
        }
        throw Fail($"can't assign to {PyFormat.Repr(token.Describe())}", token);
    }

    // ---- expressions ----

    private bool IsTupleEnd(string[]? extraEndRules)
    {
        var token = Current;
        if (token.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd || token.IsOperator(")")) return true;
        return extraEndRules is not null && token.Kind == TokenKind.Name && extraEndRules.Contains(token.Text);
    }

    private Expr ParseTuple(bool withCondExpr = true, string[]? extraEndRules = null, bool explicitParentheses = false)
    {
        var start = Current;
        var items = new List<Expr>();
        var isTuple = false;
        while (true)
        {
            if (items.Count > 0) ExpectOperator(",");
            if (IsTupleEnd(extraEndRules)) break;
            items.Add(withCondExpr ? ParseExpression() : ParseOr());
            if (Current.IsOperator(",")) isTuple = true;
            else break;
        }
        if (!isTuple)
        {
            if (items.Count > 0) return items[0];
            if (!explicitParentheses) throw Fail($"Expected an expression, got {PyFormat.Repr(Current.Describe())}", Current);
        }
        return new TupleExpr(items.ToArray(), start.Line, start.Column);
    }

    private Expr ParseExpression()
    {
        Enter();
        var expr = ParseConditional();
        Exit();
        return expr;
    }

    private Expr ParseConditional()
    {
        var start = Current;
        var expr = ParseOr();
        while (SkipIfName("if"))
        {
            softDepth++;
            try
            {
                var test = ParseOr();
                Expr? otherwise = null;
                if (SkipIfName("else"))
                {
                    Enter();
                    otherwise = ParseConditional();
                    Exit();
                }
                expr = new ConditionalExpr(test, expr, otherwise, start.Line, start.Column);
            }
            finally
            {
                softDepth--;
            }
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            var op = Next();
            left = new LogicalExpr(left, ParseAnd(), isAnd: false, op.Line, op.Column);
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            var op = Next();
            left = new LogicalExpr(left, ParseNot(), isAnd: true, op.Line, op.Column);
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (Current.IsName("not"))
        {
            var token = Next();
            Enter();
            var operand = ParseNot();
            Exit();
            return new NotExpr(operand, token.Line, token.Column);
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var start = Current;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            var token = Current;
            if (token.Kind == TokenKind.Operator && CompareOperators.Contains(token.Text))
            {
                Next();
                rest.Add((token.Text, ParseMath1()));
            }
            else if (SkipIfName("in")) rest.Add(("in", ParseMath1()));
            else if (token.IsName("not") && Look.IsName("in"))
            {
                Next();
                Next();
                rest.Add(("not in", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest.ToArray(), start.Line, start.Column);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            var op = Next();
            left = new BinaryExpr(left, ParseConcat(), op.Text == "+" ? BinaryOperator.Add : BinaryOperator.Subtract, op.Line, op.Column);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var start = Current;
        var items = new List<Expr> { ParseMath2() };
        while (SkipIfOperator("~")) items.Add(ParseMath2());
        return items.Count == 1 ? items[0] : new ConcatExpr(items.ToArray(), start.Line, start.Column);
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Text is "*" or "/" or "//" or "%")
        {
            var op = Next();
            var kind = op.Text switch
            {
                "*" => BinaryOperator.Multiply,
                "/" => BinaryOperator.Divide,
                "//" => BinaryOperator.FloorDivide,
                _ => BinaryOperator.Modulo,
            };
            left = new BinaryExpr(left, ParsePow(), kind, op.Line, op.Column);
        }
        return left;
    }

    private Expr ParsePow()
    {
        // Left-associative in Jinja2, unlike Python: 2 ** 3 ** 2 is 64.
        var left = ParseUnary();
        while (Current.IsOperator("**"))
        {
            var op = Next();
            left = new BinaryExpr(left, ParseUnary(), BinaryOperator.Power, op.Line, op.Column);
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter = true)
    {
        var token = Current;
        Expr node;
        if (token.IsOperator("-") || token.IsOperator("+"))
        {
            Next();
            Enter();
            var operand = ParseUnary(withFilter: false);
            Exit();
            node = new UnaryExpr(operand, token.Text == "-", token.Line, token.Column);
        }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        if (withFilter) node = ParseFilterExpr(node);
        return node;
    }

    private Expr ParsePrimary()
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Name:
                Next();
                switch (token.Text)
                {
                    case "true" or "True": return new ConstExpr(true, token.Line, token.Column);
                    case "false" or "False": return new ConstExpr(false, token.Line, token.Column);
                    case "none" or "None": return new ConstExpr(null, token.Line, token.Column);
                }
                foreach (var names in nameCollectors) names.Add(token.Text);
                return new NameExpr(token.Text, token.Line, token.Column);
            case TokenKind.String:
                Next();
                var text = (string)token.Value!;
                while (Current.Kind == TokenKind.String) text += (string)Next().Value!;
                return new ConstExpr(text, token.Line, token.Column);
            case TokenKind.Integer or TokenKind.Float:
                Next();
                return new ConstExpr(token.Value, token.Line, token.Column);
            case TokenKind.Operator when token.Text == "(":
                Next();
                var inner = ParseTuple(explicitParentheses: true);
                ExpectOperator(")");
                return inner;
            case TokenKind.Operator when token.Text == "[":
                return ParseList();
            case TokenKind.Operator when token.Text == "{":
                return ParseDict();
        }
        if (token.Kind == TokenKind.Eof) throw Fail("unexpected end of template, expected an expression.", token);
        throw Fail($"unexpected {PyFormat.Repr(token.Describe())}", token);
    }

    private Expr ParseList()
    {
        var start = ExpectOperator("[");
        var items = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (items.Count > 0) ExpectOperator(",");
            if (Current.IsOperator("]")) break;
            items.Add(ParseExpression());
        }
        ExpectOperator("]");
        return new ListExpr(items.ToArray(), start.Line, start.Column);
    }

    private Expr ParseDict()
    {
        var start = ExpectOperator("{");
        var pairs = new List<(Expr, Expr)>();
        while (!Current.IsOperator("}"))
        {
            if (pairs.Count > 0) ExpectOperator(",");
            if (Current.IsOperator("}")) break;
            var key = ParseExpression();
            ExpectOperator(":");
            pairs.Add((key, ParseExpression()));
        }
        ExpectOperator("}");
        return new DictExpr(pairs.ToArray(), start.Line, start.Column);
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator(".") || Current.IsOperator("[")) node = ParseSubscript(node);
            else if (Current.IsOperator("(")) node = ParseCall(node);
            else return node;
        }
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator("|")) node = ParseFilter(node)!;
            else if (Current.IsName("is")) node = ParseTest(node);
            else if (Current.IsOperator("(")) node = ParseCall(node);
            else return node;
        }
    }

    // Attribute, item and call nodes are placed where their whole expression starts, so that an error points at
    // "message.content" rather than at a dot in its middle.
    private Expr ParseSubscript(Expr node)
    {
        var token = Next();
        if (token.IsOperator("."))
        {
            var attribute = Current;
            Next();
            if (attribute.Kind == TokenKind.Name) return new GetAttrExpr(node, attribute.Text, node.Line, node.Column);
            if (attribute.Kind != TokenKind.Integer) throw Fail("expected name or number", attribute);
            return new GetItemExpr(node, new ConstExpr(attribute.Value, attribute.Line, attribute.Column), node.Line, node.Column);
        }
        var args = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (args.Count > 0) ExpectOperator(",");
            args.Add(ParseSubscribed());
        }
        ExpectOperator("]");
        var key = args.Count == 1 ? args[0] : new TupleExpr(args.ToArray(), token.Line, token.Column);
        return new GetItemExpr(node, key, node.Line, node.Column);
    }

    private Expr ParseSubscribed()
    {
        var start = Current;
        Expr? first = null;
        if (Current.IsOperator(":")) Next();
        else
        {
            first = ParseExpression();
            if (!Current.IsOperator(":")) return first;
            Next();
        }
        Expr? stop = null;
        if (!Current.IsOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(",")) stop = ParseExpression();
        Expr? step = null;
        if (SkipIfOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(",")) step = ParseExpression();
        return new SliceExpr(first, stop, step, start.Line, start.Column);
    }

    private ArgumentList ParseCallArgs()
    {
        var open = ExpectOperator("(");
        var positional = new List<Expr>();
        var keywords = new List<(string, Expr)>();
        Expr? starArgs = null;
        Expr? starKwargs = null;
        var requireComma = false;
        void Ensure(bool condition)
        {
            if (!condition) throw Fail("invalid syntax for function call expression", open);
        }
        while (!Current.IsOperator(")"))
        {
            if (requireComma)
            {
                ExpectOperator(",");
                if (Current.IsOperator(")")) break;
            }
            if (Current.IsOperator("*"))
            {
                Ensure(starArgs is null && starKwargs is null);
                Next();
                starArgs = ParseExpression();
            }
            else if (Current.IsOperator("**"))
            {
                Ensure(starKwargs is null);
                Next();
                starKwargs = ParseExpression();
            }
            else if (Current.Kind == TokenKind.Name && Look.IsOperator("="))
            {
                Ensure(starKwargs is null);
                var key = Next().Text;
                Next();
                keywords.Add((key, ParseExpression()));
            }
            else
            {
                Ensure(starArgs is null && starKwargs is null && keywords.Count == 0);
                positional.Add(ParseExpression());
            }
            requireComma = true;
        }
        ExpectOperator(")");
        return new ArgumentList(positional.ToArray(), keywords.ToArray(), starArgs, starKwargs);
    }

    private Expr ParseCall(Expr node) => new CallExpr(node, ParseCallArgs(), node.Line, node.Column);

    private Expr? ParseFilter(Expr? node, bool startInline = false)
    {
        while (Current.IsOperator("|") || startInline)
        {
            if (!startInline) Next();
            var token = ExpectName();
            var name = token.Text;
            while (Current.IsOperator("."))
            {
                Next();
                name += "." + ExpectName().Text;
            }
            var args = Current.IsOperator("(") ? ParseCallArgs() : ArgumentList.Empty;
            FilterFunction? function = null;
            if (!Filters.TryGet(name, out var found))
            {
                if (softDepth == 0) throw Fail(Filters.UnknownMessage(name), token);
            }
            else function = found;
            node = new FilterExpr(node, name, function, args, token.Line, token.Column);
            startInline = false;
        }
        return node;
    }

    private Expr ParseTest(Expr node)
    {
        var token = Next();
        var negated = SkipIfName("not");
        var nameToken = ExpectName();
        var name = nameToken.Text;
        while (Current.IsOperator("."))
        {
            Next();
            name += "." + ExpectName().Text;
        }
        ArgumentList args;
        if (Current.IsOperator("(")) args = ParseCallArgs();
        else if ((Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                  || Current.IsOperator("(") || Current.IsOperator("[") || Current.IsOperator("{"))
                 && !Current.IsName("else") && !Current.IsName("or") && !Current.IsName("and"))
        {
            if (Current.IsName("is")) throw Fail("You cannot chain multiple tests with is", Current);
            var argument = ParsePostfix(ParsePrimary());
            args = new ArgumentList(new[] { argument }, Array.Empty<(string, Expr)>(), null, null);
        }
        else args = ArgumentList.Empty;
        TestFunction? function = null;
        if (!Tests.TryGet(name, out var found))
        {
            if (softDepth == 0) throw Fail($"No test named {PyFormat.Repr(name)}.", nameToken);
        }
        else function = found;
        Expr test = new TestExpr(node, name, function, args, token.Line, token.Column);
        return negated ? new NotExpr(test, token.Line, token.Column) : test;
    }
}
