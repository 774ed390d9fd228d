using System.Text.Json;

namespace MLNetGpt.Bench;

/// <summary>
/// The llama.cpp copies of the GPT-2-small-shaped model: f32 and f16 GGUF files written by the model
/// kit (tools/make_gguf.py), q8_0 and q4_0 made from the f16 one by llama.cpp's own quantizer
/// (bench/LlamaRunner quantize), all in artifacts/gguf and made once.
/// </summary>
internal static class LlamaFiles
{
    public static readonly string[] Types = ["f32", "f16", "q8_0", "q4_0"];

    public static string Runner(string root) => Path.Combine(root, "bench", "LlamaRunner", "bin", "Release", "net10.0", "LlamaRunner.dll");

    /// <summary>The GGUF file of each type, or the reason none could be made.</summary>
    public static (Dictionary<string, string> Files, Dictionary<string, string> TensorTypes, string? Error) Make(string root, string folder, int threads)
    {
        var files = new Dictionary<string, string>();
        var tensorTypes = new Dictionary<string, string>();
        string name = Path.GetFileName(folder);
        string directory = Path.Combine(root, "artifacts", "gguf");
        Directory.CreateDirectory(directory);
        string vocabulary = Path.Combine(directory, "gpt2.tiktoken");
        if (!File.Exists(vocabulary))
        {
            Console.Error.WriteLine("bench: writing the GPT-2 vocabulary for GGUF (tools/TokenizeCorpus vocab)...");
            Report.Exec("dotnet", ["run", "-c", "Release", "--project", Path.Combine(root, "tools", "TokenizeCorpus"), "--", "vocab", vocabulary], out _);
            if (!File.Exists(vocabulary)) return (files, tensorTypes, "tools/TokenizeCorpus could not write the GPT-2 vocabulary");
        }
        if (!File.Exists(Runner(root)))
            Report.Exec("dotnet", ["build", Path.Combine(root, "bench", "LlamaRunner"), "-c", "Release", "-v", "q"], out _);
        foreach (string type in Types)
        {
            string file = Path.Combine(directory, $"{name}-{type}.gguf");
            if (!File.Exists(file))
            {
                Console.Error.WriteLine($"bench: making {Path.GetFileName(file)}...");
                string scratch = file + ".partial";
                int code = type is "f32" or "f16"
                    ? Report.Exec("/usr/bin/python3", [Path.Combine(root, "tools", "make_gguf.py"), folder, vocabulary, scratch, "--type", type], out _)
                    : Report.Exec("dotnet", [Runner(root), "quantize", Path.Combine(directory, $"{name}-f16.gguf"), scratch, type, threads.ToString()], out _);
                if (code != 0 || !File.Exists(scratch)) return (files, tensorTypes, $"making {Path.GetFileName(file)} failed (exit {code}); see the messages above");
                File.Move(scratch, file);
            }
            files[type] = file;
            Report.Exec("/usr/bin/python3", [Path.Combine(root, "tools", "make_gguf.py"), "--inspect", file], out string header);
            tensorTypes[type] = header.Split('\n').FirstOrDefault(l => l.Trim().StartsWith("tensor types:", StringComparison.Ordinal))?.Trim()["tensor types:".Length..].Trim() ?? "?";
        }
        return (files, tensorTypes, null);
    }

    public sealed class IdsCheck
    {
        public int Prompts { get; set; }
        public int Positions { get; set; }
        public int Equal { get; set; }
        public int EqualPrefix { get; set; }
        public string? Error { get; set; }
    }

    /// <summary>
    /// Greedy ids of llama.cpp on <paramref name="gguf"/> against the engine on the ONNX folder,
    /// prompt by prompt: positions equal, and positions equal before the first difference (after
    /// one, the two continue from different text).
    /// </summary>
    public static IdsCheck CompareGreedyIds(string root, string folder, string gguf, int prompts, int promptTokens, int newTokens, int threads)
    {
        using var model = GptModel.Open(folder, new GptModelOptions { IntraOpThreads = threads });
        var ids = Bench.Prompts.Make(model, prompts, promptTokens);
        string promptsFile = Path.Combine(Path.GetTempPath(), $"mlnetgpt-bench-ids-{Environment.ProcessId}.json");
        File.WriteAllText(promptsFile, JsonSerializer.Serialize(ids));
        var engine = model.GenerateTokens(ids, new GenerationOptions { MaxNewTokens = newTokens, DoSample = false, EosTokenIds = [], RepetitionPenalty = 1f }, batchSize: 1);
        int code = Report.Exec("dotnet", [Runner(root), "ids", gguf, promptsFile, newTokens.ToString(), threads.ToString()], out string json);
        File.Delete(promptsFile);
        if (code != 0) return new IdsCheck { Error = $"LlamaRunner ids exited {code}" };
        var llama = JsonSerializer.Deserialize<int[][]>(json.Trim().Split('\n').Last())!;
        var check = new IdsCheck { Prompts = prompts };
        for (int p = 0; p < prompts; p++)
        {
            var a = engine[p].TokenIds;
            var b = llama[p];
            check.Positions += Math.Max(a.Count, b.Length);
            check.Equal += a.Zip(b).Count(x => x.First == x.Second);
            check.EqualPrefix += a.Zip(b).TakeWhile(x => x.First == x.Second).Count();
        }
        return check;
    }
}
