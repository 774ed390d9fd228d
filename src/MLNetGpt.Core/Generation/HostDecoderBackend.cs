using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Models;

namespace MLNetGpt.Generation;

/// <summary>
/// The CPU backend. Every output (logits and presents) goes into a pooled pinned buffer that this
/// class allocates with the exact shape, so ONNX Runtime allocates nothing, the present buffers
/// become the next step's past inputs as they are (no copy), and rows can be dropped or joined with
/// plain memory copies: for growing caches column ranges per (slice, row, head), on the graph's
/// padding side; for recurrent states whole rows.
/// </summary>
internal sealed class HostDecoderBackend : DecoderBackend
{
    private static readonly PinnedBuffer EmptyBytes = PinnedBuffer.Rent(1);

    public HostDecoderBackend(InferenceSession main, InferenceSession? prefill, DecoderGraph graph) : base(main, prefill, graph)
    {
        // GroupQueryAttention updates a past buffer in place when its present output is the same
        // memory (ONNX Runtime GenAI's past_present_share_buffer): a step then writes only the new
        // positions instead of copying the whole cache into a fresh present.
        ShareBuffer = graph.Padding == PaddingSide.Right && prefill is null;
    }

    /// <summary>Whether growing caches are buffers with room to spare that each step updates in place.</summary>
    public bool ShareBuffer { get; internal set; }

    public override bool CanEditRows => true;

    public override IKvCache EmptyCache(int batch)
    {
        var buffers = new PinnedBuffer?[Graph.States.Count];
        for (int i = 0; i < buffers.Length; i++)
        {
            var state = Graph.States[i];
            if (state.Grows) continue;
            // A recurrent state starts at zero, as ONNX Runtime GenAI starts it.
            buffers[i] = PinnedBuffer.Rent(state.Bytes(batch, 0));
            buffers[i]!.Bytes.Clear();
        }
        return new HostState(this, batch, 0, buffers, capacity: 0);
    }

    public override (LogitsBuffer Logits, IKvCache Present) Step(in StepInput input, IKvCache pastCache, RunOptions runOptions)
    {
        var past = (HostState)pastCache;
        int width = past.Width + input.Length;
        HostState? grown = null;
        if (ShareBuffer && past.Capacity < width)
        {
            // Room for the new positions: a larger buffer with the rows copied over.
            grown = Resized(past, NextCapacity(width));
            past = grown;
        }
        var session = SessionFor(past);
        var inputs = CommonInputs(input, past);
        var states = Graph.States;
        if (FeedsPast(past))
            for (int i = 0; i < states.Count; i++)
                inputs.Add((states[i].Input, past.CreateValue(i)));

        // Shared: the present caches are the past buffers (only recurrent states get new ones).
        var present = ShareBuffer ? past.TakeGrowing(width, Allocate(input.Batch, width, growing: false))
            : new HostState(this, input.Batch, width, Allocate(input.Batch, width), capacity: width);
        int vocabulary = Graph.VocabularySize;
        int logitsLength = LogitsLength(input, past);
        var logitsBuffer = PinnedBuffer.Rent((long)input.Batch * logitsLength * vocabulary * LogitsBuffer.SizeOf(Graph.LogitsType));
        var outputNames = new List<string>(1 + states.Count) { Graph.Logits };
        var outputs = new List<OrtValue>(1 + states.Count)
        {
            OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, Graph.LogitsType,
                [input.Batch, logitsLength, vocabulary], logitsBuffer.Pointer, logitsBuffer.Length),
        };
        for (int i = 0; i < states.Count; i++)
        {
            outputNames.Add(states[i].Output);
            outputs.Add(present.CreateValue(i));
        }
        try
        {
            session.Run(runOptions, inputs.Select(x => x.Name).ToArray(), inputs.Select(x => x.Value).ToArray(), outputNames, outputs);
            return (new LogitsBuffer(logitsBuffer, input.Batch, logitsLength, vocabulary, Graph.LogitsType), present);
        }
        catch (OnnxRuntimeException e) when (!runOptions.Terminate)
        {
            logitsBuffer.Dispose();
            present.Dispose();
            throw StepFailed(e, input, past);
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
            grown?.Dispose();     // what is left of the resized copy: its recurrent inputs
        }
    }

    public override IKvCache KeepRows(IKvCache cacheToEdit, int[] rows, int width)
    {
        var cache = (HostState)cacheToEdit;
        if (width > cache.Width) throw new ArgumentOutOfRangeException(nameof(width));
        var result = New(rows.Length, width);
        // Left padding keeps a row's last columns; right padding its first ones.
        int from = Graph.Padding == PaddingSide.Left ? cache.Width - width : 0;
        for (int s = 0; s < Graph.States.Count; s++)
        {
            var state = Graph.States[s];
            for (int r = 0; r < rows.Length; r++)
                CopyRow(state, cache.Bytes(s), cache.Batch, cache.Capacity, rows[r], from, result.Bytes(s), rows.Length, result.Capacity, r, 0, width);
        }
        return result;
    }

    public override IKvCache TrimEnd(IKvCache cacheToEdit, int columns)
    {
        var cache = (HostState)cacheToEdit;
        if (columns < 0 || columns > cache.Width) throw new ArgumentOutOfRangeException(nameof(columns));
        int width = cache.Width - columns;
        // A shared buffer holds every row from column 0 with room to spare: the next step overwrites the dropped positions.
        if (ShareBuffer) return cache.Narrowed(width);
        var result = New(cache.Batch, width);
        for (int s = 0; s < Graph.States.Count; s++)
        {
            var state = Graph.States[s];
            for (int r = 0; r < cache.Batch; r++)
                CopyRow(state, cache.Bytes(s), cache.Batch, cache.Capacity, r, 0, result.Bytes(s), cache.Batch, result.Capacity, r, 0, width);
        }
        return result;
    }

    public override IKvCache Concat(IKvCache firstCache, IKvCache secondCache)
    {
        var first = (HostState)firstCache;
        var second = (HostState)secondCache;
        int width = Math.Max(first.Width, second.Width), batch = first.Batch + second.Batch;
        var result = New(batch, width);
        for (int s = 0; s < Graph.States.Count; s++)
        {
            var state = Graph.States[s];
            var target = result.Bytes(s);
            // Padding columns are masked out (left) or beyond every row's length (right), but must hold finite numbers: zero them.
            if (state.Grows && (first.Width != second.Width || result.Capacity > width)) target.Clear();
            int rowOffset = 0;
            foreach (var part in new[] { first, second })
            {
                int at = Graph.Padding == PaddingSide.Left ? width - part.Width : 0;
                if (part.Width > 0 || !state.Grows)
                    for (int r = 0; r < part.Batch; r++)
                        CopyRow(state, part.Bytes(s), part.Batch, part.Capacity, r, 0, target, batch, result.Capacity, rowOffset + r, at, part.Width);
                rowOffset += part.Batch;
            }
        }
        return result;
    }

    /// <summary>
    /// Copies <paramref name="columns"/> cached positions of one batch row into another tensor of the
    /// same state: for every leading slice and head of a growing cache the positions of a head are
    /// contiguous (<c>[.., batch, heads, sequence, head size]</c>); a recurrent state copies the row.
    /// </summary>
    private static void CopyRow(StateTensor state, Span<byte> source, int sourceBatch, int sourceWidth, int sourceRow, int sourceColumn,
        Span<byte> target, int targetBatch, int targetWidth, int targetRow, int targetColumn, int columns)
    {
        int size = state.ElementSize;
        if (!state.Grows)
        {
            long rowBytes = (long)state.Inner * size;
            source.Slice(checked((int)(sourceRow * rowBytes)), (int)rowBytes).CopyTo(target.Slice(checked((int)(targetRow * rowBytes)), (int)rowBytes));
            return;
        }
        if (columns == 0) return;
        long positionBytes = (long)state.Inner * size;
        int length = checked((int)(columns * positionBytes));
        for (int o = 0; o < state.Outer; o++)
            for (int h = 0; h < state.Heads; h++)
            {
                long from = ((((long)o * sourceBatch + sourceRow) * state.Heads + h) * sourceWidth + sourceColumn) * positionBytes;
                long to = ((((long)o * targetBatch + targetRow) * state.Heads + h) * targetWidth + targetColumn) * positionBytes;
                source.Slice(checked((int)from), length).CopyTo(target.Slice(checked((int)to), length));
            }
    }

    /// <summary>Buffers for every state (or only the recurrent ones when <paramref name="growing"/> is false).</summary>
    private PinnedBuffer?[] Allocate(int batch, int width, bool growing = true)
    {
        var buffers = new PinnedBuffer?[Graph.States.Count];
        for (int i = 0; i < buffers.Length; i++)
        {
            var state = Graph.States[i];
            if (state.Grows && !growing) continue;
            long bytes = state.Bytes(batch, width);
            buffers[i] = bytes == 0 ? null : PinnedBuffer.Rent(bytes);
        }
        return buffers;
    }

    /// <summary>A state of <paramref name="width"/> positions, with room to grow where buffers are shared.</summary>
    private HostState New(int batch, int width)
    {
        int capacity = ShareBuffer ? NextCapacity(width) : width;
        return new HostState(this, batch, width, Allocate(batch, capacity), capacity);
    }

    /// <summary>Room for at least <paramref name="width"/> positions: doubling keeps the copies on growth rare.</summary>
    private static int NextCapacity(int width) => Math.Max(64, (int)Math.Min(int.MaxValue, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)width)));

    /// <summary>The same rows in buffers of <paramref name="capacity"/> positions.</summary>
    private HostState Resized(HostState state, int capacity)
    {
        var result = new HostState(this, state.Batch, state.Width, Allocate(state.Batch, capacity), capacity);
        for (int s = 0; s < Graph.States.Count; s++)
        {
            var tensor = Graph.States[s];
            if (tensor.Grows) result.Bytes(s).Clear();
            for (int r = 0; r < state.Batch; r++)
                CopyRow(tensor, state.Bytes(s), state.Batch, state.Capacity, r, 0, result.Bytes(s), state.Batch, capacity, r, 0, state.Width);
        }
        return result;
    }

    private sealed class HostState(HostDecoderBackend owner, int batch, int width, PinnedBuffer?[] buffers, int capacity) : IKvCache
    {
        private PinnedBuffer?[]? _buffers = buffers;

        public int Batch { get; } = batch;
        public int Width { get; } = width;

        /// <summary>Positions the growing caches' buffers hold (equal to <see cref="Width"/> unless buffers are shared).</summary>
        public int Capacity { get; } = capacity;

        public Span<byte> Bytes(int index) => _buffers![index] is { } buffer ? buffer.Bytes : default;

        public OrtValue CreateValue(int index)
        {
            var state = owner.Graph.States[index];
            var buffer = _buffers![index];
            // A shared buffer is fed (and written) whole: its rows are right-padded to the capacity.
            return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, state.ElementType, state.Shape(Batch, Capacity),
                (buffer ?? EmptyBytes).Pointer, buffer?.Length ?? 0);
        }

        /// <summary>
        /// A state of <paramref name="newWidth"/> positions that takes over this one's growing buffers
        /// (updated in place by the step) and the given recurrent ones; this state keeps its recurrent buffers.
        /// </summary>
        public HostState TakeGrowing(int newWidth, PinnedBuffer?[] recurrent)
        {
            var mine = _buffers!;
            for (int i = 0; i < mine.Length; i++)
            {
                if (!owner.Graph.States[i].Grows) continue;
                recurrent[i] = mine[i];
                mine[i] = null;
            }
            return new HostState(owner, Batch, newWidth, recurrent, Capacity);
        }

        /// <summary>A state of the first <paramref name="newWidth"/> positions that takes over every buffer of this one.</summary>
        public HostState Narrowed(int newWidth)
        {
            var mine = _buffers!;
            var taken = (PinnedBuffer?[])mine.Clone();
            Array.Clear(mine);
            return new HostState(owner, Batch, newWidth, taken, Capacity);
        }

        public void Dispose()
        {
            var all = Interlocked.Exchange(ref _buffers, null);
            if (all is null) return;
            foreach (var buffer in all) buffer?.Dispose();
        }
    }
}
