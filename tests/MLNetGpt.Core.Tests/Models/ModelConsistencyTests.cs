using Microsoft.ML.Tokenizers;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Models;

/// <summary>A model folder whose files contradict each other: the graph wins where it can, otherwise the error names both.</summary>
public sealed class ModelConsistencyTests
{
    private static (GptModel Model, List<string> Log) Open(string folder, GptModelOptions? options = null)
    {
        var log = new List<string>();
        options ??= new GptModelOptions();
        options.Log = log.Add;
        return (GptModel.Open(folder, options), log);
    }

    private static string WithConfig(string fixture, string from, string to, string file = "config.json")
    {
        var folder = Fixtures.CopyOf(fixture);
        var path = Path.Combine(folder, file);
        var text = File.ReadAllText(path);
        Assert.Contains(from, text);
        File.WriteAllText(path, text.Replace(from, to));
        return folder;
    }

    [Fact]
    public void A_layer_count_that_contradicts_the_graph_gives_way_to_the_graph_with_a_warning_naming_the_key_and_both_numbers()
    {
        var (model, log) = Open(WithConfig("tiny-gpt2-a", "\"n_layer\": 2", "\"n_layer\": 5"));
        using (model)
        {
            Assert.Equal(2, model.Info.LayerCount);
            var warning = Assert.Single(log, l => l.Contains("n_layer", StringComparison.Ordinal));
            Assert.Contains("config.json: 'n_layer' says 5", warning);
            Assert.Contains("model.onnx has 2 layers", warning);
            Assert.NotEmpty(model.Generate("Hello", new GenerationOptions { MaxNewTokens = 2 }).TokenIds);
        }
    }

    [Fact]
    public void A_vocabulary_size_that_contradicts_the_logits_gives_way_to_the_graph_with_a_warning()
    {
        var (model, log) = Open(WithConfig("tiny-gpt2-a", "\"vocab_size\": 50257", "\"vocab_size\": 32000"));
        using (model)
        {
            Assert.Equal(50257, model.Info.VocabularySize);
            Assert.Contains(log, l => l.Contains("config.json: 'vocab_size' says 32000", StringComparison.Ordinal) && l.Contains("50257 logits per position", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void An_attention_head_count_that_cannot_go_with_the_graphs_key_value_heads_is_refused_naming_both()
    {
        // tiny-gpt2-b has 3 key/value heads in its cache inputs; 4 attention heads cannot share them.
        var folder = WithConfig("tiny-gpt2-b", "\"n_head\": 3", "\"n_head\": 4");
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(folder));
        Assert.Contains("config.json: 'n_head' says 4 attention heads", error.Message);
        Assert.Contains("3 key/value heads", error.Message);
    }

    [Fact]
    public void Info_shows_the_head_counts_in_use_not_the_configured_ones()
    {
        var (model, log) = Open(WithConfig("tiny-gqa-genai", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 1", "genai_config.json"));
        using (model)
        {
            Assert.Equal(2, model.Info.KeyValueHeadCount);
            Assert.Contains(log, l => l.Contains("genai_config.json: 'model.decoder.num_key_value_heads' says 1", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void A_tokenizer_with_more_ids_than_the_logits_is_accepted_with_a_warning_and_a_prompt_beyond_the_logits_is_refused()
    {
        var (model, log) = Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { Tokenizer = TiktokenTokenizer.CreateForEncoding("cl100k_base") });
        using (model)
        {
            Assert.Contains(log, l => l.Contains("100277 ids", StringComparison.Ordinal) && l.Contains("50257 logits per position", StringComparison.Ordinal));
            var error = Assert.Throws<ArgumentOutOfRangeException>(() => model.GenerateTokens([new[] { 60000 }]));
            Assert.Contains("token id 60000", error.Message);
            Assert.Contains("outside the vocabulary", error.Message);
        }
    }

    [Fact]
    public void A_tokenizer_with_far_fewer_ids_than_the_logits_is_refused()
    {
        var small = BpeTokenizer.Create(new BpeOptions(Enumerable.Range(0, 1000).ToDictionary(i => "t" + i, i => i)));
        var error = Assert.Throws<GptModelException>(() => GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { Tokenizer = small }));
        Assert.Contains("1000 ids", error.Message);
        Assert.Contains("far more than a padded vocabulary", error.Message);
    }

    [Fact]
    public void With_a_slightly_padded_vocabulary_generation_never_picks_an_id_the_tokenizer_lacks()
    {
        // A tokenizer that knows all ids but the last 200: the model's logits for those must never be chosen.
        var vocabulary = Enumerable.Range(0, 50057).ToDictionary(i => "w" + i, i => i);
        var padded = BpeTokenizer.Create(new BpeOptions(vocabulary) { UnknownToken = "w0" });
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { Tokenizer = padded });
        Assert.Equal(50057, model.Info.TokenizerIdCount);
        var sampled = model.GenerateTokens(Enumerable.Range(0, 20).Select(i => (IReadOnlyList<int>)new[] { 50100 + i, 50200 + i }).ToList(),
            new GenerationOptions { MaxNewTokens = 16, DoSample = true, Temperature = 5f, TopK = 0, Seed = 3, EosTokenIds = [] });
        Assert.All(sampled, r => Assert.All(r.TokenIds, id => Assert.True(id < 50057, $"id {id} is beyond the tokenizer")));
    }

    [Fact]
    public void A_context_length_beyond_the_position_table_gives_way_to_the_table_and_long_prompts_still_generate()
    {
        var (model, log) = Open(WithConfig("tiny-gpt2-a", "\"n_positions\": 128", "\"n_positions\": 512"));
        using (model)
        {
            Assert.Equal(128, model.Info.ContextLength);
            Assert.Contains(log, l => l.Contains("config.json: 'n_positions' says 512", StringComparison.Ordinal) && l.Contains("has 128 rows", StringComparison.Ordinal));
            var result = model.Generate(string.Join(" ", Enumerable.Repeat("word", 300)), new GenerationOptions { MaxNewTokens = 4, EosTokenIds = [] });
            Assert.True(result.PromptTruncated);
            Assert.Equal(4, result.TokenIds.Count);
        }
    }

    [Fact]
    public void A_failing_step_names_the_model_file_and_the_step()
    {
        // 200 positions on a 128-row position table fail inside ONNX Runtime.
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var backend = model.Engine.Backend;
        using var cache = backend.EmptyCache(1);
        var input = new MLNetGpt.Generation.StepInput(Enumerable.Repeat(1L, 200).ToArray(), 1, 200, Enumerable.Repeat(1L, 200).ToArray(),
            Enumerable.Range(0, 200).Select(i => (long)i).ToArray());
        using var options = new Microsoft.ML.OnnxRuntime.RunOptions();
        var error = Assert.Throws<GptModelException>(() => backend.Step(input, cache, options));
        Assert.Contains("model.onnx: ONNX Runtime failed on a step of 1 row(s) x 200 new token(s) after 0 cached position(s)", error.Message);
    }
}
