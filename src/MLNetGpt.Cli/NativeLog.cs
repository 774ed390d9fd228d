using Microsoft.ML.OnnxRuntime;

namespace MLNetGpt.Cli;

/// <summary>
/// ONNX Runtime's native log, routed through the tool. By default ONNX Runtime prints its own lines
/// to standard error, coloured with ANSI codes even when redirected and with --quiet; the one that
/// matters to users (CUDA could not load) is already reported, with what to install, by the
/// library's fallback warning. So native messages below fatal are shown only with
/// <c>MLNETGPT_DEBUG=1</c>, as plain <c>mlnetgpt: onnxruntime: ...</c> lines.
/// </summary>
internal static class NativeLog
{
    private static readonly bool Debug = Environment.GetEnvironmentVariable("MLNETGPT_DEBUG") == "1";

    // Kept in a static field: native code calls it for the life of the process.
    private static readonly DOrtLoggingFunction Sink = Write;

    /// <summary>Creates the process's ONNX Runtime environment; must run before the first session is created.</summary>
    public static void Configure()
    {
        if (OrtEnv.IsCreated) return;
        var options = new EnvironmentCreationOptions
        {
            logId = "mlnetgpt",
            logLevel = Debug ? OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING : OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
            loggingFunction = Sink,
        };
        try
        {
            OrtEnv.CreateInstanceWithOptions(ref options);
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or OnnxRuntimeException or EntryPointNotFoundException)
        {
            // Without a loadable native library only help and usage errors can work; the first session names the problem.
        }
    }

    private static void Write(IntPtr param, OrtLoggingLevel severity, string category, string logId, string codeLocation, string message)
    {
        string level = severity switch
        {
            OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL => "fatal: ",
            OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR => "error: ",
            OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING => "warning: ",
            _ => "",
        };
        Console.Error.WriteLine($"mlnetgpt: onnxruntime: {level}{message.Trim()}");
    }
}
