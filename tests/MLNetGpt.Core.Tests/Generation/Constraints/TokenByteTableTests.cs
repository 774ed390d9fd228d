using System.Text;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tokenization;
using Xunit;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>Token bytes against the tokenizers' own encodings: concatenated bytes must be the UTF-8 text.</summary>
public sealed class TokenByteTableTests
{
    private static readonly string[] Texts =
    [
        "The quick brown fox jumps over the lazy dog.",
        "  leading spaces,\ttabs\nand newlines\r\n",
        "Unicode: héllo wörld, 日本語のテキスト, emoji 😀🎉👩‍👩‍👧, Ελληνικά, \u0001\u007f",
        "{\"name\":\"Ada\",\"age\":36,\"tags\":[\"a\",\"b\"]}",
        "Numbers 1234567 and 3.14159; it's they're we'll I'd",
    ];

    private static IEnumerable<string> Samples()
    {
        var random = new Random(5);
        foreach (var t in Texts) yield return t;
        for (int i = 0; i < 200; i++)
        {
            var sb = new StringBuilder();
            int length = random.Next(1, 30);
            for (int k = 0; k < length; k++)
            {
                int cp;
                do cp = random.Next(4) == 0 ? random.Next(0x20, 0x2FFFF) : random.Next(0x20, 0x7F);
                while (cp is >= 0xD800 and <= 0xDFFF);
                sb.Append(char.ConvertFromUtf32(cp));
            }
            yield return sb.ToString();
        }
    }

    private static void AssertBytesRebuildText(Tokenizer tokenizer, TokenByteTable table)
    {
        foreach (var text in Samples())
        {
            var ids = tokenizer.EncodeToIds(text);
            var bytes = ids.SelectMany(id => table.Bytes(id).ToArray()).ToArray();
            Assert.Equal(Encoding.UTF8.GetBytes(text), bytes);
        }
    }

    [Fact]
    public void Gpt2_tiktoken_bytes_of_an_encoding_concatenate_to_its_utf8_text()
    {
        var tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
        var table = TokenByteTable.For(tokenizer, 50257);
        AssertBytesRebuildText(tokenizer, table);
        Assert.True(table.HasEverySingleByte);
        Assert.True(table.IsSpecial(50256));
        Assert.False(table.IsText(50256));
        Assert.Equal(" the", Encoding.UTF8.GetString(table.Bytes(262)));
    }

    [Fact]
    public void Ids_beyond_the_tokenizer_in_a_wider_model_vocabulary_have_no_bytes()
    {
        var table = TokenByteTable.For(TiktokenTokenizer.CreateForModel("gpt2"), 50304);
        Assert.Equal(50304, table.Count);
        for (int id = 50257; id < 50304; id++) Assert.False(table.IsText(id));
        Assert.True(table.Bytes(60000).IsEmpty);
    }

    [Fact]
    public void Byte_level_bpe_from_vocab_and_merges_has_the_same_bytes_as_the_tiktoken_reference()
    {
        var folder = Fixtures.TempFolder("bytes-bpe");
        Gpt2TokenizerFiles.WriteVocabAndMerges(folder);
        var (bpe, _) = TokenizerFactory.Create(folder, new GptModelOptions());
        var table = TokenByteTable.For(bpe, 50257);
        AssertBytesRebuildText(bpe, table);
        var reference = TokenByteTable.For(TiktokenTokenizer.CreateForModel("gpt2"), 50257);
        for (int id = 0; id < 50256; id++) Assert.True(reference.Bytes(id).SequenceEqual(table.Bytes(id)), $"id {id}");
        Assert.True(table.IsSpecial(50256));
        Assert.True(table.HasEverySingleByte);
    }

    [Fact]
    public void Byte_level_bpe_tokenizer_json_marks_added_special_tokens()
    {
        var folder = Fixtures.TempFolder("bytes-bpe-json");
        Gpt2TokenizerFiles.WriteTokenizerJson(folder);
        var (bpe, _) = TokenizerFactory.Create(folder, new GptModelOptions());
        var table = TokenByteTable.For(bpe, 50257);
        AssertBytesRebuildText(bpe, table);
        Assert.True(table.IsSpecial(50256));
        Assert.True(table.Bytes(50256).IsEmpty);
    }

    [Fact]
    public void Sentencepiece_pieces_read_u2581_as_space_and_the_decoder_drops_the_dummy_prefix()
    {
        var (tokenizer, table) = SentencePieceFixture();
        var ids = tokenizer.EncodeToIds("the cat");
        var bytes = ids.SelectMany(id => table.Bytes(id).ToArray()).ToArray();
        Assert.Equal(" the cat", Encoding.UTF8.GetString(bytes));     // the dummy prefix space
        Assert.Equal("the cat", tokenizer.Decode(ids));                 // which the decoder drops
        Assert.True(table.DropsLeadingSpace);
        Assert.True(table.IsSpecial(0) && table.IsSpecial(1) && table.IsSpecial(2));   // <unk>, <s>, </s>
        Assert.False(table.HasEverySingleByte);
    }

    [Fact]
    public void Sentencepiece_style_tokenizer_json_reads_byte_pieces_as_their_byte_and_u2581_as_space()
    {
        var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder("spbpe-legacy"), new GptModelOptions());
        var table = TokenByteTable.For(tokenizer, 2000);
        foreach (var text in Texts)
        {
            var bytes = tokenizer.EncodeToIds(text).SelectMany(id => table.Bytes(id).ToArray()).ToArray();
            Assert.Equal(" " + text, Encoding.UTF8.GetString(bytes));      // the Prepend normalizer's "▁", which the Strip decoder drops
        }
        Assert.True(table.DropsLeadingSpace);
        Assert.True(table.HasEverySingleByte);
        Assert.True(table.IsSpecial(1) && table.IsSpecial(2));
    }

    [SharedDataFact("peer-models/onnxruntime-genai/tiny-random-gpt2-fp32/tokenizer.json")]
    public void Added_whitespace_tokens_of_a_byte_level_file_are_text_with_their_own_bytes()
    {
        var (tokenizer, _) = TokenizerFactory.Create(SharedData.PathOf("peer-models/onnxruntime-genai/tiny-random-gpt2-fp32"), new GptModelOptions());
        var table = TokenByteTable.For(tokenizer, 50295);
        Assert.Equal(new string(' ', 31), Encoding.UTF8.GetString(table.Bytes(50257)));
        Assert.Equal("\t\t", Encoding.UTF8.GetString(table.Bytes(50294)));
        AssertBytesRebuildText(tokenizer, table);
    }

    [Fact]
    public void A_tokenizer_without_byte_level_strings_is_refused_naming_its_kind()
    {
        var bpe = BpeTokenizer.Create(new BpeOptions(new Dictionary<string, int> { ["a"] = 0, ["b"] = 1 }) { ByteLevel = false });
        var e = Assert.Throws<NotSupportedException>(() => TokenByteTable.For(bpe, 2));
        Assert.Equal("Output constraints need token bytes; a BpeTokenizer without ByteLevel has none (its strings are not byte-level). Use a byte-level BPE, tiktoken or SentencePiece tokenizer.", e.Message);
    }

    [Fact]
    public void Tables_are_cached_per_tokenizer_and_vocabulary_size()
    {
        var tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
        Assert.Same(TokenByteTable.For(tokenizer, 50257), TokenByteTable.For(tokenizer, 50257));
        Assert.NotSame(TokenByteTable.For(tokenizer, 50257), TokenByteTable.For(tokenizer, 50258));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenByteTable.For(tokenizer, 0));
    }

    internal static (Tokenizer Tokenizer, TokenByteTable Table) SentencePieceFixture()
    {
        var folder = Fixtures.TempFolder("bytes-spm");
        var T = SentencePieceModelWriter.PieceType.Normal;
        var pieces = new List<(string, float, SentencePieceModelWriter.PieceType)>
        {
            ("<unk>", 0f, SentencePieceModelWriter.PieceType.Unknown), ("<s>", 0f, SentencePieceModelWriter.PieceType.Control),
            ("</s>", 0f, SentencePieceModelWriter.PieceType.Control),
            ("▁", -1f, T), ("t", -2f, T), ("h", -3f, T), ("e", -4f, T), ("c", -5f, T), ("a", -6f, T),
            ("he", -7f, T), ("▁t", -8f, T), ("▁the", -9f, T), ("at", -10f, T), ("▁c", -11f, T), ("▁cat", -12f, T),
        };
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), SentencePieceModelWriter.Write(pieces, bpe: true));
        var (tokenizer, _) = TokenizerFactory.Create(folder, new GptModelOptions());
        return (tokenizer, TokenByteTable.For(tokenizer, 15));
    }
}
