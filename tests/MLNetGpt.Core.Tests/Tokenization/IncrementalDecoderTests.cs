using Microsoft.ML.Tokenizers;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tokenization;
using Xunit;

namespace MLNetGpt.Tests.Tokenization;

public sealed class IncrementalDecoderTests
{
    [Fact]
    public void Pieces_never_split_a_multi_byte_character_and_concatenate_to_the_text()
    {
        var tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
        const string text = "héllo 😀 world 日本語";
        var ids = tokenizer.EncodeToIds(text);
        var decoder = new IncrementalDecoder(tokenizer);
        var pieces = ids.Select(decoder.Append).ToList();
        pieces.Add(decoder.Flush());
        Assert.All(pieces, piece => Assert.DoesNotContain('\uFFFD', piece));
        Assert.Contains(pieces, piece => piece.Contains("😀"));    // the emoji arrives whole
        Assert.Equal(text, string.Concat(pieces));
    }

    [Theory]
    [InlineData("spbpe-legacy")]
    [InlineData("spbpe-metaspace")]
    public void Streaming_a_sentencepiece_bpe_holds_byte_pieces_back_until_their_character_is_complete(string folder)
    {
        var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder(folder), new GptModelOptions());
        var withBytes = SpGolden.Load(folder).Strings.Where(s => s.Pieces.Any(p => p.StartsWith("<0x", StringComparison.Ordinal))).ToList();
        Assert.NotEmpty(withBytes);
        foreach (var golden in withBytes)
        {
            var decoder = new IncrementalDecoder(tokenizer);
            var pieces = golden.Ids.Select(decoder.Append).ToList();
            pieces.Add(decoder.Flush());
            Assert.All(pieces, piece => Assert.DoesNotContain('\uFFFD', piece));
            Assert.Equal(golden.Decoded, string.Concat(pieces));
        }
        var emoji = withBytes.Single(s => s.Text == "emoji 😀🎉 party");
        var stream = new IncrementalDecoder(tokenizer);
        Assert.Contains(emoji.Ids.Select(stream.Append), piece => piece.Contains("😀"));
    }
}
