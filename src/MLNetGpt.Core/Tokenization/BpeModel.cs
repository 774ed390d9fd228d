using System.Text;

namespace MLNetGpt.Tokenization;

/// <summary>
/// The BPE model of a tokenizer.json, with Hugging Face tokenizers' semantics: with
/// <c>ignore_merges</c> a piece found whole in the vocabulary is one token; otherwise a piece starts
/// as one symbol per Unicode character (with <c>continuing_subword_prefix</c> before every character
/// but the first and <c>end_of_word_suffix</c> after the last); a character outside the vocabulary
/// becomes its UTF-8 byte pieces (<c>&lt;0xXX&gt;</c>) with <c>byte_fallback</c> when every byte piece
/// exists, otherwise the unknown token (consecutive ones fused with <c>fuse_unk</c>), or nothing when
/// there is no <c>unk_token</c>. Then merges apply as tokenizers applies them: a heap of (rank,
/// position) entries, lowest rank first, leftmost among equals, an entry still good when the pair now
/// at its position merges into the same token. A pair listed twice keeps its later rank.
/// </summary>
internal sealed class BpeModel : TokenizerModel
{
    private readonly Dictionary<string, int> _vocabulary;
    private readonly string?[] _tokens;
    private readonly PairTable _merges;                   // (left, right) -> rank << 32 | merged id
    private readonly int[] _charIds;                      // ids of single BMP characters (no prefix/suffix), -1 when absent
    private readonly int[] _byteIds;
    private readonly int? _unknownId;
    private readonly bool _fuseUnknown;
    private readonly bool _ignoreMerges;
    private readonly string? _prefix;
    private readonly string? _suffix;
    private readonly EncodingCache<Symbol[]> _cache = new();

    // vocabulary: token to id, ids distinct and below idLimit; merges: in rank order as (left id, right id, merged id).
    public BpeModel(Dictionary<string, int> vocabulary, int idLimit, IReadOnlyList<(int Left, int Right, int Merged)> merges, int? unknownId,
        bool fuseUnknown, bool byteFallback, bool ignoreMerges, string? continuingSubwordPrefix, string? endOfWordSuffix)
    {
        _vocabulary = vocabulary;
        _unknownId = unknownId;
        _fuseUnknown = fuseUnknown;
        _ignoreMerges = ignoreMerges;
        _prefix = string.IsNullOrEmpty(continuingSubwordPrefix) ? null : continuingSubwordPrefix;
        _suffix = string.IsNullOrEmpty(endOfWordSuffix) ? null : endOfWordSuffix;
        _tokens = new string?[idLimit];
        foreach (var (token, id) in vocabulary) _tokens[id] = token;
        _merges = new PairTable(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right, merged) = merges[rank];
            _merges.Set(PairKey(left, right), ((long)rank << 32) | (uint)merged);
        }
        _charIds = new int[char.MaxValue + 1];
        Array.Fill(_charIds, -1);
        foreach (var (token, id) in vocabulary)
            if (token.Length == 1 && !char.IsSurrogate(token[0])) _charIds[token[0]] = id;
        _byteIds = new int[256];
        for (int b = 0; b < 256; b++)
            _byteIds[b] = byteFallback && vocabulary.TryGetValue(ByteFallbackPiece((byte)b), out int id) ? id : -1;
        ByteFallback = byteFallback;
    }

    public bool ByteFallback { get; }

    public override int VocabularyCount => _vocabulary.Count;

    public override int IdLimit => _tokens.Length;

    public override string? IdToToken(int id) => (uint)id < (uint)_tokens.Length ? _tokens[id] : null;

    public override int? TokenToId(string token) => _vocabulary.TryGetValue(token, out int id) ? id : null;

    /// <summary>The piece SentencePiece and tokenizers use for a raw byte: <c>&lt;0x41&gt;</c>.</summary>
    public static string ByteFallbackPiece(byte value) => $"<0x{value:X2}>";

    public override void Encode(string piece, List<int> ids)
    {
        foreach (var symbol in Symbols(piece)) ids.Add(symbol.Id);
    }

    public override void Encode(string piece, List<(int Id, int Start, int End)> tokens)
    {
        foreach (var symbol in Symbols(piece)) tokens.Add((symbol.Id, symbol.Start, symbol.Start + symbol.Length));
    }

    private Symbol[] Symbols(string word)
    {
        if (word.Length == 0) return [];
        // A word's encoding never changes, so the memo may answer before ignore_merges looks the word up whole.
        if (_cache.TryGet(word, out var cached)) return cached;
        var symbols = _ignoreMerges && _vocabulary.TryGetValue(word, out int whole) ? [new Symbol(whole, 0, word.Length)] : Merge(InitialSymbols(word));
        _cache.Set(word, symbols);
        return symbols;
    }

    /// <summary>
    /// Appends the ids of a piece of text as the ByteLevel pre-tokenizer would hand it over (its UTF-8
    /// bytes spelled as byte-level characters), without building the strings when the memo knows it.
    /// </summary>
    public void EncodeByteLevel(ReadOnlySpan<char> text, List<int> ids)
    {
        int maxBytes = text.Length * 3;
        byte[]? rentedBytes = null;
        char[]? rentedChars = null;
        Span<byte> bytes = maxBytes <= 1024 ? stackalloc byte[maxBytes] : (rentedBytes = System.Buffers.ArrayPool<byte>.Shared.Rent(maxBytes));
        int count = Encoding.UTF8.GetBytes(text, bytes);
        Span<char> chars = count <= 1024 ? stackalloc char[count] : (rentedChars = System.Buffers.ArrayPool<char>.Shared.Rent(count));
        chars = chars[..count];
        for (int i = 0; i < count; i++) chars[i] = ByteLevelAlphabet.CharOf(bytes[i]);
        if (_cache.TryGet(chars, out var cached))
            foreach (var symbol in cached) ids.Add(symbol.Id);
        else
            Encode(chars.ToString(), ids);
        if (rentedBytes is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rentedBytes);
        if (rentedChars is not null) System.Buffers.ArrayPool<char>.Shared.Return(rentedChars);
    }

    private List<Symbol> InitialSymbols(string word)
    {
        var symbols = new List<Symbol>(word.Length);
        Span<byte> utf8 = stackalloc byte[4];
        int unknownStart = -1, unknownLength = 0;
        for (int i = 0; i < word.Length;)
        {
            int length = UnicodeClasses.ScalarAt(word, i).Length;
            bool first = i == 0, last = i + length == word.Length;
            int id = LookUp(word, i, length, first, last);
            if (id >= 0)
            {
                if (unknownStart >= 0) FlushUnknown(symbols, ref unknownStart, ref unknownLength);
                symbols.Add(new Symbol(id, i, length));
            }
            else if (TryByteFallback(word, i, length, first, last, symbols))
            {
                // tokenizers adds the byte pieces without first adding a pending unknown token.
            }
            else if (_unknownId is not null)
            {
                if (unknownStart >= 0 && !_fuseUnknown) FlushUnknown(symbols, ref unknownStart, ref unknownLength);
                if (unknownStart < 0) unknownStart = i;
                unknownLength += length;
            }
            i += length;
        }
        if (unknownStart >= 0) FlushUnknown(symbols, ref unknownStart, ref unknownLength);
        return symbols;
    }

    /// <summary>The id of one character of the word as the vocabulary spells it there (with prefix and suffix), or -1.</summary>
    private int LookUp(string word, int i, int length, bool first, bool last)
    {
        bool affixed = (!first && _prefix is not null) || (last && _suffix is not null);
        if (!affixed && length == 1) return _charIds[word[i]];
        return _vocabulary.TryGetValue(Spelled(word, i, length, first, last), out int id) ? id : -1;
    }

    private string Spelled(string word, int i, int length, bool first, bool last)
    {
        string character = word.Substring(i, length);
        if (!first && _prefix is not null) character = _prefix + character;
        if (last && _suffix is not null) character += _suffix;
        return character;
    }

    private bool TryByteFallback(string word, int i, int length, bool first, bool last, List<Symbol> symbols)
    {
        if (!ByteFallback) return false;
        byte[] bytes = Encoding.UTF8.GetBytes(Spelled(word, i, length, first, last));
        foreach (byte b in bytes)
            if (_byteIds[b] < 0) return false;
        // The first byte piece covers the character's chars, the others none: a byte has no chars of its own.
        for (int b = 0; b < bytes.Length; b++) symbols.Add(new Symbol(_byteIds[bytes[b]], b == 0 ? i : i + length, b == 0 ? length : 0));
        return true;
    }

    private void FlushUnknown(List<Symbol> symbols, ref int start, ref int length)
    {
        symbols.Add(new Symbol(_unknownId!.Value, start, length));
        start = -1;
        length = 0;
    }

    [ThreadStatic] private static MergeHeap? t_heap;

    private Symbol[] Merge(List<Symbol> initial)
    {
        int n = initial.Count;
        if (n < 2 || _merges.Count == 0) return initial.ToArray();
        var ids = new int[n];
        var starts = new int[n];
        var ends = new int[n];
        var next = new int[n];
        var prev = new int[n];
        var alive = new bool[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = initial[i].Id;
            starts[i] = initial[i].Start;
            ends[i] = initial[i].Start + initial[i].Length;
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
            alive[i] = true;
        }
        var heap = t_heap ??= new MergeHeap();
        heap.Clear();
        for (int i = 0; i + 1 < n; i++)
            if (_merges.TryGetValue(PairKey(ids[i], ids[i + 1]), out long merge)) heap.Push(merge >> 32, i, (int)merge);
        int survivors = n;
        while (heap.TryPop(out int position, out int newId))
        {
            if (!alive[position]) continue;
            int right = next[position];
            if (right < 0) continue;
            // An entry is stale unless the pair now at its position merges into the same token.
            if (!_merges.TryGetValue(PairKey(ids[position], ids[right]), out long current) || (int)current != newId) continue;
            ids[position] = newId;
            ends[position] = ends[right];
            if (starts[right] < starts[position]) starts[position] = starts[right];
            alive[right] = false;
            survivors--;
            next[position] = next[right];
            if (next[right] >= 0) prev[next[right]] = position;
            if (prev[position] >= 0 && _merges.TryGetValue(PairKey(ids[prev[position]], newId), out long left))
                heap.Push(left >> 32, prev[position], (int)left);
            if (next[position] >= 0 && _merges.TryGetValue(PairKey(newId, ids[next[position]]), out long after))
                heap.Push(after >> 32, position, (int)after);
        }
        var result = new Symbol[survivors];
        for (int i = 0, k = 0; i < n; i++)
            if (alive[i]) result[k++] = new Symbol(ids[i], starts[i], ends[i] - starts[i]);
        return result;
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>
    /// An open-addressing map from a pair key to its merge. Dictionary&lt;long, long&gt; hashes a long as
    /// the XOR of its halves, which piles pairs of small ids into few buckets; a multiplicative hash
    /// spreads them, and lookups dominate BPE encoding.
    /// </summary>
    private sealed class PairTable
    {
        private const long Empty = -1;
        private readonly long[] _keys;
        private readonly long[] _values;
        private readonly int _shift;

        public PairTable(int count)
        {
            int bits = Math.Max(4, (int)Math.Ceiling(Math.Log2(Math.Max(1, count) * 2 + 1)));
            _keys = new long[1 << bits];
            _values = new long[1 << bits];
            Array.Fill(_keys, Empty);
            _shift = 64 - bits;
            Count = 0;
        }

        public int Count { get; private set; }

        private int Slot(long key) => (int)((ulong)(key * unchecked((long)0x9E3779B97F4A7C15)) >> _shift);

        public void Set(long key, long value)
        {
            int mask = _keys.Length - 1;
            for (int i = Slot(key); ; i = (i + 1) & mask)
            {
                if (_keys[i] == key)
                {
                    _values[i] = value;
                    return;
                }
                if (_keys[i] == Empty)
                {
                    _keys[i] = key;
                    _values[i] = value;
                    Count++;
                    return;
                }
            }
        }

        public bool TryGetValue(long key, out long value)
        {
            int mask = _keys.Length - 1;
            for (int i = Slot(key); ; i = (i + 1) & mask)
            {
                long k = _keys[i];
                if (k == key)
                {
                    value = _values[i];
                    return true;
                }
                if (k == Empty)
                {
                    value = 0;
                    return false;
                }
            }
        }
    }

    private readonly record struct Symbol(int Id, int Start, int Length);

    /// <summary>A binary min-heap of (rank, position) with the merged id, reused per thread.</summary>
    private sealed class MergeHeap
    {
        private long[] _keys = new long[64];
        private int[] _values = new int[64];
        private int _count;

        public void Clear() => _count = 0;

        public void Push(long rank, int position, int value)
        {
            if (_count == _keys.Length)
            {
                Array.Resize(ref _keys, _count * 2);
                Array.Resize(ref _values, _count * 2);
            }
            long key = (rank << 32) | (uint)position;
            int i = _count++;
            while (i > 0)
            {
                int parent = (i - 1) >> 1;
                if (_keys[parent] <= key) break;
                _keys[i] = _keys[parent];
                _values[i] = _values[parent];
                i = parent;
            }
            _keys[i] = key;
            _values[i] = value;
        }

        public bool TryPop(out int position, out int value)
        {
            if (_count == 0)
            {
                position = value = 0;
                return false;
            }
            position = (int)(uint)_keys[0];
            value = _values[0];
            long lastKey = _keys[--_count];
            int lastValue = _values[_count];
            int i = 0;
            while (true)
            {
                int child = 2 * i + 1;
                if (child >= _count) break;
                if (child + 1 < _count && _keys[child + 1] < _keys[child]) child++;
                if (_keys[child] >= lastKey) break;
                _keys[i] = _keys[child];
                _values[i] = _values[child];
                i = child;
            }
            _keys[i] = lastKey;
            _values[i] = lastValue;
            return true;
        }
    }
}
