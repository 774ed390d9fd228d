using MLNetGpt.Models.Onnx;
using MLNetGpt.Models.Onnx.Protos;
using MLNetGpt.Quantization;
using Xunit;
using DataType = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataType;
using static MLNetGpt.Tests.Quantization.TestGraphs;

namespace MLNetGpt.Tests.Quantization;

/// <summary>
/// One-MatMul graphs, quantized, run in ONNX Runtime and compared with an independent dequantizing
/// reference (<see cref="MatMulNBitsReference"/>) and with the float MatMul.
/// </summary>
public sealed class MatMulNBitsTests
{
    private const int M = 3;

    /// <summary>How B reaches the MatMul.</summary>
    public enum WeightPath
    {
        Initializer,          // B = W[K, N]
        Transpose,            // B = Transpose(W[N, K])
        CastFromHalf,         // B = Cast(W16[K, N])
        CastThenTranspose,    // B = Transpose(Cast(W16[N, K])), the default model's layout
        TransposeThenCast,    // B = Cast(Transpose(W16[N, K]))
    }

    public static TheoryData<int, bool, WeightPath, int, int> Cases()
    {
        var data = new TheoryData<int, bool, WeightPath, int, int>();
        foreach (int bits in new[] { 4, 8 })
            foreach (bool symmetric in new[] { false, true })
                foreach (WeightPath path in Enum.GetValues<WeightPath>())
                    data.Add(bits, symmetric, path, 72, 32);   // 72 = 2.25 blocks of 32: padded, and an odd number of zero points
        data.Add(4, false, WeightPath.Initializer, 64, 32);
        data.Add(4, false, WeightPath.Transpose, 40, 16);
        data.Add(8, false, WeightPath.Transpose, 200, 64);
        data.Add(4, true, WeightPath.CastThenTranspose, 96, 128);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_quantized_MatMul_equals_the_dequantized_reference_and_stays_within_the_quantization_bound(int bits, bool symmetric, WeightPath path, int k, int blockSize)
    {
        const int n = 24;
        float[] weight = Weights(k * n, seed: k * 31 + n + bits);   // W[K, N] as the MatMul sees it
        var (graph, effective) = OneMatMul(weight, k, n, path);
        var model = OnnxModelFile.FromModel(Model(graph));
        var options = new QuantizationOptions { Bits = bits, Symmetric = symmetric, BlockSize = blockSize, AccuracyLevel = 0 };

        var rewrite = MatMulRewriter.Rewrite(model, options, "test.onnx", null, CancellationToken.None);

        Assert.Equal(1, rewrite.Rewritten);
        Assert.Empty(rewrite.Skipped);
        var node = Assert.Single(model.Graph.Node);   // the Transpose and Cast nodes went with the MatMul
        Assert.Equal(("MatMulNBits", "com.microsoft"), (node.OpType, node.Domain));
        Assert.Equal(symmetric ? 3 : 4, node.Input.Count);
        var attributes = node.Attribute.ToDictionary(a => a.Name, a => a.I);
        Assert.Equal(new Dictionary<string, long> { ["K"] = k, ["N"] = n, ["bits"] = bits, ["block_size"] = blockSize, ["accuracy_level"] = 0 }, attributes);
        Assert.Contains(model.Model.OpsetImport, o => o.Domain == "com.microsoft" && o.Version == 1);
        Assert.DoesNotContain(model.Graph.Initializer, t => t.Name == "W");

        int blocks = (k + blockSize - 1) / blockSize;
        var b = Initializer(model, node.Input[1]);
        var scales = Initializer(model, node.Input[2]);
        Assert.Equal(new long[] { n, blocks, blockSize * bits / 8 }, b.Dims);
        Assert.Equal((int)DataType.Uint8, b.DataType);
        Assert.Equal(new long[] { n * blocks }, scales.Dims);
        Assert.Equal((int)DataType.Float, scales.DataType);
        byte[]? zeroPoints = null;
        if (!symmetric)
        {
            var zp = Initializer(model, node.Input[3]);
            Assert.Equal(new long[] { n * ((blocks * bits + 7) / 8) }, zp.Dims);
            zeroPoints = model.ReadData(zp).ToArray();
        }
        float[] scaleValues = model.ReadFloats(scales);
        double[] dequantized = MatMulNBitsReference.Dequantize(model.ReadData(b).ToArray(), scaleValues, zeroPoints, k, n, bits, blockSize);

        float[] a = Weights(M * k, seed: 7);
        float[] y = Run(Bytes(model.Model), ("A", a, [M, k]))["Y"];
        double[] reference = MatMulNBitsReference.MatMul(a, dequantized, M, k, n);
        double[] size = MatMulNBitsReference.AbsoluteProducts(a, dequantized, M, k, n);
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - reference[i]) <= 1e-5 * size[i] + 1e-30,
                $"Y[{i}] = {y[i]:R}, the dequantized reference {reference[i]:R} (relative error {Math.Abs(y[i] - reference[i]) / size[i]:E2})");

        // Each weight is within half a quantization step of its value, so each output is within
        // the sum of |a| times half the step of its block.
        double[] exact = MatMulNBitsReference.MatMul(a, effective.Select(v => (double)v).ToArray(), M, k, n);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < n; j++)
            {
                double bound = 0;
                for (int r = 0; r < k; r++) bound += Math.Abs(a[i * k + r]) * scaleValues[j * blocks + r / blockSize] / 2;
                double error = Math.Abs(y[i * n + j] - exact[i * n + j]);
                Assert.True(error <= bound * (1 + 1e-4) + 1e-5 * size[i * n + j],
                    $"Y[{i}, {j}] is {error:E3} from the float MatMul, more than the quantization bound {bound:E3}");
            }
    }

    [Fact]
    public void The_weights_are_quantized_one_column_at_a_time_with_min_max_scales_and_zero_points()
    {
        // One column, one block: values -1, 0.5 and padding. Range [-1, 0.5] over 15 steps: scale 0.1,
        // zero point 10, codes 0 and 15, padding at the zero point.
        var q = BlockQuantizer.Quantize([-1f, 0.5f], k: 2, n: 1, bits: 4, blockSize: 16, symmetric: false, halfScales: false);
        Assert.Equal(0.1f, q.Scales[0], 6);
        Assert.Equal(new byte[] { 10 }, q.ZeroPoints);
        Assert.Equal(0 | (15 << 4), q.Packed[0]);
        Assert.All(q.Packed.Skip(1), p => Assert.Equal(10 | (10 << 4), p));

        var s = BlockQuantizer.Quantize([-1f, 0.5f], k: 2, n: 1, bits: 8, blockSize: 16, symmetric: true, halfScales: false);
        Assert.Null(s.ZeroPoints);
        Assert.Equal(1f / 127, s.Scales[0], 7);
        Assert.Equal(new byte[] { 128 - 127, 128 + 64 }, s.Packed.Take(2).ToArray());
    }

    [Fact]
    public void A_float16_MatMul_gets_float16_scales_and_runs()
    {
        const int k = 48, n = 8;
        float[] weight = Weights(k * n, seed: 3).Select(v => (float)(Half)v).ToArray();
        var graph = new GraphProto { Name = "half" };
        graph.Input.Add(Tensor("A", DataType.Float16, M, k));
        graph.Output.Add(Tensor("Y", DataType.Float16, M, n));
        graph.Initializer.Add(OnnxTensors.FromHalves("W", weight.Select(v => (Half)v).ToArray(), k, n));
        graph.Node.Add(Node("MatMul", "mm", ["A", "W"], ["Y"]));
        var model = OnnxModelFile.FromModel(Model(graph));

        MatMulRewriter.Rewrite(model, new QuantizationOptions { Bits = 4, AccuracyLevel = 0 }, "half.onnx", null, CancellationToken.None);

        var node = Assert.Single(model.Graph.Node);
        var scales = Initializer(model, node.Input[2]);
        Assert.Equal((int)DataType.Float16, scales.DataType);
        double[] w = MatMulNBitsReference.Dequantize(model.ReadData(Initializer(model, node.Input[1])).ToArray(), model.ReadFloats(scales),
            model.ReadData(Initializer(model, node.Input[3])).ToArray(), k, n, 4, 32);
        float[] a = Weights(M * k, seed: 9).Select(v => (float)(Half)v).ToArray();
        float[] y = RunHalf(Bytes(model.Model), a, [M, k]);
        double[] reference = MatMulNBitsReference.MatMul(a, w, M, k, n);
        double[] size = MatMulNBitsReference.AbsoluteProducts(a, w, M, k, n);
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - reference[i]) <= 2e-3 * size[i] + 1e-3,   // float16 output: 11 significant bits
                $"Y[{i}] = {y[i]}, the reference {reference[i]}");
    }

    [Fact]
    public void A_tied_embedding_keeps_its_table_for_the_Gather_and_the_lm_head_gets_its_own_quantized_copy()
    {
        const int vocabulary = 40, width = 64;
        Half[] table = Weights(vocabulary * width, seed: 11).Select(v => (Half)v).ToArray();
        var graph = new GraphProto { Name = "tied" };
        graph.Input.Add(Tensor("ids", DataType.Int64, M));
        graph.Input.Add(Tensor("A", DataType.Float, M, width));
        graph.Output.Add(Tensor("E", DataType.Float, M, width));
        graph.Output.Add(Tensor("Y", DataType.Float, M, vocabulary));
        graph.Initializer.Add(OnnxTensors.FromHalves("wte_fp16", table, vocabulary, width));
        graph.Node.Add(Node("Cast", "wte_cast", ["wte_fp16"], ["wte"], Int("to", (int)DataType.Float)));
        graph.Node.Add(Node("Gather", "embed", ["wte", "ids"], ["E"]));
        graph.Node.Add(Node("Transpose", "lm_head_transpose", ["wte"], ["wte_t"], Ints("perm", 1, 0)));
        graph.Node.Add(Node("MatMul", "lm_head", ["A", "wte_t"], ["Y"]));
        var original = Model(graph);
        var model = OnnxModelFile.FromModel(original.Clone());

        var rewrite = MatMulRewriter.Rewrite(model, new QuantizationOptions { Bits = 4, AccuracyLevel = 0 }, "tied.onnx", null, CancellationToken.None);

        Assert.Equal(1, rewrite.Rewritten);
        Assert.Equal(["Cast", "Gather", "MatMulNBits"], model.Graph.Node.Select(n => n.OpType).ToArray());
        Assert.Equal(OnnxTensors.FromHalves("wte_fp16", table, vocabulary, width), model.FindInitializer("wte_fp16"));
        long[] ids = [3, 0, 39];
        float[] a = Weights(M * width, seed: 5);
        var before = Run(Bytes(original), [("A", a, [M, width])], [("ids", ids, [M])]);
        var after = Run(Bytes(model.Model), [("A", a, [M, width])], [("ids", ids, [M])]);
        Assert.Equal(before["E"], after["E"]);   // the lookup reads the same table, bit for bit

        var node = model.Graph.Node[2];
        double[] w = MatMulNBitsReference.Dequantize(model.ReadData(Initializer(model, node.Input[1])).ToArray(),
            model.ReadFloats(Initializer(model, node.Input[2])), model.ReadData(Initializer(model, node.Input[3])).ToArray(), width, vocabulary, 4, 32);
        double[] reference = MatMulNBitsReference.MatMul(a, w, M, width, vocabulary);
        double[] size = MatMulNBitsReference.AbsoluteProducts(a, w, M, width, vocabulary);
        for (int i = 0; i < reference.Length; i++)
            Assert.True(Math.Abs(after["Y"][i] - reference[i]) <= 1e-5 * size[i], $"Y[{i}] = {after["Y"][i]}, the reference {reference[i]}");
    }

    [Fact]
    public void A_weight_that_several_MatMuls_read_is_quantized_once()
    {
        const int k = 32, n = 16;
        var graph = new GraphProto { Name = "shared" };
        graph.Input.Add(Tensor("A", DataType.Float, M, k));
        graph.Input.Add(Tensor("A2", DataType.Float, M, k));
        graph.Output.Add(Tensor("Y", DataType.Float, M, n));
        graph.Output.Add(Tensor("Y2", DataType.Float, M, n));
        graph.Initializer.Add(OnnxTensors.FromFloats("W", Weights(k * n, 1), n, k));
        graph.Node.Add(Node("Transpose", "t", ["W"], ["Wt"], Ints("perm", 1, 0)));
        graph.Node.Add(Node("MatMul", "mm1", ["A", "Wt"], ["Y"]));
        graph.Node.Add(Node("MatMul", "mm2", ["A2", "Wt"], ["Y2"]));
        var model = OnnxModelFile.FromModel(Model(graph));

        var rewrite = MatMulRewriter.Rewrite(model, new QuantizationOptions(), "shared.onnx", null, CancellationToken.None);

        Assert.Equal(2, rewrite.Rewritten);
        Assert.Equal(3, model.Graph.Initializer.Count);   // one packed B, its scales and zero points
        Assert.Equal(model.Graph.Node[0].Input.Skip(1), model.Graph.Node[1].Input.Skip(1));
    }

    [Fact]
    public void MatMuls_of_two_activations_and_unsupported_weights_are_left_as_they_were_with_the_reason()
    {
        var graph = new GraphProto { Name = "skips" };
        graph.Input.Add(Tensor("A", DataType.Float, M, 32));
        graph.Input.Add(Tensor("B", DataType.Float, 32, 8));
        graph.Initializer.Add(OnnxTensors.FromFloats("W3", Weights(2 * 32 * 8, 2), 2, 32, 8));
        graph.Initializer.Add(OnnxTensors.FromFloats("Wp", Weights(32 * 8, 4), 32, 8));
        graph.Node.Add(Node("MatMul", "activations", ["A", "B"], ["Y1"]));
        graph.Node.Add(Node("MatMul", "batched", ["A", "W3"], ["Y2"]));
        graph.Node.Add(Node("Relu", "relu", ["B"], ["Br"]));
        graph.Node.Add(Node("MatMul", "computed", ["A", "Br"], ["Y3"]));
        graph.Node.Add(Node("Transpose", "odd_transpose", ["Wp"], ["Wpt"], Ints("perm", 0, 1)));
        graph.Node.Add(Node("MatMul", "odd", ["A", "Wpt"], ["Y4"]));
        foreach (var y in new[] { "Y1", "Y2", "Y3", "Y4" }) graph.Output.Add(Tensor(y, DataType.Float));
        var model = OnnxModelFile.FromModel(Model(graph));
        var before = model.Model.Clone();

        var rewrite = MatMulRewriter.Rewrite(model, new QuantizationOptions(), "skips.onnx", null, CancellationToken.None);

        Assert.Equal(0, rewrite.Rewritten);
        Assert.Equal(before, model.Model);   // nothing changed, not even the opset imports
        var reasons = rewrite.Skipped.ToDictionary(s => s.Node, s => s.Reason);
        Assert.Equal("B is the graph input 'B', not a constant weight", reasons["activations"]);
        Assert.Equal("the weight 'W3' has shape [2, 32, 8], not a 2-D matrix", reasons["batched"]);
        Assert.Equal("B is computed by Relu 'relu', not a constant weight", reasons["computed"]);
        Assert.Equal("B comes from Transpose 'odd_transpose' with perm [0, 1], not [1, 0]", reasons["odd"]);
        Assert.All(rewrite.Skipped, s => Assert.Equal("skips.onnx", s.File));
    }

    [Fact]
    public void Weights_that_can_change_at_run_time_or_do_not_fit_MatMulNBits_are_left_with_the_reason()
    {
        var graph = new GraphProto { Name = "more_skips" };
        graph.Input.Add(Tensor("A", DataType.Float, M, 32));
        graph.Input.Add(Tensor("Wi", DataType.Float, 32, 8));   // an initializer that is also an input
        graph.Initializer.Add(OnnxTensors.FromFloats("Wi", Weights(32 * 8, 1), 32, 8));
        graph.Initializer.Add(OnnxTensors.FromFloats("Wn", Enumerable.Repeat(float.PositiveInfinity, 32 * 8).ToArray(), 32, 8));
        graph.Initializer.Add(OnnxTensors.FromFloats("Wc", Weights(32 * 8, 3), 32, 8));
        graph.Initializer.Add(OnnxTensors.FromRaw("Wd", DataType.Double, new byte[32 * 8 * 8], 32, 8));
        graph.Node.Add(Node("MatMul", "overridable", ["A", "Wi"], ["Y1"]));
        graph.Node.Add(Node("MatMul", "infinite", ["A", "Wn"], ["Y2"]));
        graph.Node.Add(Node("Cast", "to_int", ["Wc"], ["Wc_int"], Int("to", (int)DataType.Int32)));
        graph.Node.Add(Node("MatMul", "integer", ["A", "Wc_int"], ["Y3"]));
        graph.Node.Add(Node("MatMul", "double", ["A", "Wd"], ["Y4"]));
        graph.Node.Add(Node("Cast", "no_to", ["Wc"], ["Wc_what"]));
        graph.Node.Add(Node("MatMul", "cast_without_to", ["A", "Wc_what"], ["Y5"]));
        graph.Node.Add(Node("MatMul", "undefined", ["A", "nowhere"], ["Y6"]));
        var model = OnnxModelFile.FromModel(Model(graph));

        var rewrite = MatMulRewriter.Rewrite(model, new QuantizationOptions(), "more.onnx", null, CancellationToken.None);

        Assert.Equal(0, rewrite.Rewritten);
        var reasons = rewrite.Skipped.ToDictionary(s => s.Node, s => s.Reason);
        Assert.Equal("B's initializer 'Wi' is also a graph input, so it may be replaced at run time", reasons["overridable"]);
        Assert.Equal("the weight 'Wn' holds a value that is not finite (Infinity)", reasons["infinite"]);
        Assert.Equal("B is cast to int32 on its way from 'Wc'", reasons["integer"]);
        Assert.Equal("the MatMul runs in double; MatMulNBits on the CPU takes float32 or float16", reasons["double"]);
        Assert.Equal("Cast 'no_to' on B's path has no 'to' attribute", reasons["cast_without_to"]);
        Assert.Equal("B ('nowhere') is neither an initializer nor produced by a node", reasons["undefined"]);
    }

    [Fact]
    public void Accuracy_level_4_runs_the_int8_kernel_within_the_error_of_int8_activations()
    {
        const int k = 128, n = 32;
        var (graph, _) = OneMatMul(Weights(k * n, 21), k, n, WeightPath.Transpose);
        var model = OnnxModelFile.FromModel(Model(graph));
        MatMulRewriter.Rewrite(model, new QuantizationOptions { Bits = 4, AccuracyLevel = 4 }, "level4.onnx", null, CancellationToken.None);
        var node = Assert.Single(model.Graph.Node);
        Assert.Equal(4, node.Attribute.Single(a => a.Name == "accuracy_level").I);
        double[] w = MatMulNBitsReference.Dequantize(model.ReadData(Initializer(model, node.Input[1])).ToArray(),
            model.ReadFloats(Initializer(model, node.Input[2])), model.ReadData(Initializer(model, node.Input[3])).ToArray(), k, n, 4, 32);
        float[] a = Weights(M * k, 8);
        float[] y = Run(Bytes(model.Model), ("A", a, [M, k]))["Y"];
        double[] reference = MatMulNBitsReference.MatMul(a, w, M, k, n);
        double[] size = MatMulNBitsReference.AbsoluteProducts(a, w, M, k, n);
        double worst = 0;
        for (int i = 0; i < y.Length; i++)
        {
            double relative = Math.Abs(y[i] - reference[i]) / size[i];
            worst = Math.Max(worst, relative);
            // int8 activations: a step of amax / 127 per block, against values that use all of it.
            Assert.True(relative <= 2.0 / 127, $"Y[{i}] = {y[i]}, the reference {reference[i]} (relative error {relative:E2})");
        }
        Assert.True(worst > 1e-6, "accuracy level 4 gave float32 results; the int8 kernel did not run");
    }

    /// <summary>A graph Y = A x B where B reaches the MatMul along <paramref name="path"/>; also returns B's effective values.</summary>
    private static (GraphProto Graph, float[] Effective) OneMatMul(float[] weight, int k, int n, WeightPath path)
    {
        var graph = new GraphProto { Name = "one_matmul" };
        graph.Input.Add(Tensor("A", DataType.Float, "m", k));
        graph.Output.Add(Tensor("Y", DataType.Float, "m", n));
        float[] transposed = new float[weight.Length];
        for (int r = 0; r < k; r++)
            for (int c = 0; c < n; c++)
                transposed[c * k + r] = weight[r * n + c];
        Half[] Halves(float[] v) => v.Select(x => (Half)x).ToArray();
        float[] effective = path is WeightPath.Initializer or WeightPath.Transpose ? weight : weight.Select(v => (float)(Half)v).ToArray();
        switch (path)
        {
            case WeightPath.Initializer:
                graph.Initializer.Add(OnnxTensors.FromFloats("W", weight, k, n));
                graph.Node.Add(Node("MatMul", "mm", ["A", "W"], ["Y"]));
                break;
            case WeightPath.Transpose:
                graph.Initializer.Add(OnnxTensors.FromFloats("W", transposed, n, k));
                graph.Node.Add(Node("Transpose", "t", ["W"], ["Wt"], Ints("perm", 1, 0)));
                graph.Node.Add(Node("MatMul", "mm", ["A", "Wt"], ["Y"]));
                break;
            case WeightPath.CastFromHalf:
                graph.Initializer.Add(OnnxTensors.FromHalves("W", Halves(weight), k, n));
                graph.Node.Add(Node("Cast", "c", ["W"], ["Wf"], Int("to", (int)DataType.Float)));
                graph.Node.Add(Node("MatMul", "mm", ["A", "Wf"], ["Y"]));
                break;
            case WeightPath.CastThenTranspose:
                graph.Initializer.Add(OnnxTensors.FromHalves("W", Halves(transposed), n, k));
                graph.Node.Add(Node("Cast", "c", ["W"], ["Wf"], Int("to", (int)DataType.Float)));
                graph.Node.Add(Node("Transpose", "t", ["Wf"], ["Wt"]));   // no perm: reverses the axes
                graph.Node.Add(Node("MatMul", "mm", ["A", "Wt"], ["Y"]));
                break;
            case WeightPath.TransposeThenCast:
                graph.Initializer.Add(OnnxTensors.FromHalves("W", Halves(transposed), n, k));
                graph.Node.Add(Node("Transpose", "t", ["W"], ["Wt"], Ints("perm", 1, 0)));
                graph.Node.Add(Node("Cast", "c", ["Wt"], ["Wf"], Int("to", (int)DataType.Float)));
                graph.Node.Add(Node("MatMul", "mm", ["A", "Wf"], ["Y"]));
                break;
        }
        return (graph, effective);
    }

    private static TensorProto Initializer(OnnxModelFile model, string name) =>
        model.FindInitializer(name) ?? throw new Xunit.Sdk.XunitException($"no initializer '{name}'");

    private static float[] RunHalf(byte[] model, float[] a, long[] shape)
    {
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(model);
        using var input = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(a.Select(v => (Microsoft.ML.OnnxRuntime.Float16)v).ToArray(), shape);
        using var run = new Microsoft.ML.OnnxRuntime.RunOptions();
        using var results = session.Run(run, ["A"], [input], ["Y"]);
        return results[0].GetTensorDataAsSpan<Microsoft.ML.OnnxRuntime.Float16>().ToArray().Select(h => (float)h).ToArray();
    }
}
