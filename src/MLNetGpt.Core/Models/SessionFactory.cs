using Microsoft.ML.OnnxRuntime;

namespace MLNetGpt.Models;

/// <summary>Creates ONNX Runtime sessions on the requested device, falling back to the CPU when allowed.</summary>
internal static class SessionFactory
{
    public const string CudaRequirement =
        "ONNX Runtime 1.31 with CUDA needs an NVIDIA GPU and driver, CUDA 13.x (libcudart.so.13, libcublas.so.13) and cuDNN 9 on the library path";

    /// <summary>Opens <paramref name="path"/>; returns the session and the provider it runs on (<c>CPU</c> or <c>CUDA:N</c>).</summary>
    public static (InferenceSession Session, string Provider) Open(string path, GptModelOptions options, bool cudaAlreadyFailed) =>
        Open(so => new InferenceSession(path, so), path, options, cudaAlreadyFailed);

    /// <summary>Opens a model held in memory (a training graph); <paramref name="label"/> names it in messages.</summary>
    public static (InferenceSession Session, string Provider) Open(byte[] model, string label, GptModelOptions options, bool cudaAlreadyFailed) =>
        Open(so => new InferenceSession(model, so), label, options, cudaAlreadyFailed);

    private static (InferenceSession Session, string Provider) Open(Func<SessionOptions, InferenceSession> create, string path, GptModelOptions options,
        bool cudaAlreadyFailed)
    {
        if (options.GpuDeviceId is int device && !cudaAlreadyFailed)
        {
            SessionOptions? cuda = null;
            try
            {
                cuda = CreateOptions(options);
                cuda.AppendExecutionProvider_CUDA(device);
                var session = create(cuda);
                return (session, $"CUDA:{device}");
            }
            catch (Exception e) when (e is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException or TypeInitializationException)
            {
                if (IsModelProblem(e)) throw Wrap(path, e);
                if (IsMissingRuntime(e)) throw MissingRuntime(e);
                // The CPU build has no CUDA entry point at all: saying which package to add is the whole story.
                bool cpuBuild = IsCpuBuild(e);
                string build = cpuBuild ? CpuBuildHint : "";
                string said = cpuBuild ? "" : $" ONNX Runtime said: {FirstLine(e.Message)}";
                if (!options.FallbackToCpu)
                    throw new GptModelException($"CUDA device {device} could not be used for {Path.GetFileName(path)}: {CudaRequirement}.{build}" +
                        (cpuBuild ? "" : $" ONNX Runtime said: {e.Message}"), e);
                options.Write($"CUDA device {device} is unavailable, running on the CPU instead ({CudaRequirement}).{build}{said}");
            }
            finally
            {
                cuda?.Dispose();
            }
        }

        SessionOptions? cpu = null;
        try
        {
            cpu = CreateOptions(options);
            return (create(cpu), "CPU");
        }
        catch (OnnxRuntimeException e)
        {
            throw Wrap(path, e);
        }
        catch (Exception e) when (IsMissingRuntime(e))
        {
            throw MissingRuntime(e);
        }
        finally
        {
            cpu?.Dispose();
        }
    }

    private const string CpuBuildHint =
        " This app has ONNX Runtime's CPU build (Microsoft.ML.OnnxRuntime); add the package MLNetGpt.Cuda for its CUDA build.";

    /// <summary>
    /// The first ONNX Runtime call of a process loads its native library; where the app lacks it, .NET throws
    /// DllNotFoundException, wrapped in a TypeInitializationException of ONNX Runtime's NativeMethods (and
    /// that same exception again on every later call).
    /// </summary>
    internal static bool IsMissingRuntime(Exception e) =>
        e is DllNotFoundException || e is TypeInitializationException { InnerException: DllNotFoundException };

    /// <summary>A CUDA request to the CPU build: that build lacks the CUDA entry point, or says CUDA is not enabled in it.</summary>
    internal static bool IsCpuBuild(Exception e) =>
        e is EntryPointNotFoundException || e.Message.Contains("not enabled in this build", StringComparison.OrdinalIgnoreCase);

    internal static GptModelException MissingRuntime(Exception e)
    {
        var cause = e is TypeInitializationException { InnerException: { } inner } ? inner : e;
        return new GptModelException(
            "ONNX Runtime's native library (libonnxruntime.so / onnxruntime.dll / libonnxruntime.dylib) could not be loaded: " +
            "the app needs the package Microsoft.ML.OnnxRuntime (CPU, which MLNetGpt depends on) or MLNetGpt.Cuda (CUDA), " +
            "and its runtimes/ folder (or, for a build for one runtime identifier, the library beside the app) copied with the app. " +
            $".NET said: {FirstLine(cause.Message)}", e);
    }

    private static SessionOptions CreateOptions(GptModelOptions options)
    {
        var so = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        if (options.IntraOpThreads is int threads) so.IntraOpNumThreads = threads;
        foreach (var (key, value) in options.SessionConfig) so.AddSessionConfigEntry(key, value);
        return so;
    }

    private static bool IsModelProblem(Exception e) =>
        e.Message.Contains("Protobuf parsing failed", StringComparison.OrdinalIgnoreCase)
        || e.Message.Contains("opset", StringComparison.OrdinalIgnoreCase)
        || e.Message.Contains("NO_SUCHFILE", StringComparison.OrdinalIgnoreCase)
        || e.Message.Contains("INVALID_GRAPH", StringComparison.OrdinalIgnoreCase)
        || e.Message.Contains("INVALID_PROTOBUF", StringComparison.OrdinalIgnoreCase);

    private static GptModelException Wrap(string path, Exception e) =>
        new($"ONNX Runtime could not load '{path}' (is it a complete, uncorrupted ONNX file with a supported op set?): {FirstLine(e.Message)}", e);

    private static string FirstLine(string message)
    {
        int end = message.IndexOf('\n');
        return (end < 0 ? message : message[..end]).Trim();
    }
}
