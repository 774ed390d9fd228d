using System.Numerics;
using System.Runtime.InteropServices;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// The token ids a constraint allows at one state, immutable. Few ids are kept as a sorted list,
/// many as a bitset (whichever is smaller), and <see cref="Apply"/> masks a logits row with it.
/// </summary>
internal sealed class TokenSet
{
    private static readonly Vector<int> LaneBits = BuildLaneBits();

    private readonly int[]? _ids;
    private readonly ulong[]? _bits;

    private TokenSet(int vocabularySize, int[]? ids, ulong[]? bits, int count)
    {
        VocabularySize = vocabularySize;
        _ids = ids;
        _bits = bits;
        Count = count;
    }

    /// <summary>Ids at or above this are never allowed.</summary>
    public int VocabularySize { get; }

    public int Count { get; }

    public bool IsEmpty => Count == 0;

    /// <summary>Whether the set is stored as a bitset (for tests and benchmarks).</summary>
    public bool IsBitset => _bits is not null;

    /// <summary>A set of the given ids (any order, duplicates allowed; ids outside the vocabulary are dropped).</summary>
    public static TokenSet Of(IEnumerable<int> ids, int vocabularySize)
    {
        // Marking a bitset first dedupes and sorts in one linear pass (a first visit may add 50,000 ids).
        var bits = new ulong[(vocabularySize + 63) / 64];
        int count = 0;
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)vocabularySize) continue;
            ulong bit = 1UL << (id & 63);
            if ((bits[id >> 6] & bit) != 0) continue;
            bits[id >> 6] |= bit;
            count++;
        }
        var set = new TokenSet(vocabularySize, null, bits, count);
        // A bitset costs vocabularySize / 8 bytes; a sorted list 4 bytes per id.
        return (long)count * 32 < vocabularySize ? new TokenSet(vocabularySize, set.ToArray(), null, count) : set;
    }

    public bool Contains(int id)
    {
        if ((uint)id >= (uint)VocabularySize) return false;
        return _bits is not null ? (_bits[id >> 6] & (1UL << (id & 63))) != 0 : Array.BinarySearch(_ids!, id) >= 0;
    }

    /// <summary>The ids in ascending order.</summary>
    public int[] ToArray()
    {
        if (_ids is not null) return (int[])_ids.Clone();
        var result = new int[Count];
        int n = 0;
        for (int w = 0; w < _bits!.Length; w++)
        {
            ulong word = _bits[w];
            while (word != 0)
            {
                result[n++] = (w << 6) + BitOperations.TrailingZeroCount(word);
                word &= word - 1;
            }
        }
        return result;
    }

    /// <summary>Sets every logit of a token outside the set to negative infinity (positions past <see cref="VocabularySize"/> too).</summary>
    public void Apply(Span<float> logits)
    {
        if (_ids is not null) ApplySparse(logits);
        else ApplyBits(logits);
    }

    private void ApplySparse(Span<float> logits)
    {
        var ids = _ids!;
        Span<float> kept = ids.Length <= 512 ? stackalloc float[ids.Length] : new float[ids.Length];
        for (int i = 0; i < ids.Length; i++) kept[i] = ids[i] < logits.Length ? logits[ids[i]] : 0f;
        logits.Fill(float.NegativeInfinity);
        for (int i = 0; i < ids.Length; i++)
            if (ids[i] < logits.Length) logits[ids[i]] = kept[i];
    }

    private void ApplyBits(Span<float> logits)
    {
        var bits = _bits!;
        int width = Vector<float>.Count;
        int covered = Math.Min(logits.Length, VocabularySize);
        var removed = new Vector<float>(float.NegativeInfinity);
        var vectors = MemoryMarshal.Cast<float, Vector<float>>(logits[..covered]);
        uint laneMask = width == 32 ? uint.MaxValue : (1u << width) - 1;
        // Whole vectors: their bits (width of them, never straddling a 64-bit word as 64 % width == 0).
        for (int v = 0; v < vectors.Length; v++)
        {
            int first = v * width;
            uint lanes = (uint)(bits[first >> 6] >> (first & 63)) & laneMask;
            if (lanes == laneMask) continue;
            if (lanes == 0)
            {
                vectors[v] = removed;
                continue;
            }
            var keep = Vector.Equals(new Vector<int>((int)lanes) & LaneBits, LaneBits);
            vectors[v] = Vector.ConditionalSelect(Vector.AsVectorSingle(keep), vectors[v], removed);
        }
        for (int i = vectors.Length * width; i < covered; i++)
            if ((bits[i >> 6] & (1UL << (i & 63))) == 0) logits[i] = float.NegativeInfinity;
        if (logits.Length > covered) logits[covered..].Fill(float.NegativeInfinity);
    }

    private static Vector<int> BuildLaneBits()
    {
        var lanes = new int[Vector<int>.Count];
        for (int i = 0; i < lanes.Length; i++) lanes[i] = 1 << i;
        return new Vector<int>(lanes);
    }
}
