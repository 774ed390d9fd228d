using MLNetGpt.Models.Onnx;

namespace MLNetGpt.Bench;

/// <summary>The int8 and int4 copies of a bench model, what each reads per token, and its held-out perplexity.</summary>
internal static class Precisions
{
    /// <summary>
    /// The quantized copy of <paramref name="folder"/> in artifacts/models, made once with the
    /// library's quantizer (block 32 unless told, asymmetric, accuracy level 4: int8 dot products,
    /// the fastest CPU kernel) into a scratch folder and moved into place only when complete.
    /// </summary>
    public static string Quantized(string root, string folder, int bits, int blockSize = 32)
    {
        string suffix = blockSize == 32 ? $"int{bits}" : $"int{bits}-b{blockSize}";
        string target = Path.Combine(root, "artifacts", "models", $"{Path.GetFileName(folder)}-{suffix}");
        if (File.Exists(Path.Combine(target, "model.onnx"))) return target;
        string scratch = target + ".partial";
        if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        Console.Error.WriteLine($"bench: quantizing {Path.GetFileName(folder)} to int{bits} (GptQuantizer, block {blockSize}, asymmetric, accuracy level 4)...");
        var report = GptQuantizer.Quantize(folder, scratch, new QuantizationOptions { Bits = bits, BlockSize = blockSize, Symmetric = false, AccuracyLevel = 4 });
        Console.Error.WriteLine($"bench:   {report.MatMulsRewritten} MatMuls, {report.BytesBefore / 1e6:F0} -> {report.BytesAfter / 1e6:F0} MB");
        if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
        Directory.Move(scratch, target);
        return target;
    }

    /// <summary>
    /// Bytes one decode step reads from the model's weights: every initializer that feeds a
    /// computation, except the tables only a Gather reads (an embedding lookup touches one row per
    /// token). A weight stored as float16 behind a Cast to float32 is read as float32, because ONNX
    /// Runtime folds the Cast at load time. For a tied fp32 model the embedding counts once, as the
    /// lm_head's weight; the quantized copies give the lm_head its own 4/8-bit copy and the
    /// float32 table is only gathered.
    /// </summary>
    public static long BytesReadPerToken(string folder)
    {
        var file = OnnxModelFile.Load(Directory.GetFiles(folder, "*.onnx").Single());
        var nodes = file.AllNodes().ToList();
        var consumers = new Dictionary<string, List<(string Op, int Slot, string Output, long CastTo)>>();
        foreach (var node in nodes)
            for (int i = 0; i < node.Input.Count; i++)
            {
                if (!consumers.TryGetValue(node.Input[i], out var list)) consumers[node.Input[i]] = list = [];
                long castTo = node.OpType == "Cast" ? node.Attribute.FirstOrDefault(a => a.Name == "to")?.I ?? 0 : 0;
                list.Add((node.OpType, i, node.Output.Count > 0 ? node.Output[0] : "", castTo));
            }

        // Whether a value reaches a computation other than a Gather's table, through Identity, Cast and Transpose.
        bool Computed(string name, int depth)
        {
            if (depth > 8 || !consumers.TryGetValue(name, out var list)) return false;
            foreach (var (op, slot, output, _) in list)
            {
                if (op == "Gather" && slot == 0) continue;
                if (op is "Identity" or "Cast" or "Transpose") { if (Computed(output, depth + 1)) return true; continue; }
                return true;
            }
            return false;
        }

        long total = 0;
        foreach (var initializer in file.Initializers)
        {
            if (!Computed(initializer.Name, 0)) continue;
            bool castToFloat = consumers[initializer.Name].Any(c => c.Op == "Cast" && c.CastTo == 1);
            long elements = initializer.Dims.Aggregate(1L, (a, b) => a * b);
            total += castToFloat ? elements * sizeof(float) : initializer.ByteLength;
        }
        return total;
    }

    public sealed class PerplexityResult
    {
        public double Perplexity { get; set; }
        public int Tokens { get; set; }
        public int Verses { get; set; }
    }

    /// <summary>Corpus perplexity (exp of the mean negative log-likelihood over all tokens) of the held-out verses.</summary>
    public static PerplexityResult Perplexity(string folder, string versesFile, int threads)
    {
        string[] verses = File.ReadAllLines(versesFile).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        using var model = GptModel.Open(folder, new GptModelOptions { IntraOpThreads = threads });
        var scores = model.Score(verses.Select(v => (v, (string?)null)), batchSize: 8);
        double logLikelihood = scores.Sum(s => s.LogLikelihood);
        int tokens = scores.Sum(s => s.TokenCount);
        return new PerplexityResult { Perplexity = Math.Exp(-logLikelihood / tokens), Tokens = tokens, Verses = verses.Length };
    }
}
