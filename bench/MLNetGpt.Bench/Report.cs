using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MLNetGpt.Bench;

/// <summary>Runs every measurement in child processes and writes docs/benchmarks.md and docs/benchmarks.svg.</summary>
internal static class Report
{
    private static readonly string[] Subjects = ["pipeline", "engine", "plain", "genai"];
    private static readonly Dictionary<string, string> SubjectNames = new()
    {
        ["pipeline"] = "ML.NET pipeline (GenerateText)",
        ["engine"] = "MLNetGpt engine (GptModel)",
        ["plain"] = "plain ONNX Runtime loop",
        ["genai"] = "ONNX Runtime GenAI 0.18",
    };

    private sealed record ModelSpec(string Name, string Folder, string Description);

    private sealed record Row(string Model, string Prompt, Workload Workload, Dictionary<string, Measurement> Results);

    public static int Run(string[] args)
    {
        string root = FindRoot();
        bool quick = args.Contains("--quick");
        string output = Value(args, "--out") ?? Path.Combine(root, "docs", "benchmarks.md");
        int threads = int.Parse(Value(args, "--threads") ?? Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture));
        int runs = int.Parse(Value(args, "--runs") ?? (quick ? "2" : "3"));
        int[] batches = (Value(args, "--batches") ?? (quick ? "1,8" : "1,4,8,16,32")).Split(',').Select(int.Parse).ToArray();
        string[] wanted = (Value(args, "--models") ?? "default,gpt2-small").Split(',');
        const int newTokens = 32;

        var models = new List<ModelSpec>();
        if (wanted.Contains("default"))
            models.Add(new ModelSpec("default", Path.Combine(root, "models", "mlnetgpt-kjv"), "the embedded default model (6 layers, width 192, fp16-stored weights run in fp32)"));
        if (wanted.Contains("gpt2-small"))
        {
            string folder = Path.Combine(root, "artifacts", "models", "gpt2-small-random");
            if (!File.Exists(Path.Combine(folder, "model.onnx")))
            {
                Console.Error.WriteLine("bench: making the GPT-2-small-shaped model with the model kit (tools/make_bench_model.py)...");
                Exec("/usr/bin/python3", [Path.Combine(root, "tools", "make_bench_model.py"), folder], out _);
            }
            if (File.Exists(Path.Combine(folder, "model.onnx")))
                models.Add(new ModelSpec("gpt2-small", folder, "GPT-2 small's shape with random weights (12 layers, 12 heads, width 768, 50,257 ids, fp32)"));
            else
                Console.Error.WriteLine("bench: skipping gpt2-small: tools/make_bench_model.py needs Debian's python3-torch and python3-onnx (see tools/README.md).");
        }

        string self = typeof(Report).Assembly.Location;
        string genai = Path.Combine(root, "bench", "GenAiRunner", "bin", "Release", "net10.0", "GenAiRunner.dll");
        if (!File.Exists(genai)) Exec("dotnet", ["build", Path.Combine(root, "bench", "GenAiRunner"), "-c", "Release", "-v", "q"], out _);

        Console.Error.WriteLine($"bench: memory bandwidth with {threads} threads...");
        Exec("dotnet", [self, "bandwidth", threads.ToString(CultureInfo.InvariantCulture)], out string bandwidthText);
        double bandwidth = double.Parse(bandwidthText.Trim(), CultureInfo.InvariantCulture);

        var rows = new List<Row>();
        foreach (var model in models)
        {
            using var gpt = GptModel.Open(model.Folder);
            string genaiFolder = GenAiFolder(model.Folder, gpt.Info, threads);
            foreach (var (promptName, promptTokens) in new[] { ("short", 16), ("long", 128) })
            {
                foreach (int batch in batches)
                {
                    // The GPT-2-small-shaped model's long-prompt prefill costs seconds per batch: batches 1 and 8 only.
                    if (model.Name == "gpt2-small" && promptName == "long" && batch is not (1 or 8) && !quick) continue;
                    int rowCount = model.Name == "default" ? Math.Max(16, batch * 4) : Math.Max(4, batch * 2);
                    var workload = new Workload(model.Folder, batch, promptTokens, newTokens, rowCount, runs, threads);
                    string promptsFile = Path.Combine(genaiFolder, $"prompts-{promptTokens}-{rowCount}.json");
                    File.WriteAllText(promptsFile, JsonSerializer.Serialize(Prompts.Make(gpt, rowCount, promptTokens)));
                    var results = new Dictionary<string, Measurement>();
                    foreach (var subject in Subjects)
                    {
                        Console.Error.WriteLine($"bench: {model.Name} {promptName} prompts, batch {batch}: {subject}...");
                        string[] command = subject == "genai"
                            ? [genai, genaiFolder, promptsFile, batch.ToString(CultureInfo.InvariantCulture), newTokens.ToString(CultureInfo.InvariantCulture), runs.ToString(CultureInfo.InvariantCulture)]
                            : [self, "one", subject, model.Folder, batch.ToString(CultureInfo.InvariantCulture), promptTokens.ToString(CultureInfo.InvariantCulture),
                               newTokens.ToString(CultureInfo.InvariantCulture), rowCount.ToString(CultureInfo.InvariantCulture), runs.ToString(CultureInfo.InvariantCulture),
                               threads.ToString(CultureInfo.InvariantCulture)];
                        int code = Exec("dotnet", command, out string json);
                        Measurement m;
                        try
                        {
                            m = JsonSerializer.Deserialize<Measurement>(json.Trim().Split('\n').Last())!;
                        }
                        catch (Exception e)
                        {
                            m = new Measurement { Subject = subject, Error = $"exit {code}: {e.Message}: {json.Trim()[..Math.Min(200, json.Trim().Length)]}" };
                        }
                        results[subject] = m;
                        Console.Error.WriteLine($"bench:   {Summary(m)}");
                    }
                    rows.Add(new Row(model.Name, promptName, workload, results));
                }
            }
        }

        Continuous.Result? continuous = null;
        if (models.Any(m => m.Name == "default"))
        {
            Console.Error.WriteLine("bench: continuous batching on mixed lengths...");
            Exec("dotnet", [self, "continuous", models.First(m => m.Name == "default").Folder, quick ? "64" : "128", "16", runs.ToString(CultureInfo.InvariantCulture),
                threads.ToString(CultureInfo.InvariantCulture)], out string json);
            continuous = JsonSerializer.Deserialize<Continuous.Result>(json.Trim().Split('\n').Last());
        }

        var markdown = Markdown(models, rows, bandwidth, continuous, threads, runs, newTokens, args);
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        File.WriteAllText(output, markdown);
        File.WriteAllText(Path.ChangeExtension(output, ".svg"), Chart(models, rows));
        Console.WriteLine(markdown);
        Console.Error.WriteLine($"bench: wrote {output} and {Path.ChangeExtension(output, ".svg")}");
        return 0;
    }

    private static string Summary(Measurement m) => m.Error is not null ? $"error: {m.Error}"
        : $"{Stats.Median(m.TokensPerSecond):F1} tokens/s [{m.TokensPerSecond.Min():F1}-{m.TokensPerSecond.Max():F1}], peak {m.PeakWorkingSetBytes / 1048576} MB";

    /// <summary>A folder ONNX Runtime GenAI can load: our model file (linked, not copied) and a genai_config.json of type "decoder".</summary>
    private static string GenAiFolder(string folder, GptModelInfo info, int threads)
    {
        string target = Path.Combine(Path.GetTempPath(), "mlnetgpt-bench-genai", Path.GetFileName(folder));
        Directory.CreateDirectory(target);
        string link = Path.Combine(target, "model.onnx");
        if (File.Exists(link)) File.Delete(link);
        File.CreateSymbolicLink(link, Path.Combine(folder, info.ModelFiles[0]));
        var config = new
        {
            model = new
            {
                bos_token_id = info.BosTokenId ?? 0, eos_token_id = info.EosTokenIds.FirstOrDefault(), pad_token_id = info.PadTokenId,
                context_length = info.ContextLength, vocab_size = info.VocabularySize, type = "decoder",
                decoder = new
                {
                    filename = "model.onnx", head_size = info.HeadSize, hidden_size = info.HeadSize * info.AttentionHeadCount,
                    num_attention_heads = info.AttentionHeadCount, num_key_value_heads = info.KeyValueHeadCount, num_hidden_layers = info.LayerCount,
                    session_options = new { intra_op_num_threads = threads, log_id = "onnxruntime-genai", provider_options = Array.Empty<object>() },
                    inputs = new
                    {
                        input_ids = "input_ids", attention_mask = "attention_mask", position_ids = "position_ids",
                        past_key_names = "past_key_values.%d.key", past_value_names = "past_key_values.%d.value",
                    },
                    outputs = new { logits = "logits", present_key_names = "present.%d.key", present_value_names = "present.%d.value" },
                },
            },
            search = new { do_sample = false, max_length = info.ContextLength, num_beams = 1, past_present_share_buffer = false },
        };
        File.WriteAllText(Path.Combine(target, "genai_config.json"), JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }));
        return target;
    }

    private static string Markdown(List<ModelSpec> models, List<Row> rows, double bandwidth, Continuous.Result? continuous, int threads, int runs, int newTokens, string[] args)
    {
        var md = new StringBuilder();
        md.AppendLine("# Benchmarks");
        md.AppendLine();
        md.AppendLine($"Generated by `dotnet run -c Release --project bench/MLNetGpt.Bench -- all{(args.Length > 0 ? " " + string.Join(' ', args) : "")}` on {DateTime.UtcNow:yyyy-MM-dd}.");
        md.AppendLine($"Machine: {CpuName()}, {Environment.ProcessorCount} cores, {MemoryGiB():F0} GiB, {RuntimeName()}; ONNX Runtime 1.31 CPU execution provider, {threads} intra-op threads for every subject.");
        md.AppendLine($"Memory bandwidth measured in the same run: **{bandwidth:F1} GB/s** (best of 7 passes summing 1 GiB with {threads} threads).");
        md.AppendLine();
        md.AppendLine($"Every figure is the median of {runs} runs after a warm-up, with the range [min-max] of tokens/s. Greedy decoding, {newTokens} new tokens per row");
        md.AppendLine("(end-of-sequence disabled so every subject generates the same number), equal-length prompts (16 tokens \"short\", 128 \"long\"),");
        md.AppendLine("four batches of rows per measurement on the default model (16 rows at batch 1), two on the GPT-2-small-shaped one (four rows at batch 1; long prompts at batches 1 and 8 only). Each measurement runs in its own process; \"peak\" is that process's peak working set.");
        md.AppendLine("TTFT is the prefill step of a batch; step latency is one decode step for the whole batch. Timings on this shared 2-core machine are noisy: compare ratios within a row.");
        md.AppendLine();
        foreach (var model in models)
        {
            md.AppendLine($"## {model.Name}: {model.Description}");
            md.AppendLine();
            md.AppendLine("| prompts | batch | subject | tokens/s | rows/s | TTFT ms | step p50 / p95 ms | peak MB |");
            md.AppendLine("|---|---:|---|---:|---:|---:|---:|---:|");
            foreach (var row in rows.Where(r => r.Model == model.Name))
            {
                foreach (var subject in Subjects)
                {
                    var m = row.Results[subject];
                    if (m.Error is not null)
                    {
                        md.AppendLine($"| {row.Prompt} | {row.Workload.Batch} | {SubjectNames[subject]} | error: {m.Error.Replace('|', '/')} | | | | |");
                        continue;
                    }
                    string ttft = m.TimeToFirstTokenMs is double t ? t.ToString("F1") : "-";
                    string steps = m.StepP50Ms is double p50 ? $"{p50:F1} / {m.StepP95Ms:F1}" : "-";
                    md.AppendLine($"| {row.Prompt} | {row.Workload.Batch} | {SubjectNames[subject]} | {Stats.Median(m.TokensPerSecond):F1} [{m.TokensPerSecond.Min():F1}-{m.TokensPerSecond.Max():F1}] | " +
                                  $"{Stats.Median(m.RowsPerSecond):F2} | {ttft} | {steps} | {m.PeakWorkingSetBytes / 1048576} |");
                }
            }
            md.AppendLine();
            md.AppendLine("Ratios of median tokens/s (same run):");
            md.AppendLine();
            md.AppendLine("| prompts | batch | pipeline / GenAI | engine / GenAI | pipeline / engine | plain loop / engine |");
            md.AppendLine("|---|---:|---:|---:|---:|---:|");
            foreach (var row in rows.Where(r => r.Model == model.Name))
                md.AppendLine($"| {row.Prompt} | {row.Workload.Batch} | {Ratio(row, "pipeline", "genai")} | {Ratio(row, "engine", "genai")} | {Ratio(row, "pipeline", "engine")} | {Ratio(row, "plain", "engine")} |");
            md.AppendLine();

            long weightBytes = WeightBytes(model.Folder);
            var batchOne = rows.FirstOrDefault(r => r.Model == model.Name && r.Prompt == "short" && r.Workload.Batch == 1);
            if (batchOne is not null && batchOne.Results["engine"].StepP50Ms is double step)
            {
                double bound = bandwidth * 1e9 / weightBytes;
                double achieved = 1000.0 / step;
                md.AppendLine($"**Physical limit, batch 1.** Decoding one token reads every weight once: {weightBytes / 1e6:F0} MB (fp32 at run time). At {bandwidth:F1} GB/s that allows at most " +
                              $"**{bound:F0} tokens/s**. The engine's median decode step is {step:F2} ms, i.e. **{achieved:F0} tokens/s = {100 * achieved / bound:F0}% of the bound**.");
                md.AppendLine();
            }
        }

        if (continuous is not null)
        {
            md.AppendLine("## Continuous batching");
            md.AppendLine();
            md.AppendLine($"{continuous.Rows} prompts of 2 to 21 words on the default model, sampling (seed 11, temperature 0.9, top-k 40), up to {continuous.MaxNewTokens} new tokens, batch {continuous.Batch}.");
            md.AppendLine($"Rows end at the model's end-of-verse token, so output lengths vary (mean {continuous.MeanNewTokens:F1} tokens).");
            md.AppendLine();
            md.AppendLine("| batching | rows/s (median [range]) | vs static |");
            md.AppendLine("|---|---:|---:|");
            double baseline = Stats.Median(continuous.StaticRowsPerSecond);
            foreach (var (name, values) in new[] { ("static (a batch runs until its longest row ends)", continuous.StaticRowsPerSecond),
                                                    ("static, finished rows dropped from the batch", continuous.CompactingRowsPerSecond),
                                                    ("continuous (free slots refilled at once)", continuous.ContinuousRowsPerSecond) })
                md.AppendLine($"| {name} | {Stats.Median(values):F2} [{values.Min():F2}-{values.Max():F2}] | {Stats.Median(values) / baseline:F2}x |");
            md.AppendLine();
            md.AppendLine($"Outputs identical in every mode and run: **{(continuous.IdenticalOutputs ? "yes" : "NO")}**.");
            md.AppendLine();
        }
        md.AppendLine("![tokens/s against batch size](benchmarks.svg)");
        md.AppendLine();
        md.AppendLine("Reproduce: `dotnet run -c Release --project bench/MLNetGpt.Bench -- all` (add `--quick` for batches 1 and 8 only; `--models default` to skip the");
        md.AppendLine("GPT-2-small-shaped model, which `tools/make_bench_model.py` makes on first use with Debian's python3-torch). Micro-benchmarks of the decoding");
        md.AppendLine("controls: `dotnet run -c Release --project bench/MLNetGpt.Bench -- micro`.");
        return md.ToString();
    }

    private static string Ratio(Row row, string a, string b)
    {
        var x = row.Results[a];
        var y = row.Results[b];
        if (x.Error is not null || y.Error is not null) return "-";
        return $"{Stats.Median(x.TokensPerSecond) / Stats.Median(y.TokensPerSecond):F2}";
    }

    private static string Chart(List<ModelSpec> models, List<Row> rows)
    {
        const int width = 520, height = 300, left = 60, bottom = 40, top = 30;
        string[] colors = ["#d62728", "#1f77b4", "#7f7f7f", "#2ca02c"];
        var svg = new StringBuilder($"<svg xmlns='http://www.w3.org/2000/svg' width='{width * Math.Max(1, models.Count)}' height='{height + 40}' font-family='sans-serif' font-size='11'>");
        for (int mi = 0; mi < models.Count; mi++)
        {
            var data = rows.Where(r => r.Model == models[mi].Name && r.Prompt == "short").OrderBy(r => r.Workload.Batch).ToList();
            if (data.Count == 0) continue;
            double max = data.SelectMany(r => r.Results.Values.Where(m => m.Error is null).Select(m => Stats.Median(m.TokensPerSecond))).DefaultIfEmpty(1).Max() * 1.1;
            int ox = mi * width;
            svg.Append($"<text x='{ox + left}' y='18' font-size='13'>{models[mi].Name}: tokens/s vs batch size (short prompts)</text>");
            svg.Append($"<line x1='{ox + left}' y1='{height - bottom}' x2='{ox + width - 20}' y2='{height - bottom}' stroke='black'/>");
            svg.Append($"<line x1='{ox + left}' y1='{top}' x2='{ox + left}' y2='{height - bottom}' stroke='black'/>");
            for (int g = 0; g <= 4; g++)
            {
                double value = max * g / 4;
                double y = height - bottom - (height - bottom - top) * g / 4.0;
                svg.Append($"<text x='{ox + 5}' y='{y + 4:F0}'>{value:F0}</text><line x1='{ox + left}' y1='{y:F0}' x2='{ox + width - 20}' y2='{y:F0}' stroke='#eee'/>");
            }
            double X(int i) => ox + left + 20 + i * (width - left - 60.0) / Math.Max(1, data.Count - 1);
            for (int i = 0; i < data.Count; i++)
                svg.Append($"<text x='{X(i) - 4:F0}' y='{height - bottom + 15}'>{data[i].Workload.Batch}</text>");
            for (int s = 0; s < Subjects.Length; s++)
            {
                var points = data.Select((r, i) => (i, m: r.Results[Subjects[s]])).Where(p => p.m.Error is null)
                    .Select(p => $"{X(p.i):F0},{height - bottom - (height - bottom - top) * Stats.Median(p.m.TokensPerSecond) / max:F0}").ToList();
                if (points.Count > 0) svg.Append($"<polyline fill='none' stroke='{colors[s]}' stroke-width='2' points='{string.Join(' ', points)}'/>");
                svg.Append($"<rect x='{ox + left + 10}' y='{height + 2 + s * 0}' width='0' height='0'/>");
                svg.Append($"<text x='{ox + left + 10 + s * 115}' y='{height + 10}' fill='{colors[s]}'>{SubjectNames[Subjects[s]].Split(' ')[0] switch { "ML.NET" => "pipeline", "MLNetGpt" => "engine", "plain" => "plain ORT", _ => "ORT GenAI" }}</text>");
            }
        }
        return svg.Append("</svg>").ToString();
    }

    private static long WeightBytes(string folder)
    {
        long file = Directory.GetFiles(folder, "*.onnx").Sum(f => new FileInfo(f).Length);
        string config = File.ReadAllText(Path.Combine(folder, "config.json"));
        return config.Contains("\"float16\"", StringComparison.Ordinal) ? file * 2 : file;
    }

    private static int Exec(string file, string[] args, out string stdout)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var error = process.StandardError.ReadToEndAsync();
        stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) Console.Error.WriteLine($"bench: {file} {string.Join(' ', args)} exited {process.ExitCode}: {error.Result}");
        return process.ExitCode;
    }

    private static string? Value(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MLNetGpt.sln"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }

    private static string CpuName()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        }
        catch (IOException)
        {
            return "unknown CPU";
        }
    }

    private static double MemoryGiB() => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (double)(1L << 30);

    private static string RuntimeName() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;
}
