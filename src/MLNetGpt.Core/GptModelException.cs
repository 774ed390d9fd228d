namespace MLNetGpt;

/// <summary>
/// Thrown when a model folder cannot be opened or run: a missing or corrupt file, a configuration
/// without a needed key, an unsupported graph, a tokenizer that cannot be found, or an execution
/// provider that cannot start. The message names the file, key or input involved; when ONNX Runtime
/// reported the failure, its native message is kept as <see cref="Exception.InnerException"/>.
/// </summary>
public sealed class GptModelException : Exception
{
    /// <summary>Creates the exception with a message that names what is wrong.</summary>
    public GptModelException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and the error that caused it.</summary>
    public GptModelException(string message, Exception innerException) : base(message, innerException) { }
}
