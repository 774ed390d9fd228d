using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// A choice among labels, each written with the tokenizer's own tokenization of it: the allowed
/// token sequences form a trie, so the model picks among the labels as it would write them (never
/// through odd splits such as a label's first letter alone). Under greedy decoding the choice is then
/// the label whose tokens the model finds most likely step by step; for labels that differ from their
/// first token that is the label of highest likelihood.
/// </summary>
/// <remarks>Thread-safe: the trie is built once; allowed sets are cached per node.</remarks>
internal sealed class ChoiceTokenConstraint : ITokenConstraint
{
    private static readonly ConditionalWeakTable<Tokenizer, ConcurrentDictionary<(OutputConstraint, string), ChoiceTokenConstraint>> Compiled = new();

    private readonly List<Node> _nodes = [new Node()];
    private readonly int[] _eos;
    private readonly int _vocabulary;
    private readonly ConcurrentDictionary<(int Node, int Budget), TokenSet> _sets = new();

    private ChoiceTokenConstraint(IReadOnlyList<string> labels, Tokenizer tokenizer, int vocabulary, IReadOnlyList<int> eos)
    {
        _vocabulary = vocabulary;
        _eos = eos.Where(id => (uint)id < (uint)vocabulary).Distinct().ToArray();
        foreach (var label in labels)
        {
            var ids = tokenizer.EncodeToIds(label);
            if (ids.Count == 0) throw new ArgumentException($"The choice '{label}' encodes to no token.");
            int node = 0;
            foreach (int id in ids)
            {
                if ((uint)id >= (uint)vocabulary)
                    throw new ArgumentException($"The choice '{label}' encodes to token id {id}, which the model cannot produce (it has {vocabulary} ids).");
                if (!_nodes[node].Children.TryGetValue(id, out int child))
                {
                    child = _nodes.Count;
                    _nodes.Add(new Node());
                    _nodes[node].Children[id] = child;
                }
                node = child;
            }
            _nodes[node].Complete = true;
        }
        // Fewest tokens from each node to a complete label (children come after their parent).
        for (int n = _nodes.Count - 1; n >= 0; n--)
        {
            var node = _nodes[n];
            node.MinTokens = node.Complete ? 0 : node.Children.Values.Min(c => _nodes[c].MinTokens) + 1;
        }
    }

    /// <summary>The constraint for (choices, tokenizer, EOS ids), built once per tokenizer.</summary>
    public static ChoiceTokenConstraint For(OutputConstraint constraint, Tokenizer tokenizer, int vocabulary, IReadOnlyList<int> eos)
    {
        var cache = Compiled.GetOrCreateValue(tokenizer);
        string key = vocabulary + "|" + string.Join(",", eos.Order());
        if (cache.Count >= 256) cache.Clear();
        return cache.GetOrAdd((constraint, key), _ => new ChoiceTokenConstraint(constraint.ChoiceList!, tokenizer, vocabulary, eos));
    }

    public int Start => 0;

    public bool IsAccepting(int state) => _nodes[state].Complete;

    public bool IsFinal(int state) => _nodes[state].Complete && _nodes[state].Children.Count == 0;

    public int Advance(int state, int token) =>
        state >= 0 && _nodes[state].Children.TryGetValue(token, out int child) ? child : CompiledConstraint.Rejected;

    public TokenSet Allowed(int state, int remainingTokens)
    {
        var node = _nodes[state];
        // Children whose shortest label still fits; when none fits, the ones closest to a label.
        int fits = node.Children.Count == 0 ? 0 : node.Children.Values.Min(c => _nodes[c].MinTokens) + 1;
        int budget = Math.Max(remainingTokens, fits);
        return _sets.GetOrAdd((state, Math.Min(budget, 1 << 20)), key =>
        {
            var ids = _nodes[key.Node].Children.Where(c => _nodes[c.Value].MinTokens + 1 <= key.Budget).Select(c => c.Key);
            if (_nodes[key.Node].Complete) ids = ids.Concat(_eos);
            return TokenSet.Of(ids, _vocabulary);
        });
    }

    private sealed class Node
    {
        public Dictionary<int, int> Children { get; } = [];
        public bool Complete { get; set; }
        public int MinTokens { get; set; }
    }
}
