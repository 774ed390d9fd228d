using MLNetGpt.Models;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>The remapped vocabulary of the default model (tools/gptkit.py) as the trainer reads it from the graph.</summary>
public sealed class VocabularyMapTests
{
    private static readonly Lazy<VocabularyMap> Default = new(() => VocabularyMap.Read(Path.Combine(Fixtures.DefaultModel, "model.onnx"))!);

    [Fact]
    public void The_default_model_keeps_7833_of_gpt2_ids_and_sends_the_rest_to_its_last_row()
    {
        var map = Default.Value;
        Assert.Equal(50257, map.InterfaceSize);
        Assert.Equal(7833, map.Unk);            // the 7,834th row of its embedding
        Assert.Equal(7833, map.KeptCount);
        Assert.True(map.IsKept(0));             // '!' occurs in the KJV
        Assert.False(map.IsKept(1));            // '"' never does
        Assert.True(map.IsKept(50256));         // <|endoftext|>
        Assert.False(map.IsKept(50257));        // outside the map
        Assert.False(map.IsKept(-1));
    }

    [Fact]
    public void A_fixture_made_by_the_kit_has_its_own_map_and_a_graph_without_one_has_none()
    {
        var tiny = VocabularyMap.Read(Path.Combine(Fixtures.Folder("tiny-gpt2-a"), "model.onnx"));
        Assert.NotNull(tiny);
        Assert.Equal((799, 799), (tiny!.Unk, tiny.KeptCount));
        Assert.Null(VocabularyMap.Read(Path.Combine(Fixtures.Folder("tiny-chatml"), "model.onnx")));
        Assert.Null(VocabularyMap.Read(Path.Combine(Fixtures.Folder("tiny-llama-builder"), "model.onnx")));
    }

    [Fact]
    public void The_extension_takes_the_most_frequent_unk_tokens_seen_twice_or_more_up_to_the_limit()
    {
        var map = Default.Value;
        // 1, 2, 3, 4, 5 are unk; 0 and 6 are kept.
        int[][] documents = [[1, 2, 2, 0, 0, 0, 3], [3, 3, 2, 4, 5, 5, 6, 6, 6], [1, 5]];
        Assert.Equal([2, 3, 5, 1], map.ChooseExtension(documents, limit: 10));       // 2, 3, 5 thrice; 1 twice; 4 once
        Assert.Equal([2, 3], map.ChooseExtension(documents, limit: 2));
        Assert.Equal([2, 3, 5, 1, 4], map.ChooseExtension(documents, limit: 10, minimumCount: 1));
        Assert.Equal(12.0 / 18, map.UnkRate(documents), 12);
        Assert.Equal(0, map.UnkRate([]));
    }

    [LicenceTextsFact]
    public void About_a_third_of_debians_licence_texts_is_unk_in_the_default_model()
    {
        string folder = LicenceTextsFactAttribute.Folder;
        string[] names = LicenceTextsFactAttribute.Names;
        var tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
        var documents = names.Select(n => tokenizer.EncodeToIds(File.ReadAllText(Path.Combine(folder, n))).ToArray()).ToList();
        double rate = Default.Value.UnkRate(documents);
        Assert.InRange(rate, 0.30, 0.45);   // 37.7% measured by an independent probe (docs: FACTS, 2026-12-07)
        Assert.Equal(1024, Default.Value.ChooseExtension(documents, 1024).Length);
    }
}

/// <summary>A fact that needs Debian's licence texts (/usr/share/common-licenses, on every Debian machine); skipped elsewhere.</summary>
public sealed class LicenceTextsFactAttribute : FactAttribute
{
    public const string Folder = "/usr/share/common-licenses";

    public static readonly string[] Names = ["GPL-1", "GPL-2", "GPL-3", "LGPL-2", "LGPL-2.1", "LGPL-3", "GFDL-1.2", "GFDL-1.3", "Artistic", "BSD", "CC0-1.0", "MPL-1.1"];

    public LicenceTextsFactAttribute()
    {
        if (!Names.All(n => File.Exists(Path.Combine(Folder, n)))) Skip = $"needs Debian's licence texts in {Folder}, which are not all there";
    }
}
