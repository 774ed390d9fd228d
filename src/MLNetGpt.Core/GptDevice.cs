namespace MLNetGpt;

/// <summary>
/// Where a stage runs, overriding the <c>MLContext</c>'s <c>GpuDeviceId</c> and <c>FallbackToCpu</c>
/// (which apply when a stage's device is left <see langword="null"/>).
/// </summary>
public sealed record GptDevice
{
    private GptDevice(int? gpuDeviceId, bool fallbackToCpu)
    {
        GpuDeviceId = gpuDeviceId;
        FallbackToCpu = fallbackToCpu;
    }

    /// <summary>The CUDA device id, or <see langword="null"/> for the CPU.</summary>
    public int? GpuDeviceId { get; }

    /// <summary>Whether a CUDA device that cannot start falls back to the CPU (with a log line) instead of throwing.</summary>
    public bool FallbackToCpu { get; }

    /// <summary>The CPU.</summary>
    public static GptDevice Cpu { get; } = new(null, true);

    /// <summary>CUDA device <paramref name="deviceId"/> (needs CUDA 13.x and cuDNN 9).</summary>
    public static GptDevice Cuda(int deviceId = 0, bool fallbackToCpu = true) =>
        deviceId >= 0 ? new(deviceId, fallbackToCpu) : throw new ArgumentOutOfRangeException(nameof(deviceId), deviceId, "The GPU device id must be 0 or more.");

    /// <summary>Parses <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> (as the command line takes them).</summary>
    public static GptDevice Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim().ToLowerInvariant();
        if (t == "cpu") return Cpu;
        if (t == "cuda" || t == "gpu") return Cuda(0);
        if ((t.StartsWith("cuda:", StringComparison.Ordinal) || t.StartsWith("gpu:", StringComparison.Ordinal))
            && int.TryParse(t[(t.IndexOf(':') + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id))
            return Cuda(id);
        throw new FormatException($"'{text}' is not a device: use cpu, cuda or cuda:N.");
    }

    /// <inheritdoc/>
    public override string ToString() => GpuDeviceId is int id ? $"cuda:{id}" : "cpu";
}
