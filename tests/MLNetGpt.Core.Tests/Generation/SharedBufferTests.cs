using MLNetGpt.Generation;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>GroupQueryAttention graphs update one past/present buffer in place (GenAI's past_present_share_buffer).</summary>
public sealed class SharedBufferTests
{
    [Fact]
    public void A_group_query_attention_model_runs_with_shared_buffers_and_a_standard_one_does_not()
    {
        using var gqa = GptModel.Open(Fixtures.Folder("tiny-llama-builder"));
        using var standard = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        Assert.True(((HostDecoderBackend)gqa.Engine.Backend).ShareBuffer);
        Assert.False(((HostDecoderBackend)standard.Engine.Backend).ShareBuffer);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void Shared_buffers_give_the_ids_of_fresh_presents_across_buffer_growth_and_continuous_batching(int batch)
    {
        using var model = GptModel.Open(Fixtures.Folder("tiny-llama-builder"));
        var backend = (HostDecoderBackend)model.Engine.Backend;
        // Rows finish at different lengths, so slots are refilled and caches trimmed and joined; 100 tokens cross buffer sizes 64 and 128.
        var prompts = Enumerable.Range(0, 7).Select(i => (IReadOnlyList<int>)Enumerable.Range(3, 2 + i * 3).Select(t => 5 + t * 11 % 1900).ToArray()).ToList();
        var options = new GenerationOptions { MaxNewTokens = 100, EosTokenIds = [], DoSample = true, Seed = 2, Temperature = 0.8f };
        var shared = model.GenerateTokens(prompts, options, batch).Select(r => r.TokenIds).ToList();
        backend.ShareBuffer = false;
        var fresh = model.GenerateTokens(prompts, options, batch).Select(r => r.TokenIds).ToList();
        Assert.Equal(fresh, shared);
    }
}
