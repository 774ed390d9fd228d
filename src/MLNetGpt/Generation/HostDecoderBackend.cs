using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Models;

namespace MLNetGpt.Generation;

/// <summary>
/// The CPU backend. Every output (logits and presents) goes into a pooled pinned buffer that
/// this class allocates with the exact shape, so ONNX Runtime allocates nothing, the present
/// buffers become the next step's past inputs as they are (no copy), and rows can be dropped or
/// joined with plain memory copies.
/// </summary>
internal sealed class HostDecoderBackend : DecoderBackend
{
    private static readonly PinnedBuffer EmptyBytes = PinnedBuffer.Rent(1);

    public HostDecoderBackend(InferenceSession main, InferenceSession? prefill, DecoderGraph graph) : base(main, prefill, graph) { }

    public override bool CanEditRows => true;

    public override IKvCache EmptyCache(int batch) => new HostKvCache(this, batch, 0, null);

    public override (LogitsBuffer Logits, IKvCache Present) Step(in StepInput input, IKvCache pastCache, RunOptions runOptions)
    {
        var past = (HostKvCache)pastCache;
        var session = SessionFor(past);
        var inputs = CommonInputs(input, past);
        int layers = Graph.LayerCount;
        if (FeedsPast(past))
            for (int i = 0; i < 2 * layers; i++)
                inputs.Add((Graph.PastNames[i], past.CreateValue(i)));

        int width = past.Width + input.Length;
        var present = new HostKvCache(this, input.Batch, width, AllocateLayers(input.Batch, width));
        int vocabulary = Graph.VocabularySize;
        int logitsLength = LogitsLength(input, past);
        bool half = Graph.LogitsType == Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16;
        var logitsBuffer = PinnedBuffer.Rent((long)input.Batch * logitsLength * vocabulary * (half ? 2 : 4));
        var outputNames = new List<string>(1 + 2 * layers) { Graph.Logits };
        var outputs = new List<OrtValue>(1 + 2 * layers)
        {
            OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, Graph.LogitsType,
                [input.Batch, logitsLength, vocabulary], logitsBuffer.Pointer, logitsBuffer.Length),
        };
        for (int i = 0; i < 2 * layers; i++)
        {
            outputNames.Add(Graph.PresentNames[i]);
            outputs.Add(present.CreateValue(i));
        }
        try
        {
            session.Run(runOptions, inputs.Select(x => x.Name).ToArray(), inputs.Select(x => x.Value).ToArray(), outputNames, outputs);
            return (new LogitsBuffer(logitsBuffer, input.Batch, logitsLength, vocabulary, half), present);
        }
        catch
        {
            logitsBuffer.Dispose();
            present.Dispose();
            throw;
        }
        finally
        {
            foreach (var (_, value) in inputs) value.Dispose();
            foreach (var value in outputs) value.Dispose();
        }
    }

    public override IKvCache KeepRows(IKvCache cacheToEdit, int[] rows, int width)
    {
        var cache = (HostKvCache)cacheToEdit;
        if (width > cache.Width) throw new ArgumentOutOfRangeException(nameof(width));
        var result = new HostKvCache(this, rows.Length, width, AllocateLayers(rows.Length, width));
        int heads = Graph.KeyValueHeadCount, rowBytes = Graph.HeadSize * ElementSize;
        for (int layer = 0; layer < 2 * Graph.LayerCount; layer++)
        {
            var source = cache.Layer(layer);
            var target = result.Layer(layer);
            for (int r = 0; r < rows.Length; r++)
                for (int h = 0; h < heads; h++)
                {
                    // Keep the last `width` positions of (row, head).
                    long from = (((long)rows[r] * heads + h) * cache.Width + (cache.Width - width)) * rowBytes;
                    long to = ((long)r * heads + h) * width * rowBytes;
                    source.Slice((int)from, width * rowBytes).CopyTo(target.Slice((int)to, width * rowBytes));
                }
        }
        return result;
    }

    public override IKvCache Concat(IKvCache firstCache, IKvCache secondCache)
    {
        var first = (HostKvCache)firstCache;
        var second = (HostKvCache)secondCache;
        int width = Math.Max(first.Width, second.Width), batch = first.Batch + second.Batch;
        var result = new HostKvCache(this, batch, width, AllocateLayers(batch, width));
        int heads = Graph.KeyValueHeadCount, rowBytes = Graph.HeadSize * ElementSize;
        for (int layer = 0; layer < 2 * Graph.LayerCount; layer++)
        {
            var target = result.Layer(layer);
            int rowOffset = 0;
            foreach (var part in new[] { first, second })
            {
                var source = part.Width > 0 ? part.Layer(layer) : default;
                int pad = width - part.Width;
                for (int r = 0; r < part.Batch; r++)
                    for (int h = 0; h < heads; h++)
                    {
                        long to = (((long)(rowOffset + r)) * heads + h) * width * rowBytes;
                        // Padding columns are masked out, but must hold finite numbers: zero them.
                        target.Slice((int)to, pad * rowBytes).Clear();
                        if (part.Width == 0) continue;
                        long from = ((long)r * heads + h) * part.Width * rowBytes;
                        source.Slice((int)from, part.Width * rowBytes).CopyTo(target.Slice((int)(to + pad * rowBytes), part.Width * rowBytes));
                    }
                rowOffset += part.Batch;
            }
        }
        return result;
    }

    private PinnedBuffer[] AllocateLayers(int batch, int width)
    {
        long bytes = (long)batch * Graph.KeyValueHeadCount * width * Graph.HeadSize * ElementSize;
        var layers = new PinnedBuffer[2 * Graph.LayerCount];
        for (int i = 0; i < layers.Length; i++) layers[i] = PinnedBuffer.Rent(bytes);
        return layers;
    }

    private sealed class HostKvCache(HostDecoderBackend owner, int batch, int width, PinnedBuffer[]? layers) : IKvCache
    {
        private PinnedBuffer[]? _layers = layers;

        public int Batch { get; } = batch;
        public int Width { get; } = width;

        public Span<byte> Layer(int index) => _layers![index].Bytes;

        public OrtValue CreateValue(int index)
        {
            var g = owner.Graph;
            long[] shape = [Batch, g.KeyValueHeadCount, Width, g.HeadSize];
            var buffer = _layers?[index] ?? EmptyBytes;
            return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, g.CacheType, shape, buffer.Pointer,
                _layers is null ? 0 : buffer.Length);
        }

        public void Dispose()
        {
            var layers = Interlocked.Exchange(ref _layers, null);
            if (layers is null) return;
            foreach (var layer in layers) layer.Dispose();
        }
    }
}
