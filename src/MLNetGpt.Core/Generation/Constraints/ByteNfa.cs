namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// A Thompson NFA over bytes: every state has at most one byte-range edge and any number of
/// epsilon edges. Built backwards from the accepting state, so each node compiles against its
/// continuation and nothing needs patching. The state count is computed exactly before building,
/// so an oversized pattern fails at once, naming the repetition that makes it large.
/// </summary>
internal sealed class ByteNfa
{
    /// <summary>More states than this and compiling is refused.</summary>
    public const int MaxStates = 100_000;

    private readonly List<byte> _lo = [];
    private readonly List<byte> _hi = [];
    private readonly List<int> _byteTarget = [];
    private readonly List<int[]> _epsilon = [];

    private ByteNfa() { }

    public int Accept { get; private set; }
    public int Start { get; private set; }
    public int StateCount => _lo.Count;

    public byte Lo(int state) => _lo[state];
    public byte Hi(int state) => _hi[state];

    /// <summary>The target of the state's byte edge, or -1.</summary>
    public int ByteTarget(int state) => _byteTarget[state];

    public int[] Epsilon(int state) => _epsilon[state];

    /// <summary>Builds the NFA; throws <see cref="ArgumentException"/> prefixed with <paramref name="what"/> when too large.</summary>
    public static ByteNfa Build(ConstraintNode root, string what, CancellationToken cancellation = default)
    {
        long size;
        var sizes = new Dictionary<ConstraintNode, long>(ReferenceEqualityComparer.Instance);
        try
        {
            size = 1 + Size(root, sizes);
        }
        catch (ConstraintDepthException e)
        {
            throw new ArgumentException($"{what}: {e.Message}.");
        }
        if (size > MaxStates)
        {
            var culprit = Culprit(root, sizes);
            string because = culprit is null ? "" : $"; {culprit.Origin} makes it that large (about {Size(culprit, sizes):N0} states)";
            throw new ArgumentException(
                $"{what}: the automaton would need {(size >= long.MaxValue / 4 ? "too many" : size.ToString("N0"))} states, more than the limit of {MaxStates:N0}{because}.");
        }
        var nfa = new ByteNfa { _cancellation = cancellation };
        nfa.Accept = nfa.NewState();
        try
        {
            nfa.Start = nfa.Compile(root, nfa.Accept);
        }
        catch (ConstraintDepthException e)
        {
            throw new ArgumentException($"{what}: {e.Message}.");
        }
        return nfa;
    }

    private CancellationToken _cancellation;

    private static readonly ConstraintNode Comma = ConstraintNode.Literal(",");

    /// <summary>The walks below recurse once per level of the tree, whose depth <see cref="ConstraintNode.MaxDepth"/> bounds; this is the backstop for small stacks.</summary>
    private static void EnsureStack()
    {
        if (!System.Runtime.CompilerServices.RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new ConstraintDepthException("the expression nests too deeply for the stack of this thread");
    }

    private int NewState()
    {
        if ((_lo.Count & 4095) == 0) _cancellation.ThrowIfCancellationRequested();
        _lo.Add(0);
        _hi.Add(0);
        _byteTarget.Add(-1);
        _epsilon.Add([]);
        return _lo.Count - 1;
    }

    private int Compile(ConstraintNode node, int next)
    {
        EnsureStack();
        switch (node)
        {
            case ByteRangeNode b:
            {
                int s = NewState();
                _lo[s] = b.Lo;
                _hi[s] = b.Hi;
                _byteTarget[s] = next;
                return s;
            }
            case SequenceNode seq:
                for (int i = seq.Items.Length - 1; i >= 0; i--) next = Compile(seq.Items[i], next);
                return next;
            case ChoiceNode choice:
            {
                int s = NewState();
                var targets = new int[choice.Items.Length];
                for (int i = 0; i < targets.Length; i++) targets[i] = Compile(choice.Items[i], next);
                _epsilon[s] = targets;
                return s;
            }
            case RepeatNode r:
            {
                int tail = next;
                if (r.Max < 0)
                {
                    int loop = NewState();
                    int body = Compile(r.Item, loop);
                    _epsilon[loop] = [body, next];
                    tail = loop;
                }
                else
                {
                    for (int i = 0; i < r.Max - r.Min; i++)
                    {
                        int split = NewState();
                        int body = Compile(r.Item, tail);
                        _epsilon[split] = [body, next];
                        tail = split;
                    }
                }
                for (int i = 0; i < r.Min; i++) tail = Compile(r.Item, tail);
                return tail;
            }
            case MembersNode m:
            {
                // Track B (something written): B[i]; track A (nothing yet): A[i]. Each member and the extra compiled once.
                int bEnd, aEnd;
                if (ReferenceEquals(m.Extra, ConstraintNode.Nothing))
                {
                    bEnd = next;
                    aEnd = next;
                }
                else
                {
                    int loop = NewState();
                    int extra = Compile(m.Extra, loop);
                    _epsilon[loop] = [Compile(Comma, extra), next];
                    bEnd = loop;
                    aEnd = NewState();
                    _epsilon[aEnd] = [extra, next];
                }
                int a = aEnd, b = bEnd;
                for (int i = m.Members.Length - 1; i >= 0; i--)
                {
                    int member = Compile(m.Members[i], b);
                    int newA = NewState(), newB = NewState();
                    int comma = Compile(Comma, member);
                    _epsilon[newA] = m.Required[i] ? [member] : [member, a];
                    _epsilon[newB] = m.Required[i] ? [comma] : [comma, b];
                    a = newA;
                    b = newB;
                }
                return a;
            }
            case SeparatedNode sp:
            {
                int loop = NewState();
                int body = Compile(sp.Item, loop);
                int separator = Compile(sp.Separator, body);
                _epsilon[loop] = [separator, next];
                if (!sp.AllowEmpty) return body;
                int s = NewState();
                _epsilon[s] = [body, next];
                return s;
            }
            case DfaNode d:
            {
                var dfa = d.Dfa;
                var states = new int[dfa.StateCount];
                for (int i = 0; i < states.Length; i++) states[i] = NewState();
                for (int i = 0; i < states.Length; i++)
                {
                    var targets = new List<int>(dfa.Edges[i].Length + 1);
                    foreach (var (lo, hi, to) in dfa.Edges[i])
                    {
                        int s = NewState();
                        _lo[s] = lo;
                        _hi[s] = hi;
                        _byteTarget[s] = states[to];
                        targets.Add(s);
                    }
                    if (dfa.Accepting[i]) targets.Add(next);
                    _epsilon[states[i]] = targets.ToArray();
                }
                return states[0];
            }
            default:
                throw new InvalidOperationException($"Unknown node {node.GetType().Name}.");
        }
    }

    /// <summary>The exact number of states <see cref="Compile"/> allocates for a node (saturating).</summary>
    /// <summary>
    /// The tree is a graph with shared parts (a JSON schema's array refers to its item schema twice, and nested arrays
    /// double that at every level): sizes are memoised per node, so computing one costs a visit per distinct node, not
    /// one per path through the graph.
    /// </summary>
    private static long Size(ConstraintNode node, Dictionary<ConstraintNode, long> sizes)
    {
        if (node is ByteRangeNode) return 1;
        if (sizes.TryGetValue(node, out long known)) return known;
        EnsureStack();
        long size;
        switch (node)
        {
            case SequenceNode s:
                size = 0;
                foreach (var item in s.Items) size = Saturate(size + Size(item, sizes));
                break;
            case ChoiceNode c:
                size = 1;
                foreach (var item in c.Items) size = Saturate(size + Size(item, sizes));
                break;
            case RepeatNode r:
                size = RepeatSize(r, Size(r.Item, sizes));
                break;
            case DfaNode d:
                size = d.NfaStates;
                break;
            case SeparatedNode sp:
                size = Saturate(2 + Size(sp.Item, sizes) + Size(sp.Separator, sizes));
                break;
            case MembersNode m:
                size = ReferenceEquals(m.Extra, ConstraintNode.Nothing) ? 0 : Saturate(3 + Size(m.Extra, sizes));
                foreach (var item in m.Members) size = Saturate(size + 3 + Size(item, sizes));
                break;
            default:
                size = 0;
                break;
        }
        sizes[node] = size;
        return size;
    }

    private static long RepeatSize(RepeatNode r, long item)
    {
        long optional = r.Max < 0 ? 1 + item : Saturate((long)(r.Max - r.Min) * (1 + item));
        return Saturate(optional + Saturate((long)r.Min * item));
    }

    private static long Saturate(long value) => value < 0 || value > long.MaxValue / 4 ? long.MaxValue / 4 : value;

    /// <summary>The repetition whose own expansion is the largest: the one to name in the error.</summary>
    private static RepeatNode? Culprit(ConstraintNode root, Dictionary<ConstraintNode, long> sizes)
    {
        RepeatNode? best = null;
        double bestGrowth = 0;
        var stack = new Stack<ConstraintNode>();
        var seen = new HashSet<ConstraintNode>(ReferenceEqualityComparer.Instance);
        stack.Push(root);
        while (stack.Count > 0)
        {
            var node = stack.Pop();
            if (!seen.Add(node)) continue;
            switch (node)
            {
                case SequenceNode s: foreach (var i in s.Items) stack.Push(i); break;
                case ChoiceNode c: foreach (var i in c.Items) stack.Push(i); break;
                case SeparatedNode sp: stack.Push(sp.Item); break;
                case MembersNode mn: foreach (var i in mn.Members) stack.Push(i); stack.Push(mn.Extra); break;
                case RepeatNode r:
                    double growth = (double)Size(r, sizes) - Size(r.Item, sizes);
                    if (best is null || growth > bestGrowth)
                    {
                        best = r;
                        bestGrowth = growth;
                    }
                    stack.Push(r.Item);
                    break;
            }
        }
        return best;
    }
}
