using MLNetGpt.Models;

namespace MLNetGpt.Generation;

/// <summary>
/// Which key/value cache columns of one batch row hold its real tokens (1) and which are padding (0).
/// With left padding (the usual layout) the pattern is kept per column: a row that starts from a
/// shared prompt head has padding between the head and its own tokens. With right padding
/// (GroupQueryAttention) a row's real tokens always start at column 0, so a count is enough.
/// </summary>
internal sealed class ColumnMask
{
    private readonly PaddingSide _side;
    private byte[] _bits;
    private int _start;

    public ColumnMask(int capacity = 64, PaddingSide side = PaddingSide.Left)
    {
        _side = side;
        _bits = side == PaddingSide.Left ? new byte[Math.Max(16, capacity)] : [];
    }

    /// <summary>Columns covered (the cache width of the row's batch).</summary>
    public int Width { get; private set; }

    /// <summary>Real columns.</summary>
    public int Real { get; private set; }

    /// <summary>The columns a trimmed cache must keep for this row (from its first real column to the padding side).</summary>
    public int Span
    {
        get
        {
            if (_side == PaddingSide.Right) return Real;
            int first = _bits.AsSpan(_start, Width).IndexOf((byte)1);
            return first < 0 ? 0 : Width - first;
        }
    }

    /// <summary>Appends <paramref name="count"/> new columns (the cache grew) that are all real or all padding.</summary>
    public void Append(bool real, int count = 1)
    {
        if (count <= 0) return;
        if (real) Real += count;
        if (_side == PaddingSide.Left)
        {
            Reserve(count);
            _bits.AsSpan(_start + Width, count).Fill(real ? (byte)1 : (byte)0);
        }
        Width += count;
    }

    /// <summary>Removes <paramref name="count"/> padding columns from the padding side (the batch's cache was trimmed).</summary>
    public void Trim(int count)
    {
        if (count < 0 || count > Width - Span) throw new ArgumentOutOfRangeException(nameof(count), count, $"The row has {Width - Span} padding columns to trim.");
        if (_side == PaddingSide.Left) _start += count;
        Width -= count;
    }

    /// <summary>Adds <paramref name="count"/> padding columns on the padding side (the row joined a wider batch).</summary>
    public void Pad(int count)
    {
        if (count <= 0) return;
        if (_side == PaddingSide.Left)
        {
            var bits = new byte[Math.Max(_bits.Length, Width + count) * 2];
            _bits.AsSpan(_start, Width).CopyTo(bits.AsSpan(count));
            _bits = bits;
            _start = 0;
        }
        Width += count;
    }

    /// <summary>
    /// Turns the last <paramref name="count"/> columns, which must be real, into padding: positions a speculative
    /// step fed and verification rejected. With right padding the row simply ends earlier.
    /// </summary>
    public void Unmark(int count)
    {
        if (count <= 0) return;
        if (count > Real) throw new ArgumentOutOfRangeException(nameof(count), count, $"The row has {Real} real columns.");
        if (_side == PaddingSide.Left)
        {
            var last = _bits.AsSpan(_start + Width - count, count);
            if (last.Contains((byte)0)) throw new InvalidOperationException($"The last {count} columns are not all real.");
            last.Clear();
        }
        Real -= count;
    }

    /// <summary>Padding columns at the end of the row (the side new columns are appended to).</summary>
    public int TrailingPadding
    {
        get
        {
            if (_side == PaddingSide.Right) return Width - Real;
            int last = _bits.AsSpan(_start, Width).LastIndexOf((byte)1);
            return Width - 1 - last;
        }
    }

    /// <summary>Removes <paramref name="count"/> trailing padding columns (the batch's cache lost its last columns).</summary>
    public void TrimEnd(int count)
    {
        if (count < 0 || count > TrailingPadding)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"The row has {TrailingPadding} trailing padding columns.");
        Width -= count;
    }

    /// <summary>An independent copy (a row's state copied for another row).</summary>
    public ColumnMask Clone()
    {
        var copy = new ColumnMask(Width + 16, _side) { Width = Width, Real = Real };
        if (_side == PaddingSide.Left) _bits.AsSpan(_start, Width).CopyTo(copy._bits);
        return copy;
    }

    /// <summary>Writes the columns as 0/1 attention-mask values.</summary>
    public void CopyTo(Span<long> destination)
    {
        if (_side == PaddingSide.Right)
        {
            destination[..Real].Fill(1);
            destination[Real..Width].Clear();
            return;
        }
        var bits = _bits.AsSpan(_start, Width);
        for (int i = 0; i < bits.Length; i++) destination[i] = bits[i];
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
