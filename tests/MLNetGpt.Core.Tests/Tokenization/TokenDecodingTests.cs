using Microsoft.ML.Tokenizers;
using MLNetGpt.Generation;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tokenization;
using Xunit;

namespace MLNetGpt.Tests.Tokenization;

/// <summary>
/// One decoding rule for every tokenizer kind: special tokens skipped or kept alike, then
/// transformers' clean-up of tokenization spaces when asked, also while streaming.
/// </summary>
public sealed class TokenDecodingTests
{
    public static TheoryData<string> Kinds() => new() { "tiktoken", "byte-level tokenizer.json", "SentencePiece-style tokenizer.json", "tokenizer.model" };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Every_tokenizer_kind_keeps_special_tokens_or_skips_them_as_asked(string kind)
    {
        var (tokenizer, special, text) = Sample(kind);
        int[] ids = [special, .. tokenizer.EncodeToIds(text), special];
        string kept = TokenDecoding.Decode(tokenizer, ids, skipSpecialTokens: false, cleanUpTokenizationSpaces: false);
        string skipped = TokenDecoding.Decode(tokenizer, ids, skipSpecialTokens: true, cleanUpTokenizationSpaces: false);
        Assert.Equal(text, skipped.TrimStart());
        Assert.NotEqual(skipped, kept);
        Assert.Contains(skipped.Trim(), kept);
    }

    [Theory]
    [InlineData("Hello , world . Is it ? Yes ! I 'm sure it 's done , we 've won , they 're here and do n't care ' cause",
        "Hello, world. Is it? Yes! I'm sure it's done, we've won, they're here and don't care'cause")]
    [InlineData("a ' b", "a'b")]
    [InlineData("no change here", "no change here")]
    public void Clean_up_drops_the_spaces_transformers_drops(string text, string expected) =>
        Assert.Equal(expected, TokenDecoding.CleanUpTokenizationSpaces(text));

    [Fact]
    public void Streamed_pieces_of_a_cleaned_up_text_add_up_to_the_final_text()
    {
        var tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
        const string text = "Well , it 's here ' s the thing . Is it ? Yes ! We do n't know , ' ok ' .";
        var ids = tokenizer.EncodeToIds(text);
        var streamer = new TextStreamer(tokenizer, [], skipSpecialTokens: true, cleanUpTokenizationSpaces: true);
        var pieces = new List<string>();
        foreach (int id in ids)
        {
            streamer.Append(id);
            pieces.Add(streamer.TakePiece(final: false));
        }
        pieces.Add(streamer.TakePiece(final: true));
        Assert.Equal(TokenDecoding.CleanUpTokenizationSpaces(text), streamer.FinalText());
        Assert.Equal(streamer.FinalText(), string.Concat(pieces));
    }

    [Fact]
    public void Generated_text_skips_special_tokens_and_cleans_up_by_default_as_transformers_text_generation_pipeline_returns_it()
    {
        var defaults = DecodingSettings.LibraryDefaults;
        Assert.True(defaults.SkipSpecialTokens);
        Assert.True(defaults.CleanUpTokenizationSpaces);
        var options = GenerationOptions.FromJson("""{"skip_special_tokens": false, "clean_up_tokenization_spaces": false}""");
        Assert.False(options.SkipSpecialTokens);
        Assert.False(options.CleanUpTokenizationSpaces);
        Assert.Equal("""{"skip_special_tokens":false,"clean_up_tokenization_spaces":false}""", options.ToJson());
    }

    private static (Tokenizer Tokenizer, int Special, string Text) Sample(string kind)
    {
        switch (kind)
        {
            case "tiktoken":
                return (TiktokenTokenizer.CreateForModel("gpt2"), 50256, "In the beginning");
            case "byte-level tokenizer.json":
                {
                    var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder("tiny-chatml"), new GptModelOptions());
                    return (tokenizer, ((HuggingFaceTokenizer)tokenizer).TokenToId("<|im_end|>")!.Value, "hello there");
                }
            case "SentencePiece-style tokenizer.json":
                {
                    var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder("spbpe-legacy"), new GptModelOptions());
                    return (tokenizer, 2, "Hello world");
                }
            default:
                {
                    string folder = Fixtures.TempFolder("spm-decode");
                    File.Copy(Path.Combine(Fixtures.Folder("spbpe-legacy"), "tokenizer.model"), Path.Combine(folder, "tokenizer.model"));
                    var (tokenizer, _) = TokenizerFactory.Create(folder, new GptModelOptions());
                    return (tokenizer, 2, "Hello world");
                }
        }
    }
}
