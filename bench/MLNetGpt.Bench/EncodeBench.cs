using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tokenization;

namespace MLNetGpt.Bench;

/// <summary>
/// Encode throughput (MB of UTF-8 text per second, one thread) on a 10 MB mixed corpus built
/// deterministically from the tokenizer parity corpus (English, code, numbers, white space, CJK,
/// Arabic, Hindi, emoji, special-token strings) and seeded sentences, cut into documents of 1-4 KB:
/// MLNetGpt's tokenizer.json tokenizer against Hugging Face's Rust tokenizers (Tokenizers.DotNet) on
/// the same file, plus the loader MLNetGpt had before (Microsoft.ML.Tokenizers' BpeTokenizer with
/// GPT-2's split) for byte-level files and the default model's tokenizer (tiktoken's gpt2) for GPT-2.
/// Every subject is warmed up first; rounds interleave the subjects and record the load average.
/// </summary>
internal static class EncodeBench
{
    public sealed class Row
    {
        public string Tokenizer { get; set; } = "";
        public string Subject { get; set; } = "";
        public List<double> MegabytesPerSecond { get; set; } = [];
        public List<double> LoadAverage { get; set; } = [];
        public long Tokens { get; set; }
    }

    public static List<Row> Run(string root, int rounds, int megabytes)
    {
        var documents = Corpus(root, megabytes);
        long bytes = documents.Sum(d => (long)Encoding.UTF8.GetByteCount(d));
        Console.Error.WriteLine($"corpus: {documents.Count} documents, {bytes / 1e6:F1} MB");
        var rows = new List<Row>();
        foreach (var (name, path) in Files(root))
        {
            var subjects = Subjects(name, path);
            var results = subjects.Select(s => new Row { Tokenizer = name, Subject = s.Name }).ToList();
            foreach (var (_, encode) in subjects) Encode(encode, documents.Take(200));          // warm-up
            for (int round = 0; round < rounds; round++)
            {
                for (int s = 0; s < subjects.Count; s++)
                {
                    double load = Load.Now();
                    var watch = Stopwatch.StartNew();
                    long tokens = Encode(subjects[s].Encode, documents);
                    watch.Stop();
                    results[s].MegabytesPerSecond.Add(bytes / 1e6 / watch.Elapsed.TotalSeconds);
                    results[s].LoadAverage.Add(load);
                    results[s].Tokens = tokens;
                    Console.Error.WriteLine($"{name} {subjects[s].Name} round {round}: {results[s].MegabytesPerSecond[^1]:F2} MB/s (load {load:F1})");
                }
            }
            foreach (var (_, encode) in subjects) if (encode.Target is IDisposable d) d.Dispose();
            rows.AddRange(results);
        }
        return rows;
    }

    private static long Encode(Func<string, int> encode, IEnumerable<string> documents)
    {
        long tokens = 0;
        foreach (var document in documents) tokens += encode(document);
        return tokens;
    }

    private static IEnumerable<(string Name, string Path)> Files(string root)
    {
        string shared = Path.GetFullPath(Path.Combine(root, "..", "shared", "tokenizers"));
        string gpt2 = Path.Combine(Path.GetTempPath(), "mlnetgpt-bench-gpt2");
        Directory.CreateDirectory(gpt2);
        if (!File.Exists(Path.Combine(gpt2, "tokenizer.json"))) Gpt2TokenizerFiles.WriteTokenizerJson(gpt2);
        yield return ("gpt2", Path.Combine(gpt2, "tokenizer.json"));
        foreach (string family in new[] { "llama3", "qwen3", "llama2", "gemma3" })
        {
            string path = Path.Combine(shared, family, "tokenizer.json");
            if (File.Exists(path)) yield return (family, path);
            else Console.Error.WriteLine($"skipping {family}: {path} is absent");
        }
    }

    private static List<(string Name, Func<string, int> Encode)> Subjects(string name, string path)
    {
        var watch = Stopwatch.StartNew();
        var ours = HuggingFaceTokenizer.FromFile(path);
        Console.Error.WriteLine($"{name}: MLNetGpt loads it in {watch.ElapsedMilliseconds} ms");
        string copy = WithoutPostProcessor(path);
        watch.Restart();
        var reference = new Tokenizers.DotNet.Tokenizer(copy);
        Console.Error.WriteLine($"{name}: Hugging Face tokenizers loads it in {watch.ElapsedMilliseconds} ms");
        var subjects = new List<(string, Func<string, int>)>
        {
            ("MLNetGpt", text => ours.EncodeToIds(text, addSpecialTokens: false).Length),
            ("Hugging Face tokenizers (Rust)", new ReferenceEncoder(reference).Encode),
        };
        if (name == "gpt2")
        {
            var tiktoken = TiktokenTokenizer.CreateForModel("gpt2");
            subjects.Add(("tiktoken gpt2 (the default model's)", text => tiktoken.EncodeToIds(text).Count));
        }
        if (ours.IsByteLevel) subjects.Add(("previous loader (BpeTokenizer, GPT-2 split)", PreviousLoader(path)));
        return subjects;
    }

    /// <summary>The byte-level loader MLNetGpt had before: Microsoft.ML.Tokenizers' BpeTokenizer with GPT-2's pattern whatever the file says.</summary>
    private static Func<string, int> PreviousLoader(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = document.RootElement;
        var model = root.GetProperty("model");
        var vocabulary = model.GetProperty("vocab").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
        var merges = model.GetProperty("merges").EnumerateArray()
            .Select(m => m.ValueKind == JsonValueKind.Array ? $"{m[0].GetString()} {m[1].GetString()}" : m.GetString()!).ToList();
        var special = root.GetProperty("added_tokens").EnumerateArray().Where(t => t.GetProperty("special").GetBoolean())
            .ToDictionary(t => t.GetProperty("content").GetString()!, t => t.GetProperty("id").GetInt32());
        foreach (var (token, id) in special) vocabulary.TryAdd(token, id);
        var tokenizer = BpeTokenizer.Create(new BpeOptions(vocabulary)
        {
            Merges = merges,
            ByteLevel = true,
            SpecialTokens = special,
            PreTokenizer = new RegexPreTokenizer(new Regex(PreTokenizerStep.Gpt2Pattern, RegexOptions.Compiled), special),
        });
        return text => tokenizer.EncodeToIds(text).Count;
    }

    private static string WithoutPostProcessor(string path)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllBytes(path))!;
        node["post_processor"] = null;
        node["truncation"] = null;
        node["padding"] = null;
        string copy = Path.Combine(Path.GetTempPath(), $"mlnetgpt-bench-{Guid.NewGuid():N}.json");
        File.WriteAllText(copy, node.ToJsonString());
        return copy;
    }

    private sealed class ReferenceEncoder(Tokenizers.DotNet.Tokenizer tokenizer) : IDisposable
    {
        public int Encode(string text) => tokenizer.Encode(text).Length;

        public void Dispose() => tokenizer.Dispose();
    }

    /// <summary>Documents of 1-4 KB, deterministic: corpus lines and seeded sentences, shuffled with a fixed seed, until the size is reached.</summary>
    public static List<string> Corpus(string root, int megabytes)
    {
        var lines = File.ReadLines(Path.Combine(root, "tests", "Fixtures", "tokenizer-corpus.jsonl"))
            .Select(l => JsonSerializer.Deserialize<string>(l)!).Where(l => l.Length > 0).ToList();
        var random = new Random(20261207);
        var words = lines.Where(l => l.All(c => c < 128)).SelectMany(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Distinct().ToArray();
        var documents = new List<string>();
        long total = 0, target = megabytes * 1_000_000L;
        var builder = new StringBuilder();
        while (total < target)
        {
            builder.Clear();
            int size = random.Next(1000, 4000);
            while (builder.Length < size)
            {
                if (random.Next(3) == 0)
                    for (int w = random.Next(5, 30); w > 0; w--) builder.Append(words[random.Next(words.Length)]).Append(w > 1 ? ' ' : '\n');
                else builder.Append(lines[random.Next(lines.Count)]).Append('\n');
            }
            string document = builder.ToString();
            documents.Add(document);
            total += Encoding.UTF8.GetByteCount(document);
        }
        return documents;
    }

    /// <summary>The report's section: method, then <see cref="Table"/>.</summary>
    public static void Section(StringBuilder md, List<Row> rows)
    {
        md.AppendLine("## Tokenizer encode throughput");
        md.AppendLine();
        md.AppendLine("Bench `encode` mode: a 10 MB mixed corpus made deterministically from the tokenizer parity corpus (English, code, numbers, white-space runs, CJK, Arabic, Hindi, emoji, special-token strings)");
        md.AppendLine("and seeded sentences, in documents of 1-4 KB, encoded without special tokens on one thread. MLNetGpt's tokenizer.json tokenizer against Hugging Face's Rust tokenizers (Tokenizers.DotNet 1.4.1,");
        md.AppendLine("tokenizers 0.22.2) on the same file; for byte-level files also the loader MLNetGpt had before (Microsoft.ML.Tokenizers' BpeTokenizer with GPT-2's split, which gave wrong ids on Llama 3 and Qwen 3),");
        md.AppendLine("and for GPT-2 the tiktoken encoder the default model uses. Every subject warms up first; rounds interleave the subjects; the ratio is the median of the per-round ratios.");
        md.AppendLine();
        md.Append(Table(rows));
        md.AppendLine();
    }

    /// <summary>The table for docs/benchmarks.md: median MB/s per subject, MLNetGpt's ratio to each other subject (per round, median), load.</summary>
    public static string Table(List<Row> rows)
    {
        var text = new StringBuilder();
        text.AppendLine("| tokenizer.json | subject | encode MB/s (median) | MLNetGpt ÷ subject (median of rounds) | load average |");
        text.AppendLine("|---|---|---:|---:|---|");
        foreach (var group in rows.GroupBy(r => r.Tokenizer))
        {
            var ours = group.First(r => r.Subject == "MLNetGpt");
            foreach (var row in group)
            {
                var ratios = ours.MegabytesPerSecond.Zip(row.MegabytesPerSecond, (a, b) => a / b).ToList();
                string ratio = row == ours ? "" : $"{Stats.Median(ratios):F2}";
                text.AppendLine($"| {group.Key} | {row.Subject} | {Stats.Median(row.MegabytesPerSecond):F2} | {ratio} | " +
                    $"{row.LoadAverage.Min():F1}-{row.LoadAverage.Max():F1} |");
            }
        }
        return text.ToString();
    }
}
