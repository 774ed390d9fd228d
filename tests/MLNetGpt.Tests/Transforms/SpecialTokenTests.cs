using Microsoft.ML;
using Microsoft.ML.Data;
using System.Text.Json.Nodes;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tokenization;
using Xunit;

namespace MLNetGpt.Tests.Tokenization;

/// <summary>
/// Special tokens as transformers adds them: from the tokenizer.json post-processor, else from
/// tokenizer_config.json's add_bos_token / add_eos_token (decided by the Llama and Gemma classes'
/// flags), through TokenizeText's AddSpecialTokens and generation from text; and the added tokens
/// of real files that must survive a round trip.
/// </summary>
public sealed class SpecialTokenTests
{
    private const string Llama31 = "tokenizers/llama3_1";

    [SharedDataFact(Llama31)]
    public void A_llama_3_1_prompt_starts_with_begin_of_text_from_the_post_processor_though_its_config_sets_no_add_bos_token()
    {
        string folder = SharedData.PathOf(Llama31);
        Assert.Null(MLNetGpt.Models.JsonConfig.Load(Path.Combine(folder, "tokenizer_config.json")).Bool("add_bos_token"));
        var ids = Tokenize(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Text", ModelFolder = folder }, "Hello world");
        Assert.Equal(128000, ids[0]);
        using var reference = HuggingFaceReference.ForFile(Path.Combine(folder, "tokenizer.json"));
        Assert.Equal(reference.Encode("Hello world", addSpecialTokens: true), ids);
        var plain = Tokenize(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Text", ModelFolder = folder, AddSpecialTokens = false }, "Hello world");
        Assert.Equal(ids[1..], plain);
    }

    [SharedDataFact("tokenizers/llama3")]
    public void A_llama_3_prompt_gets_no_begin_of_text_because_its_post_processor_adds_none()
    {
        string folder = SharedData.PathOf("tokenizers/llama3");
        var (tokenizer, _) = TokenizerFactory.Create(folder, new GptModelOptions());
        var template = SpecialTokenRule.For(folder, tokenizer);
        Assert.False(template.AddsTokens);
        Assert.Equal("tokenizer.json post_processor", template.Source);
    }

    [SharedDataFact("tokenizers/qwen3")]
    public void Qwens_think_tokens_are_matched_whole_and_survive_decoding_even_when_special_tokens_are_skipped()
    {
        var (tokenizer, _) = TokenizerFactory.Create(SharedData.PathOf("tokenizers/qwen3"), new GptModelOptions());
        const string text = "<think>\nLet me see.\n</think>\n\nFour.<|im_end|>";
        var ids = tokenizer.EncodeToIds(text);
        Assert.Contains(151667, ids);
        Assert.Contains(151668, ids);
        Assert.Equal(text, TokenDecoding.Decode(tokenizer, ids.ToArray(), skipSpecialTokens: false, cleanUpTokenizationSpaces: false));
        Assert.Equal("<think>\nLet me see.\n</think>\n\nFour.", TokenDecoding.Decode(tokenizer, ids.ToArray(), skipSpecialTokens: true, cleanUpTokenizationSpaces: false));
    }

    [SharedDataFact("peer-models/onnxruntime-genai/tiny-random-gpt2-fp32/tokenizer.json")]
    public void Gpt2_style_whitespace_tokens_are_matched_in_the_text_and_decode_back_to_their_spaces()
    {
        var (tokenizer, _) = TokenizerFactory.Create(SharedData.PathOf("peer-models/onnxruntime-genai/tiny-random-gpt2-fp32"), new GptModelOptions());
        const string text = "def f():\n        return 1\n\t\treturn 2";
        var ids = tokenizer.EncodeToIds(text);
        Assert.Contains(ids, id => id >= 50257);        // the added whitespace-run tokens
        foreach (bool skip in new[] { true, false })
            Assert.Equal(text, TokenDecoding.Decode(tokenizer, ids.ToArray(), skip, cleanUpTokenizationSpaces: false));
    }

    [Fact]
    public void A_llama_class_folder_follows_add_bos_token_over_its_post_processor_as_transformers_rebuilds_it()
    {
        string folder = Fixtures.CopyOf("spbpe-legacy");
        var (tokenizer, _) = TokenizerFactory.Create(folder, new GptModelOptions());
        Assert.Equal([1], SpecialTokenRule.For(folder, tokenizer).Prefix);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer_config.json")))!;
        config["add_bos_token"] = false;
        config["add_eos_token"] = true;
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ToJsonString());
        var template = SpecialTokenRule.For(folder, tokenizer);
        Assert.Empty(template.Prefix);
        Assert.Equal([2], template.Suffix);
        Assert.Contains("LlamaTokenizer", template.Source);
    }

    [Fact]
    public void A_folder_without_a_post_processor_adds_what_add_bos_token_and_add_eos_token_say()
    {
        string folder = Fixtures.TempFolder("flags");
        var document = SyntheticTokenizers.ByteLevelBpe();
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), document.ToJsonString());
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"),
            """{"tokenizer_class":"PreTrainedTokenizerFast","add_bos_token":true,"add_eos_token":true,"bos_token":"<|endoftext|>","eos_token":{"content":"<|endoftext|>","special":true}}""");
        var (tokenizer, _) = TokenizerFactory.Create(folder, new GptModelOptions());
        int eot = ((HuggingFaceTokenizer)tokenizer).TokenToId("<|endoftext|>")!.Value;
        var ids = Tokenize(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Text", ModelFolder = folder }, "the world");
        Assert.Equal(eot, ids[0]);
        Assert.Equal(eot, ids[^1]);
        Assert.Equal(tokenizer.EncodeToIds("the world"), ids[1..^1]);
    }

    [Fact]
    public void Tokenize_text_keeps_room_for_the_special_tokens_when_it_truncates()
    {
        string folder = Fixtures.Folder("tiny-llama-builder");
        var all = Tokenize(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Text", ModelFolder = folder }, "In the beginning God created");
        Assert.Equal(1, all[0]);
        var cut = Tokenize(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Text", ModelFolder = folder, MaxTokens = 3 }, "In the beginning God created");
        Assert.Equal([1, .. all[^2..]], cut);
    }

    [Fact]
    public void Setting_both_add_special_tokens_and_add_beginning_of_sequence_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => new MLContext().Transforms.Text.TokenizeText(new TokenizeTextOptions
        {
            OutputColumnName = "Ids", ModelFolder = Fixtures.Folder("tiny-llama-builder"), AddSpecialTokens = true, AddBeginningOfSequence = true,
        }));
        Assert.StartsWith("Set AddSpecialTokens or the older AddBeginningOfSequence, not both.", error.Message);
    }

    [Fact]
    public void A_saved_tokenize_stage_keeps_its_special_tokens_setting()
    {
        var ml = new MLContext();
        string folder = Fixtures.CopyOf("tiny-llama-builder");
        var data = ml.Data.LoadFromEnumerable(new[] { new TextRow { Text = "In the beginning" } });
        foreach (bool add in new[] { true, false })
        {
            var model = ml.Transforms.Text.TokenizeText(new TokenizeTextOptions { OutputColumnName = "Ids", InputColumnName = "Text", ModelFolder = folder, AddSpecialTokens = add }).Fit(data);
            string zip = Path.Combine(Fixtures.TempFolder("saved-special"), "model.zip");
            ml.Model.Save(model, data.Schema, zip);
            var loaded = new MLContext().Model.Load(zip, out _);
            var before = ml.Data.CreateEnumerable<IdsRow>(model.Transform(data), false).Single().Ids;
            var after = ml.Data.CreateEnumerable<IdsRow>(loaded.Transform(data), false).Single().Ids;
            Assert.Equal(before, after);
            Assert.Equal(add, after[0] == 1);
        }
    }

    private static int[] Tokenize(TokenizeTextOptions options, string text)
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(new[] { new TextRow { Text = text } });
        return ml.Data.CreateEnumerable<IdsRow>(ml.Transforms.Text.TokenizeText(options).Fit(data).Transform(data), false).Single().Ids;
    }

    public sealed class TextRow
    {
        public string Text { get; set; } = "";
    }

    public sealed class IdsRow
    {
        [VectorType]
        public int[] Ids { get; set; } = [];
    }
}
