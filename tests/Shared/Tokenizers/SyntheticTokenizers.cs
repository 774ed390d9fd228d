using System.Text.Json.Nodes;
using MLNetGpt.Tokenization;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>
/// Small tokenizer.json documents for trying one component or option at a time against Hugging
/// Face's tokenizers: a byte-level BPE, a SentencePiece-style BPE with byte fallback and a Unigram,
/// each with a few hundred tokens built from common words, so that merges, unknown characters and
/// byte pieces all occur on ordinary text.
/// </summary>
public static class SyntheticTokenizers
{
    private static readonly string[] Words =
        ("the of and to in is was for on that with as by at from his it an were are which this be or has had not but what all when we " +
         "there can been one who their more if will would about out up them then she many some so these time year people way day man " +
         "thing woman life child world school state family student group country problem hand part place case week company system " +
         "program question work government number night point home water room mother area money story fact month lot right study book " +
         "hello quick brown fox jumps over lazy dog tokenizer model text line code data 123 2024 ing ed er ly").Split(' ');

    /// <summary>A byte-level BPE: the 256 byte characters, then merges that spell each word (and each word after a space).</summary>
    public static JsonObject ByteLevelBpe()
    {
        var vocab = new JsonObject();
        var merges = new JsonArray();
        for (int b = 0; b < 256; b++) vocab[ByteLevelAlphabet.CharOf((byte)b).ToString()] = b;
        foreach (string word in Words)
        {
            foreach (string form in new[] { word, " " + word })
            {
                string spelled = string.Concat(System.Text.Encoding.UTF8.GetBytes(form).Select(ByteLevelAlphabet.CharOf));
                AddWord(vocab, merges, spelled.Select(c => c.ToString()).ToList(), 0);
            }
        }
        return Document(new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
            ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false, ["vocab"] = vocab, ["merges"] = merges,
        },
        pre: new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
        decoder: new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
        added: [("<|endoftext|>", true, false)]);
    }

    /// <summary>
    /// A SentencePiece-style BPE (Llama 2's layout): &lt;unk&gt; &lt;s&gt; &lt;/s&gt;, the 256 byte pieces, ASCII
    /// letters, digits and punctuation, and merges spelling "▁word"; byte fallback on; Prepend + Replace
    /// normalizer; Replace/ByteFallback/Fuse/Strip decoder. <paramref name="prefix"/> and
    /// <paramref name="suffix"/> set continuing_subword_prefix and end_of_word_suffix (the vocabulary is spelled with them).
    /// </summary>
    public static JsonObject SentencePieceBpe(string? prefix = null, string? suffix = null)
    {
        var vocab = new JsonObject { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        var merges = new JsonArray();
        for (int b = 0; b < 256; b++) vocab[$"<0x{b:X2}>"] = vocab.Count;
        var alphabet = "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()".Select(c => c.ToString()).ToList();
        foreach (string c in alphabet)
        {
            foreach (string spelled in new[] { c, (prefix ?? "") + c, c + (suffix ?? ""), (prefix ?? "") + c + (suffix ?? "") })
                if (!vocab.ContainsKey(spelled)) vocab[spelled] = vocab.Count;
        }
        foreach (string word in Words)
        {
            var symbols = ("▁" + word).Select(c => c.ToString()).ToList();
            for (int i = 1; i < symbols.Count; i++) symbols[i] = (prefix ?? "") + symbols[i];
            symbols[^1] += suffix ?? "";
            AddWord(vocab, merges, symbols, prefix?.Length ?? 0);
        }
        return Document(new JsonObject
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = "<unk>", ["continuing_subword_prefix"] = prefix, ["end_of_word_suffix"] = suffix,
            ["fuse_unk"] = true, ["byte_fallback"] = true, ["ignore_merges"] = false, ["vocab"] = vocab, ["merges"] = merges,
        },
        normalizer: JsonNode.Parse("""{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}"""),
        decoder: JsonNode.Parse("""{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}"""),
        post: JsonNode.Parse("""{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<s>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}}"""),
        added: [("<unk>", true, false), ("<s>", true, false), ("</s>", true, false)]);
    }

    /// <summary>A Unigram over "▁word" pieces, single characters and (optionally) byte pieces, with a Metaspace pre-tokenizer and decoder.</summary>
    public static JsonObject Unigram(bool byteFallback)
    {
        var pieces = new JsonArray { new JsonArray("<unk>", 0.0), new JsonArray("<s>", 0.0), new JsonArray("</s>", 0.0) };
        var seen = new HashSet<string> { "<unk>", "<s>", "</s>" };
        void Add(string piece, double score)
        {
            if (seen.Add(piece)) pieces.Add(new JsonArray(piece, score));
        }
        if (byteFallback)
            for (int b = 0; b < 256; b++) Add($"<0x{b:X2}>", -20.0);
        int rank = 0;
        foreach (string word in Words)
        {
            Add("▁" + word, -3.0 - 0.01 * rank++);
            if (word.Length > 3) Add(word[..2], -6.5 - 0.01 * rank);
        }
        foreach (char c in "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()")
            Add(c.ToString(), -8.0 - 0.001 * c);
        return Document(new JsonObject { ["type"] = "Unigram", ["unk_id"] = 0, ["vocab"] = pieces, ["byte_fallback"] = byteFallback },
            pre: JsonNode.Parse("""{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}"""),
            decoder: JsonNode.Parse("""{"type":"Sequence","decoders":[{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true},{"type":"ByteFallback"},{"type":"Fuse"}]}"""),
            added: [("<unk>", true, false), ("<s>", true, false), ("</s>", true, false)]);
    }

    // Adds merges that build the symbols left to right (skipping pairs already listed).
    private static void AddWord(JsonObject vocab, JsonArray merges, List<string> symbols, int prefixLength)
    {
        foreach (string symbol in symbols)
            if (!vocab.ContainsKey(symbol)) vocab[symbol] = vocab.Count;
        string built = symbols[0];
        for (int i = 1; i < symbols.Count; i++)
        {
            string merged = built + symbols[i][prefixLength..];
            if (!vocab.ContainsKey(merged))
            {
                vocab[merged] = vocab.Count;
                merges.Add(new JsonArray(built, symbols[i]));
            }
            built = merged;
        }
    }

    private static JsonObject Document(JsonObject model, JsonNode? normalizer = null, JsonNode? pre = null, JsonNode? post = null, JsonNode? decoder = null,
        (string Content, bool Special, bool Normalized)[]? added = null)
    {
        var tokens = new JsonArray();
        var vocab = model["vocab"];
        int next = vocab is JsonObject o ? o.Count : ((JsonArray)vocab!).Count;
        foreach (var (content, special, normalized) in added ?? [])
        {
            int? existing = vocab is JsonObject map && map.TryGetPropertyValue(content, out var id) ? (int)id! : IndexOf(vocab as JsonArray, content);
            tokens.Add(new JsonObject
            {
                ["id"] = existing ?? next++, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = normalized, ["special"] = special,
            });
        }
        return new JsonObject
        {
            ["version"] = "1.0", ["truncation"] = null, ["padding"] = null, ["added_tokens"] = tokens,
            ["normalizer"] = normalizer, ["pre_tokenizer"] = pre, ["post_processor"] = post, ["decoder"] = decoder, ["model"] = model,
        };
    }

    private static int? IndexOf(JsonArray? pieces, string content)
    {
        if (pieces is null) return null;
        for (int i = 0; i < pieces.Count; i++)
            if ((string?)pieces[i]![0] == content) return i;
        return null;
    }

    /// <summary>Appends an added token whose id follows every other id.</summary>
    public static JsonObject WithAddedToken(this JsonObject document, string content, bool special, bool singleWord = false, bool leftStrip = false,
        bool rightStrip = false, bool normalized = false)
    {
        var tokens = (JsonArray)document["added_tokens"]!;
        int max = tokens.Select(t => (int)t!["id"]!).DefaultIfEmpty(-1).Max();
        var vocab = document["model"]!["vocab"];
        int size = vocab is JsonObject map ? map.Count : ((JsonArray)vocab!).Count;
        tokens.Add(new JsonObject
        {
            ["id"] = Math.Max(max + 1, size), ["content"] = content, ["single_word"] = singleWord, ["lstrip"] = leftStrip, ["rstrip"] = rightStrip,
            ["normalized"] = normalized, ["special"] = special,
        });
        return document;
    }

    /// <summary>Writes the document to a new tokenizer.json and returns its path.</summary>
    public static string Write(this JsonObject document, string label)
    {
        string folder = Fixtures.TempFolder(label);
        string path = Path.Combine(folder, "tokenizer.json");
        File.WriteAllText(path, document.ToJsonString());
        return path;
    }
}
