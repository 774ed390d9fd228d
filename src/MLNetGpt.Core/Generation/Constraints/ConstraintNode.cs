using System.Text;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// A byte language as a tree: the common form that regexes, JSON schemas and choice lists compile
/// to before they become an automaton. Built by <see cref="RegexParser"/>,
/// <see cref="JsonSchemaCompiler"/> and <see cref="OutputConstraint"/>'s choice list.
/// </summary>
internal abstract class ConstraintNode
{
    /// <summary>
    /// How deep a tree may nest. The compilers keep their inputs far below this (regex groups at most 256 deep, JSON
    /// schemas at most 64, prefixItems at most 256); it is the backstop that keeps every recursive walk of a tree (the
    /// state count, the automaton build, JSON escaping) well inside a thread's stack.
    /// </summary>
    public const int MaxDepth = 2_000;

    /// <summary>1 for a byte range; one more than the deepest child otherwise.</summary>
    public int Depth { get; private protected set; } = 1;

    private protected static int DepthOf(ConstraintNode[] items)
    {
        int deepest = 0;
        foreach (var item in items) deepest = Math.Max(deepest, item.Depth);
        return Checked(deepest + 1);
    }

    private protected static int Checked(int depth) => depth <= MaxDepth ? depth
        : throw new ConstraintDepthException($"the expression nests more than {MaxDepth:N0} levels deep");

    /// <summary>The empty string only.</summary>
    public static ConstraintNode Empty { get; } = new SequenceNode([]);

    /// <summary>No string at all.</summary>
    public static ConstraintNode Nothing { get; } = new ChoiceNode([]);

    public static ConstraintNode ByteRange(byte lo, byte hi) => new ByteRangeNode(lo, hi);

    /// <summary>The UTF-8 bytes of <paramref name="text"/>.</summary>
    public static ConstraintNode Literal(string text) => Bytes(Encoding.UTF8.GetBytes(text));

    public static ConstraintNode Bytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 1) return new ByteRangeNode(bytes[0], bytes[0]);
        var items = new ConstraintNode[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) items[i] = new ByteRangeNode(bytes[i], bytes[i]);
        return new SequenceNode(items);
    }

    /// <summary>One character from <paramref name="set"/>, as UTF-8 byte-range sequences.</summary>
    public static ConstraintNode Chars(CodePointSet set)
    {
        var sequences = Utf8Ranges.Sequences(set);
        var branches = new ConstraintNode[sequences.Count];
        for (int i = 0; i < sequences.Count; i++)
        {
            var ranges = sequences[i];
            branches[i] = ranges.Length == 1 ? new ByteRangeNode(ranges[0].Lo, ranges[0].Hi)
                : new SequenceNode(ranges.Select(r => (ConstraintNode)new ByteRangeNode(r.Lo, r.Hi)).ToArray());
        }
        return branches.Length == 1 ? branches[0] : new ChoiceNode(branches);
    }

    public static ConstraintNode Sequence(params ConstraintNode[] items)
    {
        var flat = new List<ConstraintNode>();
        foreach (var item in items)
        {
            if (item is SequenceNode s) flat.AddRange(s.Items);
            else flat.Add(item);
        }
        if (flat.Any(i => ReferenceEquals(i, Nothing))) return Nothing;
        return flat.Count == 1 ? flat[0] : new SequenceNode(flat.ToArray());
    }

    public static ConstraintNode Choice(params ConstraintNode[] items)
    {
        var kept = items.Where(i => !ReferenceEquals(i, Nothing)).ToArray();
        return kept.Length == 1 ? kept[0] : kept.Length == 0 ? Nothing : new ChoiceNode(kept);
    }

    public static ConstraintNode Choice(IEnumerable<ConstraintNode> items) => Choice(items.ToArray());

    /// <summary>
    /// <paramref name="item"/> once or more with <paramref name="separator"/> between (or nothing at all when
    /// <paramref name="allowEmpty"/>): the same language as item (separator item)*, with the item compiled once, not twice.
    /// </summary>
    public static ConstraintNode Separated(ConstraintNode item, ConstraintNode separator, bool allowEmpty)
    {
        if (ReferenceEquals(item, Nothing)) return allowEmpty ? Empty : Nothing;
        return new SeparatedNode(item, separator, allowEmpty);
    }

    public static ConstraintNode Optional(ConstraintNode item) => Choice(item, Empty);

    /// <summary>
    /// <paramref name="item"/> repeated <paramref name="min"/> to <paramref name="max"/> times
    /// (<paramref name="max"/> = -1: unbounded). <paramref name="origin"/> names the repetition in
    /// errors, e.g. "the repetition {2,5000} at position 3".
    /// </summary>
    public static ConstraintNode Repeat(ConstraintNode item, int min, int max, string origin)
    {
        if (max == 0 || ReferenceEquals(item, Empty)) return Empty;
        if (min == 1 && max == 1) return item;
        return new RepeatNode(item, min, max, origin);
    }
}

/// <summary>item (separator item)*, or also nothing when <see cref="AllowEmpty"/>: one copy of the item in the automaton.</summary>
internal sealed class SeparatedNode : ConstraintNode
{
    public SeparatedNode(ConstraintNode item, ConstraintNode separator, bool allowEmpty)
    {
        Item = item;
        Separator = separator;
        AllowEmpty = allowEmpty;
        Depth = Checked(Math.Max(item.Depth, separator.Depth) + 1);
    }

    public ConstraintNode Item { get; }

    public ConstraintNode Separator { get; }

    public bool AllowEmpty { get; }
}

/// <summary>
/// An object's content between the braces: the members in order, each required one present and each optional one present or
/// absent, commas between, then any number of <see cref="Extra"/> members. <see cref="ByteNfa"/> compiles every member once
/// (two tracks: nothing written yet, something written), so a member holding a recursive type is not copied per member before it.
/// </summary>
internal sealed class MembersNode : ConstraintNode
{
    public MembersNode(ConstraintNode[] members, bool[] required, ConstraintNode extra)
    {
        Members = members;
        Required = required;
        Extra = extra;
        Depth = Checked(Math.Max(DepthOf(members), extra.Depth + 1));
    }

    public ConstraintNode[] Members { get; }

    public bool[] Required { get; }

    /// <summary>An undeclared member (key, colon, value), or <see cref="ConstraintNode.Nothing"/> when the object is closed.</summary>
    public ConstraintNode Extra { get; }
}

internal sealed class ByteRangeNode(byte lo, byte hi) : ConstraintNode
{
    public byte Lo { get; } = lo;
    public byte Hi { get; } = hi;
}

internal sealed class SequenceNode : ConstraintNode
{
    public SequenceNode(ConstraintNode[] items)
    {
        Items = items;
        Depth = DepthOf(items);
    }

    public ConstraintNode[] Items { get; }
}

internal sealed class ChoiceNode : ConstraintNode
{
    public ChoiceNode(ConstraintNode[] items)
    {
        Items = items;
        Depth = DepthOf(items);
    }

    public ConstraintNode[] Items { get; }
}

internal sealed class RepeatNode : ConstraintNode
{
    public RepeatNode(ConstraintNode item, int min, int max, string origin)
    {
        Item = item;
        Min = min;
        Max = max;
        Origin = origin;
        Depth = Checked(item.Depth + 1);
    }

    public ConstraintNode Item { get; }

    public int Min { get; }

    /// <summary>-1 when unbounded.</summary>
    public int Max { get; }

    public string Origin { get; }
}

/// <summary>A constraint tree would nest past <see cref="ConstraintNode.MaxDepth"/>; the compiler that built it names the input.</summary>
internal sealed class ConstraintDepthException(string message) : Exception(message);
