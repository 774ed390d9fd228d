using System.Text.Json;

namespace MLNetGpt.Tokenization;

/// <summary>
/// One step of a tokenizer.json <c>normalizer</c>, as SentencePiece-style tokenizers use them:
/// <c>Prepend</c> (only to non-empty text, as tokenizers does) and a literal <c>Replace</c>.
/// </summary>
internal abstract class NormalizerStep
{
    private static readonly string[] Supported = ["Sequence", "Prepend", "Replace"];

    public abstract string Apply(string text);

    /// <summary>The steps of <c>normalizer</c> in order (none when it is null).</summary>
    public static IReadOnlyList<NormalizerStep> Read(TokenizerJson json, JsonElement root)
    {
        var steps = new List<NormalizerStep>();
        if (TokenizerJson.Optional(root, "normalizer") is { } normalizer) Add(json, normalizer, "normalizer", steps);
        return steps;
    }

    private static void Add(TokenizerJson json, JsonElement step, string where, List<NormalizerStep> steps)
    {
        switch (json.StepType(step, where, "normalizer", Supported))
        {
            case "Sequence":
                var list = json.Required(step, "normalizers", where);
                if (list.ValueKind != JsonValueKind.Array) throw json.Error($"{where}.normalizers must be an array, but is {TokenizerJson.Describe(list)}.");
                int i = 0;
                foreach (var inner in list.EnumerateArray()) Add(json, inner, $"{where}.normalizers[{i++}]", steps);
                break;
            case "Prepend":
                steps.Add(new Prepend(json.RequiredString(step, "prepend", where)));
                break;
            default:
                steps.Add(new Replace(json.LiteralPattern(step, where), json.RequiredString(step, "content", where)));
                break;
        }
    }

    private sealed class Prepend(string prefix) : NormalizerStep
    {
        public override string Apply(string text) => text.Length == 0 ? text : prefix + text;
    }

    private sealed class Replace(string pattern, string content) : NormalizerStep
    {
        public override string Apply(string text) => pattern.Length == 0 ? text : text.Replace(pattern, content, StringComparison.Ordinal);
    }
}
