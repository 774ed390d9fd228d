using System.Globalization;
using Google.Protobuf;
using MLNetGpt.Models.Onnx.Protos;
using DataLocation = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataLocation;

namespace MLNetGpt.Models.Onnx;

/// <summary>
/// An ONNX model read from (or to be written to) a file: the graph to inspect or edit as
/// <see cref="ModelProto"/> messages, and tensor data read on demand.
/// </summary>
/// <remarks>
/// <para><see cref="Load(string)"/> reads the graph but not the weights: the raw data of the main
/// graph's initializers stays in the file and is read by <see cref="ReadData"/> when asked for (see
/// <see cref="OnnxFileReader"/>); external data (<c>data_location = EXTERNAL</c>) is read from the
/// files beside the model the same way. So checking a model folder (shapes, operators, opsets)
/// costs a few milliseconds whatever the size of the weights. Use <see cref="ReadData"/>, never
/// <c>TensorProto.RawData</c>, to get a tensor's bytes.</para>
/// <para>Fields this code does not declare survive a load and a save unchanged (Google.Protobuf keeps
/// them as unknown fields). Not thread-safe for edits; reads of tensor data may run concurrently.</para>
/// </remarks>
internal sealed class OnnxModelFile
{
    /// <summary>Models whose tensor data reach this size are saved with external data (protobuf caps a message at 2 GiB).</summary>
    public const long DefaultExternalDataThreshold = 1L << 30;

    /// <summary>Offsets of tensors in an external data file are multiples of this (a memory page), so they can be mapped.</summary>
    public const int ExternalDataAlignment = 4096;

    /// <summary>Tensors smaller than this stay inline when a model is saved with external data.</summary>
    public const int MinimumExternalTensorBytes = 1024;

    /// <summary>The most tensor data a model saved inline may hold: protobuf's 2 GiB less room for the graph.</summary>
    private const long MaxInlineBytes = int.MaxValue - (256L << 20);

    private readonly Dictionary<TensorProto, FileRange> _rawInSource;
    private ModelFiles? _files;
    private readonly long _sourceLength;
    private readonly DateTime _sourceWriteTime;

    private OnnxModelFile(ModelProto model, string? sourcePath, Dictionary<TensorProto, FileRange> rawInSource)
    {
        Model = model;
        SourcePath = sourcePath;
        _rawInSource = rawInSource;
        if (sourcePath is not null)
        {
            var info = new FileInfo(sourcePath);
            _sourceLength = info.Length;
            _sourceWriteTime = info.LastWriteTimeUtc;
        }
    }

    /// <summary>The model. Edit it freely; tensor data of loaded initializers come from <see cref="ReadData"/>.</summary>
    public ModelProto Model { get; }

    /// <summary>The main graph (an empty one is added to a model that has none).</summary>
    public GraphProto Graph => Model.Graph ??= new GraphProto();

    /// <summary>The full path of the file this model was read from; null for a model built in memory.</summary>
    public string? SourcePath { get; }

    private string FileName => SourcePath is null ? "(in-memory model)" : Path.GetFileName(SourcePath);

    /// <summary>Reads the graph of an ONNX file, leaving initializer data in the file until asked for.</summary>
    /// <exception cref="GptModelException">The file is missing, unreadable or not an ONNX model.</exception>
    public static OnnxModelFile Load(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new GptModelException($"The ONNX file '{full}' does not exist.");
        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.RandomAccess);
        return Load(stream, full);
    }

    /// <summary>Reads a model from <paramref name="stream"/>, whose bytes are those of the file <paramref name="path"/> (read again for tensor data).</summary>
    internal static OnnxModelFile Load(Stream stream, string path)
    {
        try
        {
            var (model, raw) = OnnxFileReader.Read(stream, Path.GetFileName(path));
            return new OnnxModelFile(model, Path.GetFullPath(path), raw);
        }
        catch (IOException e)
        {
            throw new GptModelException($"The ONNX file '{path}' cannot be read: {e.Message}", e);
        }
    }

    /// <summary>A model built in memory (all its tensor data inline).</summary>
    public static OnnxModelFile FromModel(ModelProto model) =>
        new(model, null, new Dictionary<TensorProto, FileRange>(ReferenceEqualityComparer.Instance));

    /// <summary>The operator sets the model imports (domain "" is the default ONNX domain).</summary>
    public IReadOnlyList<OnnxOpset> OpsetImports =>
        Model.OpsetImport.Select(o => new OnnxOpset(o.Domain ?? "", o.Version)).ToList();

    /// <summary>The main graph's inputs, without the initializers that some exporters also list as inputs.</summary>
    public IReadOnlyList<OnnxValueInfo> Inputs
    {
        get
        {
            var initializers = Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            return Graph.Input.Where(i => !initializers.Contains(i.Name)).Select(OnnxValueInfo.From).ToList();
        }
    }

    public IReadOnlyList<OnnxValueInfo> Outputs => Graph.Output.Select(OnnxValueInfo.From).ToList();

    /// <summary>The main graph's initializers: name, shape, element type and data size, without reading the data.</summary>
    public IReadOnlyList<OnnxInitializer> Initializers =>
        Graph.Initializer.Select(t => new OnnxInitializer(t.Name, t.Dims.ToArray(), t.DataType, DataLength(t),
            t.DataLocation == DataLocation.External)).ToList();

    /// <summary>The main graph's initializer called <paramref name="name"/>, or null.</summary>
    public TensorProto? FindInitializer(string name) => Graph.Initializer.FirstOrDefault(t => t.Name == name);

    /// <summary>Every node of the model, those of subgraphs (If, Loop, Scan bodies) included, outermost first.</summary>
    public IEnumerable<NodeProto> AllNodes() => OnnxGraphs.All(Graph).SelectMany(g => g.Node);

    /// <summary>The (domain, operator) pairs the model uses, e.g. <c>("com.microsoft", "MatMulNBits")</c>.</summary>
    public IReadOnlySet<(string Domain, string OpType)> Operators() =>
        AllNodes().Select(n => (n.Domain ?? "", n.OpType ?? "")).ToHashSet();

    /// <summary>The external data files the model's tensors name, relative to its folder.</summary>
    public IReadOnlyList<string> ExternalDataFiles() => OnnxGraphs.AllTensors(Model)
        .Where(t => t.DataLocation == DataLocation.External)
        .Select(t => ExternalEntry(t, "location"))
        .OfType<string>()
        .Distinct(StringComparer.Ordinal)
        .ToList();

    /// <summary>The size of a tensor's data in bytes, without reading it.</summary>
    public long DataLength(TensorProto tensor)
    {
        if (tensor.HasRawData) return tensor.RawData.Length;
        if (_rawInSource.TryGetValue(tensor, out var range)) return range.Length;
        if (tensor.DataLocation == DataLocation.External) return ResolveExternal(tensor).Length;
        return OnnxTensors.RawByteLength(tensor.DataType, TypedCount(tensor)) ?? 0;
    }

    /// <summary>
    /// The bytes of a tensor in ONNX's raw little-endian layout, wherever they are: left in the
    /// source file, in an external data file, in <c>raw_data</c>, or in the typed fields.
    /// </summary>
    /// <exception cref="GptModelException">The data cannot be read, the file changed since it was loaded, or the size does not fit the tensor's shape.</exception>
    public ReadOnlyMemory<byte> ReadData(TensorProto tensor)
    {
        ReadOnlyMemory<byte> data;
        if (tensor.HasRawData)
        {
            data = tensor.RawData.Memory;   // set in memory, or by the caller over a loaded tensor: it wins
        }
        else if (_rawInSource.TryGetValue(tensor, out var range))
        {
            CheckSourceUnchanged();
            data = ReadRange(SourcePath!, range.Offset, range.Length, tensor);
        }
        else if (tensor.DataLocation == DataLocation.External)
        {
            var (file, offset, length) = ResolveExternal(tensor);
            data = ReadRange(file, offset, length, tensor);
        }
        else
        {
            data = OnnxTensors.TypedFieldsToRaw(tensor, FileName);
        }
        CheckLength(tensor, data.Length);
        return data;
    }

    /// <summary>A float32, float16, bfloat16 or float64 tensor's values as float32.</summary>
    public float[] ReadFloats(TensorProto tensor) => OnnxTensors.ToFloats(ReadData(tensor).Span, tensor.DataType);

    /// <summary>
    /// Writes the model to <paramref name="path"/>. When its tensor data reach
    /// <paramref name="externalDataThreshold"/> bytes, every tensor of at least
    /// <see cref="MinimumExternalTensorBytes"/> goes to <c>&lt;file&gt;.data</c> beside it (offsets
    /// aligned to <see cref="ExternalDataAlignment"/>); otherwise everything is inline. This object
    /// is not changed and keeps reading its data from where it was loaded.
    /// </summary>
    public void Save(string path, long externalDataThreshold = DefaultExternalDataThreshold)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(externalDataThreshold);
        string full = Path.GetFullPath(path);
        string dataFileName = Path.GetFileName(full) + ".data";
        string dataPath = Path.Combine(Path.GetDirectoryName(full)!, dataFileName);

        // The copy is written; it shares tensor data (ByteString is immutable) but not messages.
        // Tensors whose bytes are not in the message are read from where this object found them:
        // initializers left in the source file (paired by position) and external data.
        var copy = Model.Clone();
        var sourceOf = new Dictionary<TensorProto, TensorProto>(ReferenceEqualityComparer.Instance);
        var originals = Model.Graph?.Initializer;
        var copies = copy.Graph?.Initializer;
        for (int i = 0; originals is not null && copies is not null && i < originals.Count; i++)
            if (!originals[i].HasRawData && (_rawInSource.ContainsKey(originals[i]) || originals[i].DataLocation == DataLocation.External))
                sourceOf[copies[i]] = originals[i];
        foreach (var tensor in OnnxGraphs.AllTensors(copy))
            if (!sourceOf.ContainsKey(tensor) && !tensor.HasRawData && tensor.DataLocation == DataLocation.External)
                sourceOf[tensor] = tensor;

        // Reading from a file being replaced would read the new bytes: take the data first.
        bool overwritesSource = SourcePath is not null && (PathsEqual(full, SourcePath) ||
            ExternalDataFiles().Any(f => PathsEqual(Path.Combine(Path.GetDirectoryName(SourcePath)!, f), dataPath)));
        var taken = overwritesSource
            ? sourceOf.ToDictionary(p => p.Key, p => ReadData(p.Value), (IEqualityComparer<TensorProto>)ReferenceEqualityComparer.Instance)
            : null;
        ReadOnlyMemory<byte> DataOf(TensorProto copied) => taken is not null ? taken[copied] : ReadData(sourceOf[copied]);

        long total = OnnxGraphs.AllTensors(copy).Sum(t => DataLength(sourceOf.TryGetValue(t, out var source) ? source : t));
        // Past this a model cannot be one protobuf message, whatever the caller asked for.
        bool external = total >= Math.Min(externalDataThreshold, MaxInlineBytes);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var initializers = OnnxGraphs.All(copy.Graph).SelectMany(g => g.Initializer).ToHashSet(ReferenceEqualityComparer.Instance);
        using (var data = external ? new FileStream(dataPath, FileMode.Create, FileAccess.Write, FileShare.None) : null)
        {
            foreach (var tensor in OnnxGraphs.AllTensors(copy))
            {
                bool carried = sourceOf.ContainsKey(tensor);
                if (!carried && !tensor.HasRawData) continue;   // values in typed fields stay where they are
                var bytes = carried ? DataOf(tensor) : tensor.RawData.Memory;
                if (data is not null && bytes.Length >= MinimumExternalTensorBytes && (carried || initializers.Contains(tensor)))
                    WriteExternal(tensor, bytes, data, dataFileName);
                else if (carried || tensor.DataLocation == DataLocation.External)
                    Inline(tensor, bytes);
            }
        }

        using var output = new FileStream(full, FileMode.Create, FileAccess.Write, FileShare.None);
        copy.WriteTo(output);
    }

    private static void WriteExternal(TensorProto tensor, ReadOnlyMemory<byte> bytes, FileStream data, string dataFileName)
    {
        long offset = (data.Position + ExternalDataAlignment - 1) / ExternalDataAlignment * ExternalDataAlignment;
        if (offset > data.Position) data.Write(new byte[offset - data.Position]);
        data.Write(bytes.Span);
        tensor.ClearRawData();
        tensor.ExternalData.Clear();
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataFileName });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(CultureInfo.InvariantCulture) });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = bytes.Length.ToString(CultureInfo.InvariantCulture) });
        tensor.DataLocation = DataLocation.External;
    }

    private static void Inline(TensorProto tensor, ReadOnlyMemory<byte> bytes)
    {
        tensor.RawData = UnsafeByteOperations.UnsafeWrap(bytes);
        tensor.ExternalData.Clear();
        tensor.ClearDataLocation();
    }

    private void CheckSourceUnchanged()
    {
        var info = new FileInfo(SourcePath!);
        if (!info.Exists || info.Length != _sourceLength || info.LastWriteTimeUtc != _sourceWriteTime)
            throw new GptModelException($"'{SourcePath}' changed after it was loaded; load it again to read its tensors.");
    }

    private void CheckLength(TensorProto tensor, long actual)
    {
        if (tensor.DataType == (int)TensorProto.Types.DataType.String) return;
        long? expected = OnnxTensors.RawByteLength(tensor.DataType, OnnxTensors.ElementCount(tensor));
        if (expected is long e && e != actual)
            throw new GptModelException($"'{FileName}': tensor '{tensor.Name}' of shape [{string.Join(", ", tensor.Dims)}] and type " +
                $"{OnnxTensors.TypeName(tensor.DataType)} needs {e} bytes of data, but holds {actual}.");
    }

    private static long TypedCount(TensorProto t) =>
        t.FloatData.Count + t.Int32Data.Count + t.Int64Data.Count + t.DoubleData.Count + t.Uint64Data.Count;

    private static string? ExternalEntry(TensorProto tensor, string key) =>
        tensor.ExternalData.LastOrDefault(e => e.Key == key)?.Value;

    private (string File, long Offset, long Length) ResolveExternal(TensorProto tensor)
    {
        string? location = ExternalEntry(tensor, "location");
        if (string.IsNullOrEmpty(location))
            throw new GptModelException($"'{FileName}': tensor '{tensor.Name}' has external data without a 'location' entry.");
        if (SourcePath is null)
            throw new GptModelException($"Tensor '{tensor.Name}' has external data in '{location}', but the model was not loaded from a folder.");
        string folder = Path.GetDirectoryName(SourcePath)!;
        if (Path.IsPathRooted(location) || location.Split('/', '\\').Contains(".."))
            throw new GptModelException($"'{FileName}': tensor '{tensor.Name}' names external data '{location}' outside the model's folder '{folder}'.");
        // The folder's file policy: a data file that is a link out of the folder is refused, not read (its real path
        // is what is read, and what its length is taken from).
        _files ??= ModelFiles.For(folder);
        string file = _files.Find(location)
            ?? throw new GptModelException($"'{FileName}': tensor '{tensor.Name}' has its data in '{location}', which is not in '{folder}'.");
        long offset = ParseEntry(tensor, "offset") ?? 0;
        long fileLength = new FileInfo(file).Length;
        long length = ParseEntry(tensor, "length") ?? fileLength - offset;
        if (offset < 0 || length < 0 || offset + length > fileLength)
            throw new GptModelException($"'{FileName}': tensor '{tensor.Name}' wants bytes {offset} to {offset + length} of '{location}', which has {fileLength}.");
        return (file, offset, length);
    }

    private long? ParseEntry(TensorProto tensor, string key)
    {
        string? text = ExternalEntry(tensor, key);
        if (text is null) return null;
        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value)) return value;
        throw new GptModelException($"'{FileName}': tensor '{tensor.Name}' has external data '{key}' = '{text}', which is not a byte count.");
    }

    private static byte[] ReadRange(string file, long offset, long length, TensorProto tensor)
    {
        if (length > Array.MaxLength)
            throw new GptModelException($"Tensor '{tensor.Name}' holds {length} bytes, more than one .NET array can.");
        var bytes = new byte[length];
        using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Read, FileShare.Read);
        int done = 0;
        while (done < bytes.Length)
        {
            int read = RandomAccess.Read(handle, bytes.AsSpan(done), offset + done);
            if (read == 0) throw new GptModelException($"'{file}' ended before the data of tensor '{tensor.Name}' (bytes {offset} to {offset + length}).");
            done += read;
        }
        return bytes;
    }

    private static bool PathsEqual(string a, string b) =>
        string.Equals(Path.GetFullPath(a), Path.GetFullPath(b), OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
}

/// <summary>An operator set a model imports.</summary>
internal sealed record OnnxOpset(string Domain, long Version);

/// <summary>One dimension of a graph input or output: a fixed size, a named symbol, or neither.</summary>
internal sealed record OnnxDimension(long? Value, string? Param)
{
    public override string ToString() => Value?.ToString(CultureInfo.InvariantCulture) ?? Param ?? "?";
}

/// <summary>A graph input or output: its element type (null when it is not a tensor) and shape (null when unknown).</summary>
internal sealed record OnnxValueInfo(string Name, int? ElementType, IReadOnlyList<OnnxDimension>? Shape)
{
    public static OnnxValueInfo From(ValueInfoProto v)
    {
        var tensor = v.Type?.TensorType;
        IReadOnlyList<OnnxDimension>? shape = tensor?.Shape?.Dim
            .Select(d => new OnnxDimension(d.HasDimValue ? d.DimValue : null, d.HasDimParam ? d.DimParam : null)).ToList();
        return new OnnxValueInfo(v.Name, tensor is not null && tensor.HasElemType ? tensor.ElemType : null, shape);
    }
}

/// <summary>What is known about an initializer without reading its data.</summary>
internal sealed record OnnxInitializer(string Name, long[] Dims, int DataType, long ByteLength, bool IsExternal);
