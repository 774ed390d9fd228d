using System.Text.Json;
using System.Text.Json.Nodes;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>
/// Hugging Face's Rust <c>tokenizers</c> (through the Tokenizers.DotNet wrapper) on one tokenizer.json,
/// as the reference the parity tests compare with. The wrapper always encodes with special tokens
/// and always decodes skipping them, so the other two behaviours come from edited copies of the file:
/// <c>"post_processor": null</c> for encoding without special tokens, every added token marked
/// <c>"special": false</c> for decoding that keeps them. <c>truncation</c> and <c>padding</c> are
/// cleared in all copies (transformers switches them off unless a call asks).
/// </summary>
public sealed class HuggingFaceReference : IDisposable
{
    private readonly string _folder;
    private readonly Tokenizers.DotNet.Tokenizer _withSpecial;
    private readonly Tokenizers.DotNet.Tokenizer _withoutSpecial;
    private readonly Tokenizers.DotNet.Tokenizer _keepingSpecial;

    private HuggingFaceReference(JsonNode document)
    {
        _folder = Directory.CreateTempSubdirectory("mlnetgpt-hf-reference-").FullName;
        document["truncation"] = null;
        document["padding"] = null;
        _withSpecial = Write(document, "with-special.json");
        var processor = document["post_processor"]?.DeepClone();
        document["post_processor"] = null;
        _withoutSpecial = Write(document, "without-special.json");
        document["post_processor"] = processor;
        if (document["added_tokens"] is JsonArray added)
            foreach (var token in added) token!["special"] = false;
        _keepingSpecial = Write(document, "keeping-special.json");
    }

    /// <summary>The reference for the tokenizer.json at <paramref name="path"/>.</summary>
    public static HuggingFaceReference ForFile(string path) => new(JsonNode.Parse(File.ReadAllBytes(path))!);

    /// <summary>The reference for a tokenizer.json given as text.</summary>
    public static HuggingFaceReference ForJson(string json) => new(JsonNode.Parse(json)!);

    private Tokenizers.DotNet.Tokenizer Write(JsonNode document, string name)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllText(path, document.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        return new Tokenizers.DotNet.Tokenizer(path);
    }

    /// <summary>The ids of <paramref name="text"/>, with or without the post-processor's special tokens.</summary>
    public int[] Encode(string text, bool addSpecialTokens) =>
        (addSpecialTokens ? _withSpecial : _withoutSpecial).Encode(text).Select(id => (int)id).ToArray();

    /// <summary>The text of <paramref name="ids"/>, skipping special tokens or keeping them.</summary>
    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens) =>
        ids.Count == 0 ? "" : (skipSpecialTokens ? _withSpecial : _keepingSpecial).Decode(ids.Select(id => (uint)id).ToArray());

    public void Dispose()
    {
        _withSpecial.Dispose();
        _withoutSpecial.Dispose();
        _keepingSpecial.Dispose();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
            // A temporary folder left behind is harmless.
        }
    }
}
