using System.Buffers;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Tokenization;

/// <summary>
/// Stands in for the tokenizer of a model folder that has none (ONNX Runtime GenAI's test models,
/// for one, are driven by token ids only). Token-id generation works and decodes to empty text;
/// anything that needs text encoded throws an error that names the folder and what to do.
/// </summary>
internal sealed class MissingTokenizer(string folder) : Tokenizer
{
    /// <summary>Files any of which make a folder carry its own tokenizer.</summary>
    private static readonly string[] TokenizerFiles = ["tokenizer.json", "vocab.json", "tokenizer.model", "tokenizer_config.json"];

    public const string Source = "none (the folder has no tokenizer files: token ids only)";

    /// <summary>Whether <paramref name="folder"/> has no tokenizer file at all.</summary>
    public static bool IsMissing(string folder) => !TokenizerFiles.Any(name => File.Exists(Path.Combine(folder, name)));

    private GptModelException NoTokenizer() => new($"The model folder '{folder}' has no tokenizer (tokenizer.json, vocab.json + merges.txt, " +
        "tokenizer.model or tokenizer_config.json): give prompts as token ids (GptModel.GenerateTokens) or set GptModelOptions.Tokenizer or TokenizerEncoding.");

    protected override EncodeResults<EncodedToken> EncodeToTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings) => throw NoTokenizer();

    protected override EncodeResults<int> EncodeToIds(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings) => throw NoTokenizer();

    public override string Decode(IEnumerable<int> ids) => "";

    public override OperationStatus Decode(IEnumerable<int> ids, Span<char> destination, out int idsConsumed, out int charsWritten)
    {
        idsConsumed = ids.Count();
        charsWritten = 0;
        return OperationStatus.Done;
    }
}
