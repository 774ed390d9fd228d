using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetGpt.Cli.Batch;

/// <summary>Typed access to the current row of the output cursor by column name.</summary>
internal sealed class RowGetters(DataViewRowCursor cursor)
{
    private readonly Dictionary<string, Delegate> _getters = [];

    private ValueGetter<T> Get<T>(string name)
    {
        if (!_getters.TryGetValue(name, out var getter))
            _getters[name] = getter = cursor.GetGetter<T>(cursor.Schema[name]);
        return (ValueGetter<T>)getter;
    }

    public string Text(string name)
    {
        ReadOnlyMemory<char> value = default;
        Get<ReadOnlyMemory<char>>(name)(ref value);
        return value.ToString();
    }

    /// <summary>A numeric column's value (<c>long</c>, <c>int</c>, <c>double</c> or <c>float</c>).</summary>
    public T Value<T>(string name) where T : struct
    {
        T value = default;
        Get<T>(name)(ref value);
        return value;
    }

    public T[] Vector<T>(string name)
    {
        VBuffer<T> value = default;
        Get<VBuffer<T>>(name)(ref value);
        return value.DenseValues().ToArray();
    }

    public int VectorLength(string name)
    {
        VBuffer<int> value = default;
        Get<VBuffer<int>>(name)(ref value);
        return value.Length;
    }
}
