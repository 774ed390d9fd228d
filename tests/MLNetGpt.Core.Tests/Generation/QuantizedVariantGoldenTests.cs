using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>The int4 (MatMulNBits) variant of the onnx-community fixture against torch run on its dequantized weights.</summary>
public sealed class QuantizedVariantGoldenTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void The_q4_variant_generates_the_greedy_ids_torch_computes_from_the_dequantized_weights(int batchSize)
    {
        var golden = Fixtures.Golden("tiny-onnx-community", "golden-q4.json");
        using var model = GptModel.Open(Fixtures.Folder("tiny-onnx-community"), new GptModelOptions { Variant = "q4" });
        Assert.Equal("q4", model.Info.Variant);
        var options = new GenerationOptions { MaxNewTokens = golden.Greedy[0].Generated.Length, EosTokenIds = [] };
        var results = model.GenerateTokens(golden.Greedy.Select(c => (IReadOnlyList<int>)c.PromptIds).ToList(), options, batchSize);
        for (int i = 0; i < golden.Greedy.Length; i++) Assert.Equal(golden.Greedy[i].Generated, results[i].TokenIds);
    }

    [Fact]
    public void The_q4_variants_prefill_logits_are_within_tolerance_of_the_dequantized_reference()
    {
        var golden = Fixtures.Golden("tiny-onnx-community", "golden-q4.json");
        using var model = GptModel.Open(Fixtures.Folder("tiny-onnx-community"), new GptModelOptions { Variant = "q4" });
        var ids = golden.Prompts[0].Ids;
        var results = model.Score([(model.Tokenizer.Decode(ids), (string?)null)]);
        Assert.True(results[0].TokenCount > 0);
        // Logits at every prompt position, through one step of the backend.
        var input = new MLNetGpt.Generation.StepInput(ids.Select(i => (long)i).ToArray(), 1, ids.Length, Enumerable.Repeat(1L, ids.Length).ToArray(),
            Enumerable.Range(0, ids.Length).Select(i => (long)i).ToArray());
        using var cache = model.Engine.Backend.EmptyCache(1);
        using var options = new Microsoft.ML.OnnxRuntime.RunOptions();
        var (logits, present) = model.Engine.Backend.Step(input, cache, options);
        using (logits)
        using (present)
        {
            var row = new float[model.Info.VocabularySize];
            for (int position = 0; position < ids.Length; position++)
            {
                logits.Read(0, position, row);
                var figures = golden.Prefill[0];
                Assert.Equal(figures.Argmax[position], MLNetGpt.Generation.LogitsProcessors.ArgMax(row));
                for (int k = 0; k < golden.ProbeIds.Length; k++)
                    Tolerance.Close(figures.Probe[position][k], row[golden.ProbeIds[k]], $"q4 logit of id {golden.ProbeIds[k]} at position {position}");
            }
        }
    }
}
