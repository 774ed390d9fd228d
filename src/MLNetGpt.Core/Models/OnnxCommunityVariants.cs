using System.Text.RegularExpressions;

namespace MLNetGpt.Models;

/// <summary>
/// The onnx-community / transformers.js layout: tokenizer and configuration files at the root, and
/// decoder files under <c>onnx/</c>, one per precision: <c>model.onnx</c> (fp32), <c>model_fp16.onnx</c>,
/// <c>model_q4.onnx</c>, <c>model_q4f16.onnx</c>, <c>model_int8.onnx</c>, <c>model_uint8.onnx</c>,
/// <c>model_quantized.onnx</c> (q8), <c>model_bnb4.onnx</c>; older exports name them
/// <c>decoder_model_merged*.onnx</c>.
/// </summary>
internal static partial class OnnxCommunityVariants
{
    public const string Folder = "onnx";

    // The default when none is asked for: the CPU prefers exact fp32, then the int8/int4 files that
    // ONNX Runtime's CPU kernels run fast; CUDA prefers float16.
    private static readonly string[] CpuPreference = ["fp32", "q4", "int8", "uint8", "quantized", "q4f16", "fp16", "bnb4"];
    private static readonly string[] CudaPreference = ["fp16", "q4f16", "fp32", "q4", "int8", "uint8", "quantized", "bnb4"];

    [GeneratedRegex(@"^(model|decoder_model_merged)(?:_(?<variant>[a-z0-9]+))?\.onnx$", RegexOptions.IgnoreCase)]
    private static partial Regex FileName();

    /// <summary>The variants in <c>folder/onnx</c> by name (<c>fp32</c> for the plain file), with their paths relative to the folder.</summary>
    public static IReadOnlyDictionary<string, string> Find(string folder)
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string onnx = Path.Combine(folder, Folder);
        if (!Directory.Exists(onnx)) return result;
        foreach (var path in Directory.GetFiles(onnx, "*.onnx").Order(StringComparer.Ordinal))
        {
            var m = FileName().Match(Path.GetFileName(path));
            if (!m.Success) continue;
            string variant = m.Groups["variant"].Success ? m.Groups["variant"].Value.ToLowerInvariant() : "fp32";
            // "model" files win over the older "decoder_model_merged" ones of the same precision.
            if (!result.ContainsKey(variant) || m.Groups[1].Value.Equals("model", StringComparison.OrdinalIgnoreCase))
                result[variant] = Folder + "/" + Path.GetFileName(path);
        }
        return result;
    }

    /// <summary>The variant to open: the one asked for, else the device's preferred one that exists.</summary>
    public static string Choose(IReadOnlyDictionary<string, string> variants, string? asked, bool onCuda, string folder)
    {
        if (asked is not null)
        {
            string name = asked.Trim().ToLowerInvariant() switch { "" or "fp32" or "float32" => "fp32", "q8" => "quantized", var other => other };
            return variants.ContainsKey(name) ? name
                : throw new GptModelException($"The model folder '{folder}' has no '{asked}' variant under onnx/ (it has: {string.Join(", ", variants.Keys)}).");
        }
        foreach (var name in onCuda ? CudaPreference : CpuPreference)
            if (variants.ContainsKey(name)) return name;
        return variants.Keys.First();
    }
}
