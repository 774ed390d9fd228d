using MLNetGpt.Models.Onnx;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>
/// Writing a trained model folder: the source graph with only its weights replaced, opening with
/// <see cref="GptModel.Open"/> and generating the greedy ids a forward pass with the trained weights chooses.
/// </summary>
public sealed class TrainingWriteBackTests
{
    private const int GreedyTokens = 8;

    /// <summary>A few plain gradient steps, enough to move every trained tensor.</summary>
    private static void Train(TrainingGraph graph, int vocabulary, int steps = 3, float rate = 0.05f, int sequence = 16)
    {
        var (ids, targets) = TrainingGraphTests.Batch(2, sequence, vocabulary, seed: 11);
        for (int s = 0; s < steps; s++)
        {
            var (_, tokens) = graph.ForwardBackward(ids, targets, 2, sequence);
            foreach (var p in graph.Parameters)
                for (int i = 0; i < p.Value.Length; i++) p.Value[i] -= rate / tokens * p.Gradient[i];
        }
    }

    internal static int[] GreedyWithGraph(TrainingGraph graph, IReadOnlyList<int> prompt)
    {
        var ids = prompt.Select(i => (long)i).ToList();
        for (int n = 0; n < GreedyTokens; n++)
        {
            var logProbabilities = graph.NextTokenLogProbabilities(ids.ToArray());
            int best = 0;
            for (int i = 1; i < logProbabilities.Length; i++)
                if (logProbabilities[i] > logProbabilities[best]) best = i;
            ids.Add(best);
        }
        return ids.Skip(prompt.Count).Select(i => (int)i).ToArray();
    }

    internal static int[] GreedyWithModel(string folder, IReadOnlyList<int> prompt, string? variant = null)
    {
        using var model = GptModel.Open(folder, new GptModelOptions { Variant = variant });
        var options = new GenerationOptions { MaxNewTokens = GreedyTokens, DoSample = false, RepetitionPenalty = 1f, NoRepeatNgramSize = 0, EosTokenIds = [] };
        return model.GenerateTokens([prompt], options, 1)[0].TokenIds.ToArray();
    }

    public static TheoryData<string, string, string[]> Float32Cases() => new()
    {
        { "tiny-gpt2-a", "full", [] },
        { "tiny-gpt2-a-pair", "full", [] },
        { "tiny-gpt2-a-merged", "lora", ["q", "v", "o"] },
        { "tiny-gpt2-hf", "lora", ["q", "k", "v", "o", "up", "down"] },
        { "tiny-onnx-community", "lora", ["q", "k", "v", "o", "gate", "up", "down"] },
        { "tiny-onnx-community", "full", [] },
    };

    [Theory]
    [MemberData(nameof(Float32Cases))]
    public void A_written_float32_folder_generates_the_greedy_ids_of_the_trained_weights(string fixture, string method, string[] targets)
    {
        var options = new TrainingGraphOptions { Method = method == "lora" ? TrainingMethod.Lora : TrainingMethod.Full, Threads = 1 };
        if (targets.Length > 0) options.LoraTargets = targets;
        using var graph = TrainingGraph.Create(Fixtures.Folder(fixture), options);
        Train(graph, graph.VocabularySize, rate: method == "lora" ? 2f : 0.05f);
        string output = Path.Combine(Fixtures.TempFolder("trained"), "model");

        graph.WriteModelFolder(output);

        int[] prompt = [3, 17, 250, 9];
        var fromGraph = GreedyWithGraph(graph, prompt);
        Assert.Equal(fromGraph, GreedyWithModel(output, prompt));
        Assert.NotEqual(fromGraph, GreedyWithModel(Fixtures.Folder(fixture), prompt));   // training changed something
        // Every other file of the folder came along.
        foreach (var file in Directory.GetFiles(Fixtures.Folder(fixture), "*.json").Where(f => !f.Contains("golden")))
            Assert.True(File.Exists(Path.Combine(output, Path.GetFileName(file))), Path.GetFileName(file));
    }

    [Fact]
    public void LoRA_is_merged_into_its_weight_as_w_plus_alpha_over_r_times_a_b_in_the_graphs_orientation()
    {
        var options = new TrainingGraphOptions { Method = TrainingMethod.Lora, LoraRank = 2, LoraAlpha = 6, LoraTargets = ["q", "down"], Threads = 1 };
        using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-gpt2-hf"), options);
        Train(graph, graph.VocabularySize);
        string output = Path.Combine(Fixtures.TempFolder("merged"), "model");
        graph.WriteModelFolder(output);
        var written = OnnxModelFile.Load(Path.Combine(output, "model.onnx"));
        var source = OnnxModelFile.Load(Path.Combine(Fixtures.Folder("tiny-gpt2-hf"), "model.onnx"));

        // c_attn is Conv1D [in 32, out 96]: q is output columns 0..31.
        var factor = graph.LoraFactors.Single(f => f.Layer == 1 && f.Role == "q");
        float[] w0 = source.ReadFloats(source.FindInitializer("transformer.h.1.attn.c_attn.weight")!);
        float[] w1 = written.ReadFloats(written.FindInitializer("transformer.h.1.attn.c_attn.weight")!);
        var a = graph.Values[factor.AName];
        var b = graph.Values[factor.BName];
        for (int i = 0; i < 32; i++)
            for (int o = 0; o < 96; o++)
            {
                double delta = o < 32 ? 3.0 * (a[i * 2] * b[o] + a[i * 2 + 1] * b[32 + o]) : 0;
                Assert.Equal(w0[i * 96 + o] + delta, w1[i * 96 + o], 5);
            }
        // Weights LoRA did not touch are byte for byte the source's.
        Assert.Equal(source.ReadData(source.FindInitializer("transformer.h.0.attn.c_proj.weight")!).ToArray(),
            written.ReadData(written.FindInitializer("transformer.h.0.attn.c_proj.weight")!).ToArray());
    }

    [Fact]
    public void The_default_models_weights_are_written_back_as_float16_and_its_folder_generates_their_greedy_ids()
    {
        using var graph = TrainingGraph.Create(Fixtures.DefaultModel, new TrainingGraphOptions { Method = TrainingMethod.Full, Threads = 1 });
        Train(graph, graph.VocabularySize, steps: 2, rate: 0.02f);
        string output = Path.Combine(Fixtures.TempFolder("default-trained"), "model");
        graph.WriteModelFolder(output);

        var written = OnnxModelFile.Load(Path.Combine(output, "model.onnx"));
        foreach (var p in graph.Parameters)
        {
            var tensor = written.FindInitializer(p.Name)!;
            Assert.Equal(10, tensor.DataType);   // float16, as the source stores it
            Assert.Equal(p.Value.Select(v => (float)(Half)v), written.ReadFloats(tensor));
        }
        foreach (var file in new[] { "README.md", "config.json", "generation_config.json", "tokenizer_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(Fixtures.DefaultModel, file)), File.ReadAllBytes(Path.Combine(output, file)));

        // The weights as stored (rounded to float16): a graph read from the written folder has exactly them.
        using var reread = TrainingGraph.Create(output, new TrainingGraphOptions { Threads = 1 });
        int[] prompt = [50256, 818, 262, 3726];
        Assert.Equal(GreedyWithGraph(reread, prompt), GreedyWithModel(output, prompt));
    }

    [Fact]
    public void An_extended_vocabulary_is_written_into_the_embedding_the_remap_table_and_the_output_bias()
    {
        using var probe = TrainingGraph.Create(Fixtures.DefaultModel, new TrainingGraphOptions { Method = TrainingMethod.Lora, Threads = 1, VerifyLayout = false });
        var unseen = Enumerable.Range(0, 50257).Where(i => probe.TokenMap![i] == probe.Layout.Remap!.UnkRow).Skip(100).Take(4).ToArray();
        var options = new TrainingGraphOptions { Method = TrainingMethod.Lora, Threads = 1, VocabularyExtension = unseen };
        using var graph = TrainingGraph.Create(Fixtures.DefaultModel, options);
        // Text in which the new ids occur, so their rows and biases learn.
        long[] ids = [50256, unseen[0], 262, unseen[1], 286, unseen[2], 262, unseen[3], 13, unseen[0], 262, unseen[1]];
        long[] targets = [unseen[0], 262, unseen[1], 286, unseen[2], 262, unseen[3], 13, unseen[0], 262, unseen[1], 286];
        var adam = new GoldenAdamW(1e-2f, 0.9f, 0.999f, 1e-8f, 0f, 10);
        var moments = graph.Parameters.Select(p => (M: new float[p.Value.Length], V: new float[p.Value.Length])).ToArray();
        for (int s = 1; s <= adam.Steps; s++)
        {
            var (_, tokens) = graph.ForwardBackward(ids, targets, 1, ids.Length);
            for (int t = 0; t < graph.Parameters.Count; t++)
            {
                var p = graph.Parameters[t];
                GoldenCheck.AdamW(p.Value, p.Gradient.Select(g => g / tokens).ToArray(), moments[t].M, moments[t].V, s, adam, p.Decay);
            }
        }
        double trainedLoss = graph.Evaluate(ids, targets, 1, ids.Length).LossSum;
        string output = Path.Combine(Fixtures.TempFolder("extended"), "model");
        graph.WriteModelFolder(output);

        using var reread = TrainingGraph.Create(output, new TrainingGraphOptions { Threads = 1 });
        Assert.Equal(probe.Layout.InnerVocabulary + 4, reread.Layout.InnerVocabulary);
        for (int i = 0; i < unseen.Length; i++) Assert.Equal(probe.Layout.InnerVocabulary + i, reread.TokenMap![unseen[i]]);
        // float16 storage rounds the trained weights: the loss moves by little.
        double rereadLoss = reread.Evaluate(ids, targets, 1, ids.Length).LossSum;
        Assert.True(Math.Abs(rereadLoss - trainedLoss) < 1e-2 * Math.Abs(trainedLoss), $"trained {trainedLoss}, written {rereadLoss}");
        double untrained = probe.Evaluate(ids, targets, 1, ids.Length).LossSum;
        Assert.True(trainedLoss < untrained - 1, $"the extended rows learned: {untrained} before, {trainedLoss} after");
        long[] prompt = [50256, unseen[0], 262];
        Assert.Equal(GreedyWithGraph(reread, prompt.Select(i => (int)i).ToArray()), GreedyWithModel(output, prompt.Select(i => (int)i).ToArray()));
    }

    [Fact]
    public void Quantized_weights_are_trained_dequantized_and_written_re_quantized_leaving_untouched_ones_as_they_were()
    {
        var options = new TrainingGraphOptions { Method = TrainingMethod.Lora, LoraTargets = ["q", "v"], Threads = 1 };
        using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-llama-builder"), options);
        Train(graph, graph.VocabularySize, rate: 0.5f);
        string output = Path.Combine(Fixtures.TempFolder("builder-trained"), "model");
        graph.WriteModelFolder(output);

        var source = OnnxModelFile.Load(Path.Combine(Fixtures.Folder("tiny-llama-builder"), "model.onnx"));
        var written = OnnxModelFile.Load(Path.Combine(output, "model.onnx"));
        Assert.False(File.Exists(Path.Combine(output, "model.onnx.data")));   // small enough to be written inline
        Assert.True(File.Exists(Path.Combine(output, "genai_config.json")));
        foreach (var name in new[] { "model.layers.0.attn.o_proj.MatMul.weight_Q4", "model.layers.1.mlp.down_proj.MatMul.weight_Q4", "lm_head.MatMul.weight_Q4" })
            Assert.Equal(source.ReadData(source.FindInitializer(name)!).ToArray(), written.ReadData(written.FindInitializer(name)!).ToArray());

        // The merged q|k|v weight, re-quantized by the project's quantizer (symmetric, block 32): each value within half a step.
        var qkv = graph.Layout.Blocks[0].QueryKeyValue!.Weight;
        var merged = (float[])graph.Values[qkv.Name].Clone();
        foreach (var f in graph.LoraFactors.Where(f => f.Layer == 0))
            for (int o = 0; o < f.Width; o++)
                for (int i = 0; i < f.Base.In; i++)
                {
                    double delta = 0;
                    for (int r = 0; r < f.Rank; r++) delta += graph.Values[f.AName][i * f.Rank + r] * graph.Values[f.BName][r * f.Width + o];
                    merged[(f.OutOffset + o) * f.Base.In + i] += (float)(f.Scale * delta);
                }
        var requantized = new float[merged.Length];
        SourceWeights.Dequantize(written, qkv.Quantized!, requantized);
        var scales = written.ReadFloats(written.FindInitializer(qkv.Quantized!.ScalesName)!);
        for (int n = 0; n < qkv.Quantized.N; n++)
            for (int k = 0; k < qkv.Quantized.K; k++)
            {
                float step = scales[n * (qkv.Quantized.K / 32) + k / 32];
                Assert.True(Math.Abs(requantized[n * qkv.Quantized.K + k] - merged[n * qkv.Quantized.K + k]) <= step / 2 + 1e-6f, $"[{n}, {k}]");
            }
        Assert.NotEqual(source.ReadData(source.FindInitializer(qkv.Name)!).ToArray(), written.ReadData(written.FindInitializer(qkv.Name)!).ToArray());

        // The written folder opens, and its own graph (the re-quantized weights) matches its inference engine (VerifyLayout).
        using var reread = TrainingGraph.Create(output, new TrainingGraphOptions { Threads = 1 });
        int[] prompt = [1, 40, 300, 7];
        Assert.Equal(GreedyWithGraph(reread, prompt), GreedyWithModel(output, prompt));
    }

    [Fact]
    public void A_non_empty_output_folder_or_one_inside_the_model_folder_is_refused()
    {
        using var graph = TrainingGraph.Create(Fixtures.Folder("tiny-gpt2-hf"), new TrainingGraphOptions { Method = TrainingMethod.Lora, Threads = 1 });
        string occupied = Fixtures.TempFolder("occupied");
        File.WriteAllText(Path.Combine(occupied, "x.txt"), "x");
        var e = Assert.Throws<IOException>(() => graph.WriteModelFolder(occupied));
        Assert.Equal($"The output folder '{occupied}' is not empty; choose a new or empty folder.", e.Message);
        string copy = Fixtures.CopyOf("tiny-gpt2-hf");
        using var inside = TrainingGraph.Create(copy, new TrainingGraphOptions { Method = TrainingMethod.Lora, Threads = 1 });
        e = Assert.Throws<IOException>(() => inside.WriteModelFolder(Path.Combine(copy, "trained")));
        Assert.StartsWith("The output folder '", e.Message);
        Assert.EndsWith($"is the model folder or inside it; choose a folder outside '{copy}'.", e.Message);
    }

    [LinuxFact]
    public void The_written_folder_gets_the_files_a_model_reads_and_nothing_a_link_out_of_the_folder_points_at()
    {
        string copy = Fixtures.CopyOf("tiny-gpt2-hf");
        File.WriteAllText(Path.Combine(copy, "notes.txt"), "not part of the model");
        string outside = Path.Combine(Fixtures.TempFolder("outside"), "secret.txt");
        File.WriteAllText(outside, "secret");
        File.CreateSymbolicLink(Path.Combine(copy, "secret-link.txt"), outside);
        using var graph = TrainingGraph.Create(copy, new TrainingGraphOptions { Method = TrainingMethod.Lora, Threads = 1 });
        string output = Path.Combine(Fixtures.TempFolder("policy-trained"), "model");
        graph.WriteModelFolder(output);
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(output, "config.json")));
        Assert.False(File.Exists(Path.Combine(output, "notes.txt")));
        Assert.False(File.Exists(Path.Combine(output, "secret-link.txt")));
    }
}
