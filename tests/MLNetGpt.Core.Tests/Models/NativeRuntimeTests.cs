using MLNetGpt.Models;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Models;

/// <summary>What an app is told when ONNX Runtime's native library is missing, or is the CPU build where CUDA was asked for.</summary>
public sealed class NativeRuntimeTests
{
    // What .NET throws on the first ONNX Runtime call of an app without libonnxruntime (seen in an app whose runtimes/ folder was removed).
    private static TypeInitializationException MissingLibrary() => new("Microsoft.ML.OnnxRuntime.NativeMethods",
        new DllNotFoundException("Unable to load shared library 'onnxruntime' or one of its dependencies. In order to help diagnose loading problems, consider using a tool like strace.\n/app/runtimes/linux-x64/native/libonnxruntime.so: cannot open shared object file"));

    [Fact]
    public void A_missing_native_library_is_reported_naming_the_packages_that_bring_it()
    {
        var cause = MissingLibrary();
        Assert.True(SessionFactory.IsMissingRuntime(cause));
        var error = SessionFactory.MissingRuntime(cause);
        Assert.Contains("ONNX Runtime's native library (libonnxruntime.so / onnxruntime.dll / libonnxruntime.dylib) could not be loaded", error.Message);
        Assert.Contains("Microsoft.ML.OnnxRuntime (CPU, which MLNetGpt depends on) or MLNetGpt.Cuda (CUDA)", error.Message);
        Assert.Contains(".NET said: Unable to load shared library 'onnxruntime' or one of its dependencies.", error.Message);
        Assert.DoesNotContain("cannot open shared object file", error.Message);
        Assert.Same(cause, error.InnerException);
    }

    [Fact]
    public void Other_load_failures_are_not_mistaken_for_a_missing_library()
    {
        Assert.False(SessionFactory.IsMissingRuntime(new TypeInitializationException("Other", new InvalidOperationException("no"))));
        Assert.False(SessionFactory.IsMissingRuntime(new EntryPointNotFoundException("OrtSessionOptionsAppendExecutionProvider_CUDA")));
    }

    [Fact]
    public void A_cuda_request_to_the_cpu_build_of_onnx_runtime_names_the_MLNetGpt_Cuda_package()
    {
        // The tests run on ONNX Runtime's CPU build (Microsoft.ML.OnnxRuntime), as an app with only MLNetGpt does.
        var log = new List<string>();
        using (var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { GpuDeviceId = 0, Log = log.Add }))
            Assert.Equal("CPU", model.Info.ExecutionProvider);
        Assert.Contains("This app has ONNX Runtime's CPU build (Microsoft.ML.OnnxRuntime); add the package MLNetGpt.Cuda for its CUDA build.", Assert.Single(log));

        var error = Assert.Throws<GptModelException>(() => GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { GpuDeviceId = 0, FallbackToCpu = false }));
        Assert.Contains("CUDA device 0 could not be used", error.Message);
        Assert.Contains("add the package MLNetGpt.Cuda", error.Message);
        Assert.IsType<EntryPointNotFoundException>(error.InnerException);
    }
}
