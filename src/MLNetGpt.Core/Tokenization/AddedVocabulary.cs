using System.Buffers;
using System.Text.Json;

namespace MLNetGpt.Tokenization;

/// <summary>One entry of tokenizer.json's <c>added_tokens</c>.</summary>
internal sealed record AddedToken(string Content, int Id, bool Special, bool SingleWord, bool LeftStrip, bool RightStrip, bool Normalized);

/// <summary>
/// tokenizer.json's <c>added_tokens</c> as Hugging Face tokenizers uses them: found in the text
/// before the model runs, leftmost first and longest among those starting there (Aho-Corasick's
/// leftmost-longest), first the tokens with <c>normalized: false</c> in the raw text, then those
/// with <c>normalized: true</c> (spelled as the normalizer spells them) in each normalized piece.
/// <c>single_word</c> drops a match that touches a word character; <c>lstrip</c>/<c>rstrip</c> take
/// the white space beside it into the token. Special tokens are the ones decoding may skip.
/// </summary>
/// <remarks>
/// Ids: tokens load as tokenizers loads them, which ignores the ids written in the file: a token
/// whose content the model's vocabulary holds gets that id, any other the next id after the
/// vocabulary. A file whose written id differs from that is refused (the model would see other ids
/// than its authors meant), as are negative ids, ids past 2^31 and two contents sharing an id.
/// </remarks>
internal sealed class AddedVocabulary
{
    private readonly Dictionary<int, AddedToken> _byId = [];
    private readonly HashSet<string> _specialContents = new(StringComparer.Ordinal);
    private readonly Trie _raw = new();
    private readonly Trie _normalized = new();

    private AddedVocabulary(IReadOnlyList<AddedToken> tokens) => Tokens = tokens;

    /// <summary>The tokens in file order (duplicates the loader ignores left out).</summary>
    public IReadOnlyList<AddedToken> Tokens { get; }

    public bool IsEmpty => Tokens.Count == 0;

    /// <summary>Whether some token is matched in normalized text.</summary>
    public bool HasNormalizedTokens => _normalized.Count > 0;

    public bool HasRawTokens => _raw.Count > 0;

    public bool TryGetToken(int id, out AddedToken token) => _byId.TryGetValue(id, out token!);

    /// <summary>Whether <paramref name="content"/> is the content of a special token (decoding with skip_special_tokens drops it).</summary>
    public bool IsSpecialContent(string content) => _specialContents.Count > 0 && _specialContents.Contains(content);

    /// <summary>The largest id of an added token, or -1.</summary>
    public int MaxId => _byId.Count == 0 ? -1 : _byId.Keys.Max();

    /// <summary>
    /// Reads <c>added_tokens</c>. <paramref name="modelId"/> looks a content up in the model's
    /// vocabulary; <paramref name="modelSize"/> is the number of entries there (where new ids start);
    /// <paramref name="normalize"/> spells a normalized token's content as the normalizer does.
    /// </summary>
    public static AddedVocabulary Read(TokenizerJson json, JsonElement root, Func<string, int?> modelId, int modelSize, Func<string, string> normalize)
    {
        var tokens = new List<AddedToken>();
        var seen = new HashSet<AddedToken>();
        var byContent = new Dictionary<string, int>(StringComparer.Ordinal);
        var contentById = new Dictionary<int, string>();
        int nextId = modelSize;
        if (TokenizerJson.Optional(root, "added_tokens") is { } element)
        {
            if (element.ValueKind != JsonValueKind.Array)
                throw json.Error($"added_tokens must be an array, but is {TokenizerJson.Describe(element)}.");
            int index = 0;
            foreach (var entry in element.EnumerateArray())
            {
                string where = $"added_tokens[{index++}]";
                string content = json.RequiredString(entry, "content", where);
                var idElement = json.Required(entry, "id", where);
                if (idElement.ValueKind != JsonValueKind.Number || !idElement.TryGetInt64(out long written) || written < 0 || written > int.MaxValue)
                    throw json.Error($"{where} (\"{content}\") has the id {TokenizerJson.Describe(idElement)}; a token id must be an integer from 0 to 2^31-1.");
                var token = new AddedToken(content, (int)written,
                    json.OptionalBool(entry, "special", where, fallback: false),
                    json.OptionalBool(entry, "single_word", where, fallback: false),
                    json.OptionalBool(entry, "lstrip", where, fallback: false),
                    json.OptionalBool(entry, "rstrip", where, fallback: false),
                    json.OptionalBool(entry, "normalized", where, fallback: true));
                // tokenizers skips empty contents and exact repeats.
                if (content.Length == 0 || !seen.Add(token)) continue;
                int id = byContent.TryGetValue(content, out int known) ? known : modelId(content) ?? nextId++;
                if (id != written)
                    throw json.Error($"{where} (\"{content}\") has the id {written}, but Hugging Face tokenizers gives it {id} " +
                        (modelId(content) is not null ? "(its id in model.vocab)" : $"(the next id after the model's {modelSize} tokens)") +
                        "; the file's ids are inconsistent.");
                if (contentById.TryGetValue(id, out var other) && other != content)
                    throw json.Error($"{where} (\"{content}\") has the id {id}, which \"{other}\" has too.");
                contentById[id] = content;
                byContent[content] = id;
                tokens.Add(token with { Id = id });
            }
        }
        var vocabulary = new AddedVocabulary(tokens);
        foreach (var token in tokens)
        {
            vocabulary._byId[token.Id] = token;
            if (token.Special) vocabulary._specialContents.Add(token.Content);
        }
        foreach (var token in vocabulary._byId.Values)
        {
            if (token.Normalized) vocabulary._normalized.Add(normalize(token.Content), token);
            else vocabulary._raw.Add(token.Content, token);
        }
        vocabulary._raw.Freeze();
        vocabulary._normalized.Freeze();
        return vocabulary;
    }

    /// <summary>Builds the vocabulary from tokens whose ids are already right (GPT-2's vocab.json + merges.txt).</summary>
    public static AddedVocabulary FromTokens(IEnumerable<AddedToken> tokens)
    {
        var list = tokens.ToList();
        var vocabulary = new AddedVocabulary(list);
        foreach (var token in list)
        {
            vocabulary._byId[token.Id] = token;
            if (token.Special) vocabulary._specialContents.Add(token.Content);
            if (token.Normalized) vocabulary._normalized.Add(token.Content, token);
            else vocabulary._raw.Add(token.Content, token);
        }
        vocabulary._raw.Freeze();
        vocabulary._normalized.Freeze();
        return vocabulary;
    }

    /// <summary>
    /// Cuts <paramref name="text"/> at the added tokens (raw or normalized ones) into spans that
    /// cover it: (start, end, token id) for a token, (start, end, -1) for the text between.
    /// </summary>
    public void Split(string text, bool normalizedTokens, List<(int Start, int End, int Id)> output)
    {
        var trie = normalizedTokens ? _normalized : _raw;
        if (trie.Count == 0 || text.Length == 0)
        {
            output.Add((0, text.Length, -1));
            return;
        }
        int startOffset = 0;
        int searchFrom = 0;
        while (searchFrom < text.Length)
        {
            var (start, stop, token) = trie.FindLeftmostLongest(text, searchFrom);
            if (token is null) break;
            searchFrom = stop;
            if (token.SingleWord)
            {
                bool startSpace = start == 0 || !IsWord(text, start, before: true);
                bool stopSpace = stop == text.Length || !IsWord(text, stop, before: false);
                if (!startSpace || !stopSpace) continue;
            }
            if (token.LeftStrip)
            {
                int newStart = start;
                while (newStart > 0 && UnicodeClasses.IsWhiteSpace(text[newStart - 1])) newStart--;
                start = Math.Max(newStart, startOffset);
            }
            if (token.RightStrip)
            {
                while (stop < text.Length && UnicodeClasses.IsWhiteSpace(text[stop])) stop++;
                searchFrom = stop;
            }
            if (startOffset < start) output.Add((startOffset, start, -1));
            output.Add((start, stop, token.Id));
            startOffset = stop;
        }
        if (startOffset != text.Length) output.Add((startOffset, text.Length, -1));
    }

    /// <summary>Whether the character just before (or at) <paramref name="index"/> is a word character (the regex crate's <c>\w</c>).</summary>
    private static bool IsWord(string text, int index, bool before)
    {
        if (before)
        {
            int i = index - 1;
            if (char.IsLowSurrogate(text[i]) && i > 0 && char.IsHighSurrogate(text[i - 1])) i--;
            return UnicodeClasses.IsWordCharacter(UnicodeClasses.ScalarAt(text, i).Value);
        }
        return UnicodeClasses.IsWordCharacter(UnicodeClasses.ScalarAt(text, index).Value);
    }

    /// <summary>A character trie over token contents, for leftmost-longest search.</summary>
    private sealed class Trie
    {
        private sealed class Node
        {
            public Dictionary<char, Node>? Children;
            public AddedToken? Token;
        }

        private readonly Node _root = new();
        private SearchValues<char>? _firstChars;

        public int Count { get; private set; }

        public void Add(string content, AddedToken token)
        {
            if (content.Length == 0) return;
            var node = _root;
            foreach (char c in content)
            {
                node.Children ??= [];
                if (!node.Children.TryGetValue(c, out var child)) node.Children[c] = child = new Node();
                node = child;
            }
            // Two tokens spelled alike: the later one wins, as in tokenizers' trie.
            if (node.Token is null) Count++;
            node.Token = token;
        }

        public void Freeze() => _firstChars = SearchValues.Create(_root.Children?.Keys.ToArray() ?? []);

        public (int Start, int End, AddedToken? Token) FindLeftmostLongest(string text, int from)
        {
            var span = text.AsSpan();
            while (from < text.Length)
            {
                int offset = span[from..].IndexOfAny(_firstChars!);
                if (offset < 0) break;
                int start = from + offset;
                var node = _root;
                AddedToken? best = null;
                int bestEnd = -1;
                for (int i = start; i < text.Length && node.Children is not null && node.Children.TryGetValue(text[i], out var child); i++)
                {
                    node = child;
                    if (node.Token is not null)
                    {
                        best = node.Token;
                        bestEnd = i + 1;
                    }
                }
                if (best is not null) return (start, bestEnd, best);
                from = start + 1;
            }
            return (-1, -1, null);
        }
    }
}
