using MLNetGpt.Models.Onnx;
using MLNetGpt.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace MLNetGpt.Tests.Quantization;

/// <summary>Quantizing whole model folders and using the result.</summary>
public sealed class GptQuantizerTests(ITestOutputHelper output)
{
    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 16, DoSample = false, RepetitionPenalty = 1f };

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public void A_quantized_fixture_folder_opens_and_its_int8_greedy_tokens_mostly_equal_float32(int level)
    {
        string input = Fixtures.CopyOf("tiny-gpt2-a");
        string quantized = Path.Combine(Fixtures.TempFolder("int8"), "out");

        var report = GptQuantizer.Quantize(input, quantized, new QuantizationOptions { Bits = 8, AccuracyLevel = level });

        Assert.Equal(9, report.MatMulsRewritten);   // 4 per layer and the tied lm_head
        Assert.Equal(4, report.Skipped.Count);      // the attention products of 2 layers
        Assert.All(report.Skipped, s => Assert.StartsWith("B is computed by Concat", s.Reason));
        var prompts = Fixtures.Golden("tiny-gpt2-a").Greedy.Select(g => (IReadOnlyList<int>)g.PromptIds).ToList();
        using var reference = GptModel.Open(input);
        using var model = GptModel.Open(quantized);
        var (prefix, total) = CommonPrefix(reference.GenerateTokens(prompts, Greedy), model.GenerateTokens(prompts, Greedy));

        // A random-weight model's top logits are close (golden.json: margins of 0.014 to 0.045), so one
        // changed token sends the rest of a continuation elsewhere. Scoring every position after the
        // float32 model's own prefix measures the per-token agreement without that cascade.
        var next = new GenerationOptions { MaxNewTokens = 1, DoSample = false, RepetitionPenalty = 1f };
        var continued = reference.GenerateTokens(prompts, Greedy);
        var forced = prompts.SelectMany((p, i) => Enumerable.Range(0, continued[i].TokenIds.Count)
            .Select(t => (IReadOnlyList<int>)p.Concat(continued[i].TokenIds.Take(t)).ToArray())).ToList();
        var expected = reference.GenerateTokens(forced, next);
        var actual = model.GenerateTokens(forced, next);
        int agree = expected.Zip(actual).Count(p => p.First.TokenIds.SequenceEqual(p.Second.TokenIds));

        output.WriteLine($"int8, accuracy level {level}: next-token agreement with float32 {agree} of {forced.Count} = {(double)agree / forced.Count:P1}; " +
            $"free-running greedy common prefix {prefix} of {total} = {(double)prefix / total:P1}");
        Assert.True(agree >= 0.85 * forced.Count, $"the int8 model chose the float32 model's next token at only {agree} of {forced.Count} positions");
    }

    private static (int Same, int Total) CommonPrefix(IReadOnlyList<GenerationResult> expected, IReadOnlyList<GenerationResult> actual)
    {
        int total = 0, same = 0;
        for (int i = 0; i < expected.Count; i++)
        {
            same += expected[i].TokenIds.Zip(actual[i].TokenIds).TakeWhile(p => p.First == p.Second).Count();
            total += expected[i].TokenIds.Count;
        }
        return (same, total);
    }

    [Theory]
    [InlineData("tiny-gpt2-a-merged", new[] { "decoder_model_merged.onnx" }, 18)]
    [InlineData("tiny-gpt2-a-pair", new[] { "decoder_model.onnx", "decoder_with_past_model.onnx" }, 18)]
    [InlineData("tiny-gqa-genai", new[] { "model.onnx" }, 15)]
    [InlineData("tiny-gpt2-b", new[] { "model.onnx" }, 13)]
    public void Every_ONNX_file_of_a_layout_is_quantized_and_the_folder_still_generates(string fixture, string[] files, int rewritten)
    {
        string quantized = Path.Combine(Fixtures.TempFolder("layouts"), fixture);

        var report = GptQuantizer.Quantize(Fixtures.Folder(fixture), quantized, new QuantizationOptions { Bits = 4 });

        Assert.Equal(files, report.QuantizedFiles);
        Assert.Equal(rewritten, report.MatMulsRewritten);
        Assert.True(report.BytesAfter < report.BytesBefore, $"{report.BytesBefore} -> {report.BytesAfter} bytes");
        foreach (var file in files)
        {
            var model = OnnxModelFile.Load(Path.Combine(quantized, file));
            Assert.Contains(("com.microsoft", "MatMulNBits"), model.Operators());
            Assert.Contains(new OnnxOpset("com.microsoft", 1), model.OpsetImports);
        }
        using var gpt = GptModel.Open(quantized);
        var result = gpt.Generate("hello", Greedy);
        Assert.True(result.TokenIds.Count == 16 || result.FinishReason == FinishReason.Eos, $"{result.TokenIds.Count} tokens, {result.FinishReason}");
    }

    [Fact]
    public void A_merged_decoder_quantizes_each_weight_once_for_both_branches()
    {
        string quantized = Path.Combine(Fixtures.TempFolder("merged"), "out");
        GptQuantizer.Quantize(Fixtures.Folder("tiny-gpt2-a-merged"), quantized, new QuantizationOptions { Bits = 4 });

        var model = OnnxModelFile.Load(Path.Combine(quantized, "decoder_model_merged.onnx"));
        var packed = model.Graph.Initializer.Where(t => t.Name.EndsWith("_Q4", StringComparison.Ordinal)).ToList();
        Assert.Equal(9, packed.Count);   // 9 weights, read by 18 MatMulNBits nodes in the two branches
        Assert.Equal(18, model.AllNodes().Count(n => n.OpType == "MatMulNBits"));
    }

    [Fact]
    public void The_default_model_keeps_its_held_out_perplexity_within_half_a_percent_at_int8_and_one_and_a_half_at_int4()
    {
        string[] verses = File.ReadAllLines(Path.Combine(Fixtures.Root, "kjv-heldout.txt"))
            .Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        Assert.Equal(70, verses.Length);
        string folder = Fixtures.TempFolder("default");
        var sizes = new Dictionary<int, QuantizationReport>();
        foreach (int bits in new[] { 8, 4 })
            sizes[bits] = GptQuantizer.Quantize(Fixtures.DefaultModel, Path.Combine(folder, $"int{bits}"), new QuantizationOptions { Bits = bits });

        double fp32 = Perplexity(Fixtures.DefaultModel, verses);
        double int8 = Perplexity(Path.Combine(folder, "int8"), verses);
        double int4 = Perplexity(Path.Combine(folder, "int4"), verses);

        output.WriteLine($"held-out perplexity over {verses.Length} verses: fp32 {fp32:F3}, int8 {int8:F3} ({int8 / fp32 - 1:+0.00%;-0.00%}), int4 {int4:F3} ({int4 / fp32 - 1:+0.00%;-0.00%})");
        foreach (var (bits, report) in sizes)
            output.WriteLine($"int{bits}: {report.BytesBefore:N0} -> {report.BytesAfter:N0} bytes, {report.MatMulsRewritten} MatMuls");
        Assert.InRange(int8 / fp32, 0.995, 1.005);
        Assert.InRange(int4 / fp32, 0.985, 1.015);
        Assert.Equal(25, sizes[4].MatMulsRewritten);   // 4 per layer and the tied lm_head
        Assert.True(sizes[4].BytesAfter < sizes[8].BytesAfter && sizes[8].BytesAfter < sizes[8].BytesBefore);
    }

    [Fact]
    public void The_model_card_gains_a_section_saying_what_was_done()
    {
        string quantized = Path.Combine(Fixtures.TempFolder("card"), "out");
        var report = GptQuantizer.Quantize(Fixtures.DefaultModel, quantized, new QuantizationOptions { Bits = 4, BlockSize = 64, Symmetric = true, AccuracyLevel = 0 });

        string original = File.ReadAllText(Path.Combine(Fixtures.DefaultModel, "README.md"));
        string card = File.ReadAllText(Path.Combine(quantized, "README.md"));
        Assert.StartsWith(original.TrimEnd(), card);
        string section = card[original.TrimEnd().Length..];
        Assert.Contains("## Quantization", section);
        Assert.Contains("| Bits | 4 |", section);
        Assert.Contains("| Block size | 64 |", section);
        Assert.Contains("| Blocks | symmetric (no zero points) |", section);
        Assert.Contains("| Accuracy level | 0 (unset: activations in their own type) |", section);
        Assert.Contains($"| MatMuls rewritten | {report.MatMulsRewritten} of {report.MatMulsRewritten + report.Skipped.Count}; {report.Skipped.Count} multiply two activations |", section);
        Assert.Contains($"| `model.onnx` | {report.BytesBefore:N0} -> {report.BytesAfter:N0} bytes", section);
    }

    [Fact]
    public void A_folder_without_a_model_card_gets_one_and_only_the_other_files_a_model_reads_are_copied_unchanged()
    {
        string input = Fixtures.CopyOf("tiny-gpt2-b");
        File.Delete(Path.Combine(input, "README.md"));
        Directory.CreateDirectory(Path.Combine(input, "extra"));
        File.WriteAllText(Path.Combine(input, "extra", "notes.txt"), "kept");
        string quantized = Path.Combine(Fixtures.TempFolder("nocard"), "out");

        var report = GptQuantizer.Quantize(input, quantized, new QuantizationOptions { Bits = 8 });

        string card = File.ReadAllText(Path.Combine(quantized, "README.md"));
        Assert.StartsWith($"# {Path.GetFileName(input)}\n\n## Quantization\n", card);
        foreach (var file in new[] { "config.json", "generation_config.json", "tokenizer_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(input, file)), File.ReadAllBytes(Path.Combine(quantized, file)));
        // Files no model reads (test data, notes) stay behind.
        Assert.False(File.Exists(Path.Combine(quantized, "golden.json")));
        Assert.False(Directory.Exists(Path.Combine(quantized, "extra")));
        Assert.Equal(["README.md", "config.json", "generation_config.json", "model.onnx", "tokenizer_config.json"],
            report.FilesWritten.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void An_input_with_external_data_is_quantized_without_copying_its_data_file()
    {
        string input = Fixtures.CopyOf("tiny-gpt2-a");
        string model = Path.Combine(input, "model.onnx");
        OnnxModelFile.Load(Fixtures.Folder("tiny-gpt2-a") + "/model.onnx").Save(model, externalDataThreshold: 0);
        Assert.True(File.Exists(model + ".data"));
        string quantized = Path.Combine(Fixtures.TempFolder("external-in"), "out");

        var report = GptQuantizer.Quantize(input, quantized, new QuantizationOptions { Bits = 4 });

        Assert.False(File.Exists(Path.Combine(quantized, "model.onnx.data")));
        Assert.DoesNotContain("model.onnx.data", report.FilesWritten);
        Assert.Equal(new FileInfo(model).Length + new FileInfo(model + ".data").Length, report.BytesBefore);
        using var gpt = GptModel.Open(quantized);
        Assert.NotEmpty(gpt.Generate("hello", Greedy).TokenIds);
    }

    [Fact]
    public void Progress_names_each_file_and_MatMul()
    {
        var lines = new List<string>();
        GptQuantizer.Quantize(Fixtures.Folder("tiny-gpt2-b"), Path.Combine(Fixtures.TempFolder("progress"), "out"), new QuantizationOptions(),
            new Collect(lines));

        Assert.Equal("model.onnx: quantizing to 4 bits, block size 32", lines[0]);
        Assert.Contains("model.onnx: quantized /MatMul (13 of 19 MatMuls so far)", lines);
        Assert.Contains(lines, l => l.StartsWith("model.onnx: 13 of 19 MatMuls quantized, ", StringComparison.Ordinal));
    }

    [Fact]
    public void A_cancelled_quantization_leaves_no_output_folder()
    {
        string quantized = Path.Combine(Fixtures.TempFolder("cancel"), "out");
        using var cancellation = new CancellationTokenSource();
        cancellation.Cancel();

        Assert.ThrowsAny<OperationCanceledException>(() =>
            GptQuantizer.Quantize(Fixtures.Folder("tiny-gpt2-b"), quantized, new QuantizationOptions(), null, cancellation.Token));

        Assert.False(Directory.Exists(quantized));
    }

    [Fact]
    public void An_output_folder_that_is_not_empty_is_refused_naming_it()
    {
        string quantized = Fixtures.TempFolder("occupied");
        File.WriteAllText(Path.Combine(quantized, "keep.txt"), "mine");

        var error = Assert.Throws<IOException>(() => GptQuantizer.Quantize(Fixtures.Folder("tiny-gpt2-b"), quantized, new QuantizationOptions()));

        Assert.Equal($"The output folder '{quantized}' is not empty; choose a new or empty folder.", error.Message);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(quantized, "keep.txt")));
    }

    [Fact]
    public void An_empty_output_folder_is_used()
    {
        string quantized = Fixtures.TempFolder("empty");
        var report = GptQuantizer.Quantize(Fixtures.Folder("tiny-gpt2-b"), quantized, new QuantizationOptions());
        Assert.Contains("model.onnx", report.FilesWritten);
    }

    [Fact]
    public void An_output_folder_inside_the_input_is_refused()
    {
        string input = Fixtures.CopyOf("tiny-gpt2-b");
        string inside = Path.Combine(input, "int4");
        var error = Assert.Throws<IOException>(() => GptQuantizer.Quantize(input, inside, new QuantizationOptions()));
        Assert.Equal($"The output folder '{inside}' is the input folder or inside it; choose a folder outside '{input}'.", error.Message);
    }

    [Fact]
    public void An_input_folder_without_an_ONNX_model_is_refused_naming_the_expected_files()
    {
        string input = Fixtures.TempFolder("no-onnx");
        File.WriteAllText(Path.Combine(input, "config.json"), "{}");

        var error = Assert.Throws<GptModelException>(() => GptQuantizer.Quantize(input, Path.Combine(Fixtures.TempFolder("x"), "out"), new QuantizationOptions()));

        Assert.Equal($"The folder '{input}' holds no ONNX model to quantize: expected model.onnx, decoder_model_merged.onnx, " +
            "decoder_model.onnx + decoder_with_past_model.onnx, the file genai_config.json names, or onnx/*.onnx.", error.Message);
    }

    [Fact]
    public void A_genai_config_naming_a_missing_model_file_is_refused_naming_both()
    {
        string input = Fixtures.CopyOf("tiny-gqa-genai");
        File.Delete(Path.Combine(input, "model.onnx"));

        var error = Assert.Throws<GptModelException>(() => GptQuantizer.Quantize(input, Path.Combine(Fixtures.TempFolder("x"), "out"), new QuantizationOptions()));

        Assert.Equal($"{Path.Combine(input, "genai_config.json")} names the model file 'model.onnx', which is not in '{input}'.", error.Message);
    }

    [Fact]
    public void A_missing_input_folder_is_named()
    {
        string input = Path.Combine(Fixtures.TempFolder("gone"), "nothing-here");
        var error = Assert.Throws<GptModelException>(() => GptQuantizer.Quantize(input, Path.Combine(Fixtures.TempFolder("x"), "out"), new QuantizationOptions()));
        Assert.Equal($"The model folder '{input}' does not exist.", error.Message);
    }

    [Fact]
    public void An_onnx_community_folder_has_every_onnx_file_in_its_onnx_folder_quantized()
    {
        string input = Fixtures.TempFolder("community");
        Directory.CreateDirectory(Path.Combine(input, "onnx"));
        File.Copy(Path.Combine(Fixtures.Folder("tiny-gpt2-b"), "model.onnx"), Path.Combine(input, "onnx", "model.onnx"));
        File.Copy(Path.Combine(Fixtures.Folder("tiny-gpt2-a"), "model.onnx"), Path.Combine(input, "onnx", "model_other.onnx"));
        File.Copy(Path.Combine(Fixtures.Folder("tiny-gpt2-b"), "config.json"), Path.Combine(input, "config.json"));

        var report = GptQuantizer.Quantize(input, Path.Combine(Fixtures.TempFolder("community-out"), "out"), new QuantizationOptions());

        Assert.Equal(["onnx/model.onnx", "onnx/model_other.onnx"], report.QuantizedFiles);
        Assert.Equal(13 + 9, report.MatMulsRewritten);
    }

    private static double Perplexity(string folder, string[] verses)
    {
        using var model = GptModel.Open(folder);
        var scores = model.Score(verses.Select(v => (v, (string?)null)), batchSize: 8);
        double logLikelihood = scores.Sum(s => s.LogLikelihood);
        int tokens = scores.Sum(s => s.TokenCount);
        return Math.Exp(-logLikelihood / tokens);
    }

    private sealed class Collect(List<string> lines) : IProgress<string>
    {
        public void Report(string value) => lines.Add(value);
    }
}
