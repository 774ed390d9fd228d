using System.Text.Json;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Models;

namespace MLNetGpt.Tokenization;

/// <summary>
/// Which special tokens encoding with <c>add_special_tokens=True</c> adds for a model folder, as
/// transformers decides it: the tokenizer.json <c>post_processor</c> when the file has one; the
/// tokenizer_config.json flags <c>add_bos_token</c> / <c>add_eos_token</c> otherwise (false unless
/// set). Transformers' Llama, Code Llama and Gemma tokenizer classes rebuild the post-processor
/// from those flags whatever the file says (defaults: BOS yes, EOS no), so for a folder whose
/// tokenizer_config.json names one of them the flags decide.
/// </summary>
internal static class SpecialTokenRule
{
    private static readonly HashSet<string> RebuildingClasses = new(StringComparer.Ordinal)
    {
        "LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast",
    };

    /// <summary>
    /// The template for <paramref name="folder"/> (null: a named encoding, which adds nothing).
    /// <paramref name="configuredBos"/>/<paramref name="configuredEos"/>: the ids config.json gives,
    /// used when tokenizer_config.json names no token the tokenizer knows.
    /// </summary>
    public static SpecialTokenTemplate For(string? folder, Tokenizer tokenizer, int? configuredBos = null, int? configuredEos = null)
    {
        if (folder is null) return SpecialTokenTemplate.None;
        var config = JsonConfig.LoadIfExists(Path.Combine(folder, "tokenizer_config.json"));
        string? tokenizerClass = config?.String("tokenizer_class");
        bool rebuilds = tokenizerClass is not null && RebuildingClasses.Contains(tokenizerClass);
        if (tokenizer is HuggingFaceTokenizer { PostProcessor: { } processor } && !rebuilds) return processor;
        bool addBos = config?.Bool("add_bos_token") ?? rebuilds;
        bool addEos = config?.Bool("add_eos_token") ?? false;
        int? bos = addBos ? TokenId(tokenizer, config, "bos_token") ?? configuredBos ?? ReadConfigured(folder, "bos_token_id") : null;
        int? eos = addEos ? TokenId(tokenizer, config, "eos_token") ?? configuredEos ?? ReadConfigured(folder, "eos_token_id") : null;
        if (bos is null && eos is null)
            return new SpecialTokenTemplate([new SpecialTokenTemplate.Piece(null)], rebuilds ? $"nothing ({tokenizerClass})" : "nothing");
        string source = rebuilds
            ? $"tokenizer_config.json add_bos_token/add_eos_token ({tokenizerClass} builds its post-processor from them)"
            : "tokenizer_config.json add_bos_token/add_eos_token";
        return SpecialTokenTemplate.Around(bos, eos, source);
    }

    /// <summary>The id of the token tokenizer_config.json names under <paramref name="key"/> (a string or an AddedToken object).</summary>
    private static int? TokenId(Tokenizer tokenizer, JsonConfig? config, string key)
    {
        if (config?.Find(key) is not { } element) return null;
        string? content = element.ValueKind switch
        {
            JsonValueKind.String => element.GetString(),
            JsonValueKind.Object when element.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => null,
        };
        if (string.IsNullOrEmpty(content)) return null;
        return tokenizer switch
        {
            HuggingFaceTokenizer huggingFace => huggingFace.TokenToId(content),
            TiktokenTokenizer tiktoken when tiktoken.SpecialTokens?.TryGetValue(content, out int id) == true => id,
            SentencePieceTokenizer sentencePiece when sentencePiece.SpecialTokens?.TryGetValue(content, out int id) == true => id,
            SentencePieceTokenizer sentencePiece when sentencePiece.Vocabulary.TryGetValue(content, out int id) => id,
            BpeTokenizer bpe when bpe.SpecialTokens?.TryGetValue(content, out int id) == true => id,
            _ => SingleId(tokenizer, content),
        };
    }

    private static int? SingleId(Tokenizer tokenizer, string content)
    {
        try
        {
            var ids = tokenizer.EncodeToIds(content);
            return ids.Count == 1 ? ids[0] : null;
        }
        catch (GptModelException)
        {
            return null;    // a folder without a tokenizer
        }
    }

    private static int? ReadConfigured(string folder, string key)
    {
        string At(string name) => Path.Combine(folder, name);
        return JsonConfig.LoadIfExists(At(ModelFolder.GenerationConfigFile))?.IntList(key)?.FirstOrDefault()
            ?? JsonConfig.LoadIfExists(At(ModelFolder.ConfigFile))?.IntList(key)?.FirstOrDefault()
            ?? JsonConfig.LoadIfExists(At(ModelFolder.GenAIConfigFile))?.IntList("model." + key)?.FirstOrDefault();
    }
}
