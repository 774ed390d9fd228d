namespace MLNetGpt.Training;

/// <summary>
/// The order in which training sequences are visited: epoch after epoch, each a fresh permutation drawn from the seed
/// and the epoch's number alone (Fisher–Yates over SplitMix64), so any position of the stream can be found again after a
/// restart and the order never depends on the machine, the thread count or the .NET version.
/// </summary>
internal sealed class DataOrder
{
    private readonly int _count;
    private readonly int _seed;
    private long _cachedEpoch = -1;
    private int[] _permutation = [];

    public DataOrder(int count, int seed)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "There must be at least one sequence to order.");
        _count = count;
        _seed = seed;
    }

    /// <summary>The sequence at <paramref name="position"/> of the endless stream of epochs.</summary>
    public int At(long position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        long epoch = position / _count;
        if (epoch != _cachedEpoch)
        {
            _permutation = Permutation(_count, _seed, epoch);
            _cachedEpoch = epoch;
        }
        return _permutation[position % _count];
    }

    /// <summary>The permutation of <paramref name="count"/> items for one epoch.</summary>
    public static int[] Permutation(int count, int seed, long epoch)
    {
        var items = new int[count];
        for (int i = 0; i < count; i++) items[i] = i;
        ulong state = unchecked((ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)epoch * 0xD1B54A32D192ED03UL);
        for (int i = count - 1; i > 0; i--)
        {
            int j = (int)Below(ref state, (ulong)(i + 1));
            (items[i], items[j]) = (items[j], items[i]);
        }
        return items;
    }

    /// <summary>A uniform integer in [0, bound) by rejection, so no value is favoured.</summary>
    private static ulong Below(ref ulong state, ulong bound)
    {
        ulong limit = ulong.MaxValue - ulong.MaxValue % bound;
        while (true)
        {
            ulong value = Next(ref state);
            if (value < limit) return value % bound;
        }
    }

    private static ulong Next(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
