namespace MLNetGpt.Generation;

/// <summary>
/// Which key/value cache columns of one batch row hold its real tokens (1) and which are padding (0).
/// Rows are usually left-padded, but a row that starts from a shared prompt head has padding between
/// the head and its own tokens, so the pattern is kept per row rather than derived from a length.
/// </summary>
internal sealed class ColumnMask
{
    private byte[] _bits;
    private int _start;

    public ColumnMask(int capacity = 64) => _bits = new byte[Math.Max(16, capacity)];

    /// <summary>Columns covered (the cache width of the row's batch).</summary>
    public int Width { get; private set; }

    /// <summary>Appends <paramref name="count"/> columns that are all real or all padding.</summary>
    public void Append(bool real, int count = 1)
    {
        if (count <= 0) return;
        Reserve(count);
        _bits.AsSpan(_start + Width, count).Fill(real ? (byte)1 : (byte)0);
        Width += count;
    }

    /// <summary>Drops the first <paramref name="count"/> columns (the batch's cache was trimmed from the left).</summary>
    public void DropFront(int count)
    {
        if (count < 0 || count > Width) throw new ArgumentOutOfRangeException(nameof(count), count, $"The mask has {Width} columns.");
        _start += count;
        Width -= count;
    }

    /// <summary>Adds <paramref name="count"/> padding columns in front (the row joined a wider batch).</summary>
    public void PadFront(int count)
    {
        if (count <= 0) return;
        var bits = new byte[Math.Max(_bits.Length, Width + count) * 2];
        _bits.AsSpan(_start, Width).CopyTo(bits.AsSpan(count));
        _bits = bits;
        _start = 0;
        Width += count;
    }

    /// <summary>Writes the columns as 0/1 attention-mask values.</summary>
    public void CopyTo(Span<long> destination)
    {
        var bits = _bits.AsSpan(_start, Width);
        for (int i = 0; i < bits.Length; i++) destination[i] = bits[i];
    }

    public ColumnMask Clone()
    {
        var copy = new ColumnMask(Width + 16);
        _bits.AsSpan(_start, Width).CopyTo(copy._bits);
        copy.Width = Width;
        return copy;
    }

    private void Reserve(int more)
    {
        if (_start + Width + more <= _bits.Length) return;
        var bits = new byte[Math.Max(_bits.Length * 2, Width + more + 16)];
        _bits.AsSpan(_start, Width).CopyTo(bits);
        _bits = bits;
        _start = 0;
    }
}
