namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// The deterministic automaton of a <see cref="ByteNfa"/>, built lazily: a state's transitions are
/// computed (by subset construction over the NFA's byte classes) the first time a byte is read in
/// it, then memoised. NFA states that cannot reach acceptance are dropped from every subset, so
/// the empty subset, state <see cref="Dead"/>, is the only state from which nothing is accepted.
/// </summary>
/// <remarks>Thread-safe: many threads may call <see cref="Next"/> at once; building takes a lock, reading does not.</remarks>
internal sealed class ByteDfa
{
    /// <summary>The rejecting sink: no continuation from it is accepted.</summary>
    public const int Dead = 0;

    /// <summary>Lazily built states beyond this are refused (a pathological pattern under heavy use).</summary>
    public const int MaxStates = 200_000;

    private readonly ByteNfa _nfa;
    private readonly bool[] _live;          // NFA state can reach acceptance
    private readonly int[] _distance;       // fewest bytes from NFA state to acceptance
    private readonly byte[] _classOf = new byte[256];
    private readonly byte[] _classRepresentative;
    private readonly object _gate = new();
    private readonly Dictionary<StateKey, int> _ids = [];
    private readonly List<int[]> _members = [];
    private int[]?[] _rows = new int[]?[64];
    private bool[] _accepting = new bool[64];
    private bool[] _continues = new bool[64];
    private int[] _minBytes = new int[64];
    private int _count;
    private readonly int[] _visited;
    private readonly Stack<int> _stack = new();
    private readonly List<int> _kept = [];
    private int _stamp;

    public ByteDfa(ByteNfa nfa)
    {
        _nfa = nfa;
        (_live, _distance) = Analyse(nfa);
        _classRepresentative = BuildByteClasses(nfa, _classOf);
        _visited = new int[nfa.StateCount];
        lock (_gate)
        {
            Intern([]);                                   // Dead = 0
            Start = Intern(Closure([nfa.Start]));
        }
    }

    public int Start { get; }

    /// <summary>States built so far.</summary>
    public int StateCount => Volatile.Read(ref _count);

    /// <summary>Distinct byte classes (bytes no NFA edge tells apart share a class).</summary>
    public int ByteClassCount => _classRepresentative.Length;

    public bool IsAccepting(int state) => Volatile.Read(ref _accepting)[state];

    /// <summary>Whether some non-empty continuation leads to acceptance.</summary>
    public bool HasContinuation(int state) => Volatile.Read(ref _continues)[state];

    /// <summary>The fewest bytes that lead from the state to acceptance (int.MaxValue for <see cref="Dead"/>).</summary>
    public int MinBytesToAccept(int state) => Volatile.Read(ref _minBytes)[state];

    public int Next(int state, byte b)
    {
        var row = Volatile.Read(ref _rows)[state];
        return (row ?? BuildRow(state))[_classOf[b]];
    }

    /// <summary>The state after <paramref name="bytes"/>, stopping early at <see cref="Dead"/>.</summary>
    public int Walk(int state, ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            if (state == Dead) return Dead;
            state = Next(state, b);
        }
        return state;
    }

    public bool Matches(ReadOnlySpan<byte> bytes)
    {
        int state = Walk(Start, bytes);
        return state != Dead && IsAccepting(state);
    }

    private int[] BuildRow(int state)
    {
        lock (_gate)
        {
            var existing = _rows[state];
            if (existing is not null) return existing;
            var members = _members[state];
            var row = new int[_classRepresentative.Length];
            var targets = new List<int>();
            // Many classes lead to the same NFA targets (every letter inside a string, say): close each target list once.
            var seen = new Dictionary<StateKey, int>();
            for (int c = 0; c < row.Length; c++)
            {
                byte b = _classRepresentative[c];
                targets.Clear();
                foreach (int s in members)
                {
                    int t = _nfa.ByteTarget(s);
                    if (t >= 0 && b >= _nfa.Lo(s) && b <= _nfa.Hi(s)) targets.Add(t);
                }
                if (targets.Count == 0)
                {
                    row[c] = Dead;
                    continue;
                }
                var key = new StateKey(targets.ToArray());
                if (!seen.TryGetValue(key, out int next))
                {
                    next = Intern(Closure(targets));
                    seen.Add(key, next);
                }
                row[c] = next;
            }
            Volatile.Write(ref _rows[state], row);
            return row;
        }
    }

    /// <summary>The live NFA states with a byte edge or acceptance reachable by epsilon edges, sorted.</summary>
    /// <remarks>Called under the lock only, so it reuses one visit-stamp array and one stack.</remarks>
    private int[] Closure(IEnumerable<int> seeds)
    {
        if (++_stamp == int.MaxValue)
        {
            Array.Clear(_visited);
            _stamp = 1;
        }
        var stack = _stack;
        var kept = _kept;
        stack.Clear();
        kept.Clear();
        foreach (int s in seeds)
        {
            if (_visited[s] == _stamp) continue;
            _visited[s] = _stamp;
            stack.Push(s);
        }
        while (stack.Count > 0)
        {
            int s = stack.Pop();
            if (!_live[s]) continue;
            if (_nfa.ByteTarget(s) >= 0 || s == _nfa.Accept) kept.Add(s);
            foreach (int t in _nfa.Epsilon(s))
            {
                if (_visited[t] == _stamp) continue;
                _visited[t] = _stamp;
                stack.Push(t);
            }
        }
        kept.Sort();
        return kept.ToArray();
    }

    private int Intern(int[] members)
    {
        var key = new StateKey(members);
        if (_ids.TryGetValue(key, out int id)) return id;
        id = _count;
        if (id >= MaxStates)
            throw new InvalidOperationException($"The constraint's automaton grew past {MaxStates:N0} states; the pattern is too ambiguous to run.");
        if (id == _rows.Length)
        {
            // Readers may still hold the old arrays; they only ever see fully built entries in them.
            int size = id * 2;
            var rows = new int[]?[size];
            Array.Copy(_rows, rows, id);
            var accepting = new bool[size];
            Array.Copy(_accepting, accepting, id);
            var continues = new bool[size];
            Array.Copy(_continues, continues, id);
            var minBytes = new int[size];
            Array.Copy(_minBytes, minBytes, id);
            Volatile.Write(ref _accepting, accepting);
            Volatile.Write(ref _continues, continues);
            Volatile.Write(ref _minBytes, minBytes);
            Volatile.Write(ref _rows, rows);
        }
        bool accepting1 = false, continues1 = false;
        int min = int.MaxValue;
        foreach (int s in members)
        {
            if (s == _nfa.Accept) accepting1 = true;
            int t = _nfa.ByteTarget(s);
            if (t >= 0 && _live[t]) continues1 = true;
            min = Math.Min(min, _distance[s]);
        }
        _accepting[id] = accepting1;
        _continues[id] = continues1;
        _minBytes[id] = min;
        _members.Add(members);
        _ids.Add(key, id);
        Volatile.Write(ref _count, id + 1);
        return id;
    }

    /// <summary>Which NFA states can reach acceptance, and in how few bytes (0-1 BFS on the reversed graph).</summary>
    private static (bool[] Live, int[] Distance) Analyse(ByteNfa nfa)
    {
        int n = nfa.StateCount;
        var reverse = new List<(int From, int Cost)>[n];
        for (int s = 0; s < n; s++)
        {
            int t = nfa.ByteTarget(s);
            if (t >= 0) (reverse[t] ??= []).Add((s, 1));
            foreach (int e in nfa.Epsilon(s)) (reverse[e] ??= []).Add((s, 0));
        }
        var distance = new int[n];
        Array.Fill(distance, int.MaxValue);
        distance[nfa.Accept] = 0;
        var deque = new LinkedList<int>();
        deque.AddFirst(nfa.Accept);
        while (deque.Count > 0)
        {
            int s = deque.First!.Value;
            deque.RemoveFirst();
            if (reverse[s] is not { } edges) continue;
            foreach (var (from, cost) in edges)
            {
                int d = distance[s] + cost;
                if (d >= distance[from]) continue;
                distance[from] = d;
                if (cost == 0) deque.AddFirst(from);
                else deque.AddLast(from);
            }
        }
        var live = new bool[n];
        for (int s = 0; s < n; s++) live[s] = distance[s] != int.MaxValue;
        return (live, distance);
    }

    private static byte[] BuildByteClasses(ByteNfa nfa, byte[] classOf)
    {
        // A boundary before byte b wherever some edge starts at b or ends at b - 1.
        var boundary = new bool[257];
        boundary[0] = true;
        for (int s = 0; s < nfa.StateCount; s++)
        {
            if (nfa.ByteTarget(s) < 0) continue;
            boundary[nfa.Lo(s)] = true;
            boundary[nfa.Hi(s) + 1] = true;
        }
        var representatives = new List<byte>();
        int current = -1;
        for (int b = 0; b < 256; b++)
        {
            if (boundary[b])
            {
                current++;
                representatives.Add((byte)b);
            }
            classOf[b] = (byte)current;
        }
        return representatives.ToArray();
    }

    private readonly struct StateKey(int[] members) : IEquatable<StateKey>
    {
        private readonly int[] _members = members;
        private readonly int _hash = Hash(members);

        public bool Equals(StateKey other) => _members.AsSpan().SequenceEqual(other._members);
        public override bool Equals(object? obj) => obj is StateKey other && Equals(other);
        public override int GetHashCode() => _hash;

        private static int Hash(int[] members)
        {
            var hash = new HashCode();
            foreach (int m in members) hash.Add(m);
            return hash.ToHashCode();
        }
    }
}
