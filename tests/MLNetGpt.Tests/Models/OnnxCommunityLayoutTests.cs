using Microsoft.ML;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Models;

/// <summary>The onnx-community / transformers.js layout: configuration at the root, one decoder per precision under onnx/.</summary>
public sealed class OnnxCommunityLayoutTests
{
    /// <summary>tiny-gpt2-a rearranged: its files at the root, model.onnx under onnx/, and an int4 copy as onnx/model_q4.onnx.</summary>
    private static string Folder(bool withFp32 = true)
    {
        var source = Fixtures.CopyOf("tiny-gpt2-a");
        var quantized = Path.Combine(Fixtures.TempFolder("q4"), "out");
        GptQuantizer.Quantize(source, quantized, new QuantizationOptions { Bits = 4 });
        var folder = Fixtures.TempFolder("onnx-community");
        foreach (var file in Directory.GetFiles(source).Where(f => !f.EndsWith(".onnx", StringComparison.Ordinal)))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        Directory.CreateDirectory(Path.Combine(folder, "onnx"));
        if (withFp32) File.Copy(Path.Combine(source, "model.onnx"), Path.Combine(folder, "onnx", "model.onnx"));
        File.Copy(Path.Combine(quantized, "model.onnx"), Path.Combine(folder, "onnx", "model_q4.onnx"));
        return folder;
    }

    [Fact]
    public void The_cpu_opens_the_fp32_variant_by_default_and_lists_every_variant()
    {
        using var model = GptModel.Open(Folder());
        Assert.Equal(ModelLayout.OnnxCommunity, model.Info.Layout);
        Assert.Equal("fp32", model.Info.Variant);
        Assert.Equal(["fp32", "q4"], model.Info.Variants);
        Assert.Equal(["onnx/model.onnx"], model.Info.ModelFiles);
    }

    [Fact]
    public void An_asked_for_variant_is_opened_and_generates_what_the_fp32_variant_nearly_does()
    {
        var folder = Folder();
        using var fp32 = GptModel.Open(folder);
        using var q4 = GptModel.Open(folder, new GptModelOptions { Variant = "q4" });
        Assert.Equal("q4", q4.Info.Variant);
        Assert.Equal(["onnx/model_q4.onnx"], q4.Info.ModelFiles);
        var golden = Fixtures.Golden("tiny-gpt2-a");
        var ids = golden.Greedy[0].PromptIds;
        var reference = fp32.GenerateTokens([ids], new GenerationOptions { MaxNewTokens = 4, EosTokenIds = [] })[0];
        Assert.Equal(golden.Greedy[0].Generated.Take(4), reference.TokenIds);
        Assert.Equal(4, q4.GenerateTokens([ids], new GenerationOptions { MaxNewTokens = 4, EosTokenIds = [] })[0].TokenIds.Count);
    }

    [Fact]
    public void Without_an_fp32_file_the_cpu_falls_back_to_the_next_precision()
    {
        using var model = GptModel.Open(Folder(withFp32: false));
        Assert.Equal("q4", model.Info.Variant);
    }

    [Fact]
    public void A_variant_that_is_not_there_is_refused_listing_the_ones_that_are()
    {
        var folder = Folder();
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(folder, new GptModelOptions { Variant = "fp16" }));
        Assert.Contains("no 'fp16' variant under onnx/", error.Message);
        Assert.Contains("fp32, q4", error.Message);
    }

    [Fact]
    public void A_stages_variant_opens_that_precision_and_survives_save_and_load()
    {
        var ml = new Microsoft.ML.MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(new[] { new PromptRow { Prompt = "In the beginning" } });
        var model = ml.Transforms.Text.GenerateText(new GenerateTextOptions
        {
            OutputColumnName = "Completion", InputColumnName = "Prompt", ModelFolder = Fixtures.Folder("tiny-onnx-community"), Variant = "q4",
            Generation = new GenerationOptions { MaxNewTokens = 3 },
        }).Fit(data);
        var stage = model.OfType<GenerateTokensTransformer>().Single();
        Assert.Equal("q4", stage.ModelInfo.Variant);
        var zip = Path.Combine(Fixtures.TempFolder("variant-zip"), "model.zip");
        ml.Model.Save(model, data.Schema, zip);
        model.Dispose();
        var loaded = (Microsoft.ML.Data.TransformerChain<Microsoft.ML.ITransformer>)ml.Model.Load(zip, out _);
        var reloaded = loaded.OfType<GenerateTokensTransformer>().Single();
        Assert.Equal("q4", reloaded.Variant);
        Assert.Equal("q4", reloaded.ModelInfo.Variant);
        loaded.Dispose();
    }

    public sealed class PromptRow
    {
        public string Prompt { get; set; } = "";
    }
}
