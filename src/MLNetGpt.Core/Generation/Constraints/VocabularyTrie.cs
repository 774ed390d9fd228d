using MLNetGpt.Tokenization;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// The text tokens of a <see cref="TokenByteTable"/> as a byte trie in flat preorder arrays, so
/// that walking it against an automaton reads memory in order and skips a whole subtree the moment
/// a prefix is rejected.
/// </summary>
internal sealed class VocabularyTrie
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TokenByteTable, VocabularyTrie> Tries = new();

    private readonly byte[] _label;
    private readonly int[] _depth;
    private readonly int[] _subtreeEnd;
    private readonly int[] _tokenStart;
    private readonly int[] _tokens;

    /// <summary>The trie of a table, built once per table.</summary>
    public static VocabularyTrie For(TokenByteTable table) => Tries.GetValue(table, t => new VocabularyTrie(t));

    private VocabularyTrie(TokenByteTable table)
    {
        var ids = Enumerable.Range(0, table.Count).Where(table.IsText).ToArray();
        Array.Sort(ids, (a, b) =>
        {
            int c = table.Bytes(a).SequenceCompareTo(table.Bytes(b));
            return c != 0 ? c : a.CompareTo(b);
        });
        var label = new List<byte>();
        var depth = new List<int>();
        var nodeOfToken = new int[ids.Length];
        var path = new List<int>();              // node index at each depth of the previous token's path
        ReadOnlySpan<byte> previous = default;
        for (int i = 0; i < ids.Length; i++)
        {
            var bytes = table.Bytes(ids[i]);
            int common = bytes.CommonPrefixLength(previous);
            path.RemoveRange(common, path.Count - common);
            for (int d = common; d < bytes.Length; d++)
            {
                label.Add(bytes[d]);
                depth.Add(d + 1);
                path.Add(label.Count - 1);
            }
            nodeOfToken[i] = path[^1];
            previous = bytes;
        }
        _label = label.ToArray();
        _depth = depth.ToArray();
        _tokens = ids;
        // Sorted by bytes, the tokens of one node are contiguous and nodes appear in token order:
        // a node's tokens run from its start to the next node's start.
        _tokenStart = new int[_label.Length + 1];
        int t = 0;
        for (int node = 0; node < _label.Length; node++)
        {
            _tokenStart[node] = t;
            while (t < ids.Length && nodeOfToken[t] == node) t++;
        }
        _tokenStart[_label.Length] = t;
        _subtreeEnd = new int[_label.Length];
        var open = new Stack<int>();
        for (int i = 0; i < _label.Length; i++)
        {
            while (open.Count > 0 && _depth[open.Peek()] >= _depth[i]) _subtreeEnd[open.Pop()] = i;
            open.Push(i);
        }
        while (open.Count > 0) _subtreeEnd[open.Pop()] = _label.Length;
        MaxDepth = _depth.Length == 0 ? 0 : _depth.Max();
    }

    public int NodeCount => _label.Length;

    public int MaxDepth { get; }

    /// <summary>
    /// Calls <paramref name="visit"/> with every text token whose bytes lead from
    /// <paramref name="start"/> to a live state of <paramref name="dfa"/>, and that state.
    /// </summary>
    public void Walk(ByteDfa dfa, int start, Action<int, int> visit)
    {
        Span<int> states = MaxDepth < 256 ? stackalloc int[MaxDepth + 1] : new int[MaxDepth + 1];
        states[0] = start;
        int i = 0;
        while (i < _label.Length)
        {
            int d = _depth[i];
            int next = dfa.Next(states[d - 1], _label[i]);
            if (next == ByteDfa.Dead)
            {
                i = _subtreeEnd[i];
                continue;
            }
            states[d] = next;
            for (int t = _tokenStart[i]; t < _tokenStart[i + 1]; t++) visit(_tokens[t], next);
            i++;
        }
    }
}
