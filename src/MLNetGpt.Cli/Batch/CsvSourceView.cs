using System.Security.Cryptography;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetGpt.Cli.Csv;

namespace MLNetGpt.Cli.Batch;

/// <summary>A row that cannot be processed; written to the output with its error, in order.</summary>
internal sealed record RejectedRow(long Index, CsvRecord Record, string Error);

/// <summary>
/// A streaming ML.NET view of a CSV file for the batch jobs: the model input (built by a
/// <see cref="PromptBuilder"/>) plus the row's index, physical line, exact text and field count, which
/// pass through the pipeline so the output can repeat each input row byte for byte. Rows whose input
/// cannot be built are diverted to <see cref="Rejected"/> instead. A sharded job's view holds only its
/// shard's rows (the index stays the row's index in the whole input). When <see cref="Stop"/> is set, the
/// view ends early, so the pipeline finishes the rows it already read.
/// </summary>
internal sealed class CsvSourceView : IDataView
{
    public const string RowColumn = "__row";
    public const string LineColumn = "__line";
    public const string RawColumn = "__raw";
    public const string FieldsColumn = "__fields";
    public const string InputColumn = "__input";
    public const string SecondInputColumn = "__input2";

    private readonly string _path;
    private readonly PromptBuilder _input;
    private readonly PromptBuilder? _secondInput;
    private readonly ShardAssignment _shard;
    private readonly long _skip;

    /// <summary>A view of <paramref name="shard"/>'s rows of the file, after the first <paramref name="skip"/> of them (a resumed job's finished rows).</summary>
    public CsvSourceView(string path, PromptBuilder input, PromptBuilder? secondInput, ShardAssignment shard, long skip)
    {
        _path = path;
        _input = input;
        _secondInput = secondInput;
        _shard = shard;
        _skip = skip;
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(RowColumn, NumberDataViewType.Int64);
        builder.AddColumn(LineColumn, NumberDataViewType.Int64);
        builder.AddColumn(RawColumn, TextDataViewType.Instance);
        builder.AddColumn(FieldsColumn, NumberDataViewType.Int32);
        builder.AddColumn(InputColumn, TextDataViewType.Instance);
        if (secondInput is not null) builder.AddColumn(SecondInputColumn, TextDataViewType.Instance);
        Schema = builder.ToSchema();
    }

    public DataViewSchema Schema { get; }

    public bool CanShuffle => false;

    /// <summary>Rows diverted because their input could not be built, in file order.</summary>
    public Queue<RejectedRow> Rejected { get; } = new();

    /// <summary>Set to end the view at the next row (an interrupt).</summary>
    public volatile bool Stop;

    /// <summary>The SHA-256 of the whole file as this pass read it; set when a cursor reached the end of the file.</summary>
    public string? Sha256OfWhatWasRead { get; private set; }

    public long? GetRowCount() => null;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(this);

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => [new Cursor(this)];

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly CsvSourceView _view;
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly CsvReader _reader;
        private long _position = -1;
        private long _index = -1;
        private long _taken;
        private readonly ShardMap _shards;
        private CsvRecord? _record;
        private string? _input, _secondInput;

        public Cursor(CsvSourceView view)
        {
            _view = view;
            _shards = new ShardMap(view._shard.Count);
            _reader = new CsvReader(view._path, _hash);
            _reader.Read();   // the header
        }

        public override DataViewSchema Schema => _view.Schema;
        public override long Position => _position;
        public override long Batch => 0;

        public override bool MoveNext()
        {
            while (!_view.Stop)
            {
                var record = _reader.Read();
                if (record is null)
                {
                    _reader.Drain();
                    _view.Sha256OfWhatWasRead = Convert.ToHexStringLower(_hash.GetCurrentHash());
                    return false;
                }
                _index++;
                if (_shards.ShardOf(_index) != _view._shard.Index || _taken++ < _view._skip) continue;
                var (input, error) = _view._input.Build(record.Fields, record.Line);
                string? second = null;
                if (error is null && _view._secondInput is not null) (second, error) = _view._secondInput.Build(record.Fields, record.Line);
                if (error is not null)
                {
                    _view.Rejected.Enqueue(new RejectedRow(_index, record, error));
                    continue;
                }
                _record = record;
                _input = input;
                _secondInput = second;
                _position++;
                return true;
            }
            return false;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => true;

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_index, 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            Delegate getter = column.Name switch
            {
                RowColumn => (ValueGetter<long>)((ref long v) => v = _index),
                LineColumn => (ValueGetter<long>)((ref long v) => v = _record!.Line),
                RawColumn => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> v) => v = _record!.Raw.AsMemory()),
                FieldsColumn => (ValueGetter<int>)((ref int v) => v = _record!.Fields.Length),
                InputColumn => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> v) => v = _input.AsMemory()),
                SecondInputColumn => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> v) => v = _secondInput.AsMemory()),
                _ => throw new ArgumentOutOfRangeException(nameof(column), column.Name, "Unknown column."),
            };
            return (ValueGetter<TValue>)getter;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _reader.Dispose();
                _hash.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
