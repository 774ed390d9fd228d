using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Models;

/// <summary>
/// CUDA on a machine without it: these tests run on the CI machines, which have no GPU. Where a
/// GPU with CUDA 13 and cuDNN 9 is present the provider starts instead, and the tests say so.
/// </summary>
public sealed class ExecutionProviderTests
{
    [Fact]
    public void Requesting_cuda_without_it_falls_back_to_the_cpu_and_logs_why()
    {
        var log = new List<string>();
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { GpuDeviceId = 0, Log = log.Add });
        if (model.Info.ExecutionProvider.StartsWith("CUDA", StringComparison.Ordinal)) return;   // a GPU machine
        Assert.Equal("CPU", model.Info.ExecutionProvider);
        var line = Assert.Single(log);
        Assert.Contains("CUDA device 0 is unavailable, running on the CPU", line);
        Assert.Contains("CUDA 13", line);
        Assert.Contains("cuDNN 9", line);
        // The CPU fallback generates exactly what a CPU model does.
        using var cpu = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var options = new GenerationOptions { MaxNewTokens = 8, EosTokenIds = [] };
        Assert.Equal(cpu.Generate("In the beginning", options).TokenIds, model.Generate("In the beginning", options).TokenIds);
    }

    [Fact]
    public void Requesting_cuda_with_fallback_disabled_names_the_missing_requirement()
    {
        GptModel? model = null;
        try
        {
            model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { GpuDeviceId = 0, FallbackToCpu = false });
        }
        catch (GptModelException error)
        {
            Assert.Contains("CUDA device 0 could not be used", error.Message);
            Assert.Contains("CUDA 13.x", error.Message);
            Assert.Contains("cuDNN 9", error.Message);
            Assert.NotNull(error.InnerException);
            return;
        }
        using (model)
            Assert.StartsWith("CUDA", model.Info.ExecutionProvider);
    }

    [Fact]
    public void A_negative_device_id_is_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new GptModelOptions { GpuDeviceId = -1 });
    }

    [Fact]
    public void Session_configuration_entries_are_accepted_and_leave_results_unchanged()
    {
        var options = new GptModelOptions { IntraOpThreads = 1 };
        options.SessionConfig["session.intra_op.allow_spinning"] = "0";
        options.SessionConfig["session.dynamic_block_base"] = "4";
        var greedy = new GenerationOptions { MaxNewTokens = 12, DoSample = false };
        using var tuned = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), options);
        using var plain = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        Assert.Equal(plain.Generate("Hello there", greedy).TokenIds, tuned.Generate("Hello there", greedy).TokenIds);
    }
}
