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
    public static ByteNfa Build(ConstraintNode root, string what)
    {
        long size = 1 + Size(root);
        if (size > MaxStates)
        {
            var culprit = Culprit(root);
            string because = culprit is null ? "" : $"; {culprit.Origin} makes it that large (about {Size(culprit):N0} states)";
            throw new ArgumentException(
                $"{what}: the automaton would need {(size >= long.MaxValue / 4 ? "too many" : size.ToString("N0"))} states, more than the limit of {MaxStates:N0}{because}.");
        }
        var nfa = new ByteNfa();
        nfa.Accept = nfa.NewState();
        nfa.Start = nfa.Compile(root, nfa.Accept);
        return nfa;
    }

    private int NewState()
    {
        _lo.Add(0);
        _hi.Add(0);
        _byteTarget.Add(-1);
        _epsilon.Add([]);
        return _lo.Count - 1;
    }

    private int Compile(ConstraintNode node, int next)
    {
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
            default:
                throw new InvalidOperationException($"Unknown node {node.GetType().Name}.");
        }
    }

    /// <summary>The exact number of states <see cref="Compile"/> allocates for a node (saturating).</summary>
    private static long Size(ConstraintNode node) => node switch
    {
        ByteRangeNode => 1,
        SequenceNode s => s.Items.Aggregate(0L, (total, item) => Saturate(total + Size(item))),
        ChoiceNode c => c.Items.Aggregate(1L, (total, item) => Saturate(total + Size(item))),
        RepeatNode r => RepeatSize(r, Size(r.Item)),
        _ => 0,
    };

    private static long RepeatSize(RepeatNode r, long item)
    {
        long optional = r.Max < 0 ? 1 + item : Saturate((long)(r.Max - r.Min) * (1 + item));
        return Saturate(optional + Saturate((long)r.Min * item));
    }

    private static long Saturate(long value) => value < 0 || value > long.MaxValue / 4 ? long.MaxValue / 4 : value;

    /// <summary>The repetition whose own expansion is the largest: the one to name in the error.</summary>
    private static RepeatNode? Culprit(ConstraintNode root)
    {
        RepeatNode? best = null;
        double bestGrowth = 0;
        var stack = new Stack<ConstraintNode>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            var node = stack.Pop();
            switch (node)
            {
                case SequenceNode s: foreach (var i in s.Items) stack.Push(i); break;
                case ChoiceNode c: foreach (var i in c.Items) stack.Push(i); break;
                case RepeatNode r:
                    double growth = (double)Size(r) - Size(r.Item);
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
