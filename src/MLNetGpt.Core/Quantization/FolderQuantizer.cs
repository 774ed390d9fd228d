using System.Globalization;
using System.Text;
using MLNetGpt.Models;
using MLNetGpt.Models.Onnx;

namespace MLNetGpt.Quantization;

/// <summary>Quantizes a whole model folder: finds its ONNX files, rewrites them, copies the rest, updates the model card.</summary>
internal static class FolderQuantizer
{
    public const string ModelCard = ModelOutputFolder.ModelCard;
    private const string CommunityOnnxFolder = "onnx";

    public static QuantizationReport Quantize(string inputFolder, string outputFolder, QuantizationOptions options,
        IProgress<string>? progress, CancellationToken cancellationToken)
    {
        string input = Path.GetFullPath(inputFolder);
        string output = Path.GetFullPath(outputFolder);
        if (!Directory.Exists(input)) throw new GptModelException($"The model folder '{input}' does not exist.");
        return ModelOutputFolder.Write(input, "input folder", output, () => Run(input, output, FindModelFiles(input), options, progress, cancellationToken));
    }

    /// <summary>The ONNX files (relative paths) that the folder's layout uses.</summary>
    public static IReadOnlyList<string> FindModelFiles(string folder)
    {
        // Every file is found through the folder's policy: a graph that is a link out of the folder is refused.
        var policy = ModelFiles.For(folder);
        var files = new List<string>();
        foreach (var name in new[] { ModelFolder.OptimumDecoderFile, ModelFolder.OptimumMergedFile, ModelFolder.OptimumPrefillFile, ModelFolder.OptimumWithPastFile })
            if (policy.Exists(name)) files.Add(name);
        var genai = JsonConfig.LoadIfExists(policy, ModelFolder.GenAIConfigFile);
        if (genai?.String("model.decoder.filename") is { } decoder)
        {
            if (!policy.Exists(decoder))
                throw new GptModelException($"{genai.Path} names the model file '{decoder}', which is not in '{folder}'.");
            files.Add(Normalize(decoder));
        }
        string community = Path.Combine(folder, CommunityOnnxFolder);
        if (Directory.Exists(community))
            files.AddRange(Directory.GetFiles(community, "*.onnx").Order(StringComparer.Ordinal)
                .Select(f => Normalize(Path.GetRelativePath(folder, f)))
                .Where(policy.Exists));
        files = files.Distinct(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new GptModelException($"The folder '{folder}' holds no ONNX model to quantize: expected {ModelFolder.OptimumDecoderFile}, " +
                $"{ModelFolder.OptimumMergedFile}, {ModelFolder.OptimumPrefillFile} + {ModelFolder.OptimumWithPastFile}, " +
                $"the file {ModelFolder.GenAIConfigFile} names, or {CommunityOnnxFolder}/*.onnx.");
        return files;
    }

    private static QuantizationReport Run(string input, string output, IReadOnlyList<string> modelFiles, QuantizationOptions options,
        IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var policy = ModelFiles.For(input);
        var written = new List<string>();
        var skipped = new List<QuantizationReport.SkippedMatMul>();
        var consumed = new HashSet<string>(modelFiles, StringComparer.Ordinal);   // files not to copy as they are
        var rows = new List<FileRow>();
        int rewritten = 0;
        foreach (var file in modelFiles)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string source = Path.Combine(input, file);
            var model = OnnxModelFile.Load(source);
            // Lengths of what the links lead to: a link's own length is that of its target's path.
            long before = policy.Length(file);
            foreach (var data in model.ExternalDataFiles())
            {
                if (Path.IsPathRooted(data) || data.Split('/', '\\').Contains(".."))
                    throw new GptModelException($"'{file}' keeps tensor data in '{data}', outside the model folder '{input}'.");
                string relative = Normalize(Path.GetRelativePath(input, Path.Combine(Path.GetDirectoryName(source)!, data)));
                consumed.Add(relative);
                if (policy.Find(relative) is not null) before += policy.Length(relative);
            }
            progress?.Report($"{file}: quantizing to {options.Bits} bits, block size {options.BlockSize}");
            var result = MatMulRewriter.Rewrite(model, options, file, progress, cancellationToken);
            cancellationToken.ThrowIfCancellationRequested();

            string target = Path.Combine(output, file);
            model.Save(target);
            written.Add(file);
            long after = new FileInfo(target).Length;
            if (File.Exists(target + ".data"))
            {
                written.Add(file + ".data");
                after += new FileInfo(target + ".data").Length;
            }
            rewritten += result.Rewritten;
            skipped.AddRange(result.Skipped);
            rows.Add(new FileRow(file, before, after, result));
            progress?.Report(string.Create(CultureInfo.InvariantCulture,
                $"{file}: {result.Rewritten} of {result.MatMulCount} MatMuls quantized, {before:N0} -> {after:N0} bytes"));
        }

        // The model card is written below, extended with what quantizing did.
        written.AddRange(ModelOutputFolder.CopyCompanions(policy, output, consumed.Append(ModelCard).ToHashSet(StringComparer.Ordinal)));

        string text = policy.Exists(ModelCard) ? policy.ReadSmallText(ModelCard) : $"# {Path.GetFileName(input)}\n";
        File.WriteAllText(Path.Combine(output, ModelCard), AppendSection(text, options, rows));
        written.Add(ModelCard);
        progress?.Report($"Wrote {written.Count} files to {output}");

        return new QuantizationReport(options, rewritten, skipped, modelFiles, rows.Sum(r => r.Before), rows.Sum(r => r.After), written);
    }

    private sealed record FileRow(string File, long Before, long After, FileRewrite Result);

    private static string AppendSection(string card, QuantizationOptions options, List<FileRow> rows)
    {
        var s = new StringBuilder(card.TrimEnd());
        s.Append("\n\n## Quantization\n\n");
        s.Append("The weights of every MatMul with a constant weight were quantized by MLNetGpt (`GptQuantizer`, `mlnetgpt quantize`) ")
         .Append("into ONNX Runtime's `com.microsoft.MatMulNBits`; everything else in the graphs is unchanged. ")
         .Append("A tied embedding keeps its original table for the lookup; the output projection has its own quantized copy.\n\n");
        s.Append("| | |\n|---|---|\n");
        s.Append(Invariant($"| Bits | {options.Bits} |\n"));
        s.Append(Invariant($"| Block size | {options.BlockSize} |\n"));
        s.Append(options.Symmetric ? "| Blocks | symmetric (no zero points) |\n" : "| Blocks | asymmetric (a zero point per block) |\n");
        s.Append(Invariant($"| Accuracy level | {options.AccuracyLevel} ({AccuracyText(options.AccuracyLevel)}) |\n"));
        int matMuls = rows.Sum(r => r.Result.MatMulCount), rewritten = rows.Sum(r => r.Result.Rewritten);
        int activations = rows.Sum(r => r.Result.Activations), others = matMuls - rewritten - activations;
        s.Append(Invariant($"| MatMuls rewritten | {rewritten} of {matMuls}"));
        if (activations > 0) s.Append(Invariant($"; {activations} multiply two activations"));
        if (others > 0) s.Append(Invariant($"; {others} with a weight MatMulNBits cannot take were left as they were"));
        s.Append(" |\n");
        foreach (var row in rows)
            s.Append(Invariant($"| `{row.File}` | {row.Before:N0} -> {row.After:N0} bytes ({100.0 * row.After / Math.Max(row.Before, 1):F0}%) |\n"));
        return s.ToString();
    }

    private static string AccuracyText(int level) => level switch
    {
        0 => "unset: activations in their own type",
        1 => "float32 activations",
        2 => "float16 activations",
        3 => "bfloat16 activations",
        _ => "activations quantized to int8 per block",
    };

    private static string Normalize(string relative) => relative.Replace('\\', '/');

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
