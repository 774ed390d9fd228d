namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// The standard utf8-ranges construction: a range of scalar values becomes a short list of
/// byte-range sequences (each sequence one byte range per UTF-8 byte) whose union matches exactly
/// the UTF-8 encodings of the range. Each sequence is a "rectangle": every combination of bytes
/// from its ranges is a valid encoding inside the range, which is what lets a multi-byte character
/// be matched one byte (and so one token piece) at a time.
/// </summary>
internal static class Utf8Ranges
{
    public static List<(byte Lo, byte Hi)[]> Sequences(CodePointSet set)
    {
        var output = new List<(byte, byte)[]>();
        foreach (var (lo, hi) in set.Ranges) Split(lo, hi, output);
        return output;
    }

    private static readonly int[] LengthLimits = [0x7F, 0x7FF, 0xFFFF];

    private static void Split(int lo, int hi, List<(byte, byte)[]> output)
    {
        if (lo > hi) return;
        if (lo <= 0xDFFF && hi >= 0xD800)
        {
            Split(lo, 0xD7FF, output);
            Split(0xE000, hi, output);
            return;
        }
        foreach (int limit in LengthLimits)
        {
            if (lo <= limit && hi > limit)
            {
                Split(lo, limit, output);
                Split(limit + 1, hi, output);
                return;
            }
        }
        if (hi <= 0x7F)
        {
            output.Add([((byte)lo, (byte)hi)]);
            return;
        }
        int length = Length(hi);
        for (int i = 1; i < length; i++)
        {
            int mask = (1 << (6 * i)) - 1;
            if ((lo & ~mask) == (hi & ~mask)) continue;
            if ((lo & mask) != 0)
            {
                Split(lo, lo | mask, output);
                Split((lo | mask) + 1, hi, output);
                return;
            }
            if ((hi & mask) != mask)
            {
                Split(lo, (hi & ~mask) - 1, output);
                Split(hi & ~mask, hi, output);
                return;
            }
        }
        var loBytes = Encode(lo);
        var hiBytes = Encode(hi);
        var sequence = new (byte, byte)[loBytes.Length];
        for (int i = 0; i < sequence.Length; i++) sequence[i] = (loBytes[i], hiBytes[i]);
        output.Add(sequence);
    }

    private static int Length(int codePoint) => codePoint <= 0x7F ? 1 : codePoint <= 0x7FF ? 2 : codePoint <= 0xFFFF ? 3 : 4;

    private static byte[] Encode(int codePoint)
    {
        Span<byte> buffer = stackalloc byte[4];
        int written = new System.Text.Rune(codePoint).EncodeToUtf8(buffer);
        return buffer[..written].ToArray();
    }
}
