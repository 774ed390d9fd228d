using Google.Protobuf;
using MLNetGpt.Models.Onnx;
using MLNetGpt.Models.Onnx.Protos;
using MLNetGpt.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;
using DataType = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataType;
using static MLNetGpt.Tests.Quantization.TestGraphs;

namespace MLNetGpt.Tests.Quantization;

/// <summary>Reading and writing ONNX files with the generated protobuf subset.</summary>
public sealed class OnnxModelFileTests(ITestOutputHelper output)
{
    public static TheoryData<string> RepositoryModels() =>
    [
        "tiny-gpt2-a/model.onnx",
        "tiny-gpt2-b/model.onnx",
        "tiny-gpt2-a-merged/decoder_model_merged.onnx",
        "tiny-gpt2-a-pair/decoder_model.onnx",
        "tiny-gpt2-a-pair/decoder_with_past_model.onnx",
        "tiny-gqa-genai/model.onnx",
        "default",
    ];

    private static string ModelPath(string name) => name == "default"
        ? Path.Combine(Fixtures.DefaultModel, "model.onnx")
        : Path.Combine(Fixtures.Root, name);

    [Theory]
    [MemberData(nameof(RepositoryModels))]
    public void Loading_and_saving_a_repository_model_gives_identical_bytes(string name)
    {
        string source = ModelPath(name);
        var model = OnnxModelFile.Load(source);
        string target = Path.Combine(Fixtures.TempFolder("roundtrip"), "model.onnx");

        model.Save(target);

        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(target));
        Assert.False(File.Exists(target + ".data"));
    }

    [Fact]
    public void Fields_this_code_does_not_declare_survive_a_load_and_a_save_at_every_level()
    {
        // Fields not declared in onnx_subset.proto: metadata_props of GraphProto (16), NodeProto (9) and
        // TensorProto (16), which newer ONNX versions define, and a number no version uses on ModelProto (999).
        var graph = new GraphProto { Name = "g" };
        graph.Input.Add(Tensor("A", DataType.Float, 2, 4));
        graph.Output.Add(Tensor("Y", DataType.Float, 2, 3));
        graph.Initializer.Add(WithUnknownField(OnnxTensors.FromFloats("W", Weights(12, 1), 4, 3), TensorProto.Parser, 16));
        graph.Node.Add(WithUnknownField(Node("MatMul", "mm", ["A", "W"], ["Y"]), NodeProto.Parser, 9));
        var model = WithUnknownField(Model(WithUnknownField(graph, GraphProto.Parser, 16)), ModelProto.Parser, 999);
        string folder = Fixtures.TempFolder("unknown");
        string source = Path.Combine(folder, "source.onnx"), target = Path.Combine(folder, "target.onnx");
        File.WriteAllBytes(source, model.ToByteArray());

        OnnxModelFile.Load(source).Save(target);

        byte[] written = File.ReadAllBytes(target);
        Assert.Equal(File.ReadAllBytes(source), written);
        foreach (string marker in new[] { "unknown-999", "unknown-16", "unknown-9" })
            Assert.Contains(marker, System.Text.Encoding.ASCII.GetString(written));
        float[] a = Weights(8, 2);
        Assert.Equal(Run(File.ReadAllBytes(source), ("A", a, [2, 4]))["Y"], Run(written, ("A", a, [2, 4]))["Y"]);
    }

    [Fact]
    public void Loading_reads_the_graph_but_not_the_weights()
    {
        string path = ModelPath("default");
        using var file = new CountingStream(File.OpenRead(path));

        var model = OnnxModelFile.Load(file, path);

        long weightBytes = model.Initializers.Sum(i => i.ByteLength);
        Assert.True(weightBytes > 8_000_000, $"the default model's initializers hold {weightBytes} bytes");
        output.WriteLine($"loading the default model read {file.BytesRead:N0} of its {file.Length:N0} bytes ({weightBytes:N0} are initializer data)");
        Assert.True(file.BytesRead < file.Length - weightBytes / 2,
            $"loading read {file.BytesRead} of {file.Length} bytes, of which {weightBytes} are initializer data");
    }

    [Fact]
    public void The_default_model_describes_its_inputs_outputs_opsets_and_weights_without_a_session()
    {
        // Figures from the ONNX Python package's reading of the same file.
        var model = OnnxModelFile.Load(ModelPath("default"));

        Assert.Equal([new OnnxOpset("", 17)], model.OpsetImports);
        var ids = model.Inputs[0];
        Assert.Equal("input_ids", ids.Name);
        Assert.Equal((int)DataType.Int64, ids.ElementType);
        Assert.Equal(["batch_size", "sequence_length"], ids.Shape!.Select(d => d.ToString()));
        var pastKey = model.Inputs.Single(i => i.Name == "past_key_values.0.key");
        Assert.Equal([null, 6, null, 32], pastKey.Shape!.Select(d => d.Value));
        Assert.Equal("logits", model.Outputs[0].Name);
        Assert.Equal(77, model.Initializers.Count);
        var positions = model.Initializers.Single(i => i.Name == "wpe.weight_fp16");
        Assert.Equal(new long[] { 256, 192 }, positions.Dims);
        Assert.Equal((int)DataType.Float16, positions.DataType);
        Assert.Equal(256 * 192 * 2, positions.ByteLength);
        Assert.Contains(("", "MatMul"), model.Operators());
        Assert.Equal(37, model.AllNodes().Count(n => n.OpType == "MatMul"));
        var keep = model.FindInitializer("num_logits_to_keep")!;
        Assert.Equal(0L, BitConverter.ToInt64(model.ReadData(keep).Span));
    }

    [Fact]
    public void Subgraph_nodes_of_a_merged_decoder_are_found()
    {
        var model = OnnxModelFile.Load(ModelPath("tiny-gpt2-a-merged/decoder_model_merged.onnx"));
        Assert.Equal("If", Assert.Single(model.Graph.Node).OpType);
        Assert.Equal(26, model.AllNodes().Count(n => n.OpType == "MatMul"));   // 13 in each branch
    }

    [Fact]
    public void A_model_saved_with_external_data_has_aligned_offsets_and_runs_the_same_in_onnx_runtime()
    {
        string source = ModelPath("tiny-gpt2-a/model.onnx");
        var model = OnnxModelFile.Load(source);
        string folder = Fixtures.TempFolder("external");
        string target = Path.Combine(folder, "model.onnx");

        model.Save(target, externalDataThreshold: 0);

        Assert.True(File.Exists(target + ".data"));
        long movable = model.Initializers.Where(i => i.ByteLength >= OnnxModelFile.MinimumExternalTensorBytes).Sum(i => i.ByteLength);
        Assert.True(new FileInfo(target).Length < new FileInfo(source).Length - movable + 10_000,
            $"the graph file holds {new FileInfo(target).Length} bytes; {movable} of the {new FileInfo(source).Length} bytes should have moved");
        var external = OnnxModelFile.Load(target);
        Assert.Equal(["model.onnx.data"], external.ExternalDataFiles());
        var moved = external.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External).ToList();
        Assert.Equal(model.Graph.Initializer.Count(t => model.DataLength(t) >= OnnxModelFile.MinimumExternalTensorBytes), moved.Count);
        foreach (var t in moved)
        {
            long offset = long.Parse(t.ExternalData.Single(e => e.Key == "offset").Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(0, offset % OnnxModelFile.ExternalDataAlignment);
            Assert.Equal(model.ReadData(model.FindInitializer(t.Name)!).ToArray(), external.ReadData(t).ToArray());
        }

        foreach (var file in Directory.GetFiles(Fixtures.Folder("tiny-gpt2-a")).Where(f => !f.EndsWith(".onnx", StringComparison.Ordinal)))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        int[] prompt = [5, 17, 3, 99];
        var (ids, logProbabilities) = Greedy(Fixtures.Folder("tiny-gpt2-a"), prompt);
        var (externalIds, externalLogProbabilities) = Greedy(folder, prompt);
        Assert.Equal(ids, externalIds);
        Assert.Equal(logProbabilities, externalLogProbabilities);

        // And back inline: the same bytes as the original file.
        string inline = Path.Combine(folder, "inline.onnx");
        external.Save(inline);
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(inline));
    }

    [Fact]
    public void Saving_over_the_loaded_file_keeps_its_weights()
    {
        string folder = Fixtures.CopyOf("tiny-gpt2-b");
        string path = Path.Combine(folder, "model.onnx");
        byte[] original = File.ReadAllBytes(path);
        var model = OnnxModelFile.Load(path);

        model.Save(path);

        Assert.Equal(original, File.ReadAllBytes(path));
    }

    [Fact]
    public void A_file_that_is_not_an_ONNX_model_is_refused_naming_the_file()
    {
        string path = Path.Combine(Fixtures.TempFolder("bad"), "model.onnx");
        File.WriteAllText(path, "{ \"this is\": \"json, not protobuf\" }");

        var error = Assert.Throws<GptModelException>(() => OnnxModelFile.Load(path));

        Assert.Contains("'model.onnx' is not a valid ONNX model file", error.Message);
    }

    [Fact]
    public void An_empty_file_is_refused_as_a_model_without_a_graph()
    {
        string path = Path.Combine(Fixtures.TempFolder("empty"), "model.onnx");
        File.WriteAllBytes(path, []);

        var error = Assert.Throws<GptModelException>(() => OnnxModelFile.Load(path));

        Assert.Equal("'model.onnx' is not a valid ONNX model file: it has no graph.", error.Message);
    }

    [Fact]
    public void A_truncated_model_is_refused_naming_where_it_ends()
    {
        string path = Path.Combine(Fixtures.TempFolder("truncated"), "model.onnx");
        byte[] bytes = File.ReadAllBytes(ModelPath("tiny-gpt2-a/model.onnx"));
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length / 2).ToArray());

        var error = Assert.Throws<GptModelException>(() => OnnxModelFile.Load(path));

        Assert.Contains("'model.onnx' is not a valid ONNX model file", error.Message);
        Assert.Contains("runs past its message", error.Message);
    }

    [Fact]
    public void A_missing_model_file_is_named()
    {
        string path = Path.Combine(Fixtures.TempFolder("missing"), "model.onnx");
        var error = Assert.Throws<GptModelException>(() => OnnxModelFile.Load(path));
        Assert.Equal($"The ONNX file '{path}' does not exist.", error.Message);
    }

    [Fact]
    public void Reading_weights_of_a_file_that_changed_after_loading_is_refused()
    {
        string folder = Fixtures.CopyOf("tiny-gpt2-b");
        string path = Path.Combine(folder, "model.onnx");
        var model = OnnxModelFile.Load(path);
        File.AppendAllText(path, "x");

        var error = Assert.Throws<GptModelException>(() => model.ReadData(model.Graph.Initializer[0]));

        Assert.Equal($"'{path}' changed after it was loaded; load it again to read its tensors.", error.Message);
    }

    [Fact]
    public void External_data_that_is_missing_or_outside_the_model_folder_is_named()
    {
        string folder = Fixtures.TempFolder("external-errors");
        var missing = ExternalTensorModel(folder, "missing.onnx", "weights.bin");
        var missingError = Assert.Throws<GptModelException>(() => missing.ReadData(missing.Graph.Initializer[0]));
        Assert.Equal($"'missing.onnx': tensor 'W' has its data in 'weights.bin', which is not in '{folder}'.", missingError.Message);

        var outside = ExternalTensorModel(folder, "outside.onnx", "../elsewhere.bin");
        var outsideError = Assert.Throws<GptModelException>(() => outside.ReadData(outside.Graph.Initializer[0]));
        Assert.Equal($"'outside.onnx': tensor 'W' names external data '../elsewhere.bin' outside the model's folder '{folder}'.", outsideError.Message);

        File.WriteAllBytes(Path.Combine(folder, "short.bin"), new byte[10]);
        var shortData = ExternalTensorModel(folder, "short.onnx", "short.bin");
        var shortError = Assert.Throws<GptModelException>(() => shortData.ReadData(shortData.Graph.Initializer[0]));
        Assert.Equal("'short.onnx': tensor 'W' wants bytes 0 to 48 of 'short.bin', which has 10.", shortError.Message);
    }

    [Fact]
    public void External_data_without_a_location_or_with_an_offset_that_is_not_a_number_is_named()
    {
        string folder = Fixtures.TempFolder("external-entries");
        File.WriteAllBytes(Path.Combine(folder, "w.bin"), new byte[48]);
        var noLocation = ExternalTensorModel(folder, "nolocation.onnx", "w.bin", t => t.ExternalData.RemoveAt(0));
        Assert.Equal("'nolocation.onnx': tensor 'W' has external data without a 'location' entry.",
            Assert.Throws<GptModelException>(() => noLocation.ReadData(noLocation.Graph.Initializer[0])).Message);

        var badOffset = ExternalTensorModel(folder, "badoffset.onnx", "w.bin", t => t.ExternalData[1].Value = "12k");
        Assert.Equal("'badoffset.onnx': tensor 'W' has external data 'offset' = '12k', which is not a byte count.",
            Assert.Throws<GptModelException>(() => badOffset.ReadData(badOffset.Graph.Initializer[0])).Message);
    }

    [Fact]
    public void Raw_data_set_on_a_loaded_initializer_replaces_the_data_in_the_file()
    {
        string path = ModelPath("tiny-gpt2-b/model.onnx");
        var model = OnnxModelFile.Load(path);
        var tensor = model.Graph.Initializer[0];
        var replacement = new byte[model.DataLength(tensor)];
        replacement[0] = 42;

        tensor.RawData = ByteString.CopyFrom(replacement);
        string target = Path.Combine(Fixtures.TempFolder("replaced"), "model.onnx");
        model.Save(target);

        Assert.Equal(replacement, model.ReadData(tensor).ToArray());
        var saved = OnnxModelFile.Load(target);
        Assert.Equal(replacement, saved.ReadData(saved.Graph.Initializer[0]).ToArray());
        Assert.Equal(model.ReadData(model.Graph.Initializer[1]).ToArray(), saved.ReadData(saved.Graph.Initializer[1]).ToArray());
    }

    [Fact]
    public void Strings_in_typed_fields_are_refused_naming_the_tensor()
    {
        var strings = new TensorProto { Name = "labels", DataType = (int)DataType.String, Dims = { 1 }, StringData = { ByteString.CopyFromUtf8("a") } };
        var model = OnnxModelFile.FromModel(Model(new GraphProto { Initializer = { strings } }));
        Assert.Equal("'(in-memory model)': tensor 'labels' holds string values in typed fields, which MLNetGpt does not read.",
            Assert.Throws<GptModelException>(() => model.ReadData(strings)).Message);
    }

    [Fact]
    public void Data_that_does_not_fit_the_tensor_shape_is_refused_with_both_sizes()
    {
        var tensor = OnnxTensors.FromRaw("W", DataType.Float, new byte[10], 2, 3);
        var model = OnnxModelFile.FromModel(Model(new GraphProto { Initializer = { tensor } }));

        var error = Assert.Throws<GptModelException>(() => model.ReadData(tensor));

        Assert.Equal("'(in-memory model)': tensor 'W' of shape [2, 3] and type float needs 24 bytes of data, but holds 10.", error.Message);
    }

    [Fact]
    public void Values_in_typed_fields_read_like_raw_data()
    {
        var floats = new TensorProto { Name = "f", DataType = (int)DataType.Float, Dims = { 2 }, FloatData = { 1.5f, -2f } };
        var halves = new TensorProto { Name = "h", DataType = (int)DataType.Float16, Dims = { 2 }, Int32Data = { BitConverter.HalfToUInt16Bits((Half)0.25f), BitConverter.HalfToUInt16Bits((Half)(-3f)) } };
        var model = OnnxModelFile.FromModel(Model(new GraphProto { Initializer = { floats, halves } }));

        Assert.Equal([1.5f, -2f], model.ReadFloats(floats));
        Assert.Equal([0.25f, -3f], model.ReadFloats(halves));
        Assert.Equal(4, model.DataLength(halves));
    }

    private static OnnxModelFile ExternalTensorModel(string folder, string file, string location, Action<TensorProto>? change = null)
    {
        var tensor = new TensorProto { Name = "W", DataType = (int)DataType.Float, Dims = { 4, 3 }, DataLocation = TensorProto.Types.DataLocation.External };
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = "0" });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = "48" });
        change?.Invoke(tensor);
        string path = Path.Combine(folder, file);
        File.WriteAllBytes(path, Model(new GraphProto { Name = "g", Initializer = { tensor } }).ToByteArray());
        return OnnxModelFile.Load(path);
    }

    /// <summary>
    /// Appends a field the message type does not declare, holding a key/value entry (the payload
    /// ONNX's metadata_props fields carry), and parses the result.
    /// </summary>
    private static T WithUnknownField<T>(T message, MessageParser<T> parser, int field) where T : IMessage<T>
    {
        var extra = new MemoryStream();
        var writer = new CodedOutputStream(extra);
        writer.WriteTag(field, WireFormat.WireType.LengthDelimited);
        writer.WriteBytes(new StringStringEntryProto { Key = $"unknown-{field}", Value = "kept" }.ToByteString());
        writer.Flush();
        return parser.ParseFrom(message.ToByteArray().Concat(extra.ToArray()).ToArray());
    }

    /// <summary>Greedy ids and their log-probabilities from a model folder.</summary>
    private static (int[] Ids, float[] LogProbabilities) Greedy(string folder, int[] prompt)
    {
        using var gpt = GptModel.Open(folder);
        var result = gpt.GenerateTokens([prompt], new GenerationOptions { MaxNewTokens = 6, DoSample = false, ReturnLogProbabilities = true }, 1)[0];
        return (result.TokenIds.ToArray(), result.LogProbabilities!.ToArray());
    }

    /// <summary>A read-only stream that counts the bytes read through it.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long BytesRead { get; private set; }
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            int read = inner.Read(buffer, offset, count);
            BytesRead += read;
            return read;
        }
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
