using System.Buffers;
using System.Text.Json;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tokenization;
using Xunit;

namespace MLNetGpt.Tests.Tokenization;

/// <summary>
/// SentencePiece-style BPE tokenizer.json files (both forms) against SentencePiece's own encodings,
/// written by tools/make_sentencepiece_tokenizer.py into Fixtures/spbpe-legacy and spbpe-metaspace.
/// </summary>
public sealed class SentencePieceBpeTokenizerTests
{
    public static TheoryData<string> Forms() => new() { "spbpe-legacy", "spbpe-metaspace" };

    [Theory]
    [MemberData(nameof(Forms))]
    public void Every_golden_string_encodes_to_the_ids_sentencepiece_gives(string folder)
    {
        var (tokenizer, source) = TokenizerFactory.Create(Fixtures.Folder(folder), new GptModelOptions());
        Assert.Equal("tokenizer.json (SentencePiece-style BPE)", source);
        var golden = SpGolden.Load(folder);
        Assert.True(golden.Strings.Length >= 60, $"{folder} has only {golden.Strings.Length} golden strings");
        var wrong = golden.Strings
            .Where(s => !tokenizer.EncodeToIds(s.Text).SequenceEqual(s.Ids))
            .Select(s => $"{JsonSerializer.Serialize(s.Text)}: got [{string.Join(",", tokenizer.EncodeToIds(s.Text))}], expected [{string.Join(",", s.Ids)}]")
            .ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {golden.Strings.Length} strings differ:\n" + string.Join("\n", wrong));
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void Every_golden_id_list_decodes_to_the_text_sentencepiece_decodes(string folder)
    {
        var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder(folder), new GptModelOptions());
        var golden = SpGolden.Load(folder);
        var wrong = golden.Strings
            .Where(s => tokenizer.Decode(s.Ids) != s.Decoded)
            .Select(s => $"{JsonSerializer.Serialize(s.Text)}: got {JsonSerializer.Serialize(tokenizer.Decode(s.Ids))}, expected {JsonSerializer.Serialize(s.Decoded)}")
            .ToList();
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public void Added_tokens_in_the_text_are_matched_as_hugging_face_does(string folder)
    {
        var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder(folder), new GptModelOptions());
        foreach (var special in SpGolden.Load(folder).SpecialCases)
            Assert.Equal(special.Ids, tokenizer.EncodeToIds(special.Text));
    }

    [Fact]
    public void The_two_forms_differ_exactly_for_text_that_starts_with_a_space_or_the_metaspace_character()
    {
        var (legacy, _) = TokenizerFactory.Create(Fixtures.Folder("spbpe-legacy"), new GptModelOptions());
        var (metaspace, _) = TokenizerFactory.Create(Fixtures.Folder("spbpe-metaspace"), new GptModelOptions());
        foreach (var s in SpGolden.Load("spbpe-legacy").Strings)
        {
            bool same = legacy.EncodeToIds(s.Text).SequenceEqual(metaspace.EncodeToIds(s.Text));
            // Prepend always adds "▁"; Metaspace (prepend_scheme first) only when the text lacks one.
            bool startsWithSpace = s.Text.StartsWith(' ') || s.Text.StartsWith('▁');
            Assert.True(same != startsWithSpace, $"{JsonSerializer.Serialize(s.Text)}: the forms {(same ? "agree" : "differ")}");
        }
    }

    [Theory]
    [InlineData("tiny-llama-builder")]
    [InlineData("tiny-onnx-community")]
    public void The_llama_fixtures_tokenizers_give_their_goldens_prompt_ids_and_decode_them_back(string fixture)
    {
        var (tokenizer, source) = TokenizerFactory.Create(Fixtures.Folder(fixture), new GptModelOptions());
        Assert.Equal("tokenizer.json (SentencePiece-style BPE)", source);
        var golden = Fixtures.Golden(fixture);
        foreach (var (prompt, greedy) in golden.Prompts.Zip(golden.Greedy))
        {
            Assert.Equal(prompt.Ids, tokenizer.EncodeToIds(prompt.Text));
            Assert.Equal(prompt.Text, tokenizer.Decode(prompt.Ids));
            Assert.Equal([1, .. prompt.Ids], greedy.PromptIds);     // generation from text starts with BOS
        }
    }

    [Fact]
    public void A_character_split_into_byte_pieces_decodes_only_once_all_its_bytes_are_there()
    {
        var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder("spbpe-legacy"), new GptModelOptions());
        var emoji = SpGolden.Load("spbpe-legacy").Strings.Single(s => s.Text == "😀");
        Assert.Equal(["▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"], emoji.Pieces);
        for (int count = 2; count < emoji.Ids.Length; count++)
            Assert.EndsWith("\uFFFD", tokenizer.Decode(emoji.Ids[..count]));
        Assert.Equal("😀", tokenizer.Decode(emoji.Ids));
    }

    [Fact]
    public void Special_tokens_are_kept_by_default_and_skipped_when_asked_as_transformers_decodes()
    {
        var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder("spbpe-legacy"), new GptModelOptions());
        var hello = SpGolden.Load("spbpe-legacy").Strings.Single(s => s.Text == "Hello world");
        int[] withBosAndEos = [1, .. hello.Ids, 2];
        Assert.Equal("<s> Hello world</s>", tokenizer.Decode(withBosAndEos));
        Assert.Equal("Hello world", ((HuggingFaceTokenizer)tokenizer).Decode(withBosAndEos, skipSpecialTokens: true));
        Assert.Equal("<s> Hello world</s>", ((HuggingFaceTokenizer)tokenizer).Decode(withBosAndEos, skipSpecialTokens: false));
    }

    [Fact]
    public void Ids_beyond_the_vocabulary_decode_to_nothing()
    {
        var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder("spbpe-legacy"), new GptModelOptions());
        var hello = SpGolden.Load("spbpe-legacy").Strings.Single(s => s.Text == "Hello world");
        Assert.Equal(2000, ((HuggingFaceTokenizer)tokenizer).IdCount);
        Assert.Equal("Hello world", tokenizer.Decode([.. hello.Ids, 2000, 31999]));
    }

    [Fact]
    public void A_token_limit_keeps_whole_tokens_and_reports_where_they_end_in_the_normalized_text()
    {
        var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder("spbpe-legacy"), new GptModelOptions());
        var hello = SpGolden.Load("spbpe-legacy").Strings.Single(s => s.Text == "Hello world");   // ▁H ell o ▁world
        var ids = tokenizer.EncodeToIds("Hello world", 3, out string? normalized, out int consumed);
        Assert.Equal(hello.Ids[..3], ids);
        Assert.Equal("▁Hello▁world", normalized);
        Assert.Equal("▁Hello".Length, consumed);
        Assert.Equal(hello.Ids.Length, tokenizer.CountTokens("Hello world"));
        Assert.Equal("▁Hello".Length, tokenizer.GetIndexByTokenCount("Hello world", 3, out _, out int count));
        Assert.Equal(3, count);
    }

    [Fact]
    public void Decoding_into_a_short_span_returns_the_ids_whose_text_fits()
    {
        var (tokenizer, _) = TokenizerFactory.Create(Fixtures.Folder("spbpe-legacy"), new GptModelOptions());
        var hello = SpGolden.Load("spbpe-legacy").Strings.Single(s => s.Text == "Hello world");   // ▁H ell o ▁world
        var buffer = new char[7];
        Assert.Equal(OperationStatus.DestinationTooSmall, tokenizer.Decode(hello.Ids, buffer, out int idsConsumed, out int written));
        Assert.Equal(3, idsConsumed);
        Assert.Equal("Hello", new string(buffer, 0, written));
        var large = new char[32];
        Assert.Equal(OperationStatus.Done, tokenizer.Decode(hello.Ids, large, out idsConsumed, out written));
        Assert.Equal((hello.Ids.Length, "Hello world"), (idsConsumed, new string(large, 0, written)));
    }

    [Theory]
    [InlineData("Removed", new[] { "The", "final", "countdown" })]
    [InlineData("Isolated", new[] { "The", "-", "final", "-", "-", "countdown" })]
    [InlineData("MergedWithPrevious", new[] { "The-", "final-", "-", "countdown" })]
    [InlineData("MergedWithNext", new[] { "The", "-final", "-", "-countdown" })]
    [InlineData("Contiguous", new[] { "The", "-", "final", "--", "countdown" })]
    public void A_split_pre_tokenizer_cuts_at_its_literal_pattern_as_tokenizers_documents(string behavior, string[] expected)
    {
        // The expected pieces are tokenizers' own documented example (SplitDelimiterBehavior, normalizer.rs).
        using var document = JsonDocument.Parse($$$"""{"pre_tokenizer":{"type":"Split","pattern":{"String":"-"},"behavior":"{{{behavior}}}","invert":false}}""");
        var steps = PreTokenizerStep.Read(new TokenizerJson("tokenizer.json"), document.RootElement);
        var pieces = new List<PreToken> { new("The-final--countdown", 1) };
        foreach (var step in steps) step.Apply(pieces, trackOffsets: false);
        Assert.Equal(expected, pieces.Select(p => p.Text));
        Assert.Equal([true, .. Enumerable.Repeat(false, expected.Length - 1)], pieces.Select(p => p.AtOrigin));
    }

    [Theory]
    [InlineData("always", "▁a▁b", new[] { "▁a", "▁b" })]
    [InlineData("never", "a▁b", new[] { "a", "▁b" })]
    public void A_splitting_metaspace_cuts_before_each_replacement_character(string scheme, string joined, string[] expected)
    {
        using var document = JsonDocument.Parse($$$"""{"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"{{{scheme}}}","split":true}}""");
        var pieces = new List<PreToken> { new("a b", 1) };
        foreach (var step in PreTokenizerStep.Read(new TokenizerJson("tokenizer.json"), document.RootElement)) step.Apply(pieces, trackOffsets: false);
        Assert.Equal(joined, string.Concat(pieces.Select(p => p.Text)));
        Assert.Equal(expected, pieces.Select(p => p.Text));
    }

    [Theory]
    [InlineData("""{"normalizer":{"type":"Sequence","normalizers":[{"type":"Precompiled"}]}}""", "normalizer.normalizers[0].type is 'Precompiled', a normalizer that is not supported", "NFKC, NFKD, Lowercase")]
    [InlineData("""{"normalizer":{"type":"Replace","pattern":{"Regex":"^ +"},"content":"▁"}}""", "normalizer.pattern.Regex \"^ +\" cannot be used: '^' (a line anchor in Oniguruma) has no translation", "")]
    [InlineData("""{"pre_tokenizer":{"type":"BertPreTokenizer"}}""", "pre_tokenizer.type is 'BertPreTokenizer', a pre-tokenizer that is not supported", "Metaspace, Whitespace")]
    [InlineData("""{"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"sometimes"}}""", "pre_tokenizer.prepend_scheme is \"sometimes\"", "\"first\"")]
    [InlineData("""{"pre_tokenizer":{"type":"Metaspace","replacement":"__"}}""", "pre_tokenizer.replacement must be one character, but is \"__\"", "")]
    [InlineData("""{"pre_tokenizer":{"type":"Split","pattern":{"String":" "},"behavior":"Removed"}}""", "pre_tokenizer.invert is missing", "")]
    [InlineData("""{"pre_tokenizer":{"type":"Split","pattern":{"String":" "},"behavior":"Dropped","invert":false}}""", "pre_tokenizer.behavior is \"Dropped\"", "MergedWithNext")]
    [InlineData("""{"decoder":{"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"WordPiece"}]}}""", "decoder.decoders[1].type is 'WordPiece', a decoder that is not supported", "ByteFallback, Fuse, Strip")]
    [InlineData("""{"decoder":{"type":"Strip","content":" ","start":-1}}""", "decoder.start must be a non-negative integer", "")]
    [InlineData("""{"model":{"merges":["a b c"]}}""", "model.merges[0] must be \"left right\" or [\"left\", \"right\"], but is \"a b c\"", "")]
    [InlineData("""{"model":{"merges":[["a","z"]]}}""", "model.merges[0] (\"a\" + \"z\") names \"z\", which is not in model.vocab", "")]
    [InlineData("""{"model":{"merges":["b a"]}}""", "model.merges[0] (\"b\" + \"a\") names \"ba\", which is not in model.vocab", "")]
    [InlineData("""{"model":{"vocab":["a","b"]}}""", "model.vocab must be an object of token -> id, but is [\"a\",\"b\"]", "")]
    [InlineData("""{"model":{"vocab":{"a":"zero"}}}""", "model.vocab[\"a\"] must be an integer id, but is \"zero\"", "")]
    [InlineData("""{"model":{"unk_token":"<unk>"}}""", "model.unk_token is \"<unk>\", which is not in model.vocab", "")]
    [InlineData("""{"model":{"dropout":0.1}}""", "model.dropout is 0.1", "random")]
    [InlineData("""{"model":{"continuing_subword_prefix":"##"}}""", "model.merges[0] (\"▁\" + \"b\"): \"b\" is shorter than the continuing_subword_prefix \"##\"", "")]
    [InlineData("""{"added_tokens":[{"id":"one","content":"<s>"}]}""", "added_tokens[0] (\"<s>\") has the id \"one\"; a token id must be an integer from 0 to 2^31-1", "")]
    public void A_malformed_or_unsupported_part_is_refused_naming_the_file_the_json_path_and_the_value(string overrides, string expected, string alsoExpected)
    {
        var folder = Fixtures.TempFolder("spbpe-bad");
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), SmallTokenizerJson(overrides));
        var error = Assert.Throws<GptModelException>(() => TokenizerFactory.Create(folder, new GptModelOptions()));
        Assert.StartsWith(Path.Combine(folder, "tokenizer.json") + ": ", error.Message);
        Assert.Contains(expected, error.Message);
        Assert.Contains(alsoExpected, error.Message);
    }

    [Fact]
    public void The_small_tokenizer_used_for_error_cases_loads_and_merges_when_nothing_is_overridden()
    {
        // Guards the error cases above: each fails only because of its override.
        var folder = Fixtures.TempFolder("spbpe-small");
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), SmallTokenizerJson("{}"));
        var (tokenizer, _) = TokenizerFactory.Create(folder, new GptModelOptions());
        Assert.Equal([4, 3], tokenizer.EncodeToIds("ab b"));     // ▁ab ▁b
        Assert.Equal("ab b", tokenizer.Decode([4, 3]));
    }

    // A four-piece vocabulary in the legacy form; `overrides` replaces top-level keys (and keys of "model").
    private static string SmallTokenizerJson(string overrides)
    {
        var document = new Dictionary<string, object?>
        {
            ["added_tokens"] = new object[] { new { id = 5, content = "<s>", special = true } },
            ["normalizer"] = JsonDocument.Parse("""{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}""").RootElement,
            ["pre_tokenizer"] = null,
            ["decoder"] = JsonDocument.Parse("""{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}""").RootElement,
        };
        var model = new Dictionary<string, object?>
        {
            ["type"] = "BPE", ["vocab"] = new Dictionary<string, int> { ["▁"] = 0, ["a"] = 1, ["b"] = 2, ["▁b"] = 3, ["▁ab"] = 4, ["▁a"] = 6, ["<s>"] = 5 },
            ["merges"] = new[] { "▁ b", "▁ a", "▁a b" }, ["unk_token"] = null, ["byte_fallback"] = true, ["fuse_unk"] = true,
        };
        using var extra = JsonDocument.Parse(overrides);
        foreach (var property in extra.RootElement.EnumerateObject())
        {
            if (property.Name == "model")
                foreach (var inner in property.Value.EnumerateObject()) model[inner.Name] = inner.Value.Clone();
            else
                document[property.Name] = property.Value.Clone();
        }
        document["model"] = model;
        return JsonSerializer.Serialize(document);
    }
}

/// <summary>golden-tokenizer.json of a spbpe-* fixture (see tools/make_sentencepiece_tokenizer.py).</summary>
public sealed record SpGolden(string Form, int VocabSize, SpGoldenString[] Strings, SpGoldenSpecial[] SpecialCases)
{
    public static SpGolden Load(string folder)
    {
        var options = new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
        return JsonSerializer.Deserialize<SpGolden>(File.ReadAllText(Path.Combine(Fixtures.Folder(folder), "golden-tokenizer.json")), options)!;
    }
}

public sealed record SpGoldenString(string Text, int[] Ids, string[] Pieces, string Decoded);

public sealed record SpGoldenSpecial(string Text, int[] Ids);
