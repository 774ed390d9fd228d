using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Models;

/// <summary>
/// ONNX Runtime GenAI's own test models, opened unmodified where they lie in ../shared/peer-models,
/// must give the ids and lengths that GenAI's own tests assert (see the README there): GenAI's
/// combined past_%d caches with int32 inputs, a hybrid decoder with convolution states, and a
/// GroupQueryAttention decoder with float16 caches and mixed int32/int64 inputs.
/// </summary>
public sealed class PeerModelTests
{
    private const string Gpt2 = "peer-models/onnxruntime-genai/tiny-random-gpt2-fp32";
    private const string Lfm2 = "peer-models/onnxruntime-genai/tiny-random-lfm2-fp32";
    private const string Qwen35 = "peer-models/onnxruntime-genai/tiny-qwen35-cuda";

    // GenAI's greedy search with max_length 10 (prompt plus output).
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxLength = 10 };

    private static List<int[]> Run(string folder, IReadOnlyList<int[]> prompts, int batchSize)
    {
        using var model = GptModel.Open(SharedData.PathOf(folder));
        return model.GenerateTokens(prompts.Select(p => (IReadOnlyList<int>)p).ToList(), Greedy, batchSize)
            .Select((r, i) => prompts[i].Concat(r.TokenIds).ToArray()).ToList();
    }

    [SharedDataTheory(Gpt2)]
    [InlineData(1)]
    [InlineData(2)]
    public void GenAIs_tiny_gpt2_with_combined_caches_and_int32_inputs_gives_the_ids_its_tests_assert(int batchSize)
    {
        var sequences = Run(Gpt2, [[0, 0, 0, 52], [0, 0, 195, 731]], batchSize);
        Assert.Equal([0, 0, 0, 52, 204, 204, 204, 204, 204, 204], sequences[0]);
        Assert.Equal([0, 0, 195, 731, 731, 114, 114, 114, 114, 114], sequences[1]);
    }

    [SharedDataFact(Gpt2)]
    public void GenAIs_tiny_gpt2_is_read_as_five_layers_of_combined_caches_fed_int32()
    {
        using var model = GptModel.Open(SharedData.PathOf(Gpt2));
        var graph = model.Engine.Backend.Graph;
        Assert.Equal(5, model.Info.LayerCount);
        Assert.All(graph.States, s => Assert.Equal(MLNetGpt.Models.StateKind.CombinedKeyValue, s.Kind));
        Assert.Equal(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Int32, graph.InputIds.ElementType);
        Assert.Equal(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Int32, graph.AttentionMask.ElementType);
    }

    [SharedDataTheory(Lfm2)]
    [InlineData(1)]
    [InlineData(3)]
    public void GenAIs_tiny_lfm2_with_convolution_states_beside_its_caches_generates_within_max_length(int batchSize)
    {
        var prompts = new[] { new[] { 0, 0, 195, 731 }, new[] { 0, 0, 195, 731 }, new[] { 5, 6 } };
        var sequences = Run(Lfm2, prompts, batchSize);
        Assert.All(sequences, s => Assert.InRange(s.Length, 1, 10));
        Assert.True(sequences[0].Length > 4, "GenAI's test asserts 4 < length <= 10");
        Assert.Equal(sequences[0], sequences[1]);     // the same prompt gives the same ids whatever shares its batch
    }

    [SharedDataFact(Lfm2)]
    public void GenAIs_tiny_lfm2_gives_the_same_ids_alone_and_in_a_batch_with_other_prompts()
    {
        var prompts = new[] { new[] { 0, 0, 195, 731 }, new[] { 17 }, new[] { 9, 8, 7, 6, 5, 4 } };
        Assert.Equal(Run(Lfm2, prompts, 1), Run(Lfm2, prompts, 3));
    }

    [SharedDataTheory(Qwen35)]
    [InlineData(1)]
    [InlineData(2)]
    public void GenAIs_tiny_qwen35_with_group_query_attention_and_float16_caches_fills_max_length(int batchSize)
    {
        var sequences = Run(Qwen35, [[10, 20, 30, 40], [10, 20, 30, 40]], batchSize);
        // GenAI's test asserts the length; GenAI 0.18 on the CPU generates these ids.
        Assert.Equal([10, 20, 30, 40, 231, 970, 539, 144, 127, 760], sequences[0]);
        Assert.Equal(sequences[0], sequences[1]);
    }

    [SharedDataFact(Qwen35)]
    public void GenAIs_tiny_qwen35_gives_the_same_ids_alone_and_batched_with_prompts_of_other_lengths()
    {
        var prompts = new[] { new[] { 10, 20, 30, 40 }, new[] { 7 }, new[] { 3, 1, 4, 1, 5, 9, 2 } };
        Assert.Equal(Run(Qwen35, prompts, 1), Run(Qwen35, prompts, 3));
    }
}
