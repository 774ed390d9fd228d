using MLNetGpt.Models.Onnx;
using MLNetGpt.Models.Onnx.Protos;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>What the training graph recognises, refuses, and guarantees about its passes.</summary>
public sealed class TrainingGraphTests
{
    private static TrainingGraphOptions Lora(params string[] targets) => new()
    {
        Method = TrainingMethod.Lora,
        LoraRank = 4,
        LoraAlpha = 8,
        LoraTargets = targets.Length == 0 ? ["q", "v"] : targets,
        Threads = 1,
    };

    private static TrainingGraphOptions Full() => new() { Method = TrainingMethod.Full, Threads = 1 };

    public static TheoryData<string, string?, string> Layouts() => new()
    {
        { "tiny-gpt2-a", null, "GPT-2 layout, 2 layers, width 64, 4 heads, 800 embedding rows behind a 50257-id remap, 128 positions" },
        { "tiny-gpt2-a-merged", null, "GPT-2 layout, 2 layers, width 64, 4 heads, 800 embedding rows behind a 50257-id remap, 128 positions" },
        { "tiny-gpt2-a-pair", null, "GPT-2 layout, 2 layers, width 64, 4 heads, 800 embedding rows behind a 50257-id remap, 128 positions" },
        { "tiny-gpt2-b", null, "GPT-2 layout, 3 layers, width 48, 3 heads, 800 embedding rows behind a 50257-id remap, 64 positions" },
        { "tiny-gpt2-hf", null, "GPT-2 layout, 2 layers, width 32, 2 heads, 419 embedding rows, 64 positions" },
        { "tiny-chatml", null, "GPT-2 layout, 2 layers, width 32, 2 heads, 419 embedding rows, 512 positions" },
        { "tiny-onnx-community", null, "Llama layout, 2 layers, width 64, 4 heads (2 key/value heads), 2000 embedding rows, 128 positions" },
        { "tiny-onnx-community", "q4", "Llama layout, 2 layers, width 64, 4 heads (2 key/value heads), 2000 embedding rows, 128 positions" },
        { "tiny-llama-builder", null, "Llama layout, 2 layers, width 64, 4 heads (2 key/value heads), 2000 embedding rows, 128 positions" },
        { "tiny-gqa-genai", null, "Llama layout, 2 layers, width 64, 4 heads (2 key/value heads), 800 embedding rows behind a 50257-id remap, 128 positions" },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Each_fixture_layout_is_recognised_and_reproduces_the_models_own_log_probabilities(string fixture, string? variant, string description)
    {
        var options = Full();
        options.Variant = variant;
        // VerifyLayout (on by default) compares the training graph's losses with the inference engine's.
        using var graph = TrainingGraph.Create(Fixtures.Folder(fixture), options);
        Assert.Equal(description, graph.Layout.Describe());
    }

    [Fact]
    public void The_default_models_fp16_weights_behind_casts_and_its_vocabulary_remap_are_recognised()
    {
        using var graph = TrainingGraph.Create(Fixtures.DefaultModel, Full());
        Assert.Equal("GPT-2 layout, 6 layers, width 192, 6 heads, 7834 embedding rows behind a 50257-id remap, 256 positions", graph.Layout.Describe());
        Assert.All(graph.Layout.AllWeights(), w => Assert.Equal(WeightStorage.Float16, w.Storage));
        Assert.Null(graph.Layout.LmHead);   // tied
        Assert.Equal(76, graph.Parameters.Count);
    }

    [Fact]
    public void A_graph_that_is_not_a_decoder_is_refused_naming_what_was_expected_and_found()
    {
        string folder = Fixtures.TempFolder("not-a-decoder");
        var graph = new GraphProto { Name = "g" };
        graph.Input.Add(new ValueInfoProto { Name = "input_ids" });
        graph.Initializer.Add(OnnxTensors.FromFloats("w", new float[16], 4, 4));
        graph.Node.Add(new NodeProto { OpType = "MatMul", Name = "mm", Input = { "input_ids", "w" }, Output = { "logits" } });
        graph.Output.Add(new ValueInfoProto { Name = "logits" });
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        OnnxModelFile.FromModel(model).Save(Path.Combine(folder, "model.onnx"));
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"n_positions": 16, "n_head": 1}""");

        var e = Assert.Throws<GptModelException>(() => TrainingGraph.Create(folder, Full()));
        Assert.Equal("'model.onnx' cannot be trained: expected a token embedding: a Gather of a 2-D float weight by 'input_ids'; found none.", e.Message);
    }

    [Fact]
    public void An_exact_gelu_is_refused_as_not_gpt2s_tanh_gelu()
    {
        string folder = Fixtures.CopyOf("tiny-gpt2-a");
        Edit(folder, g =>
        {
            foreach (var node in g.Node.Where(n => n.OpType == "Tanh")) node.OpType = "Erf";
        });
        var e = Assert.Throws<GptModelException>(() => TrainingGraph.Create(folder, Full()));
        Assert.Equal("'model.onnx' cannot be trained: expected a GELU written with Tanh (GPT-2's gelu_new); found '/blocks.0/Tanh' (Erf: the exact GELU).", e.Message);
    }

    [Fact]
    public void A_graph_whose_arithmetic_differs_from_the_recognised_layout_is_refused_by_the_layout_check()
    {
        // The attention scale of the first block doubled: the weights still read as GPT-2, the model computes something else.
        string folder = Fixtures.CopyOf("tiny-gpt2-a");
        Edit(folder, g =>
        {
            var scale = g.Node.First(n => n.Name == "/blocks.0/Mul" && n.OpType == "Mul");
            var constant = g.Node.First(n => n.Output.Contains(scale.Input[1]));
            var tensor = constant.Attribute[0].T;
            float value = BitConverter.ToSingle(tensor.RawData.Span);
            tensor.RawData = Google.Protobuf.ByteString.CopyFrom(BitConverter.GetBytes(value * 2));
        });
        var e = Assert.Throws<GptModelException>(() => TrainingGraph.Create(folder, Full()));
        Assert.StartsWith("'model.onnx' was read as a GPT-2 layout, 2 layers, width 64, 4 heads, 800 embedding rows behind a 50257-id remap, 128 positions, " +
            "but the training graph's loss of token ", e.Message);
        Assert.Contains(" of a probe sequence is ", e.Message);
        Assert.EndsWith("the layout was misread or the graph computes something else, so it is not trained.", e.Message);
    }

    [Fact]
    public void A_LoRA_target_the_layout_lacks_is_refused()
    {
        var e = Assert.Throws<GptModelException>(() => TrainingGraph.Create(Fixtures.Folder("tiny-gpt2-a"), Lora("q", "gate")));
        Assert.Equal("'model.onnx': the LoRA target 'gate' does not exist in the GPT-2 layout (it has q, k, v, o, up, down).", e.Message);
    }

    [Fact]
    public void The_vocabulary_of_a_model_without_a_remap_cannot_be_extended()
    {
        var options = Full();
        options.VocabularyExtension = [5];
        var e = Assert.Throws<GptModelException>(() => TrainingGraph.Create(Fixtures.Folder("tiny-onnx-community"), options));
        Assert.Equal("'onnx/model.onnx': the vocabulary can be extended only where the graph remaps it (interface ids to inner rows with an unk row); " +
            "this model's 2000 embedding rows are its whole vocabulary.", e.Message);
    }

    [Fact]
    public void Extending_the_vocabulary_with_an_id_that_has_its_own_row_is_refused()
    {
        var options = Full();
        options.VocabularyExtension = [262];   // " the": a row of its own in the default model
        var e = Assert.Throws<ArgumentException>(() => TrainingGraph.Create(Fixtures.DefaultModel, options));
        Assert.StartsWith("Token id 262 already has its own row (", e.Message);
        Assert.Contains("in 'model.onnx'; extend the vocabulary only with ids that map to the unk row 7833.", e.Message);
    }

    [Fact]
    public void Options_refuse_unknown_LoRA_targets_and_out_of_range_settings_in_their_setters()
    {
        var options = new TrainingGraphOptions();
        Assert.Equal("'x' is not a LoRA target; use q, k, v, o, up, down or gate. (Parameter 'LoraTargets')",
            Assert.Throws<ArgumentException>(() => options.LoraTargets = ["q", "x"]).Message);
        Assert.Throws<ArgumentException>(() => options.LoraTargets = []);
        Assert.Throws<ArgumentException>(() => options.LoraTargets = ["q", "q"]);
        Assert.Throws<ArgumentOutOfRangeException>(() => options.LoraRank = 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => options.LoraAlpha = float.NaN);
        Assert.Throws<ArgumentOutOfRangeException>(() => options.Threads = 0);
        Assert.Throws<ArgumentException>(() => options.VocabularyExtension = [3, 3]);
        Assert.Equal(["q", "v"], options.LoraTargets);
        Assert.Equal(TrainingMethod.Full, options.Method);
        Assert.False(options.AllowSpinning);
    }

    [Fact]
    public void Ids_and_targets_outside_the_vocabulary_and_sequences_past_the_context_are_refused()
    {
        using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-gpt2-hf"), Lora());
        long[] ids = [1, 2, 3, 419], targets = [2, 3, 4, 5];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => graph.ForwardBackward(ids, targets, 1, 4));
        Assert.StartsWith("Input id 419 at position 3 is outside [0, 419).", e.Message);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => graph.Evaluate([1, 2], [-5, 3], 1, 2));
        Assert.StartsWith("Target -5 at position 0 is neither -100 nor in [0, 419).", e.Message);
        var tooLong = new long[65];
        e = Assert.Throws<ArgumentOutOfRangeException>(() => graph.ForwardBackward(tooLong, tooLong, 1, 65));
        Assert.StartsWith("The sequence length must be between 1 and the model's 64 positions.", e.Message);
        Assert.Throws<ArgumentException>(() => graph.ForwardBackward([1, 2, 3], [1, 2, 3], 2, 2));
    }

    [Fact]
    public void LoRA_graphs_have_no_gradient_nodes_for_frozen_weights()
    {
        using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-gpt2-a"), Lora("q", "v"));
        var model = ModelProto.Parser.ParseFrom(graph.BackwardGraph);
        var outputs = model.Graph.Output.Select(o => o.Name).ToArray();
        Assert.Equal(new[] { "token_nll" }.Concat(graph.Parameters.Select(p => TrainingGraphEmitter.GradientName(p.Name))).Order(StringComparer.Ordinal),
            outputs.Order(StringComparer.Ordinal));
        Assert.All(outputs.Where(o => o != "token_nll"), o => Assert.Contains(".lora_", o));
        // A weight gradient is a Gemm over the tokens (transA): two per LoRA pair (A and B), none for the frozen weights.
        int weightGradients = model.Graph.Node.Count(n => n.OpType == "Gemm" && n.Attribute.Any(a => a.Name == "transA" && a.I == 1));
        Assert.Equal(2 * graph.LoraFactors.Count, weightGradients);
        Assert.Equal(4, graph.LoraFactors.Count);
        // Nothing flows back into the embeddings: no ScatterND accumulates into a table.
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "ScatterND" && n.Attribute.Any(a => a.Name == "reduction"));
    }

    [Fact]
    public void The_graphs_use_only_standard_opset_17_operators_with_CUDA_kernels()
    {
        using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-onnx-community"), Full());
        string[] allowed = ["Gemm", "MatMul", "Add", "Sub", "Mul", "Neg", "Sqrt", "Reciprocal", "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "Gather",
            "GatherElements", "ScatterElements", "ScatterND", "Reshape", "Transpose", "Split", "Concat", "Slice", "Unsqueeze", "Expand", "Shape",
            "ConstantOfShape", "ReduceSum", "ReduceMean", "LayerNormalization", "Sum", "Exp"];
        foreach (var bytes in new[] { graph.BackwardGraph!, graph.EvaluationGraph })
        {
            var model = ModelProto.Parser.ParseFrom(bytes);
            Assert.Equal([("", 17L)], model.OpsetImport.Select(o => (o.Domain, o.Version)));
            Assert.All(model.Graph.Node, n => Assert.Contains(n.OpType, allowed));
            Assert.DoesNotContain(model.Graph.Node, n => n.OpType is "SoftmaxCrossEntropyLoss" or "OneHot");
        }
    }

    [Fact]
    public void The_same_options_give_the_same_LoRA_start_and_bit_identical_gradients()
    {
        var (ids, targets) = Batch(2, 16, 419, seed: 3);
        float[][] Run()
        {
            using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-gpt2-hf"), Lora("q", "v", "o", "down"));
            foreach (var p in graph.Parameters.Where(p => p.Name.EndsWith("lora_B", StringComparison.Ordinal)))
                for (int i = 0; i < p.Value.Length; i++) p.Value[i] = 0.01f * (i % 7 - 3);
            graph.ForwardBackward(ids, targets, 2, 16);
            var first = graph.Parameters.SelectMany(p => new[] { (float[])p.Value.Clone(), (float[])p.Gradient.Clone() }).ToArray();
            graph.ForwardBackward(ids, targets, 2, 16);
            Assert.Equal(first.Where((_, i) => i % 2 == 1), graph.Parameters.Select(p => p.Gradient));
            return first;
        }
        Assert.Equal(Run(), Run());
    }

    [Fact]
    public void Gradients_of_two_micro_batches_add_up_to_the_gradient_of_the_whole_batch()
    {
        var (ids, targets) = Batch(4, 12, 2000, seed: 5);
        targets[7] = TrainingGraph.IgnoreIndex;
        using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-onnx-community"), Full());
        var (whole, count) = graph.ForwardBackward(ids, targets, 4, 12);
        var expected = graph.Parameters.Select(p => (float[])p.Gradient.Clone()).ToArray();
        var (first, n1) = graph.ForwardBackward(ids.AsSpan(0, 24), targets.AsSpan(0, 24), 2, 12);
        var partial = graph.Parameters.Select(p => (float[])p.Gradient.Clone()).ToArray();
        var (second, n2) = graph.ForwardBackward(ids.AsSpan(24), targets.AsSpan(24), 2, 12);
        Assert.Equal(47, count);
        Assert.Equal(count, n1 + n2);
        Assert.Equal(whole, first + second, 4);
        for (int t = 0; t < expected.Length; t++)
        {
            double scale = expected[t].Max(Math.Abs);
            for (int i = 0; i < expected[t].Length; i++)
                Assert.True(Math.Abs(partial[t][i] + graph.Parameters[t].Gradient[i] - expected[t][i]) <= 1e-5 * scale, $"'{graph.Parameters[t].Name}'[{i}]");
        }
    }

    [Fact]
    public void A_batch_without_counted_targets_has_no_loss_and_zero_gradients()
    {
        using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-gpt2-hf"), Full());
        var (ids, targets) = Batch(1, 8, 419, seed: 1);
        graph.ForwardBackward(ids, targets, 1, 8);
        Assert.Contains(graph.Parameters, p => p.Gradient.Any(g => g != 0));
        Array.Fill(targets, TrainingGraph.IgnoreIndex);
        Assert.Equal((0.0, 0), graph.ForwardBackward(ids, targets, 1, 8));
        Assert.All(graph.Parameters, p => Assert.All(p.Gradient, g => Assert.Equal(0f, g)));
    }

    [Fact]
    public void Evaluate_gives_the_training_passes_loss_and_leaves_the_gradients_alone()
    {
        using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-llama-builder"), Lora("q", "k", "v", "o", "gate", "up", "down"));
        var (ids, targets) = Batch(2, 10, 2000, seed: 9);
        var trained = graph.ForwardBackward(ids, targets, 2, 10);
        var gradients = graph.Parameters.Select(p => (float[])p.Gradient.Clone()).ToArray();
        var evaluated = graph.Evaluate(ids, targets, 2, 10);
        Assert.Equal(trained.Tokens, evaluated.Tokens);
        Assert.Equal(trained.LossSum, evaluated.LossSum, 4);
        Assert.Equal(gradients, graph.Parameters.Select(p => p.Gradient));
    }

    [Fact]
    public void Values_changed_in_place_are_what_the_next_pass_reads()
    {
        using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-gpt2-a"), Full());
        var (ids, targets) = Batch(1, 16, 50257, seed: 2);
        var before = graph.Evaluate(ids, targets, 1, 16).LossSum;
        graph.ForwardBackward(ids, targets, 1, 16);
        foreach (var p in graph.Parameters)
            for (int i = 0; i < p.Value.Length; i++) p.Value[i] -= 1e-3f * p.Gradient[i];
        var after = graph.Evaluate(ids, targets, 1, 16).LossSum;
        Assert.True(after < before - 1e-3, $"a gradient step changed the loss from {before} to {after}");
    }

    [Fact]
    public void Extending_the_vocabulary_leaves_every_log_probability_as_it_was()
    {
        using var plain = TrainingGraph.Create(Fixtures.DefaultModel, Full());
        var unseen = Enumerable.Range(0, 50257).Where(i => plain.TokenMap![i] == plain.Layout.Remap!.UnkRow).Take(3).ToArray();
        var options = Full();
        options.VocabularyExtension = unseen;
        using var extended = TrainingGraph.Create(Fixtures.DefaultModel, options);
        long[] ids = [50256, 464, unseen[0], 262, unseen[1], 286, 262, unseen[2]];
        long[] targets = [464, unseen[0], 262, unseen[1], 286, 262, unseen[2], 13];
        Assert.Equal(plain.Evaluate(ids, targets, 1, 8).LossSum, extended.Evaluate(ids, targets, 1, 8).LossSum, 4);
        var a = plain.NextTokenLogProbabilities(ids);
        var b = extended.NextTokenLogProbabilities(ids);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) < 1e-4, $"id {i}: {a[i]} before, {b[i]} after");
        Assert.Equal(["vocabulary_extension.weight", "vocabulary_extension.bias"], extended.Parameters.Skip(76).Select(p => p.Name));
        Assert.Equal(plain.Layout.InnerVocabulary + 2, extended.TokenMap![unseen[2]]);
    }

    internal static (long[] Ids, long[] Targets) Batch(int batch, int sequence, int vocabulary, int seed)
    {
        var random = new Random(seed);
        var stream = Enumerable.Range(0, batch * (sequence + 1)).Select(_ => (long)random.Next(vocabulary)).ToArray();
        var ids = new long[batch * sequence];
        var targets = new long[batch * sequence];
        for (int b = 0; b < batch; b++)
            for (int s = 0; s < sequence; s++)
            {
                ids[b * sequence + s] = stream[b * (sequence + 1) + s];
                targets[b * sequence + s] = stream[b * (sequence + 1) + s + 1];
            }
        return (ids, targets);
    }

    private static void Edit(string folder, Action<GraphProto> edit)
    {
        string path = Path.Combine(folder, "model.onnx");
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        edit(model.Graph);
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));
    }
}
