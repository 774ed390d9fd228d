using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>Wraps a data view and counts the rows its cursors move over (to prove laziness).</summary>
public sealed class CountingDataView(IDataView inner) : IDataView
{
    private int _rowsRead;

    public int RowsRead => _rowsRead;

    public bool CanShuffle => inner.CanShuffle;
    public DataViewSchema Schema => inner.Schema;
    public long? GetRowCount() => inner.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, inner.GetRowCursor(columnsNeeded, rand));

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor(CountingDataView owner, DataViewRowCursor inner) : DataViewRowCursor
    {
        public override DataViewSchema Schema => inner.Schema;
        public override long Position => inner.Position;
        public override long Batch => inner.Batch;
        public override bool MoveNext()
        {
            bool moved = inner.MoveNext();
            if (moved) Interlocked.Increment(ref owner._rowsRead);
            return moved;
        }
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => inner.GetGetter<TValue>(column);
        public override ValueGetter<DataViewRowId> GetIdGetter() => inner.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => inner.IsColumnActive(column);
        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}

/// <summary>SchemaShape.Create is internal to ML.NET; estimators' GetOutputSchema takes its result.</summary>
public static class Shapes
{
    public static SchemaShape Of(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic,
            [typeof(DataViewSchema)])!.Invoke(null, [schema])!;
}
