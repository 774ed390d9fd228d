using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetGpt.Transforms;

/// <summary>The lazy output of a stage over a source view.</summary>
internal sealed class StageDataView : IDataView
{
    private readonly GptTransformerBase _stage;
    private readonly IDataView _source;

    public StageDataView(GptTransformerBase stage, IDataView source, DataViewSchema schema)
    {
        _stage = stage;
        _source = source;
        Schema = schema;
    }

    public DataViewSchema Schema { get; }

    /// <summary>Rows are generated in batches in source order; shuffling would defeat both.</summary>
    public bool CanShuffle => false;

    public long? GetRowCount() => _source.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).ToHashSet();
        int sourceCount = _source.Schema.Count;
        bool anyOutput = needed.Any(i => i >= sourceCount);
        var sourceColumns = needed.Where(i => i < sourceCount).Select(i => _source.Schema[i]).ToList();
        if (anyOutput)
            foreach (var (name, _) in _stage.InputColumns)
                sourceColumns.Add(_source.Schema[name]);
        var sourceCursor = _source.GetRowCursor(sourceColumns.DistinctBy(c => c.Index));
        if (!anyOutput) return new PassThroughCursor(Schema, sourceCursor);
        return new StageCursor(_stage, Schema, _source.Schema, sourceCursor, needed);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];
}

/// <summary>A cursor for when no output column of the stage is needed: the source, as it is.</summary>
internal sealed class PassThroughCursor : DataViewRowCursor
{
    private readonly DataViewRowCursor _source;

    public PassThroughCursor(DataViewSchema schema, DataViewRowCursor source)
    {
        Schema = schema;
        _source = source;
    }

    public override DataViewSchema Schema { get; }
    public override long Position => _source.Position;
    public override long Batch => _source.Batch;
    public override bool MoveNext() => _source.MoveNext();
    public override ValueGetter<DataViewRowId> GetIdGetter() => _source.GetIdGetter();
    public override bool IsColumnActive(DataViewSchema.Column column) => column.Index < _source.Schema.Count && _source.IsColumnActive(_source.Schema[column.Index]);
    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => _source.GetGetter<TValue>(_source.Schema[column.Index]);

    protected override void Dispose(bool disposing)
    {
        if (disposing) _source.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// Reads source rows ahead (at most <see cref="GptTransformerBase.LookAhead"/> beyond the row the
/// consumer asks for), keeps a copy of each row's pass-through cells until it is yielded, lets the
/// stage's mapper compute outputs (in any order), and yields rows in source order. Memory holds
/// about one batch of rows, however long the source.
/// </summary>
internal sealed class StageCursor : DataViewRowCursor, IRowSource
{
    private sealed class Entry(object?[] cells)
    {
        public object?[] Cells { get; } = cells;
        public object?[]? Outputs { get; set; }
    }

    private readonly GptTransformerBase _stage;
    private readonly DataViewRowCursor _source;
    private readonly RowStreamMapper _mapper;
    private readonly int _sourceCount;
    private readonly int[] _cellColumns;                        // source column indices copied per row
    private readonly Dictionary<int, int> _cellSlot = [];        // source column index -> slot in Entry.Cells
    private readonly Func<DataViewRow, object?>[] _cellReaders;
    private readonly Func<DataViewRow, object?>[] _inputReaders;
    private readonly string[] _inputNames;
    private readonly Dictionary<long, Entry> _pending = [];
    private readonly HashSet<int> _active;
    private readonly CancellationTokenSource _cancellation = new();
    private Entry? _current;
    private long _position = -1;
    private long _target;
    private long _nextToPull;
    private bool _sourceEnded;
    private bool _mapperDone;

    public StageCursor(GptTransformerBase stage, DataViewSchema schema, DataViewSchema sourceSchema, DataViewRowCursor source, HashSet<int> needed)
    {
        _stage = stage;
        Schema = schema;
        _source = source;
        _sourceCount = sourceSchema.Count;
        _active = needed;
        _cellColumns = needed.Where(i => i < _sourceCount).Order().ToArray();
        for (int i = 0; i < _cellColumns.Length; i++) _cellSlot[_cellColumns[i]] = i;
        _cellReaders = _cellColumns.Select(i => CellCopier.Reader(sourceSchema[i])).ToArray();
        _inputNames = stage.InputColumns.Select(c => c.Name).ToArray();
        _inputReaders = stage.InputColumns.Select(c => InputReader(sourceSchema[c.Name], c.Kind)).ToArray();
        _mapper = stage.CreateMapper();
    }

    public override DataViewSchema Schema { get; }
    public override long Position => _position;
    public override long Batch => 0;

    public override bool MoveNext()
    {
        _pending.Remove(_position);
        _target = _position + 1;
        while (true)
        {
            if (_pending.TryGetValue(_target, out var entry) && entry.Outputs is not null)
            {
                _current = entry;
                _position = _target;
                return true;
            }
            if (_mapperDone)
            {
                if (_pending.ContainsKey(_target))
                    throw new InvalidOperationException($"{_stage.Describe(_target, _inputNames[0])}: the row was read but no output was produced.");
                _current = null;
                return false;
            }
            _stage.CheckAlive();
            if (!_mapper.Step(this, Emit, _cancellation.Token)) _mapperDone = true;
        }
    }

    PullResult IRowSource.TryPull(out RowInput? row)
    {
        row = null;
        if (_sourceEnded) return PullResult.End;
        if (_nextToPull >= _target + _stage.LookAhead) return PullResult.Wait;
        if (!_source.MoveNext())
        {
            _sourceEnded = true;
            return PullResult.End;
        }
        var cells = new object?[_cellReaders.Length];
        for (int i = 0; i < cells.Length; i++) cells[i] = _cellReaders[i](_source);
        var inputs = new object?[_inputReaders.Length];
        for (int i = 0; i < inputs.Length; i++) inputs[i] = _inputReaders[i](_source);
        _pending[_nextToPull] = new Entry(cells);
        row = new RowInput(_nextToPull, inputs);
        _nextToPull++;
        return PullResult.Row;
    }

    private void Emit(long index, object?[] outputs)
    {
        if (!_pending.TryGetValue(index, out var entry))
            throw new InvalidOperationException($"{_stage.Describe(index, _inputNames[0])}: an output arrived for a row that is not pending.");
        entry.Outputs = outputs;
    }

    public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

    public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
    {
        if (!_active.Contains(column.Index))
            throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was created.");
        Delegate getter;
        if (column.Index >= _sourceCount)
        {
            int output = column.Index - _sourceCount;
            getter = CellCopier.Getter(column, () => Current.Outputs![output]);
        }
        else
        {
            int slot = _cellSlot[column.Index];
            getter = CellCopier.Getter(column, () => Current.Cells[slot]);
        }
        return getter as ValueGetter<TValue>
            ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}; a getter of {typeof(TValue).Name} was asked for.");
    }

    private Entry Current => _current ?? throw new InvalidOperationException("The cursor is not on a row.");

    internal static Func<DataViewRow, object?> InputReader(DataViewSchema.Column column, InputKind kind)
    {
        if (kind == InputKind.Text)
        {
            var buffer = default(ReadOnlyMemory<char>);
            return row =>
            {
                row.GetGetter<ReadOnlyMemory<char>>(column)(ref buffer);
                return buffer.ToString();
            };
        }
        var ids = default(VBuffer<int>);
        return row =>
        {
            row.GetGetter<VBuffer<int>>(column)(ref ids);
            var dense = new int[ids.Length];
            ids.CopyTo(dense);
            return dense;
        };
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _cancellation.Cancel();
            _mapper.Dispose();
            _source.Dispose();
            _cancellation.Dispose();
        }
        base.Dispose(disposing);
    }
}

/// <summary>Computes a stage's outputs one row at a time, for <c>PredictionEngine</c>.</summary>
internal sealed class StageRowMapper : IRowToRowMapper
{
    private readonly GptTransformerBase _stage;

    public StageRowMapper(GptTransformerBase stage, DataViewSchema inputSchema, DataViewSchema outputSchema)
    {
        _stage = stage;
        InputSchema = inputSchema;
        OutputSchema = outputSchema;
    }

    public DataViewSchema InputSchema { get; }
    public DataViewSchema OutputSchema { get; }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var columns = dependingColumns.ToList();
        var result = columns.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToList();
        if (columns.Any(c => c.Index >= InputSchema.Count))
            result.AddRange(_stage.InputColumns.Select(c => InputSchema[c.Name]));
        return result.DistinctBy(c => c.Index);
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new StageRow(_stage, OutputSchema, input, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class StageRow : DataViewRow, IRowSource
    {
        private readonly GptTransformerBase _stage;
        private readonly DataViewRow _input;
        private readonly HashSet<int> _active;
        private readonly Func<DataViewRow, object?>[] _inputReaders;
        private long _computedAt = -1;
        private object?[]? _outputs;
        private bool _pulled;

        public StageRow(GptTransformerBase stage, DataViewSchema schema, DataViewRow input, HashSet<int> active)
        {
            _stage = stage;
            Schema = schema;
            _input = input;
            _active = active;
            _inputReaders = stage.InputColumns.Select(c => StageCursor.InputReader(input.Schema[c.Name], c.Kind)).ToArray();
        }

        public override DataViewSchema Schema { get; }
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int sourceCount = _input.Schema.Count;
            if (column.Index < sourceCount) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            int output = column.Index - sourceCount;
            var getter = CellCopier.Getter(column, () => Compute()[output]);
            return (ValueGetter<TValue>)getter;
        }

        private object?[] Compute()
        {
            if (_outputs is not null && _computedAt == _input.Position) return _outputs;
            _pulled = false;
            object?[]? result = null;
            using var mapper = _stage.CreateMapper();
            while (result is null && mapper.Step(this, (_, outputs) => result = outputs, CancellationToken.None)) { }
            _computedAt = _input.Position;
            _outputs = result ?? throw new InvalidOperationException($"{_stage.Describe(_input.Position, _stage.InputColumns[0].Name)}: no output was produced.");
            return _outputs;
        }

        PullResult IRowSource.TryPull(out RowInput? row)
        {
            row = null;
            if (_pulled) return PullResult.End;
            _pulled = true;
            row = new RowInput(Math.Max(0, _input.Position), _inputReaders.Select(read => read(_input)).ToArray());
            return PullResult.Row;
        }
    }
}
