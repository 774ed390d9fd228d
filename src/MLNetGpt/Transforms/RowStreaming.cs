using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetGpt.Transforms;

/// <summary>The values a stage reads from one source row, with the row's index in the source.</summary>
internal sealed class RowInput
{
    public RowInput(long index, object?[] values)
    {
        Index = index;
        Values = values;
    }

    public long Index { get; }

    /// <summary>One value per input column of the stage: string for text, int[] for token ids.</summary>
    public object?[] Values { get; }
}

internal enum PullResult
{
    /// <summary>A row was read.</summary>
    Row,

    /// <summary>More rows exist, but the consumer has not asked for them yet.</summary>
    Wait,

    /// <summary>The source has no more rows.</summary>
    End,
}

/// <summary>Where a stage pulls its source rows from, lazily.</summary>
internal interface IRowSource
{
    PullResult TryPull(out RowInput? row);
}

/// <summary>
/// The computation of one stage over a stream of rows. <see cref="Step"/> does one unit of work
/// (a batch, or one decode step), pulling rows as it needs them and emitting each row's output
/// values (one per output column) when they are ready, in any order.
/// </summary>
internal abstract class RowStreamMapper : IDisposable
{
    /// <summary>Returns false when the source is exhausted and every pulled row was emitted.</summary>
    public abstract bool Step(IRowSource source, Action<long, object?[]> emit, CancellationToken cancellationToken);

    public virtual void Dispose() { }
}

/// <summary>A mapper that processes rows in independent batches of a fixed size.</summary>
internal abstract class BatchRowMapper : RowStreamMapper
{
    private readonly int _batchSize;
    private bool _ended;

    protected BatchRowMapper(int batchSize) => _batchSize = batchSize;

    public override bool Step(IRowSource source, Action<long, object?[]> emit, CancellationToken cancellationToken)
    {
        if (_ended) return false;
        var batch = new List<RowInput>(_batchSize);
        while (batch.Count < _batchSize)
        {
            var result = source.TryPull(out var row);
            if (result == PullResult.Row) batch.Add(row!);
            else
            {
                if (result == PullResult.End) _ended = true;
                break;
            }
        }
        if (batch.Count > 0)
        {
            var outputs = MapBatch(batch, cancellationToken);
            for (int i = 0; i < batch.Count; i++) emit(batch[i].Index, outputs[i]);
        }
        return !_ended || batch.Count > 0;
    }

    /// <summary>Output values for every row of the batch, in the batch's order.</summary>
    protected abstract object?[][] MapBatch(IReadOnlyList<RowInput> rows, CancellationToken cancellationToken);
}

/// <summary>Copies cell values out of a row so they outlive the cursor's position, and serves them back.</summary>
internal static class CellCopier
{
    /// <summary>A function that reads column <paramref name="column"/> of a row into a boxed, independent copy.</summary>
    public static Func<DataViewRow, object?> Reader(DataViewSchema.Column column)
    {
        var method = typeof(CellCopier).GetMethod(column.Type is VectorDataViewType ? nameof(VectorReader) : nameof(ScalarReader),
            System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!;
        var itemType = column.Type is VectorDataViewType vector ? vector.ItemType.RawType : column.Type.RawType;
        return (Func<DataViewRow, object?>)method.MakeGenericMethod(itemType).Invoke(null, [column])!;
    }

    /// <summary>A getter that serves a value stored by <see cref="Reader"/>.</summary>
    public static Delegate Getter(DataViewSchema.Column column, Func<object?> current)
    {
        var method = typeof(CellCopier).GetMethod(column.Type is VectorDataViewType ? nameof(VectorGetter) : nameof(ScalarGetter),
            System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!;
        var itemType = column.Type is VectorDataViewType vector ? vector.ItemType.RawType : column.Type.RawType;
        return (Delegate)method.MakeGenericMethod(itemType).Invoke(null, [current])!;
    }

    private static Func<DataViewRow, object?> ScalarReader<T>(DataViewSchema.Column column) => row =>
    {
        T value = default!;
        row.GetGetter<T>(column)(ref value);
        return value;
    };

    private static Func<DataViewRow, object?> VectorReader<T>(DataViewSchema.Column column) => row =>
    {
        VBuffer<T> value = default;
        row.GetGetter<VBuffer<T>>(column)(ref value);
        VBuffer<T> copy = default;
        value.CopyTo(ref copy);
        return copy;
    };

    private static ValueGetter<T> ScalarGetter<T>(Func<object?> current) => (ref T value) => value = (T)current()!;

    private static ValueGetter<VBuffer<T>> VectorGetter<T>(Func<object?> current) => (ref VBuffer<T> value) =>
    {
        var stored = (VBuffer<T>)current()!;
        stored.CopyTo(ref value);
    };
}
