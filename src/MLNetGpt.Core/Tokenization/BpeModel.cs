using System.Text;

namespace MLNetGpt.Tokenization;

/// <summary>
/// The BPE model of a tokenizer.json, with Hugging Face tokenizers' semantics: a word starts as one
/// symbol per Unicode character; a character outside the vocabulary becomes its UTF-8 byte pieces
/// (<c>&lt;0xXX&gt;</c>) when byte fallback is on and every byte piece exists, otherwise the unknown
/// token (consecutive unknowns fused into one when <c>fuse_unk</c> is set); then the adjacent pair with
/// the lowest merge rank is merged, leftmost first, until no adjacent pair has a merge.
/// </summary>
internal sealed class BpeModel
{
    private readonly Dictionary<string, int> _vocabulary;
    private readonly Dictionary<long, (int Rank, int Merged)> _merges;
    private readonly int[] _byteIds;
    private readonly int? _unknownId;
    private readonly bool _fuseUnknown;
    private readonly bool _ignoreMerges;

    public BpeModel(Dictionary<string, int> vocabulary, IReadOnlyList<(int Left, int Right, int Merged)> merges, int? unknownId,
        bool fuseUnknown, bool byteFallback, bool ignoreMerges)
    {
        _vocabulary = vocabulary;
        _unknownId = unknownId;
        _fuseUnknown = fuseUnknown;
        _ignoreMerges = ignoreMerges;
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right, merged) = merges[rank];
            // A pair listed twice keeps its first (best) rank, as a later duplicate could never win.
            _merges.TryAdd(PairKey(left, right), (rank, merged));
        }
        _byteIds = new int[256];
        for (int b = 0; b < 256; b++)
            _byteIds[b] = byteFallback && vocabulary.TryGetValue(ByteFallbackPiece((byte)b), out int id) ? id : -1;
    }

    /// <summary>The piece SentencePiece and tokenizers use for a raw byte: <c>&lt;0x41&gt;</c>.</summary>
    public static string ByteFallbackPiece(byte value) => $"<0x{value:X2}>";

    /// <summary>Appends the ids of one pre-tokenized word, with the word-relative char range each covers.</summary>
    public void Encode(string word, List<(int Id, int Start, int Length)> output)
    {
        if (word.Length == 0) return;
        if (_ignoreMerges && _vocabulary.TryGetValue(word, out int whole))
        {
            output.Add((whole, 0, word.Length));
            return;
        }
        var symbols = InitialSymbols(word);
        Merge(symbols);
        foreach (var s in symbols) output.Add((s.Id, s.Start, s.Length));
    }

    private List<Symbol> InitialSymbols(string word)
    {
        var symbols = new List<Symbol>(word.Length);
        Span<byte> utf8 = stackalloc byte[4];
        int unknownStart = -1, unknownLength = 0;
        for (int i = 0; i < word.Length;)
        {
            int length = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            string character = word.Substring(i, length);
            if (_vocabulary.TryGetValue(character, out int id))
            {
                FlushUnknown(symbols, ref unknownStart, ref unknownLength);
                symbols.Add(new Symbol(id, i, length));
            }
            else if (TryByteFallback(character, utf8, out int byteCount))
            {
                FlushUnknown(symbols, ref unknownStart, ref unknownLength);
                // The first byte piece covers the character's chars, the others none: a byte has no chars of its own.
                for (int b = 0; b < byteCount; b++) symbols.Add(new Symbol(_byteIds[utf8[b]], b == 0 ? i : i + length, b == 0 ? length : 0));
            }
            else if (_unknownId is not null)
            {
                if (unknownStart >= 0 && !_fuseUnknown) FlushUnknown(symbols, ref unknownStart, ref unknownLength);
                if (unknownStart < 0) unknownStart = i;
                unknownLength += length;
            }
            i += length;
        }
        FlushUnknown(symbols, ref unknownStart, ref unknownLength);
        return symbols;
    }

    private bool TryByteFallback(string character, Span<byte> utf8, out int byteCount)
    {
        byteCount = Encoding.UTF8.GetBytes(character, utf8);
        for (int b = 0; b < byteCount; b++)
            if (_byteIds[utf8[b]] < 0) return false;
        return true;
    }

    private void FlushUnknown(List<Symbol> symbols, ref int start, ref int length)
    {
        if (start < 0) return;
        symbols.Add(new Symbol(_unknownId!.Value, start, length));
        start = -1;
        length = 0;
    }

    private void Merge(List<Symbol> symbols)
    {
        int n = symbols.Count;
        if (n < 2 || _merges.Count == 0) return;
        var next = new int[n];
        var prev = new int[n];
        var alive = new bool[n];
        for (int i = 0; i < n; i++)
        {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
            alive[i] = true;
        }
        // (rank, position) orders merges as tokenizers does: best rank first, leftmost among equals.
        var queue = new PriorityQueue<int, (int Rank, int Position)>();
        for (int i = 0; i + 1 < n; i++) Enqueue(queue, symbols, i, i + 1);
        while (queue.TryDequeue(out int position, out var priority))
        {
            int right = next[position];
            if (!alive[position] || right < 0) continue;
            // A queued pair is stale once either side has merged with something else.
            if (!_merges.TryGetValue(PairKey(symbols[position].Id, symbols[right].Id), out var merge) || merge.Rank != priority.Rank) continue;
            var leftSymbol = symbols[position];
            var rightSymbol = symbols[right];
            symbols[position] = new Symbol(merge.Merged, leftSymbol.Start, rightSymbol.Start + rightSymbol.Length - leftSymbol.Start);
            alive[right] = false;
            next[position] = next[right];
            if (next[right] >= 0) prev[next[right]] = position;
            if (prev[position] >= 0) Enqueue(queue, symbols, prev[position], position);
            if (next[position] >= 0) Enqueue(queue, symbols, position, next[position]);
        }
        for (int i = n - 1; i >= 0; i--)
            if (!alive[i]) symbols.RemoveAt(i);
    }

    private void Enqueue(PriorityQueue<int, (int, int)> queue, List<Symbol> symbols, int left, int right)
    {
        if (_merges.TryGetValue(PairKey(symbols[left].Id, symbols[right].Id), out var merge))
            queue.Enqueue(left, (merge.Rank, left));
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    private readonly record struct Symbol(int Id, int Start, int Length);
}
