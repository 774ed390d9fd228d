using System.Text.Json;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tokenization;
using Xunit;
using Xunit.Abstractions;

namespace MLNetGpt.Tests.Tokenization;

/// <summary>
/// MLNetGpt's tokenizer.json tokenizer against Hugging Face's Rust tokenizers on the same file, over
/// the corpus in Fixtures/tokenizer-corpus.jsonl (tools/make_tokenizer_corpus.py), each file's own
/// added-token strings and strings that look like them, and random id sequences: identical ids
/// with and without special tokens, identical text decoding with and without skipping them.
/// </summary>
public sealed class HuggingFaceParityTests(ITestOutputHelper output)
{
    private const int RandomSequences = 2000;

    public static TheoryData<string> SharedTokenizers() => new() { "llama3", "llama3_1", "qwen3", "gemma3", "llama2" };

    public static TheoryData<string> FixtureTokenizers() => new()
    {
        "spbpe-legacy", "spbpe-metaspace", "tiny-chatml", "tiny-llama-builder", "tiny-onnx-community",
    };

    [SharedDataTheory("tokenizers")]
    [MemberData(nameof(SharedTokenizers))]
    public void A_real_model_familys_tokenizer_encodes_and_decodes_the_corpus_exactly_as_hugging_face_does(string folder) =>
        AssertParity(SharedData.PathOf(Path.Combine("tokenizers", folder, "tokenizer.json")));

    [SharedDataFact("peer-models/onnxruntime-genai/tiny-random-gpt2-fp32/tokenizer.json")]
    public void The_peer_models_tokenizer_encodes_and_decodes_the_corpus_exactly_as_hugging_face_does() =>
        AssertParity(SharedData.PathOf("peer-models/onnxruntime-genai/tiny-random-gpt2-fp32/tokenizer.json"));

    [Theory]
    [MemberData(nameof(FixtureTokenizers))]
    public void A_fixture_tokenizer_encodes_and_decodes_the_corpus_exactly_as_hugging_face_does(string folder) =>
        AssertParity(Path.Combine(Fixtures.Folder(folder), "tokenizer.json"));

    /// <summary>
    /// Other tokenizer.json files (real models' files that cannot be committed) named in the environment
    /// variable MLNETGPT_TOKENIZER_FILES, separated by the path separator; skipped when it is not set.
    /// </summary>
    [ExtraTokenizerFilesFact]
    public void Tokenizer_files_named_in_the_environment_encode_and_decode_the_corpus_exactly_as_hugging_face_does()
    {
        var failures = new List<string>();
        foreach (string path in ExtraTokenizerFilesFactAttribute.Files())
        {
            var report = ParityRun.Run(path, Corpus(), RandomSequences);
            output.WriteLine($"{path}: {report.Summary}");
            failures.AddRange(report.Failures.Take(5).Select(f => $"{path}: {f}"));
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void The_corpus_holds_at_least_two_thousand_distinct_lines_of_every_kind()
    {
        var corpus = Corpus();
        Assert.True(corpus.Count >= 2000, $"{corpus.Count} lines");
        Assert.Equal(corpus.Count, corpus.Distinct().Count());
        Assert.Contains(corpus, t => t.Any(c => c >= 0x4E00 && c <= 0x9FFF));           // CJK
        Assert.Contains(corpus, t => t.Any(c => c >= 0x0600 && c <= 0x06FF));           // Arabic
        Assert.Contains(corpus, t => t.Any(c => c >= 0x0900 && c <= 0x097F));           // Devanagari
        Assert.Contains(corpus, t => t.Any(char.IsSurrogate));                          // emoji and other astral characters
        Assert.Contains(corpus, t => t.Contains("\u0301"));                              // combining marks
        Assert.Contains(corpus, t => t.Contains("      "));                              // white-space runs
        Assert.Contains(corpus, t => t.Contains('\t') && t.Contains('\n'));
        Assert.Contains(corpus, t => t.Contains("<|begin_of_text|>") && t.Length > 20);
        Assert.Contains("<think", corpus);                                               // a near miss
    }

    /// <summary>The corpus lines.</summary>
    public static IReadOnlyList<string> Corpus() =>
        File.ReadLines(Path.Combine(Fixtures.Root, "tokenizer-corpus.jsonl")).Select(line => JsonSerializer.Deserialize<string>(line)!).ToList();

    private void AssertParity(string path)
    {
        var report = ParityRun.Run(path, Corpus(), RandomSequences);
        output.WriteLine(report.Summary);
        Assert.True(report.Failures.Count == 0, $"{report.Summary}\n{string.Join("\n", report.Failures.Take(10))}");
    }
}

/// <summary>A fact that runs only when MLNETGPT_TOKENIZER_FILES names tokenizer.json files.</summary>
public sealed class ExtraTokenizerFilesFactAttribute : FactAttribute
{
    public const string Variable = "MLNETGPT_TOKENIZER_FILES";

    public ExtraTokenizerFilesFactAttribute()
    {
        if (Files().Count == 0) Skip = $"set {Variable} to tokenizer.json paths (separated by '{Path.PathSeparator}') to compare them with Hugging Face's tokenizers";
    }

    public static IReadOnlyList<string> Files() =>
        (Environment.GetEnvironmentVariable(Variable) ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>One comparison of MLNetGpt's tokenizer with Hugging Face's on one file.</summary>
public sealed record ParityRun(string Summary, IReadOnlyList<string> Failures)
{
    /// <summary>
    /// Compares on the corpus, on the file's added tokens (alone, inside text, doubled, and cut short),
    /// and on <paramref name="randomSequences"/> seeded random id sequences (every id, out-of-range ids included).
    /// </summary>
    public static ParityRun Run(string path, IReadOnlyList<string> corpus, int randomSequences)
    {
        var ours = HuggingFaceTokenizer.FromFile(path);
        using var reference = HuggingFaceReference.ForFile(path);
        var texts = corpus.Concat(AddedTokenTexts(ours)).Distinct().ToList();
        var failures = new List<string>();
        int encodeWith = 0, encodeWithout = 0, decodeSkip = 0, decodeKeep = 0;
        foreach (string text in texts)
        {
            int[] expected = reference.Encode(text, addSpecialTokens: true);
            int[] actual = ours.EncodeToIds(text, addSpecialTokens: true);
            if (expected.SequenceEqual(actual)) encodeWith++;
            else failures.Add($"encode with special tokens {Quote(text)}: expected [{string.Join(",", expected)}], got [{string.Join(",", actual)}]");
            int[] expectedPlain = reference.Encode(text, addSpecialTokens: false);
            int[] actualPlain = ours.EncodeToIds(text, addSpecialTokens: false);
            if (expectedPlain.SequenceEqual(actualPlain)) encodeWithout++;
            else failures.Add($"encode without special tokens {Quote(text)}: expected [{string.Join(",", expectedPlain)}], got [{string.Join(",", actualPlain)}]");
            Compare(expected, skip: true, ref decodeSkip);
            Compare(expected, skip: false, ref decodeKeep);
        }
        var random = new Random(20261207);
        var addedIds = ours.AddedTokens.Tokens.Select(t => t.Id).ToArray();
        int randomMatches = 0;
        for (int n = 0; n < randomSequences; n++)
        {
            var ids = new int[random.Next(1, 16)];
            for (int k = 0; k < ids.Length; k++)
                ids[k] = random.Next(10) switch
                {
                    0 when addedIds.Length > 0 => addedIds[random.Next(addedIds.Length)],
                    1 => ours.IdCount + random.Next(3),          // beyond the vocabulary: left out by both
                    _ => random.Next(ours.IdCount),
                };
            int before = decodeSkip + decodeKeep;
            Compare(ids, skip: true, ref decodeSkip);
            Compare(ids, skip: false, ref decodeKeep);
            if (decodeSkip + decodeKeep == before + 2) randomMatches++;
        }
        string name = Path.GetFileName(Path.GetDirectoryName(path)) ?? path;
        string summary = $"{name} ({ours.Kind}): {texts.Count} texts ({corpus.Count} corpus lines); identical ids with special tokens {encodeWith}/{texts.Count}, " +
            $"without {encodeWithout}/{texts.Count}; identical decoding of the encodings skipping special tokens and keeping them, and of {randomSequences} random id sequences: " +
            $"{decodeSkip}/{texts.Count + randomSequences} and {decodeKeep}/{texts.Count + randomSequences}";
        return new ParityRun(summary, failures);

        void Compare(int[] ids, bool skip, ref int matches)
        {
            string expected = reference.Decode(ids, skip);
            string actual = ours.Decode(ids, skip);
            if (expected == actual) matches++;
            else failures.Add($"decode {(skip ? "skipping" : "keeping")} special tokens [{string.Join(",", ids)}]: expected {Quote(expected)}, got {Quote(actual)}");
        }
    }

    /// <summary>Each added token alone, between words, twice, without its last character, and upper-cased.</summary>
    private static IEnumerable<string> AddedTokenTexts(HuggingFaceTokenizer tokenizer)
    {
        foreach (var token in tokenizer.AddedTokens.Tokens)
        {
            string c = token.Content;
            yield return c;
            yield return $"Hello {c}world";
            yield return c + c;
            if (c.Length > 1 && !char.IsSurrogate(c[^1]) && !char.IsSurrogate(c[0])) yield return "x" + c[..^1] + " " + c[1..];
            yield return c.ToUpperInvariant();
        }
    }

    private static string Quote(string text) => JsonSerializer.Serialize(text);
}
