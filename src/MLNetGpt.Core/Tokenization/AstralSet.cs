using System.Globalization;
using System.Text;

namespace MLNetGpt.Tokenization;

/// <summary>
/// A set of code points above U+FFFF, as sorted disjoint ranges. .NET's regex engine matches UTF-16
/// units, so a class such as <c>\p{L}</c> never matches 𝔘 (two surrogates), while Oniguruma matches
/// code points; <see cref="OnigRegex"/> adds the astral members of every class as surrogate-pair
/// alternatives built from these sets.
/// </summary>
internal sealed class AstralSet
{
    public const int First = 0x10000;
    public const int Last = 0x10FFFF;

    private static readonly Lazy<byte[]> Categories = new(() =>
    {
        var table = new byte[Last - First + 1];
        for (int c = First; c <= Last; c++) table[c - First] = (byte)CharUnicodeInfo.GetUnicodeCategory(c);
        return table;
    });

    private static readonly Dictionary<UnicodeCategory, AstralSet> ByCategory = [];

    private readonly List<(int Start, int End)> _ranges;

    private AstralSet(List<(int Start, int End)> ranges) => _ranges = ranges;

    public static AstralSet Empty => new([]);

    public static AstralSet All => new([(First, Last)]);

    public bool IsEmpty => _ranges.Count == 0;

    public static AstralSet Range(int start, int end) => new([(Math.Max(start, First), Math.Min(end, Last))]);

    /// <summary>The astral code points of the given general categories.</summary>
    public static AstralSet Of(params UnicodeCategory[] categories)
    {
        var result = Empty;
        foreach (var category in categories) result = result.Union(OfOne(category));
        return result;
    }

    private static AstralSet OfOne(UnicodeCategory category)
    {
        lock (ByCategory)
        {
            if (ByCategory.TryGetValue(category, out var cached)) return cached;
            var table = Categories.Value;
            var ranges = new List<(int, int)>();
            int start = -1;
            for (int i = 0; i <= table.Length; i++)
            {
                bool member = i < table.Length && table[i] == (byte)category;
                if (member && start < 0) start = i;
                else if (!member && start >= 0)
                {
                    ranges.Add((start + First, i - 1 + First));
                    start = -1;
                }
            }
            return ByCategory[category] = new AstralSet(ranges);
        }
    }

    public AstralSet Union(AstralSet other)
    {
        var all = _ranges.Concat(other._ranges).OrderBy(r => r.Start).ToList();
        var merged = new List<(int Start, int End)>();
        foreach (var (start, end) in all)
        {
            if (merged.Count > 0 && start <= merged[^1].End + 1) merged[^1] = (merged[^1].Start, Math.Max(merged[^1].End, end));
            else merged.Add((start, end));
        }
        return new AstralSet(merged);
    }

    public AstralSet Complement()
    {
        var result = new List<(int, int)>();
        int next = First;
        foreach (var (start, end) in _ranges)
        {
            if (start > next) result.Add((next, start - 1));
            next = end + 1;
        }
        if (next <= Last) result.Add((next, Last));
        return new AstralSet(result);
    }

    /// <summary>A .NET regex alternation matching exactly these code points as surrogate pairs.</summary>
    public string ToRegex()
    {
        // Low-surrogate ranges per high surrogate, then runs of high surrogates sharing the same lows.
        var lows = new SortedDictionary<int, List<(int, int)>>();
        foreach (var (start, end) in _ranges)
        {
            for (int high = High(start); high <= High(end); high++)
            {
                int from = high == High(start) ? Low(start) : 0xDC00;
                int to = high == High(end) ? Low(end) : 0xDFFF;
                if (!lows.TryGetValue(high, out var list)) lows[high] = list = [];
                list.Add((from, to));
            }
        }
        var alternatives = new List<string>();
        var keys = lows.Keys.ToList();
        for (int k = 0; k < keys.Count;)
        {
            string lowClass = Class(lows[keys[k]]);
            int run = k;
            while (run + 1 < keys.Count && keys[run + 1] == keys[run] + 1 && Class(lows[keys[run + 1]]) == lowClass) run++;
            string highs = run == k ? $"\\u{keys[k]:X4}" : $"[\\u{keys[k]:X4}-\\u{keys[run]:X4}]";
            alternatives.Add(highs + lowClass);
            k = run + 1;
        }
        return alternatives.Count == 1 ? alternatives[0] : "(?:" + string.Join('|', alternatives) + ")";
    }

    private static string Class(List<(int From, int To)> ranges)
    {
        var builder = new StringBuilder("[");
        foreach (var (from, to) in ranges)
        {
            builder.Append($"\\u{from:X4}");
            if (to > from) builder.Append($"-\\u{to:X4}");
        }
        return builder.Append(']').ToString();
    }

    private static int High(int c) => 0xD800 + ((c - First) >> 10);

    private static int Low(int c) => 0xDC00 + ((c - First) & 0x3FF);
}
