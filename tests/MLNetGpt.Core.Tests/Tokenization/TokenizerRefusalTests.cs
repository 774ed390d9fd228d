using System.Text.Json.Nodes;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tokenization;
using Xunit;

namespace MLNetGpt.Tests.Tokenization;

/// <summary>
/// What the tokenizer.json loader refuses, each with one line naming the file, the JSON path and the
/// type or token: a component of each kind it does not know, and ids that are negative, outside the
/// vocabulary, shared by two tokens or not the ids Hugging Face's tokenizers would give.
/// </summary>
public sealed class TokenizerRefusalTests
{
    [Theory]
    [InlineData("normalizer", """{"type":"Precompiled","precompiled_charsmap":"AAAA"}""", "normalizer.type is 'Precompiled', a normalizer that is not supported")]
    [InlineData("normalizer", """{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"BertNormalizer"}]}""", "normalizer.normalizers[1].type is 'BertNormalizer', a normalizer that is not supported")]
    [InlineData("pre_tokenizer", """{"type":"UnicodeScripts"}""", "pre_tokenizer.type is 'UnicodeScripts', a pre-tokenizer that is not supported")]
    [InlineData("pre_tokenizer", """{"type":"Sequence","pretokenizers":[{"type":"CharDelimiterSplit","delimiter":"x"}]}""", "pre_tokenizer.pretokenizers[0].type is 'CharDelimiterSplit', a pre-tokenizer that is not supported")]
    [InlineData("post_processor", """{"type":"ClsProcessing"}""", "post_processor.type is 'ClsProcessing', a post-processor that is not supported")]
    [InlineData("post_processor", """{"type":"Sequence","processors":[{"type":"ByteLevel"},{"type":"Fancy"}]}""", "post_processor.processors[1].type is 'Fancy', a post-processor that is not supported")]
    [InlineData("decoder", """{"type":"WordPiece","prefix":"##","cleanup":true}""", "decoder.type is 'WordPiece', a decoder that is not supported")]
    [InlineData("decoder", """{"type":"Sequence","decoders":[{"type":"ByteLevel"},{"type":"CTC"}]}""", "decoder.decoders[1].type is 'CTC', a decoder that is not supported")]
    public void An_unknown_component_is_refused_in_one_line_naming_the_file_the_json_path_and_the_type(string key, string component, string expected)
    {
        var document = SyntheticTokenizers.ByteLevelBpe();
        document[key] = JsonNode.Parse(component);
        string path = document.Write("refusal");
        var error = Assert.Throws<GptModelException>(() => HuggingFaceTokenizer.FromFile(path));
        Assert.StartsWith($"{path}: {expected} (supported: ", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void An_unknown_model_type_is_refused_naming_the_file_the_json_path_and_the_type()
    {
        var document = SyntheticTokenizers.ByteLevelBpe();
        document["model"]!["type"] = "WordPiece";
        string path = document.Write("refusal-model");
        var error = Assert.Throws<GptModelException>(() => HuggingFaceTokenizer.FromFile(path));
        Assert.Equal($"{path}: model.type is 'WordPiece', a model that is not supported (supported: BPE, Unigram).", error.Message);
    }

    [Theory]
    [InlineData(-1, "model.vocab[\"a\"] has the negative id -1.")]
    [InlineData(1099511627776, "model.vocab[\"a\"] has the id 2^31 or more, outside the vocabulary: 4 tokens may use ids up to 1031.")]
    [InlineData(5000, "model.vocab[\"a\"] has the id 5000, outside the vocabulary: 4 tokens may use ids up to 1031.")]
    [InlineData(2, "model.vocab[\"c\"] has the id 2, which \"a\" has too.")]
    public void A_vocabulary_id_that_is_negative_outside_or_shared_is_refused_naming_the_token(long id, string expected)
    {
        string path = Small($$"""{"a":{{id}},"b":1,"c":2,"d":3}""", "[]").Write("refusal-ids");
        var error = Assert.Throws<GptModelException>(() => HuggingFaceTokenizer.FromFile(path));
        Assert.Equal($"{path}: {expected}", error.Message);
    }

    [Theory]
    [InlineData("""[{"id":-1,"content":"<x>"}]""", "added_tokens[0] (\"<x>\") has the id -1; a token id must be an integer from 0 to 2^31-1.")]
    [InlineData("""[{"id":1099511627776,"content":"<x>"}]""", "added_tokens[0] (\"<x>\") has the id 1099511627776; a token id must be an integer from 0 to 2^31-1.")]
    [InlineData("""[{"id":9,"content":"<x>"}]""", "added_tokens[0] (\"<x>\") has the id 9, but Hugging Face tokenizers gives it 4 (the next id after the model's 4 tokens); the file's ids are inconsistent.")]
    [InlineData("""[{"id":3,"content":"b"}]""", "added_tokens[0] (\"b\") has the id 3, but Hugging Face tokenizers gives it 1 (its id in model.vocab); the file's ids are inconsistent.")]
    public void An_added_token_id_that_is_negative_too_large_or_not_the_one_tokenizers_gives_is_refused_naming_the_token(string added, string expected)
    {
        var document = Small("""{"a":0,"b":1,"c":2,"d":3}""", "[]");
        document["added_tokens"] = JsonNode.Parse(added);
        string path = document.Write("refusal-added");
        var error = Assert.Throws<GptModelException>(() => HuggingFaceTokenizer.FromFile(path));
        Assert.Equal($"{path}: {expected}", error.Message);
    }

    [Fact]
    public void A_post_processor_token_id_outside_the_tokenizer_is_refused_naming_the_token()
    {
        var document = Small("""{"a":0,"b":1,"c":2,"d":3}""", "[]");
        document["post_processor"] = JsonNode.Parse("""{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[70000],"tokens":["<s>"]}}}""");
        string path = document.Write("refusal-post");
        var error = Assert.Throws<GptModelException>(() => HuggingFaceTokenizer.FromFile(path));
        Assert.Equal($"{path}: post_processor.special_tokens[\"<s>\"].ids[0] gives \"<s>\" the id 70000, outside the tokenizer's ids 0..3.", error.Message);
    }

    [Theory]
    [InlineData("""{"type":"Split","pattern":{"Regex":"^\\s+"},"behavior":"Isolated","invert":false}""", "pre_tokenizer.pattern.Regex \"^\\s+\" cannot be used: '^' (a line anchor in Oniguruma) has no translation.")]
    [InlineData("""{"type":"Split","pattern":{"Regex":"\\p{Han}+"},"behavior":"Isolated","invert":false}""", "pre_tokenizer.pattern.Regex \"\\p{Han}+\" cannot be used: the property \\p{Han} has no translation (general categories only).")]
    [InlineData("""{"type":"Split","pattern":{"Regex":"[[:alpha:]]+"},"behavior":"Isolated","invert":false}""", "pre_tokenizer.pattern.Regex \"[[:alpha:]]+\" cannot be used: the nested or POSIX class at 1 ('[:alpha:]]+') has no translation.")]
    public void A_regex_without_a_translation_is_refused_naming_the_pattern_and_the_construct(string split, string expected)
    {
        var document = SyntheticTokenizers.ByteLevelBpe();
        document["pre_tokenizer"] = JsonNode.Parse(split);
        string path = document.Write("refusal-regex");
        var error = Assert.Throws<GptModelException>(() => HuggingFaceTokenizer.FromFile(path));
        Assert.Equal($"{path}: {expected}", error.Message);
    }

    [Fact]
    public void The_small_tokenizer_of_the_id_cases_loads_when_its_ids_are_right()
    {
        // Guards the cases above: each fails only because of its change.
        string path = Small("""{"a":0,"b":1,"c":2,"d":3}""", "[]").Write("refusal-good");
        var tokenizer = HuggingFaceTokenizer.FromFile(path);
        Assert.Equal([0, 1, 2, 3], tokenizer.EncodeToIds("abcd", addSpecialTokens: true));
    }

    private static JsonObject Small(string vocab, string merges) => new()
    {
        ["version"] = "1.0", ["added_tokens"] = new JsonArray(), ["normalizer"] = null, ["pre_tokenizer"] = null, ["post_processor"] = null, ["decoder"] = null,
        ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = JsonNode.Parse(vocab), ["merges"] = JsonNode.Parse(merges) },
    };
}
