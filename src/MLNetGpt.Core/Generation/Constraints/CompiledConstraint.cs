using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using MLNetGpt.Tokenization;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// An <see cref="OutputConstraint"/> joined to a vocabulary: per automaton state, which tokens may
/// come next. A row's state starts at <see cref="Start"/>; each step the row's logits are masked with
/// <see cref="Allowed"/>, and the chosen token moves the state with <see cref="Advance"/>; when
/// <see cref="IsFinal"/> holds, the row must end. End-of-sequence ids are allowed only in accepting
/// states. Allowed sets are built on a state's first visit (a walk of the vocabulary's byte trie
/// against the automaton) and cached.
/// </summary>
/// <remarks>Thread-safe: rows on many threads may share one instance.</remarks>
internal sealed class CompiledConstraint : ITokenConstraint
{
    /// <summary>What <see cref="Advance"/> returns for a token the state does not allow.</summary>
    public const int Rejected = -1;

    // The first token of a SentencePiece generation reads without its leading space (the decoder
    // drops the dummy prefix); the start state carries this flag so it is masked differently.
    private const int FirstTokenFlag = 1 << 30;

    // Compiled forms per vocabulary; bounded because rows may each bring their own constraint.
    private const int MaxCachedPerVocabulary = 256;

    private static readonly ConditionalWeakTable<TokenByteTable, ConcurrentDictionary<(OutputConstraint, string), CompiledConstraint>> Compiled = new();

    private readonly ByteDfa _dfa;
    private readonly TokenByteTable _table;
    private readonly int[] _eos;
    private readonly ConcurrentDictionary<int, StateTokens> _states = new();
    private readonly ConcurrentDictionary<(int State, int Budget), TokenSet> _budgeted = new();
    private readonly Func<int, StateTokens> _build;     // one delegate, so a warm lookup allocates nothing

    public CompiledConstraint(OutputConstraint constraint, TokenByteTable table, IReadOnlyList<int> eosTokenIds)
    {
        ArgumentNullException.ThrowIfNull(constraint);
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(eosTokenIds);
        Constraint = constraint;
        _table = table;
        _dfa = constraint.Automaton;
        _eos = eosTokenIds.Where(id => (uint)id < (uint)table.Count).Distinct().ToArray();
        Start = table.DropsLeadingSpace ? _dfa.Start | FirstTokenFlag : _dfa.Start;
        _build = Build;
    }

    /// <summary>
    /// The compiled form for (constraint, vocabulary, EOS ids), cached while the table lives (up to
    /// 256 per vocabulary; past that the cache starts over, so equal constraints share their masks
    /// within a job without the cache growing with every distinct one).
    /// </summary>
    public static CompiledConstraint For(OutputConstraint constraint, TokenByteTable table, IReadOnlyList<int> eosTokenIds)
    {
        ArgumentNullException.ThrowIfNull(constraint);
        ArgumentNullException.ThrowIfNull(eosTokenIds);
        string eosKey = string.Join(",", eosTokenIds.Order());
        var cache = Compiled.GetOrCreateValue(table);
        if (cache.TryGetValue((constraint, eosKey), out var cached)) return cached;
        if (cache.Count >= MaxCachedPerVocabulary) cache.Clear();
        return cache.GetOrAdd((constraint, eosKey), _ => new CompiledConstraint(constraint, table, eosTokenIds));
    }

    public OutputConstraint Constraint { get; }

    /// <summary>The state before any token.</summary>
    public int Start { get; }

    /// <summary>Whether a token budget can force completion (every byte is a token of the vocabulary).</summary>
    public bool CanForceCompletion => _table.HasEverySingleByte;

    /// <summary>Automaton states built so far (for benchmarks).</summary>
    public int AutomatonStates => _dfa.StateCount;

    public bool IsAccepting(int state) => _dfa.IsAccepting(Dfa(state));

    /// <summary>The text is complete and nothing may follow: the row must end now.</summary>
    public bool IsFinal(int state) => _dfa.IsAccepting(Dfa(state)) && !_dfa.HasContinuation(Dfa(state));

    /// <summary>The fewest bytes still needed to complete the text (int.MaxValue when it cannot be completed).</summary>
    public int MinBytesToAccept(int state) => _dfa.MinBytesToAccept(Dfa(state));

    /// <summary>
    /// The tokens allowed in <paramref name="state"/>, with <paramref name="remainingTokens"/> the
    /// tokens the row may still generate, this one included. When the budget is short and the
    /// vocabulary has every single byte as a token, only tokens after which the text can still be
    /// completed in time are kept (one byte per remaining token always suffices); should none fit,
    /// those closest to completion are kept.
    /// </summary>
    public TokenSet Allowed(int state, int remainingTokens)
    {
        var info = Info(state);
        if (!CanForceCompletion || remainingTokens - 1 >= info.MaxNextMinBytes || !info.HasText) return info.Set;
        int budget = Math.Max(0, remainingTokens - 1);
        return _budgeted.GetOrAdd((state, budget), key => Budgeted(key.State, info, key.Budget));
    }

    /// <summary>The state after <paramref name="token"/>, or <see cref="Rejected"/> when the token is not allowed text there.</summary>
    public int Advance(int state, int token)
    {
        if (!_table.IsText(token)) return Rejected;
        var bytes = EffectiveBytes(state, token);
        if (bytes.IsEmpty) return Rejected;
        int next = _dfa.Walk(Dfa(state), bytes);
        return next == ByteDfa.Dead ? Rejected : next;
    }

    private static int Dfa(int state) => state & ~FirstTokenFlag;

    private ReadOnlySpan<byte> EffectiveBytes(int state, int token)
    {
        var bytes = _table.Bytes(token);
        return (state & FirstTokenFlag) != 0 && bytes.Length > 0 && bytes[0] == (byte)' ' ? bytes[1..] : bytes;
    }

    private StateTokens Info(int state) => _states.GetOrAdd(state, _build);

    /// <summary>Calls <paramref name="visit"/> with every text token allowed in the state and the state it leads to.</summary>
    private void Walk(int state, Action<int, int> visit)
    {
        if ((state & FirstTokenFlag) == 0)
        {
            VocabularyTrie.For(_table).Walk(_dfa, state, visit);
            return;
        }
        for (int id = 0; id < _table.Count; id++)
        {
            int next = Advance(state, id);
            if (next != Rejected) visit(id, next);
        }
    }

    private StateTokens Build(int state)
    {
        // Only the set and the range of completion distances are kept: a state inside a JSON string
        // allows most of the vocabulary, and keeping per-token arrays for every such state would cost
        // hundreds of kilobytes each. The rare budgeted sets walk the trie again.
        var tokens = new List<int>();
        int maxNext = 0, minNext = int.MaxValue;
        Walk(state, (token, next) =>
        {
            tokens.Add(token);
            int distance = _dfa.MinBytesToAccept(next);
            maxNext = Math.Max(maxNext, distance);
            minNext = Math.Min(minNext, distance);
        });
        bool accepting = _dfa.IsAccepting(Dfa(state));
        bool hasText = tokens.Count > 0;
        if (accepting) tokens.AddRange(_eos);
        return new StateTokens(TokenSet.Of(tokens, _table.Count), hasText, maxNext, minNext, accepting);
    }

    private TokenSet Budgeted(int state, StateTokens info, int budget)
    {
        int limit = info.MinNextMinBytes <= budget || info.Accepting ? budget : info.MinNextMinBytes;
        var kept = new List<int>();
        Walk(state, (token, next) =>
        {
            if (_dfa.MinBytesToAccept(next) <= limit) kept.Add(token);
        });
        if (info.Accepting) kept.AddRange(_eos);
        return TokenSet.Of(kept, _table.Count);
    }

    private sealed record StateTokens(TokenSet Set, bool HasText, int MaxNextMinBytes, int MinNextMinBytes, bool Accepting);
}
