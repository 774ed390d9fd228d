using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Tokenization;

/// <summary>Turns a model folder (or a named encoding) into a Microsoft.ML.Tokenizers <see cref="Tokenizer"/>.</summary>
internal static class TokenizerFactory
{
    /// <summary>The encodings Microsoft.ML.Tokenizers ships data for, by the names users pass.</summary>
    public static readonly IReadOnlyList<string> NamedEncodings = ["gpt2", "r50k_base", "cl100k_base", "o200k_base"];

    /// <summary>Creates the tokenizer and a short description of where it came from.</summary>
    public static (Tokenizer Tokenizer, string Source) Create(string folder, GptModelOptions options)
    {
        if (options.Tokenizer is { } given) return (given, $"provided {given.GetType().Name}");
        if (options.TokenizerEncoding is { } encoding) return (FromEncodingName(encoding, "GptModelOptions.TokenizerEncoding"), $"encoding {encoding}");
        Models.ModelFiles.For(folder).RefuseLinksOut(Models.ModelFiles.CompanionFiles);   // the folder's file policy, before any tokenizer file is opened

        string At(string name) => Path.Combine(folder, name);
        if (File.Exists(At("tokenizer.json"))) return FromTokenizerJson(At("tokenizer.json"));
        if (File.Exists(At("vocab.json")) && File.Exists(At("merges.txt")))
            return (FromVocabAndMerges(At("vocab.json"), At("merges.txt")), "vocab.json + merges.txt (byte-level BPE)");
        if (File.Exists(At("tokenizer.model")))
        {
            using var model = File.OpenRead(At("tokenizer.model"));
            try
            {
                return (LlamaTokenizer.Create(model, addBeginOfSentence: false, addEndOfSentence: false), "tokenizer.model (SentencePiece)");
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException or IOException)
            {
                throw new GptModelException($"{At("tokenizer.model")} could not be read as a SentencePiece model: {e.Message}", e);
            }
        }
        if (File.Exists(At("tokenizer_config.json")))
        {
            var config = Models.JsonConfig.Load(At("tokenizer_config.json"));
            string? named = config.String("encoding") ?? config.String("tokenizer_class") switch
            {
                "GPT2Tokenizer" or "GPT2TokenizerFast" => "gpt2",
                _ => null,
            };
            if (named is not null)
                return (FromEncodingName(named, config.Path), $"encoding {named} (tokenizer_config.json)");
        }
        throw new GptModelException($"No tokenizer found in '{folder}': expected tokenizer.json, vocab.json + merges.txt, tokenizer.model, " +
            $"or tokenizer_config.json naming an encoding ({string.Join(", ", NamedEncodings)}); or set GptModelOptions.TokenizerEncoding.");
    }

    public static Tokenizer FromEncodingName(string name, string where)
    {
        try
        {
            return name switch
            {
                "gpt2" => TiktokenTokenizer.CreateForModel("gpt2"),
                "r50k_base" or "cl100k_base" or "o200k_base" => TiktokenTokenizer.CreateForEncoding(name),
                _ => throw new GptModelException($"{where} names the encoding '{name}', which is not one of {string.Join(", ", NamedEncodings)}."),
            };
        }
        catch (Exception e) when (e is not GptModelException)
        {
            throw new GptModelException($"The '{name}' encoding could not be loaded (is the Microsoft.ML.Tokenizers.Data package for it present?): {e.Message}", e);
        }
    }

    private static (Tokenizer, string) FromTokenizerJson(string path)
    {
        var tokenizer = HuggingFaceTokenizer.FromFile(path);
        return (tokenizer, $"tokenizer.json ({tokenizer.Kind})");
    }

    /// <summary>
    /// GPT-2-style vocab.json + merges.txt. Tokens written like <c>&lt;|endoftext|&gt;</c> are treated as
    /// special (matched whole in the text), as GPT-2's own files mean them.
    /// </summary>
    private static Tokenizer FromVocabAndMerges(string vocabPath, string mergesPath)
    {
        var json = new TokenizerJson(vocabPath);
        Dictionary<string, int> vocabulary;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(vocabPath));
            vocabulary = ReadVocabJson(json, document.RootElement);
        }
        catch (JsonException e)
        {
            throw new GptModelException($"{vocabPath} is not a JSON object of token -> id: {e.Message}", e);
        }
        var merges = new List<(string, string)>();
        int line = 0;
        foreach (string text in File.ReadLines(mergesPath))
        {
            line++;
            if (text.Length == 0 || text.StartsWith("#version", StringComparison.Ordinal)) continue;
            merges.Add(text.Split(' ') is [var left, var right] ? (left, right)
                : throw new GptModelException($"{mergesPath}: line {line} must be \"left right\", but is \"{text}\"."));
        }
        return HuggingFaceTokenizer.FromVocabAndMerges(vocabulary, merges, vocabPath);
    }

    private static Dictionary<string, int> ReadVocabJson(TokenizerJson json, JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw json.Error($"the file must hold an object of token -> id, but holds {TokenizerJson.Describe(root)}.");
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in root.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt64(out long id))
                throw json.Error($"[\"{entry.Name}\"] must be an integer id, but is {TokenizerJson.Describe(entry.Value)}.");
            if (id < 0) throw json.Error($"[\"{entry.Name}\"] has the negative id {id}.");
            if (!vocabulary.TryAdd(entry.Name, id > int.MaxValue ? int.MaxValue : (int)id))
                throw json.Error($"\"{entry.Name}\" is listed twice.");
        }
        TokenizerModels.CheckIds(json, vocabulary, "");
        return vocabulary;
    }
}
