using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Tokenization;

/// <summary>
/// The one decoding rule for every tokenizer kind: ids to text with special tokens skipped or kept
/// (tokenizer.json tokenizers drop their special added tokens, tiktoken its special tokens,
/// SentencePiece its control pieces), then optionally transformers' <c>clean_up_tokenization</c>.
/// Generated completions use transformers' text-generation pipeline defaults: skip special tokens,
/// clean up tokenization spaces.
/// </summary>
internal static class TokenDecoding
{
    /// <summary>The ids' text; ids the tokenizer does not know decode to nothing.</summary>
    public static string Decode(Tokenizer tokenizer, IReadOnlyList<int> ids, bool skipSpecialTokens, bool cleanUpTokenizationSpaces)
    {
        string text = Decode(tokenizer, ids, skipSpecialTokens);
        return cleanUpTokenizationSpaces ? CleanUpTokenizationSpaces(text) : text;
    }

    private static string Decode(Tokenizer tokenizer, IReadOnlyList<int> ids, bool skipSpecialTokens)
    {
        if (ids.Count == 0) return "";
        switch (tokenizer)
        {
            case HuggingFaceTokenizer huggingFace:
                return huggingFace.Decode(ids, skipSpecialTokens);
            case SentencePieceTokenizer sentencePiece:
                return sentencePiece.Decode(ids, considerSpecialTokens: !skipSpecialTokens);
            case BpeTokenizer bpe:
                return bpe.Decode(ids, considerSpecialTokens: !skipSpecialTokens);
            case CodeGenTokenizer codeGen:
                return codeGen.Decode(ids, codeGen.AddPrefixSpace, considerSpecialTokens: !skipSpecialTokens);
            case TiktokenTokenizer tiktoken when skipSpecialTokens && tiktoken.SpecialTokens is { Count: > 0 } special:
                var specialIds = special.Values.ToHashSet();
                return tiktoken.Decode(ids.Where(id => !specialIds.Contains(id)));
            default:
                return tokenizer.Decode(ids);
        }
    }

    /// <summary>
    /// transformers' <c>clean_up_tokenization</c>: drops the space before <c>. ? ! ,</c> and before the
    /// English contractions <c>n't 'm 's 've 're</c>, and turns <c> ' </c> into <c>'</c>, in that order.
    /// </summary>
    public static string CleanUpTokenizationSpaces(string text)
    {
        if (!text.Contains(' ')) return text;
        return text.Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal)
            .Replace(" !", "!", StringComparison.Ordinal).Replace(" ,", ",", StringComparison.Ordinal)
            .Replace(" ' ", "'", StringComparison.Ordinal).Replace(" n't", "n't", StringComparison.Ordinal)
            .Replace(" 'm", "'m", StringComparison.Ordinal).Replace(" 's", "'s", StringComparison.Ordinal)
            .Replace(" 've", "'ve", StringComparison.Ordinal).Replace(" 're", "'re", StringComparison.Ordinal);
    }

    /// <summary>
    /// How much of a growing decoded text can be cleaned up and released now, so that what follows
    /// cannot change what was released: every pattern starts with a space and is at most four
    /// characters long, so the text is cut at the first space among its last four characters, and
    /// further back past a <c> ' </c> that the cut would split (the one pattern with a space inside).
    /// </summary>
    public static int StableCleanUpLength(string text)
    {
        int cut = text.Length;
        for (int i = Math.Max(0, text.Length - 4); i < text.Length; i++)
        {
            if (text[i] != ' ') continue;
            cut = i;
            break;
        }
        while (cut >= 2 && cut < text.Length && text[cut - 2] == ' ' && text[cut - 1] == '\'') cut -= 2;
        return cut;
    }
}
