using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetGpt.Generation;

namespace MLNetGpt.Transforms;

/// <summary>
/// Scores texts with ML.NET's own <c>ApplyOnnxModel</c> (OnnxTransformer): one forward pass per
/// row over the whole sequence with an empty cache, then log-probabilities from the returned
/// logits. It needs no state between runs, so OnnxTransformer fits; it runs one row per
/// <c>Run</c> (its batch dimension is fixed at 1), which is why the batched engine is the default.
/// </summary>
internal sealed class OnnxTransformerScorer : IDisposable
{
    private readonly GptModelInfo _info;
    private readonly ITransformer _onnx;
    private readonly List<(string Name, int[] Shape)> _emptyPasts = [];
    private readonly bool _positions;
    private readonly bool _useCacheBranch;
    private readonly MLContext _context = new();

    public OnnxTransformerScorer(GptModel model, GptDevice device)
    {
        _info = model.Info;
        var graph = model.Engine.Backend.Graph;
        if (graph.States.Any(state => state.ElementType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float || state.Kind == Models.StateKind.Recurrent)
            || graph.LogitsType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float)
            throw new NotSupportedException("The OnnxTransformer scoring engine needs float32 logits and float32 key/value caches; use ScoringEngine.Batched.");
        _types = [graph.InputIds.ElementType, graph.AttentionMask.ElementType, graph.PositionIds?.ElementType ?? graph.InputIds.ElementType];
        // The pair layout's prefill file takes no past inputs; every other layout gets empty pasts.
        string file = Path.Combine(_info.Folder, _info.ModelFiles[0]);
        bool pasts = _info.Layout != ModelLayout.OptimumDecoderPair;
        _positions = graph.PositionIds is not null;
        _useCacheBranch = graph.UseCacheBranch is not null;
        var inputs = new List<string> { graph.InputIds.Name, graph.AttentionMask.Name };
        if (_positions) inputs.Add(graph.PositionIds!.Name);
        if (_useCacheBranch) inputs.Add(graph.UseCacheBranch!);
        var shapes = new Dictionary<string, int[]>();
        if (pasts)
        {
            foreach (var state in graph.States)
            {
                int[] shape = state.Shape(1, 0).Select(d => (int)d).ToArray();
                _emptyPasts.Add((state.Input, shape));
                shapes[state.Input] = shape;
                inputs.Add(state.Input);
            }
        }
        _inputNames = inputs;
        _onnx = _context.Transforms.ApplyOnnxModel([graph.Logits], inputs.ToArray(), file, shapes, device.GpuDeviceId, device.FallbackToCpu)
            .Fit(Rows([new ScoreRequest([0], 1, false)]));
        _logitsName = graph.Logits;
    }

    private readonly List<string> _inputNames;
    private readonly Microsoft.ML.OnnxRuntime.Tensors.TensorElementType[] _types;
    private readonly string _logitsName;

    public ScoreResult[] Score(IReadOnlyList<ScoreRequest> requests)
    {
        var results = new ScoreResult[requests.Count];
        var view = _onnx.Transform(Rows(requests));
        using var cursor = view.GetRowCursor(view.Schema.Where(c => c.Name == _logitsName));
        var getter = cursor.GetGetter<VBuffer<float>>(view.Schema[_logitsName]);
        var logits = default(VBuffer<float>);
        int vocabulary = _info.VocabularySize;
        for (int r = 0; r < requests.Count; r++)
        {
            if (!cursor.MoveNext()) throw new InvalidOperationException("OnnxTransformer returned fewer rows than it was given.");
            getter(ref logits);
            var values = logits.GetValues();
            var request = requests[r];
            double sum = 0;
            int count = 0;
            for (int next = Math.Max(1, request.FirstScored); next < request.Ids.Length; next++)
            {
                sum += LogitsProcessors.LogProbability(values.Slice((next - 1) * vocabulary, vocabulary), request.Ids[next]);
                count++;
            }
            results[r] = new ScoreResult(sum, count, request.Truncated);
        }
        return results;
    }

    /// <summary>Releases ML.NET's OnnxTransformer and its ONNX Runtime session.</summary>
    public void Dispose() => (_onnx as IDisposable)?.Dispose();

    /// <summary>The graph inputs of each request as one row per request (batch dimension 1).</summary>
    private IDataView Rows(IReadOnlyList<ScoreRequest> requests)
    {
        var columns = new List<(string Name, PrimitiveDataViewType Type, Array[] Values)>();
        // Integer inputs in the element type the graph takes.
        (string, PrimitiveDataViewType, Array[]) Integers(string name, Microsoft.ML.OnnxRuntime.Tensors.TensorElementType type, Func<ScoreRequest, long[]> values) =>
            type == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Int32
                ? (name, NumberDataViewType.Int32, requests.Select(r => (Array)values(r).Select(v => (int)v).ToArray()).ToArray())
                : (name, NumberDataViewType.Int64, requests.Select(r => (Array)values(r)).ToArray());
        columns.Add(Integers(_inputNames[0], _types[0], r => r.Ids.Select(i => (long)i).ToArray()));
        columns.Add(Integers(_inputNames[1], _types[1], r => Enumerable.Repeat(1L, r.Ids.Length).ToArray()));
        int next = 2;
        if (_positions) columns.Add(Integers(_inputNames[next++], _types[2], r => Enumerable.Range(0, r.Ids.Length).Select(i => (long)i).ToArray()));
        if (_useCacheBranch) columns.Add((_inputNames[next++], BooleanDataViewType.Instance, requests.Select(_ => (Array)new[] { false }).ToArray()));
        foreach (var (name, _) in _emptyPasts) columns.Add((name, NumberDataViewType.Single, requests.Select(_ => (Array)Array.Empty<float>()).ToArray()));
        return new VectorRowsView(columns, requests.Count);
    }

    /// <summary>An in-memory view whose every column is a variable-length vector.</summary>
    private sealed class VectorRowsView : IDataView
    {
        private readonly List<(string Name, PrimitiveDataViewType Type, Array[] Values)> _columns;
        private readonly int _rows;

        public VectorRowsView(List<(string Name, PrimitiveDataViewType Type, Array[] Values)> columns, int rows)
        {
            _columns = columns;
            _rows = rows;
            var builder = new DataViewSchema.Builder();
            // use_cache_branch is a fixed [1] tensor; the rest vary in length from row to row.
            foreach (var (name, type, _) in columns)
                builder.AddColumn(name, type == BooleanDataViewType.Instance ? new VectorDataViewType(type, 1) : new VectorDataViewType(type));
            Schema = builder.ToSchema();
        }

        public DataViewSchema Schema { get; }
        public bool CanShuffle => false;
        public long? GetRowCount() => _rows;
        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(this);
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => [new Cursor(this)];

        private sealed class Cursor(VectorRowsView view) : DataViewRowCursor
        {
            private long _position = -1;

            public override DataViewSchema Schema => view.Schema;
            public override long Position => _position;
            public override long Batch => 0;
            public override bool MoveNext() => ++_position < view._rows;
            public override bool IsColumnActive(DataViewSchema.Column column) => true;
            public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                var (_, item, values) = view._columns[column.Index];
                Delegate getter = item == NumberDataViewType.Int64 ? Getter<long>(values)
                    : item == NumberDataViewType.Int32 ? Getter<int>(values)
                    : item == NumberDataViewType.Single ? Getter<float>(values)
                    : Getter<bool>(values);
                return (ValueGetter<TValue>)getter;
            }

            private ValueGetter<VBuffer<T>> Getter<T>(Array[] values) => (ref VBuffer<T> value) =>
            {
                var array = (T[])values[_position];
                value = new VBuffer<T>(array.Length, array);
            };
        }
    }
}
