namespace MLNetGpt.Generation;

/// <summary>
/// A small, portable random stream (xoshiro256**) per sequence. It is seeded from the user's seed
/// and the prompt's token ids, so a prompt draws the same numbers whatever batch it runs in, on any
/// platform and .NET version (System.Random gives no such promise).
/// </summary>
internal sealed class SequenceRandom
{
    private ulong _s0, _s1, _s2, _s3;

    public SequenceRandom(ulong seed)
    {
        ulong x = seed;
        _s0 = SplitMix64(ref x);
        _s1 = SplitMix64(ref x);
        _s2 = SplitMix64(ref x);
        _s3 = SplitMix64(ref x);
    }

    /// <summary>The stream for one prompt: the same seed and prompt always give the same stream.</summary>
    public static SequenceRandom ForPrompt(int? seed, ReadOnlySpan<int> promptIds)
    {
        ulong baseSeed = seed is int s ? unchecked((ulong)(uint)s) : unchecked((ulong)System.Security.Cryptography.RandomNumberGenerator.GetInt32(int.MaxValue) << 20);
        ulong hash = 14695981039346656037UL;                      // FNV-1a over the ids
        foreach (int id in promptIds)
        {
            hash ^= unchecked((uint)id);
            hash *= 1099511628211UL;
        }
        ulong mixed = baseSeed;
        mixed = SplitMix64(ref mixed) ^ hash;
        return new SequenceRandom(mixed);
    }

    /// <summary>A uniform number in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    public ulong Next()
    {
        ulong result = RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = RotateLeft(_s3, 45);
        return result;
    }

    private static ulong RotateLeft(ulong x, int k) => (x << k) | (x >> (64 - k));

    private static ulong SplitMix64(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
