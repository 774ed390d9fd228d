using Microsoft.ML.Tokenizers;
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
}
