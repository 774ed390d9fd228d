namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// A small explicit byte automaton, for the set operations a tree cannot express: the keys of an object that are none
/// of its declared names and match none of its patterns, the strings that are not one of a few constants, the keys that
/// satisfy both a pattern and <c>propertyNames</c>. Built by reading a <see cref="ByteDfa"/> in full, so its size is
/// bounded by <see cref="MaxStates"/>; only states that can still reach acceptance are kept.
/// </summary>
internal sealed class SmallDfa
{
    /// <summary>Explicit automata larger than this are refused (the caller names the keyword).</summary>
    public const int MaxStates = 4_096;

    private SmallDfa(bool[] accepting, (byte Lo, byte Hi, int To)[][] edges)
    {
        Accepting = accepting;
        Edges = edges;
    }

    /// <summary>State 0 is the start.</summary>
    public bool[] Accepting { get; }

    public (byte Lo, byte Hi, int To)[][] Edges { get; }

    public int StateCount => Accepting.Length;

    public bool IsEmpty => StateCount == 0;

    public static SmallDfa Of(ConstraintNode node, string what, CancellationToken cancellation = default) =>
        Of(new ByteDfa(ByteNfa.Build(node, what, cancellation)), what);

    public static SmallDfa Of(ByteDfa dfa, string what) =>
        Product(dfa.Start, s => dfa.IsAccepting(s), (s, b) => dfa.Next(s, b), what);

    /// <summary>The texts of <paramref name="a"/> that <paramref name="b"/> accepts too (<paramref name="keep"/> true) or does not (false).</summary>
    public static SmallDfa Combine(SmallDfa a, SmallDfa b, bool keep, string what)
    {
        if (a.IsEmpty) return a;
        if (b.IsEmpty) return keep ? b : a;
        // A pair state: a's state * (b's count + 1) + b's state + 1, where b's -1 means b can no longer accept.
        int width = b.StateCount + 1;
        int Pack(int x, int y) => x * width + y + 1;
        return Product(Pack(0, 0),
            s => s >= 0 && a.Accepting[s / width] && (keep ? s % width - 1 >= 0 && b.Accepting[s % width - 1] : s % width - 1 < 0 || !b.Accepting[s % width - 1]),
            (s, by) =>
            {
                int x = a.Step(s / width, by);
                if (x < 0) return -1;
                int y = s % width - 1 < 0 ? -1 : b.Step(s % width - 1, by);
                if (keep && y < 0) return -1;
                return Pack(x, y);
            }, what, dead: -1);
    }

    /// <summary>"-"? digits whose value is a multiple of <paramref name="divisor"/> (leading zeros not excluded: intersect with a canonical integer language).</summary>
    public static SmallDfa Divisible(int divisor)
    {
        // State 0: start; 1: after '-'; 2 + r: digits read with remainder r.
        int count = divisor + 2;
        var accepting = new bool[count];
        accepting[2] = true;
        var edges = new (byte Lo, byte Hi, int To)[count][];
        edges[0] = [((byte)'-', (byte)'-', 1), .. Digits(0)];
        edges[1] = Digits(0);
        for (int r = 0; r < divisor; r++) edges[2 + r] = Digits(r);
        return new SmallDfa(accepting, edges);

        (byte, byte, int)[] Digits(int r) => Enumerable.Range(0, 10).Select(d => ((byte)('0' + d), (byte)('0' + d), 2 + (int)((r * 10L + d) % divisor))).ToArray();
    }

    public int Step(int state, byte b)
    {
        foreach (var (lo, hi, to) in Edges[state])
            if (b >= lo && b <= hi) return to;
        return -1;
    }

    private static SmallDfa Product(int start, Func<int, bool> accepting, Func<int, byte, int> next, string what, int dead = ByteDfa.Dead)
    {
        var ids = new Dictionary<int, int>();
        var order = new List<int>();
        var raw = new List<List<(byte Lo, byte Hi, int To)>>();
        if (start != dead)
        {
            ids[start] = 0;
            order.Add(start);
        }
        for (int i = 0; i < order.Count; i++)
        {
            var edges = new List<(byte Lo, byte Hi, int To)>();
            int from = order[i], runStart = -1, runTarget = dead;
            for (int b = 0; b <= 256; b++)
            {
                int to = b < 256 ? next(from, (byte)b) : dead;
                if (b < 256 && to == runTarget && runStart >= 0) continue;
                if (runStart >= 0 && runTarget != dead) edges.Add(((byte)runStart, (byte)(b - 1), ids[runTarget]));
                runStart = b;
                runTarget = to;
                if (b < 256 && to != dead && !ids.ContainsKey(to))
                {
                    if (order.Count == MaxStates) throw new ArgumentException($"{what}: the automaton would need more than {MaxStates:N0} explicit states.");
                    ids[to] = order.Count;
                    order.Add(to);
                }
            }
            raw.Add(edges);
        }
        // Keep only the states that can reach acceptance.
        int n = order.Count;
        var live = new bool[n];
        for (int i = 0; i < n; i++) live[i] = accepting(order[i]);
        for (bool changed = true; changed;)
        {
            changed = false;
            for (int i = 0; i < n; i++)
                if (!live[i] && raw[i].Any(e => live[e.To])) live[i] = changed = true;
        }
        if (n == 0 || !live[0]) return new SmallDfa([], []);
        var renumber = new int[n];
        int kept = 0;
        for (int i = 0; i < n; i++) renumber[i] = live[i] ? kept++ : -1;
        var acceptingOut = new bool[kept];
        var edgesOut = new (byte, byte, int)[kept][];
        for (int i = 0; i < n; i++)
        {
            if (!live[i]) continue;
            acceptingOut[renumber[i]] = accepting(order[i]);
            edgesOut[renumber[i]] = raw[i].Where(e => live[e.To]).Select(e => (e.Lo, e.Hi, renumber[e.To])).ToArray();
        }
        return new SmallDfa(acceptingOut, edgesOut);
    }

    /// <summary>The automaton as a tree leaf (<see cref="ConstraintNode.Nothing"/> when it accepts nothing).</summary>
    public ConstraintNode ToNode() => IsEmpty ? ConstraintNode.Nothing : new DfaNode(this);
}

/// <summary>A leaf whose language is a <see cref="SmallDfa"/>: <see cref="ByteNfa"/> copies its states and edges in.</summary>
internal sealed class DfaNode(SmallDfa dfa) : ConstraintNode
{
    public SmallDfa Dfa { get; } = dfa;

    /// <summary>One NFA state per automaton state and one per edge.</summary>
    public long NfaStates => Dfa.StateCount + Dfa.Edges.Sum(e => (long)e.Length);
}
