using System.Text.Json;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tokenization;
using Xunit;

namespace MLNetGpt.Tests.Tokenization;

/// <summary>Every tokenizer source a model folder may have, against a reference encoder.</summary>
public sealed class TokenizerFolderTests
{
    private static readonly string[] Sentences =
    [
        "The quick brown fox jumps over the lazy dog.",
        "In the beginning God created the heaven and the earth.",
        "  leading spaces,\ttabs\nand newlines\r\n",
        "Numbers 1234567 and 3.14159; it's they're we'll I'd",
        "Unicode: héllo wörld, 日本語のテキスト, emoji 😀🎉, Ελληνικά",
        "",
    ];

    private static readonly Tokenizer Reference = TiktokenTokenizer.CreateForModel("gpt2");

    [Fact]
    public void Vocab_json_and_merges_txt_encode_like_the_gpt2_reference()
    {
        var folder = Fixtures.TempFolder("vocab-merges");
        Gpt2TokenizerFiles.WriteVocabAndMerges(folder);
        var (tokenizer, source) = TokenizerFactory.Create(folder, new GptModelOptions());
        Assert.Contains("vocab.json", source);
        foreach (var sentence in Sentences)
        {
            Assert.Equal(Reference.EncodeToIds(sentence), tokenizer.EncodeToIds(sentence));
            Assert.Equal(sentence, tokenizer.Decode(tokenizer.EncodeToIds(sentence)));
        }
    }

    [Fact]
    public void Byte_level_bpe_tokenizer_json_encodes_like_the_gpt2_reference_including_special_tokens()
    {
        var folder = Fixtures.TempFolder("tokenizer-json");
        Gpt2TokenizerFiles.WriteTokenizerJson(folder);
        var (tokenizer, source) = TokenizerFactory.Create(folder, new GptModelOptions());
        Assert.Equal("tokenizer.json (byte-level BPE)", source);
        foreach (var sentence in Sentences.Append("end<|endoftext|>start"))
        {
            Assert.Equal(Reference.EncodeToIds(sentence), tokenizer.EncodeToIds(sentence));
            Assert.Equal(sentence, tokenizer.Decode(tokenizer.EncodeToIds(sentence)));
        }
    }

    [Fact]
    public void Unigram_tokenizer_json_takes_the_highest_scoring_segmentation()
    {
        var folder = Fixtures.TempFolder("unigram");
        // Scores chosen so the best path is unambiguous: "▁the" + "▁cat" (-1 + -1.5) beats any split.
        var vocab = new object[][]
        {
            ["<unk>", 0.0], ["▁", -2.0], ["▁the", -1.0], ["▁cat", -1.5], ["▁c", -2.5], ["a", -3.0], ["t", -3.0],
            ["h", -3.0], ["e", -3.0], ["s", -3.0], ["▁ca", -2.8],
        };
        var json = new
        {
            version = "1.0",
            added_tokens = Array.Empty<object>(),
            normalizer = (object?)null,
            pre_tokenizer = new { type = "Metaspace", replacement = "▁", add_prefix_space = true, prepend_scheme = "always" },
            model = new { type = "Unigram", unk_id = 0, vocab, byte_fallback = false },
        };
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), JsonSerializer.Serialize(json));
        var (tokenizer, source) = TokenizerFactory.Create(folder, new GptModelOptions());
        Assert.Equal("tokenizer.json (Unigram)", source);
        Assert.Equal([2, 3], tokenizer.EncodeToIds("the cat"));
        // "▁the ▁cat s" scores -1 - 1.5 - 3 = -5.5; the next best, "▁the ▁ca t s", -1 - 2.8 - 3 - 3 = -9.8.
        Assert.Equal([2, 3, 9], tokenizer.EncodeToIds("the cats"));
        // "▁ca e" (-2.8 - 3 = -5.8) beats "▁c a e" (-2.5 - 3 - 3 = -8.5).
        Assert.Equal([10, 8], tokenizer.EncodeToIds("cae"));
    }

    [Fact]
    public void Sentencepiece_tokenizer_model_merges_the_highest_scored_pairs_first()
    {
        var folder = Fixtures.TempFolder("spm");
        var T = SentencePieceModelWriter.PieceType.Normal;
        var pieces = new List<(string, float, SentencePieceModelWriter.PieceType)>
        {
            ("<unk>", 0f, SentencePieceModelWriter.PieceType.Unknown), ("<s>", 0f, SentencePieceModelWriter.PieceType.Control),
            ("</s>", 0f, SentencePieceModelWriter.PieceType.Control),
            ("▁", -1f, T), ("t", -2f, T), ("h", -3f, T), ("e", -4f, T), ("c", -5f, T), ("a", -6f, T),       // 3..8
            ("he", -7f, T), ("▁t", -8f, T), ("▁the", -9f, T), ("at", -10f, T), ("▁c", -11f, T), ("▁cat", -12f, T),   // 9..14
        };
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), SentencePieceModelWriter.Write(pieces, bpe: true));
        var (tokenizer, source) = TokenizerFactory.Create(folder, new GptModelOptions());
        Assert.Equal("tokenizer.model (SentencePiece)", source);
        // BPE by score: "he" first, then "▁t" + "he" = "▁the"; "at", then "▁c" + "at" = "▁cat".
        Assert.Equal([11, 14], tokenizer.EncodeToIds("the cat"));
        Assert.Equal("the cat", tokenizer.Decode([11, 14]));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("r50k_base")]
    [InlineData("cl100k_base")]
    [InlineData("o200k_base")]
    public void Named_encodings_load_from_the_options(string name)
    {
        var folder = Fixtures.TempFolder("named");
        var (tokenizer, source) = TokenizerFactory.Create(folder, new GptModelOptions { TokenizerEncoding = name });
        Assert.Equal($"encoding {name}", source);
        Assert.Equal("hello world", tokenizer.Decode(tokenizer.EncodeToIds("hello world")));
    }

    [Fact]
    public void Tokenizer_config_naming_an_encoding_selects_it()
    {
        var (tokenizer, source) = TokenizerFactory.Create(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions());
        Assert.Equal("encoding gpt2 (tokenizer_config.json)", source);
        Assert.Equal(Reference.EncodeToIds("In the beginning"), tokenizer.EncodeToIds("In the beginning"));
    }

    [Fact]
    public void A_folder_without_any_tokenizer_fails_naming_the_files_it_looked_for()
    {
        var folder = Fixtures.TempFolder("no-tokenizer");
        var error = Assert.Throws<GptModelException>(() => TokenizerFactory.Create(folder, new GptModelOptions()));
        Assert.Contains("No tokenizer found", error.Message);
        Assert.Contains("tokenizer.json", error.Message);
        Assert.Contains("vocab.json + merges.txt", error.Message);
        Assert.Contains("tokenizer.model", error.Message);
        Assert.Contains(folder, error.Message);
    }

    [Fact]
    public void An_unknown_encoding_name_is_rejected_with_the_supported_names()
    {
        var error = Assert.Throws<GptModelException>(() =>
            TokenizerFactory.Create(Fixtures.TempFolder("bad-name"), new GptModelOptions { TokenizerEncoding = "gpt5" }));
        Assert.Contains("'gpt5'", error.Message);
        Assert.Contains("cl100k_base", error.Message);
    }

    [Fact]
    public void A_metaspace_pre_tokenizer_without_its_replacement_character_is_refused_naming_the_key()
    {
        var folder = Fixtures.TempFolder("sp-bpe");
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"),
            """{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"Metaspace"}}""");
        var error = Assert.Throws<GptModelException>(() => TokenizerFactory.Create(folder, new GptModelOptions()));
        Assert.Equal($"{Path.Combine(folder, "tokenizer.json")}: pre_tokenizer.replacement is missing.", error.Message);
    }

    [Fact]
    public void A_tokenizer_json_of_another_model_kind_is_refused_naming_the_supported_kinds()
    {
        var folder = Fixtures.TempFolder("wordpiece");
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), """{"model":{"type":"WordPiece","vocab":{"a":0}}}""");
        var error = Assert.Throws<GptModelException>(() => TokenizerFactory.Create(folder, new GptModelOptions()));
        Assert.Equal($"{Path.Combine(folder, "tokenizer.json")}: model.type is 'WordPiece', a model that is not supported (supported: BPE, Unigram).", error.Message);
    }
}
