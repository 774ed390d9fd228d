using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Tokenization;

/// <summary>Turns a model folder (or a named encoding) into a Microsoft.ML.Tokenizers <see cref="Tokenizer"/>.</summary>
internal static class TokenizerFactory
{
    /// <summary>The encodings Microsoft.ML.Tokenizers ships data for, by the names users pass.</summary>
    public static readonly IReadOnlyList<string> NamedEncodings = ["gpt2", "r50k_base", "cl100k_base", "o200k_base"];

    // GPT-2's pre-tokenization pattern (also used by tokenizer.json files with a ByteLevel pre-tokenizer).
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

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
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new GptModelException($"{path} is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (!root.TryGetProperty("model", out var model) || !model.TryGetProperty("type", out var typeElement))
                throw new GptModelException($"{path} has no model.type; expected a Hugging Face tokenizer.json.");
            string type = typeElement.GetString() ?? "";
            switch (type)
            {
                case "BPE" when !HasByteLevel(root, "pre_tokenizer") && !HasByteLevel(root, "decoder"):
                    // Without ByteLevel a BPE works on characters with byte fallback: SentencePiece-style.
                    return (SentencePieceBpeTokenizer.FromTokenizerJson(path, root), "tokenizer.json (SentencePiece-style BPE)");
                case "BPE":
                    return (CreateByteLevelBpe(path, root, model, ReadAddedTokens(path, root)), "tokenizer.json (byte-level BPE)");
                case "Unigram":
                    using (var stream = File.OpenRead(path))
                    {
                        try
                        {
                            return (SentencePieceTokenizer.CreateFromTokenizerJson(stream, addBeginningOfSentence: false, addEndOfSentence: false),
                                "tokenizer.json (SentencePiece Unigram)");
                        }
                        catch (Exception e) when (e is ArgumentException or InvalidOperationException or JsonException or NotSupportedException or FormatException)
                        {
                            throw new GptModelException($"{path}: the Unigram tokenizer could not be read: {e.Message}", e);
                        }
                    }
                default:
                    throw new GptModelException($"{path} describes a '{type}' tokenizer; supported kinds are BPE (byte-level or SentencePiece-style) and Unigram.");
            }
        }
    }

    private static Dictionary<string, int> ReadAddedTokens(string path, JsonElement root)
    {
        var special = new Dictionary<string, int>(StringComparer.Ordinal);
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (var token in added.EnumerateArray())
            {
                if (token.TryGetProperty("content", out var content) && token.TryGetProperty("id", out var id)
                    && (!token.TryGetProperty("special", out var isSpecial) || isSpecial.ValueKind == JsonValueKind.True))
                {
                    if (id.ValueKind != JsonValueKind.Number || !id.TryGetInt32(out int value))
                        throw new GptModelException($"{path}: added_tokens id of \"{content}\" must be an integer, but is {id.GetRawText()}.");
                    special[content.GetString()!] = value;
                }
            }
        }
        return special;
    }

    /// <summary>
    /// GPT-2-style vocab.json + merges.txt. Tokens written like <c>&lt;|endoftext|&gt;</c> are treated as
    /// special (matched whole in the text), as GPT-2's own files mean them.
    /// </summary>
    private static Tokenizer FromVocabAndMerges(string vocabPath, string mergesPath)
    {
        Dictionary<string, int> vocabulary;
        try
        {
            vocabulary = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllBytes(vocabPath))
                ?? throw new GptModelException($"{vocabPath} is empty.");
        }
        catch (JsonException e)
        {
            throw new GptModelException($"{vocabPath} is not a JSON object of token -> id: {e.Message}", e);
        }
        var merges = File.ReadLines(mergesPath)
            .Where(line => line.Length > 0 && !line.StartsWith("#version", StringComparison.Ordinal))
            .ToList();
        var special = vocabulary.Where(kv => kv.Key.StartsWith("<|", StringComparison.Ordinal) && kv.Key.EndsWith("|>", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        return CreateByteLevelBpe(vocabPath, vocabulary, merges, special);
    }

    private static Tokenizer CreateByteLevelBpe(string path, JsonElement root, JsonElement model, Dictionary<string, int> special)
    {
        if (!model.TryGetProperty("vocab", out var vocabElement) || vocabElement.ValueKind != JsonValueKind.Object)
            throw new GptModelException($"{path} has no model.vocab object.");
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocabElement.EnumerateObject()) vocabulary[entry.Name] = entry.Value.GetInt32();

        var merges = new List<string>();
        if (model.TryGetProperty("merges", out var mergesElement))
        {
            foreach (var merge in mergesElement.EnumerateArray())
            {
                merges.Add(merge.ValueKind == JsonValueKind.Array
                    ? $"{merge[0].GetString()} {merge[1].GetString()}"
                    : merge.GetString() ?? throw new GptModelException($"{path}: a merge is not a string."));
            }
        }
        return CreateByteLevelBpe(path, vocabulary, merges, special);
    }

    private static Tokenizer CreateByteLevelBpe(string path, Dictionary<string, int> vocabulary, List<string> merges, Dictionary<string, int> special)
    {
        foreach (var (token, id) in special) vocabulary.TryAdd(token, id);
        var options = new BpeOptions(vocabulary)
        {
            Merges = merges,
            ByteLevel = true,
            SpecialTokens = special.Count > 0 ? special : null,
            PreTokenizer = new RegexPreTokenizer(new Regex(Gpt2Pattern, RegexOptions.Compiled), special.Count > 0 ? special : null),
        };
        try
        {
            return BpeTokenizer.Create(options);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            throw new GptModelException($"{path}: the BPE tokenizer could not be built: {e.Message}", e);
        }
    }

    private static bool HasByteLevel(JsonElement root, string property)
    {
        if (!root.TryGetProperty(property, out var element) || element.ValueKind != JsonValueKind.Object) return false;
        if (element.TryGetProperty("type", out var type) && type.GetString() == "ByteLevel") return true;
        foreach (var listName in new[] { "pretokenizers", "decoders" })
        {
            if (element.TryGetProperty(listName, out var list) && list.ValueKind == JsonValueKind.Array
                && list.EnumerateArray().Any(item => item.TryGetProperty("type", out var t) && t.GetString() == "ByteLevel"))
                return true;
        }
        return false;
    }
}
