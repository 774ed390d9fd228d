namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// A set of Unicode scalar values as sorted, disjoint, non-adjacent inclusive ranges. Surrogate
/// code points (U+D800 to U+DFFF) are never members: they cannot appear in UTF-8 text.
/// </summary>
internal sealed class CodePointSet
{
    public const int MaxCodePoint = 0x10FFFF;

    private readonly (int Lo, int Hi)[] _ranges;

    private CodePointSet((int Lo, int Hi)[] ranges) => _ranges = ranges;

    public IReadOnlyList<(int Lo, int Hi)> Ranges => _ranges;

    public bool IsEmpty => _ranges.Length == 0;

    /// <summary>Every Unicode scalar value.</summary>
    public static CodePointSet Any { get; } = Of([(0, MaxCodePoint)]);

    public static CodePointSet Single(int codePoint) => Of([(codePoint, codePoint)]);

    public static CodePointSet Range(int lo, int hi) => Of([(lo, hi)]);

    /// <summary>Normalises any list of ranges (unsorted, overlapping, with surrogates) into a set.</summary>
    public static CodePointSet Of(IEnumerable<(int Lo, int Hi)> ranges)
    {
        var sorted = ranges.Where(r => r.Lo <= r.Hi).OrderBy(r => r.Lo).ToList();
        var merged = new List<(int Lo, int Hi)>();
        foreach (var (lo, hi) in sorted)
        {
            if (merged.Count > 0 && lo <= merged[^1].Hi + 1)
                merged[^1] = (merged[^1].Lo, Math.Max(merged[^1].Hi, hi));
            else
                merged.Add((lo, hi));
        }
        var result = new List<(int Lo, int Hi)>(merged.Count + 1);
        foreach (var (lo, hi) in merged)
        {
            if (hi < 0xD800 || lo > 0xDFFF) result.Add((lo, hi));
            else
            {
                if (lo < 0xD800) result.Add((lo, 0xD7FF));
                if (hi > 0xDFFF) result.Add((0xE000, hi));
            }
        }
        return new CodePointSet(result.ToArray());
    }

    public CodePointSet Union(CodePointSet other) => Of(_ranges.Concat(other._ranges));

    /// <summary>Every scalar value not in this set.</summary>
    public CodePointSet Complement()
    {
        var result = new List<(int Lo, int Hi)>();
        int next = 0;
        foreach (var (lo, hi) in _ranges)
        {
            if (lo > next) result.Add((next, lo - 1));
            next = hi + 1;
        }
        if (next <= MaxCodePoint) result.Add((next, MaxCodePoint));
        return Of(result);
    }

    public CodePointSet Except(CodePointSet other) => Of(Complement().Union(other).Complement()._ranges);

    public bool Contains(int codePoint)
    {
        int lo = 0, hi = _ranges.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (codePoint < _ranges[mid].Lo) hi = mid - 1;
            else if (codePoint > _ranges[mid].Hi) lo = mid + 1;
            else return true;
        }
        return false;
    }
}
