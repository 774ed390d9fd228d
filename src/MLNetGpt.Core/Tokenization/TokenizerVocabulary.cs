using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Tokenization;

/// <summary>How many token ids a tokenizer knows: its vocabulary and special tokens.</summary>
internal static class TokenizerVocabulary
{
    /// <summary>One more than the largest id the tokenizer can produce or decode, or null when its kind does not say.</summary>
    public static int? IdCount(Tokenizer tokenizer)
    {
        if (tokenizer is HuggingFaceTokenizer huggingFace) return huggingFace.IdCount;
        IEnumerable<int>? ids = tokenizer switch
        {
            BpeTokenizer bpe => bpe.Vocabulary.Values.Concat(bpe.SpecialTokens?.Values ?? []),
            // Tiktoken keeps its ranks internal; the named encodings put their special tokens after every rank.
            TiktokenTokenizer tiktoken => tiktoken.SpecialTokens?.Values,
            SentencePieceTokenizer sentencePiece => sentencePiece.Vocabulary.Values.Concat(sentencePiece.SpecialTokens?.Values ?? []),
            CodeGenTokenizer codeGen => codeGen.Vocabulary.Values.Concat(codeGen.SpecialTokens?.Values ?? []),
            _ => null,
        };
        if (ids is null) return null;
        int max = -1;
        foreach (int id in ids) max = Math.Max(max, id);
        return max + 1;
    }
}
