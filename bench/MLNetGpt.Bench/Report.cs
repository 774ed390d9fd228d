using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MLNetGpt.Bench;

/// <summary>Runs every measurement in child processes and writes docs/benchmarks.md and docs/benchmarks.svg.</summary>
internal static class Report
{
    /// <summary>A measured subject: who runs it (this bench, GenAiRunner, LlamaRunner) and on which precision of the model.</summary>
    private sealed record Subject(string Key, string Name, string Label, string Runner, string Precision, string Color, bool NoSpin = false);

    private static readonly Subject[] AllSubjects =
    [
        new("pipeline", "ML.NET pipeline (GenerateText)", "pipeline", "self", "fp32", "#d62728"),
        new("engine", "MLNetGpt engine (GptModel)", "engine", "self", "fp32", "#1f77b4"),
        new("plain", "plain ONNX Runtime loop", "plain ORT", "self", "fp32", "#7f7f7f"),
        new("genai", "ONNX Runtime GenAI 0.18", "ORT GenAI", "genai", "fp32", "#2ca02c"),
        new("engine-int8", "MLNetGpt engine, int8", "engine int8", "self", "int8", "#6baed6"),
        new("engine-int4", "MLNetGpt engine, int4", "engine int4", "self", "int4", "#08306b"),
        // Blocks of 128 (ONNX Runtime's Python quantizer's default): a quarter of the scales and zero points to read.
        new("engine-int4-b128", "MLNetGpt engine, int4, block 128", "engine int4 b128", "self", "int4-b128", "#3f007d"),
        new("genai-int8", "ONNX Runtime GenAI 0.18, int8", "GenAI int8", "genai", "int8", "#74c476"),
        new("genai-int4", "ONNX Runtime GenAI 0.18, int4", "GenAI int4", "genai", "int4", "#00441b"),
        new("llama-f32", "llama.cpp (LLamaSharp 0.30), f32", "llama f32", "llama", "f32", "#fdae6b"),
        new("llama-f16", "llama.cpp (LLamaSharp 0.30), f16", "llama f16", "llama", "f16", "#fd8d3c"),
        new("llama-q8_0", "llama.cpp (LLamaSharp 0.30), q8_0", "llama q8_0", "llama", "q8_0", "#d94801"),
        new("llama-q4_0", "llama.cpp (LLamaSharp 0.30), q4_0", "llama q4_0", "llama", "q4_0", "#7f2704"),
        // The same, with waiting threads asleep instead of spinning: ONNX Runtime's allow_spinning 0, and
        // OMP_WAIT_POLICY=passive for the OpenMP build of ggml in LLamaSharp's CPU backend. On a host whose
        // other work preempts one of the two threads, a spinning partner burns the time slice the other needs,
        // and a 2-thread llama.cpp step took ten times as long as a 1-thread one.
        new("engine-nospin", "MLNetGpt engine, no spin-waiting", "engine nospin", "self", "fp32", "#9ecae1", true),
        new("engine-int4-nospin", "MLNetGpt engine, int4, no spin-waiting", "engine int4 nospin", "self", "int4", "#4292c6", true),
        new("llama-f32-nospin", "llama.cpp (LLamaSharp 0.30), f32, no spin-waiting", "llama f32 nospin", "llama", "f32", "#fdd0a2", true),
        new("llama-q4_0-nospin", "llama.cpp (LLamaSharp 0.30), q4_0, no spin-waiting", "llama q4_0 nospin", "llama", "q4_0", "#a63603", true),
    ];

    private static readonly string[] GridSubjects = ["pipeline", "engine", "plain", "genai"];
    private static readonly string[] QuantizedSubjects = ["engine-int8", "engine-int4", "engine-int4-b128", "genai-int8", "genai-int4"];
    // f16 is made (q8_0 and q4_0 are quantized from it) but not timed: it adds minutes to the run and no comparison.
    private static readonly string[] LlamaSubjects = ["llama-f32", "llama-q8_0", "llama-q4_0"];
    private static readonly string[] NoSpinSubjects = ["engine-nospin", "engine-int4-nospin", "llama-f32-nospin", "llama-q4_0-nospin"];
    private static readonly string[] Sections = ["throughput", "bandwidth", "perplexity", "ids", "prefix", "constraints", "continuous", "concurrency", "speculation", "encode"];

    private sealed record ModelSpec(string Name, string Folder, string Description)
    {
        public Dictionary<string, string> Folders { get; } = new();          // fp32, int8, int4
        public Dictionary<string, GptModelInfo> Infos { get; } = new();
        public Dictionary<string, string> Gguf { get; } = new();             // f32, f16, q8_0, q4_0
        public Dictionary<string, string> GgufTensorTypes { get; } = new();
        public string? GgufError { get; set; }
    }

    private sealed record Row(string Model, string Prompt, Workload Workload, Dictionary<string, Measurement> Results);

    private sealed record Options(bool Quick, int Threads, int Runs, int? RunsGiven, int Rounds, int[] Batches, string[] Models, string[]? SubjectFilter, string[] Sections,
        int NewTokens, int TimeoutSeconds)
    {
        // A run of the GPT-2-small-shaped model takes seconds: one per process there (two rounds still interleave two).
        public int RunsFor(string model) => RunsGiven ?? (model == "gpt2-small" ? 1 : Runs);
    }

    /// <summary>Everything one run measured: written beside the report, and read back by <c>--from</c> to render it again.</summary>
    private sealed class RunRecord
    {
        public string[] Args { get; set; } = [];
        public DateTime Date { get; set; }
        public double Minutes { get; set; }
        public List<Row> Rows { get; set; } = [];
        public List<Bandwidth.Result> Bandwidth { get; set; } = [];
        public Dictionary<string, Precisions.PerplexityResult> Perplexity { get; set; } = [];
        public LlamaFiles.IdsCheck? Ids { get; set; }
        public PrefixBench.Result? Prefix { get; set; }
        public Continuous.Result? Continuous { get; set; }
        public ConstraintCost.Result? Constraints { get; set; }
        public List<EncodeBench.Row>? Encode { get; set; }
        public Concurrency.Result? Concurrency { get; set; }
        public SpeculationBench.Result? Speculation { get; set; }
    }

    private static Options? Parse(string[] args)
    {
        bool quick = args.Contains("--quick");
        var sections = Value(args, "--sections")?.Split(',') ?? Sections;
        foreach (var s in sections.Where(s => !Sections.Contains(s)))
        {
            Console.Error.WriteLine($"bench: unknown section '{s}'; sections are {string.Join(", ", Sections)}");
            return null;
        }
        return new Options(
            quick,
            int.Parse(Value(args, "--threads") ?? Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture)),
            quick ? 1 : 2,
            Value(args, "--runs") is string runs ? int.Parse(runs) : null,
            int.Parse(Value(args, "--rounds") ?? "2"),
            (Value(args, "--batches") ?? (quick ? "1,8" : "1,4,8,16,32")).Split(',').Select(int.Parse).ToArray(),
            (Value(args, "--models") ?? "default,gpt2-small").Split(','),
            Value(args, "--subjects")?.Split(','),
            sections,
            32,
            int.Parse(Value(args, "--timeout") ?? "180"));
    }

    private static bool IsPartial(string[] args) =>
        new[] { "--subjects", "--sections", "--models", "--batches" }.Any(o => Value(args, o) is not null) || args.Contains("--quick");

    public static int Run(string[] args)
    {
        string root = FindRoot();
        if (Value(args, "--from") is string from)
        {
            // Renders a recorded run again (after a change to the report's text) without measuring anything.
            var record = JsonSerializer.Deserialize<RunRecord>(File.ReadAllText(from), new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;
            var recorded = Parse(record.Args)!;
            string target = Value(args, "--out") ?? (IsPartial(record.Args) ? Path.Combine(root, "artifacts", "benchmarks-partial.md") : Path.Combine(root, "docs", "benchmarks.md"));
            var recordedModels = PrepareModels(root, recorded);
            Write(target, Markdown(recordedModels, record, recorded), Chart(recordedModels, record.Rows), null);
            return 0;
        }
        var options = Parse(args);
        if (options is null) return 1;
        bool quick = options.Quick;
        // A partial rerun never overwrites the full report unless asked to.
        string output = Value(args, "--out") ?? (IsPartial(args) ? Path.Combine(root, "artifacts", "benchmarks-partial.md") : Path.Combine(root, "docs", "benchmarks.md"));
        var started = Stopwatch.StartNew();

        var models = PrepareModels(root, options);
        string self = typeof(Report).Assembly.Location;
        string genai = Path.Combine(root, "bench", "GenAiRunner", "bin", "Release", "net10.0", "GenAiRunner.dll");
        if (!File.Exists(genai)) Exec("dotnet", ["build", Path.Combine(root, "bench", "GenAiRunner"), "-c", "Release", "-v", "q"], out _);
        string threadsText = options.Threads.ToString(CultureInfo.InvariantCulture);

        var bandwidth = new List<Bandwidth.Result>();
        void Probe()
        {
            if (!options.Sections.Contains("bandwidth")) return;
            Console.Error.WriteLine($"bench: memory bandwidth (read-only and triad, {string.Join("/", Bandwidth.SizesMiB)} MiB, {options.Threads} and 1 threads)...");
            Exec("dotnet", [self, "bandwidth", threadsText, quick ? "3" : "5"], out string text);
            try
            {
                bandwidth.Add(JsonSerializer.Deserialize<Bandwidth.Result>(text.Trim().Split('\n').Last())!);
            }
            catch (JsonException e)
            {
                Console.Error.WriteLine($"bench: the bandwidth probe printed no result: {e.Message}");
            }
        }
        Probe();

        var rows = new List<Row>();
        if (options.Sections.Contains("throughput"))
            foreach (var model in models)
                rows.AddRange(Throughput(model, options, self, genai, root));

        var perplexity = new Dictionary<string, Precisions.PerplexityResult>();
        var defaultModel = models.FirstOrDefault(m => m.Name == "default");
        if (options.Sections.Contains("perplexity") && defaultModel is not null)
        {
            string verses = Path.Combine(root, "tests", "Fixtures", "kjv-heldout.txt");
            foreach (var (precision, folder) in defaultModel.Folders)
            {
                if (Child<Precisions.PerplexityResult>($"held-out perplexity, default model {precision}", [self, "perplexity", folder, verses, threadsText], out _) is { } result)
                    perplexity[precision] = result;
            }
        }

        LlamaFiles.IdsCheck? ids = null;
        var small = models.FirstOrDefault(m => m.Name == "gpt2-small");
        if (options.Sections.Contains("ids") && small is not null && small.Gguf.TryGetValue("f32", out var f32))
        {
            ids = Child<LlamaFiles.IdsCheck>("greedy ids of llama.cpp (f32 GGUF) against the engine (ONNX fp32)",
                [self, "llama-ids", small.Folder, f32, "4", "16", options.NewTokens.ToString(CultureInfo.InvariantCulture), threadsText], out string? error)
                ?? new LlamaFiles.IdsCheck { Error = error };
        }

        PrefixBench.Result? prefix = null;
        if (options.Sections.Contains("prefix") && small is not null)
        {
            prefix = Child<PrefixBench.Result>("shared 256-token prompt head, prefix caching on and off", [self, "prefix", small.Folder, "16", "8", quick ? "1" : "2", threadsText], out _);
        }

        ConstraintCost.Result? constraints = null;
        if (options.Sections.Contains("constraints") && defaultModel is not null)
        {
            constraints = Child<ConstraintCost.Result>("structured-output constraints against the decode step", [self, "constraints", defaultModel.Folder, "8", quick ? "2" : "5", threadsText], out _);
        }

        Continuous.Result? continuous = null;
        if (options.Sections.Contains("continuous") && defaultModel is not null)
        {
            continuous = Child<Continuous.Result>("continuous batching on mixed lengths", [self, "continuous", defaultModel.Folder, quick ? "64" : "128", "16", quick ? "2" : "3", threadsText], out _);
        }
        List<EncodeBench.Row>? encode = null;
        if (options.Sections.Contains("encode"))
            encode = Child<List<EncodeBench.Row>>("tokenizer.json encode throughput against Hugging Face's tokenizers", [self, "encode", quick ? "1" : "3", quick ? "2" : "10"], out _);

        Concurrency.Result? concurrency = null;
        if (options.Sections.Contains("concurrency") && defaultModel is not null)
        {
            concurrency = Child<Concurrency.Result>("many callers through the shared scheduler", [self, "concurrency", defaultModel.Folder, quick ? "2" : "3", threadsText], out _);
        }

        SpeculationBench.Result? speculation = null;
        if (options.Sections.Contains("speculation"))
        {
            var subjects = new List<string>();
            if (defaultModel is not null) subjects.Add($"default={defaultModel.Folder}");
            if (small is not null)
            {
                // The draft: the same model cut after its first 2 of 12 blocks (an early exit of the target).
                string draft = small.Folder + "-first2";
                if (!File.Exists(Path.Combine(draft, "model.onnx")))
                {
                    Console.Error.WriteLine("bench: making the draft model, GPT-2-small-shaped cut after 2 blocks (tools/make_bench_model.py --keep-layers 2)...");
                    Exec("/usr/bin/python3", [Path.Combine(root, "tools", "make_bench_model.py"), draft, "--keep-layers", "2"], out _);
                }
                string int4 = Precisions.Quantized(root, small.Folder, 4);
                subjects.Add(File.Exists(Path.Combine(draft, "model.onnx")) ? $"gpt2-small fp32={small.Folder},{draft}" : $"gpt2-small fp32={small.Folder}");
                subjects.Add($"gpt2-small int4={int4}");
            }
            speculation = Child<SpeculationBench.Result>("speculative decoding at batch 1", [self, "speculation", quick ? "1" : "2", threadsText, .. subjects], out _);
        }
        Probe();

        var run = new RunRecord
        {
            Args = args, Date = DateTime.UtcNow, Minutes = started.Elapsed.TotalMinutes, Rows = rows, Bandwidth = bandwidth, Perplexity = perplexity,
            Ids = ids, Prefix = prefix, Continuous = continuous, Constraints = constraints, Concurrency = concurrency, Speculation = speculation, Encode = encode,
        };
        Write(output, Markdown(models, run, options), Chart(models, rows), run);
        return 0;
    }

    /// <summary>Runs one child mode of this bench in its own process and reads the JSON it prints last; null (and the reason) when it printed none.</summary>
    private static T? Child<T>(string what, string[] arguments, out string? error) where T : class
    {
        Console.Error.WriteLine($"bench: {what}...");
        Exec("dotnet", arguments, out string json);
        try
        {
            error = null;
            return JsonSerializer.Deserialize<T>(json.Trim().Split('\n').Last());
        }
        catch (JsonException e)
        {
            error = e.Message;
            Console.Error.WriteLine($"bench: {what}: no result ({e.Message})");
            return null;
        }
    }

    private static void Write(string output, string markdown, string chart, RunRecord? run)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        File.WriteAllText(output, markdown);
        File.WriteAllText(Path.ChangeExtension(output, ".svg"), chart);
        // The measurements themselves stay in artifacts/ (never committed), for --from.
        if (run is not null)
        {
            string json = Path.Combine(FindRoot(), "artifacts", Path.GetFileNameWithoutExtension(output) + "-run.json");
            Directory.CreateDirectory(Path.GetDirectoryName(json)!);
            File.WriteAllText(json, JsonSerializer.Serialize(run, new JsonSerializerOptions { WriteIndented = true }));
            Console.Error.WriteLine($"bench: measurements in {json}");
        }
        Console.WriteLine(markdown);
        Console.Error.WriteLine($"bench: wrote {output} and {Path.ChangeExtension(output, ".svg")}");
    }

    private static List<ModelSpec> PrepareModels(string root, Options options)
    {
        var models = new List<ModelSpec>();
        if (options.Models.Contains("default"))
            models.Add(new ModelSpec("default", Path.Combine(root, "models", "mlnetgpt-kjv"), "the embedded default model (6 layers, width 192, fp16-stored weights run in fp32)"));
        if (options.Models.Contains("gpt2-small"))
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
        bool WantsAny(IEnumerable<string> keys) => keys.Any(k => Wanted(options, k));
        foreach (var model in models)
        {
            model.Folders["fp32"] = model.Folder;
            if (WantsAny(AllSubjects.Where(s => s.Precision.StartsWith("int", StringComparison.Ordinal)).Select(s => s.Key)) ||
                (options.Sections.Contains("perplexity") && model.Name == "default"))
            {
                foreach (int bits in new[] { 8, 4 })
                    model.Folders[$"int{bits}"] = Precisions.Quantized(root, model.Folder, bits);
                model.Folders["int4-b128"] = Precisions.Quantized(root, model.Folder, 4, blockSize: 128);
            }
            foreach (var (precision, folder) in model.Folders)
            {
                using var gpt = GptModel.Open(folder);
                model.Infos[precision] = gpt.Info;
            }
            if (model.Name == "gpt2-small" && (WantsAny(AllSubjects.Where(s => s.Runner == "llama").Select(s => s.Key)) || options.Sections.Contains("ids")))
            {
                var (files, types, error) = LlamaFiles.Make(root, model.Folder, options.Threads);
                foreach (var (k, v) in files) model.Gguf[k] = v;
                foreach (var (k, v) in types) model.GgufTensorTypes[k] = v;
                model.GgufError = error;
            }
        }
        return models;
    }

    private static bool Wanted(Options options, string key) =>
        options.SubjectFilter is null || options.SubjectFilter.Any(f => key == f || key.StartsWith(f + "-", StringComparison.Ordinal));

    /// <summary>The subjects measured for one workload: the fp32 grid everywhere, the quantized and llama.cpp subjects at short prompts, batches 1 and 8.</summary>
    private static List<Subject> SubjectsFor(ModelSpec model, string prompt, int batch, Options options)
    {
        var keys = new List<string>(GridSubjects);
        if (prompt == "short" && batch is 1 or 8)
        {
            keys.AddRange(QuantizedSubjects);
            if (model.Gguf.Count > 0) keys.AddRange(LlamaSubjects.Concat(NoSpinSubjects));
        }
        return keys.Where(k => Wanted(options, k)).Select(k => AllSubjects.Single(s => s.Key == k)).ToList();
    }

    private static IEnumerable<Row> Throughput(ModelSpec model, Options options, string self, string genai, string root)
    {
        using var gpt = GptModel.Open(model.Folder);
        var genaiFolders = model.Folders.ToDictionary(f => f.Key, f => GenAiFolder(f.Value, model.Infos[f.Key], options.Threads));
        foreach (var (promptName, promptTokens) in new[] { ("short", 16), ("long", 128) })
        {
            foreach (int batch in options.Batches)
            {
                // The GPT-2-small-shaped model's long-prompt prefill costs seconds per batch: batches 1 and 8 only.
                if (model.Name == "gpt2-small" && promptName == "long" && batch is not (1 or 8) && !options.Quick) continue;
                var subjects = SubjectsFor(model, promptName, batch, options);
                if (subjects.Count == 0) continue;
                int rowCount = model.Name == "default" ? Math.Max(16, batch * 4) : Math.Max(4, batch * 2);
                var workload = new Workload(model.Folder, batch, promptTokens, options.NewTokens, rowCount, options.RunsFor(model.Name), options.Threads);
                string promptsFile = Path.Combine(Path.GetTempPath(), "mlnetgpt-bench-genai", $"prompts-{model.Name}-{promptTokens}-{rowCount}.json");
                Directory.CreateDirectory(Path.GetDirectoryName(promptsFile)!);
                File.WriteAllText(promptsFile, JsonSerializer.Serialize(Prompts.Make(gpt, rowCount, promptTokens)));
                var rounds = subjects.ToDictionary(s => s.Key, _ => new List<Measurement>());
                // Interleaved: every subject once per round, each round starting further along the list,
                // so slow drift in the machine's load hits every subject alike.
                for (int round = 0; round < options.Rounds; round++)
                {
                    int shift = round * subjects.Count / options.Rounds;
                    foreach (var subject in subjects.Skip(shift).Concat(subjects.Take(shift)))
                    {
                        Console.Error.WriteLine($"bench: {model.Name} {promptName} prompts, batch {batch}, round {round + 1}/{options.Rounds}: {subject.Key}...");
                        var m = MeasureOne(subject, model, workload, promptsFile, genaiFolders, self, genai, root, options.TimeoutSeconds);
                        rounds[subject.Key].Add(m);
                        Console.Error.WriteLine($"bench:   {Summary(m)}");
                    }
                }
                yield return new Row(model.Name, promptName, workload, rounds.ToDictionary(r => r.Key, r => Merge(r.Key, r.Value)));
            }
        }
    }

    private static Measurement MeasureOne(Subject subject, ModelSpec model, Workload w, string promptsFile, Dictionary<string, string> genaiFolders,
        string self, string genai, string root, int timeoutSeconds)
    {
        string I(int value) => value.ToString(CultureInfo.InvariantCulture);
        string[] command;
        switch (subject.Runner)
        {
            case "genai":
                command = [genai, genaiFolders[subject.Precision], promptsFile, I(w.Batch), I(w.NewTokens), I(w.Runs)];
                break;
            case "llama":
                if (!model.Gguf.TryGetValue(subject.Precision, out var gguf))
                    return new Measurement { Subject = subject.Key, Error = model.GgufError ?? $"no {subject.Precision} GGUF file" };
                command = [LlamaFiles.Runner(root), "run", gguf, promptsFile, I(w.Batch), I(w.NewTokens), I(w.Runs), I(w.Threads)];
                break;
            default:
                string baseSubject = subject.Key.Split('-')[0];   // engine-int4-nospin runs "engine" on the int4 folder
                command = [self, "one", baseSubject, model.Folders[subject.Precision], I(w.Batch), I(w.PromptTokens), I(w.NewTokens), I(w.Rows), I(w.Runs), I(w.Threads)];
                break;
        }
        double load = Load.Now();
        var environment = subject.NoSpin ? new Dictionary<string, string> { [Subjects.NoSpinVariable] = "1", ["OMP_WAIT_POLICY"] = "passive" } : null;
        int code = Exec("dotnet", command, out string json, timeoutSeconds, environment);
        if (code == TimedOut)
            return new Measurement { Subject = subject.Key, Error = $"no result within {timeoutSeconds} s (load {load:F1} at the start)", LoadAverage = [load] };
        Measurement m;
        try
        {
            m = JsonSerializer.Deserialize<Measurement>(json.Trim().Split('\n').Last())!;
        }
        catch (Exception e)
        {
            m = new Measurement { Subject = subject.Key, Error = $"exit {code}: {e.Message}: {json.Trim()[..Math.Min(200, json.Trim().Length)]}" };
        }
        m.Subject = subject.Key;
        m.LoadAverage = [load];
        return m;
    }

    /// <summary>One measurement from its rounds: every run's rate, the median of the rounds' latencies, the largest peak.</summary>
    private static Measurement Merge(string subject, List<Measurement> rounds)
    {
        var ok = rounds.Where(r => r.Error is null).ToList();
        if (ok.Count == 0) return new Measurement { Subject = subject, Error = rounds.First().Error, LoadAverage = rounds.SelectMany(r => r.LoadAverage).ToArray() };
        double? MedianOf(Func<Measurement, double?> pick)
        {
            var values = ok.Select(pick).Where(v => v is double d && !double.IsNaN(d)).Select(v => v!.Value).ToList();
            return values.Count == 0 ? null : Stats.Median(values);
        }
        return new Measurement
        {
            Subject = subject,
            TokensPerSecond = ok.SelectMany(r => r.TokensPerSecond).ToArray(),
            RowsPerSecond = ok.SelectMany(r => r.RowsPerSecond).ToArray(),
            TimeToFirstTokenMs = MedianOf(r => r.TimeToFirstTokenMs),
            StepP50Ms = MedianOf(r => r.StepP50Ms),
            StepP95Ms = MedianOf(r => r.StepP95Ms),
            PeakWorkingSetBytes = ok.Max(r => r.PeakWorkingSetBytes),
            LoadAverage = rounds.SelectMany(r => r.LoadAverage).ToArray(),
            Error = ok.Count < rounds.Count ? $"{rounds.Count - ok.Count} of {rounds.Count} rounds failed: {rounds.First(r => r.Error is not null).Error}" : null,
        };
    }

    private static string Summary(Measurement m) => m.Error is not null && m.TokensPerSecond.Length == 0 ? $"error: {m.Error}"
        : $"{Stats.Median(m.TokensPerSecond):F1} tokens/s [{m.TokensPerSecond.Min():F1}-{m.TokensPerSecond.Max():F1}], step p50 {m.StepP50Ms:F2} ms, peak {m.PeakWorkingSetBytes / 1048576} MB, load {m.LoadAverage.FirstOrDefault():F2}";

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

    private static double Tps(Row? row, string subject) =>
        row is not null && row.Results.TryGetValue(subject, out var m) && m.TokensPerSecond.Length > 0 ? Stats.Median(m.TokensPerSecond) : double.NaN;

    private static string F(double value, string format = "F1") => double.IsNaN(value) ? "-" : value.ToString(format, CultureInfo.InvariantCulture);

    private static string Ratio(Row? row, string a, string b) => F(Tps(row, a) / Tps(row, b), "F2");

    private static void ConstraintSection(StringBuilder md, ConstraintCost.Result c)
    {
        md.AppendLine("## Structured-output constraints");
        md.AppendLine();
        md.AppendLine($"The regexes and JSON schemas of the validity test (tests/Fixtures/constraint-cases.json) at GPT-2's {c.VocabularySize:N0}-token vocabulary; load {c.LoadAverage:F1} at the start.");
        md.AppendLine("\"Build\" parses the pattern and makes the automaton; \"start visit\" walks the vocabulary trie against it for the first state (each state is walked once, then its allowed set is cached);");
        md.AppendLine($"\"warm step\" is the per-row work of a decode step after warm-up: the cached allowed set, masking a {c.VocabularySize:N0}-wide logits row, advancing the state (median over seeded walks through allowed tokens, {c.Batch} rows).");
        md.AppendLine($"The vocabulary's byte trie, built once per tokenizer and shared by every constraint, took {c.TrieBuildMs:F0} ms.");
        md.AppendLine($"The decode step it is compared with: the default model, greedy, batch {c.Batch}, 16-token prompts, measured in the same process: **{c.DecodeStepMs:F2} ms** (runs {string.Join(", ", c.DecodeStepRunsMs.Select(v => v.ToString("F2", CultureInfo.InvariantCulture)))}).");
        md.AppendLine();
        md.AppendLine($"| kind | pattern or schema | build ms | automaton states | start visit ms | warm step µs per row | batch of {c.Batch}, share of the decode step |");
        md.AppendLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (var k in c.Cases)
        {
            string text = k.Text.Length > 60 ? k.Text[..57] + "..." : k.Text;
            md.AppendLine($"| {k.Kind} | `{text.Replace("|", "\\|")}` | {k.BuildMs:F3} | {k.StatesVisited} | {k.StartVisitMs:F2} | {k.WarmStepUsPerRow:F1} | {100 * k.WarmStepUsPerRow * c.Batch / 1000 / c.DecodeStepMs:F1}% |");
        }
        double worst = c.Cases.Max(k => k.WarmStepUsPerRow) * c.Batch / 1000 / c.DecodeStepMs;
        md.AppendLine();
        md.AppendLine($"Largest share: **{100 * worst:F1}%** of a decode step (target <= 10%).");
        md.AppendLine();
    }

    private static string Loads(Measurement m) => m.LoadAverage.Length == 0 ? "-" : string.Join(" / ", m.LoadAverage.Select(l => l.ToString("F1", CultureInfo.InvariantCulture)));

    private static string Markdown(List<ModelSpec> models, RunRecord run, Options options)
    {
        var (rows, bandwidth, perplexity, ids, prefix, continuous, constraints) = (run.Rows, run.Bandwidth, run.Perplexity, run.Ids, run.Prefix, run.Continuous, run.Constraints);
        var md = new StringBuilder();
        md.AppendLine("# Benchmarks");
        md.AppendLine();
        md.AppendLine($"Generated by `dotnet run -c Release --project bench/MLNetGpt.Bench -- all{(run.Args.Length > 0 ? " " + string.Join(' ', run.Args) : "")}` on {run.Date:yyyy-MM-dd} in {run.Minutes:F0} minutes.");
        md.AppendLine($"Machine: {CpuName()}, {Environment.ProcessorCount} cores, {MemoryGiB():F0} GiB, {RuntimeName()}; ONNX Runtime 1.31 CPU execution provider, llama.cpp through LLamaSharp 0.30.0's CPU backend; {options.Threads} threads for every subject.");
        md.AppendLine();
        md.AppendLine($"Method. Greedy decoding, {options.NewTokens} new tokens per row (end-of-sequence disabled so every subject generates the same number), equal-length prompts (16 tokens \"short\", 128 \"long\"),");
        md.AppendLine("four batches of rows per measurement on the default model (16 rows at batch 1), two on the GPT-2-small-shaped one (four rows at batch 1; long prompts at batches 1 and 8 only).");
        md.AppendLine($"Every measurement runs in its own process; the subjects of one workload are **interleaved**: {options.Rounds} rounds, each subject once per round, each round starting further along the list (A B C D, then C D A B), {options.RunsFor("default")} timed run(s) after a warm-up per process on the default model, {options.RunsFor("gpt2-small")} on the GPT-2-small-shaped one; a process with no result within {options.TimeoutSeconds} s is stopped and shown as such.");
        md.AppendLine("A figure is the median over all timed runs of all rounds with the range [min-max]; \"load\" is the 1-minute load average (/proc/loadavg) when each of the subject's processes started (2 cores: above 2 means other work was waiting for the CPUs).");
        md.AppendLine("TTFT is the prefill step of a batch; step latency is one decode step for the whole batch; \"peak\" is the largest peak working set of the subject's processes. This machine is shared with other work: compare ratios within a table, and read the load column.");
        md.AppendLine();

        double bound = BandwidthSection(md, bandwidth, options.Threads);
        foreach (var model in models)
        {
            var modelRows = rows.Where(r => r.Model == model.Name).ToList();
            if (modelRows.Count == 0) continue;
            md.AppendLine($"## {model.Name}: {model.Description}");
            md.AppendLine();
            md.AppendLine("| prompts | batch | subject | tokens/s | rows/s | TTFT ms | step p50 / p95 ms | peak MB | load |");
            md.AppendLine("|---|---:|---|---:|---:|---:|---:|---:|---:|");
            foreach (var row in modelRows)
                foreach (var subject in AllSubjects.Where(s => row.Results.ContainsKey(s.Key)))
                {
                    var m = row.Results[subject.Key];
                    if (m.TokensPerSecond.Length == 0)
                    {
                        md.AppendLine($"| {row.Prompt} | {row.Workload.Batch} | {subject.Name} | error: {m.Error?.Replace('|', '/').ReplaceLineEndings(" ")} | | | | | {Loads(m)} |");
                        continue;
                    }
                    string ttft = m.TimeToFirstTokenMs is double t ? t.ToString("F1") : "-";
                    string steps = m.StepP50Ms is double p50 ? $"{p50:F1} / {m.StepP95Ms:F1}" : "-";
                    md.AppendLine($"| {row.Prompt} | {row.Workload.Batch} | {subject.Name} | {Stats.Median(m.TokensPerSecond):F1} [{m.TokensPerSecond.Min():F1}-{m.TokensPerSecond.Max():F1}] | " +
                                  $"{Stats.Median(m.RowsPerSecond):F2} | {ttft} | {steps} | {m.PeakWorkingSetBytes / 1048576} | {Loads(m)} |");
                }
            md.AppendLine();
            md.AppendLine("Ratios of median tokens/s, fp32 (same run):");
            md.AppendLine();
            md.AppendLine("| prompts | batch | pipeline / GenAI | engine / GenAI | pipeline / engine | plain loop / engine |");
            md.AppendLine("|---|---:|---:|---:|---:|---:|");
            foreach (var row in modelRows)
                md.AppendLine($"| {row.Prompt} | {row.Workload.Batch} | {Ratio(row, "pipeline", "genai")} | {Ratio(row, "engine", "genai")} | {Ratio(row, "pipeline", "engine")} | {Ratio(row, "plain", "engine")} |");
            md.AppendLine();

            var precisionRows = modelRows.Where(r => r.Results.ContainsKey("engine-int4") || r.Results.ContainsKey("engine-int8")).ToList();
            if (precisionRows.Count > 0)
            {
                md.AppendLine("Quantized weights (GptQuantizer: MatMulNBits, block 32, asymmetric, accuracy level 4; \"block 128\" is the same with blocks of 128), ratios of median tokens/s in the same interleaved runs:");
                md.AppendLine();
                md.AppendLine("| prompts | batch | engine fp32 | engine int8 | engine int4 | engine int4 block 128 | int8 / fp32 | int4 / fp32 | int4 block 128 / fp32 | GenAI int8 | GenAI int4 | engine / GenAI, int8 | engine / GenAI, int4 |");
                md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
                foreach (var row in precisionRows)
                    md.AppendLine($"| {row.Prompt} | {row.Workload.Batch} | {F(Tps(row, "engine"))} | {F(Tps(row, "engine-int8"))} | {F(Tps(row, "engine-int4"))} | {F(Tps(row, "engine-int4-b128"))} | {Ratio(row, "engine-int8", "engine")} | " +
                                  $"{Ratio(row, "engine-int4", "engine")} | {Ratio(row, "engine-int4-b128", "engine")} | {F(Tps(row, "genai-int8"))} | {F(Tps(row, "genai-int4"))} | {Ratio(row, "engine-int8", "genai-int8")} | {Ratio(row, "engine-int4", "genai-int4")} |");
                md.AppendLine();
            }

            var llamaRows = modelRows.Where(r => r.Results.Keys.Any(k => k.StartsWith("llama-", StringComparison.Ordinal))).ToList();
            if (llamaRows.Count > 0)
            {
                md.AppendLine("Against llama.cpp on the same weights (GGUF written by tools/make_gguf.py; q8_0 and q4_0 by llama.cpp's quantizer with its default recipe), ratios of median tokens/s:");
                md.AppendLine();
                md.AppendLine("| prompts | batch | llama f32 | llama q8_0 | llama q4_0 | engine fp32 / llama f32 | engine int8 / llama q8_0 | engine int4 / llama q4_0 | engine int4 block 128 / llama q4_0 |");
                md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
                foreach (var row in llamaRows)
                    md.AppendLine($"| {row.Prompt} | {row.Workload.Batch} | {F(Tps(row, "llama-f32"))} | {F(Tps(row, "llama-q8_0"))} | {F(Tps(row, "llama-q4_0"))} | " +
                                  $"{Ratio(row, "engine", "llama-f32")} | {Ratio(row, "engine-int8", "llama-q8_0")} | {Ratio(row, "engine-int4", "llama-q4_0")} | {Ratio(row, "engine-int4-b128", "llama-q4_0")} |");
                md.AppendLine();
                if (llamaRows.Any(r => r.Results.Keys.Any(k => k.EndsWith("-nospin", StringComparison.Ordinal))))
                {
                    md.AppendLine("The same workloads with waiting threads asleep instead of spinning (ONNX Runtime's `session.intra_op.allow_spinning` 0; `OMP_WAIT_POLICY=passive` for the OpenMP build of ggml in LLamaSharp's CPU backend), 2 threads, interleaved with the rest.");
                    md.AppendLine("On this shared host another process often holds one of the two cores; a spinning thread then burns the time slice its partner needs, which hit llama.cpp's default much harder than ONNX Runtime's.");
                    md.AppendLine();
                    md.AppendLine("| prompts | batch | engine fp32 | llama f32 | engine int4 | llama q4_0 | engine / llama, fp32 | engine int4 / llama q4_0 |");
                    md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
                    foreach (var row in llamaRows)
                        md.AppendLine($"| {row.Prompt} | {row.Workload.Batch} | {F(Tps(row, "engine-nospin"))} | {F(Tps(row, "llama-f32-nospin"))} | {F(Tps(row, "engine-int4-nospin"))} | {F(Tps(row, "llama-q4_0-nospin"))} | " +
                                      $"{Ratio(row, "engine-nospin", "llama-f32-nospin")} | {Ratio(row, "engine-int4-nospin", "llama-q4_0-nospin")} |");
                    md.AppendLine();
                }
                if (model.GgufTensorTypes.Count > 0)
                    md.AppendLine("GGUF tensor types (read back from each file's header): " + string.Join("; ", model.GgufTensorTypes.Select(t => $"{t.Key}: {t.Value}")) +
                                  ". llama.cpp's q4_0 recipe keeps the tied embedding/lm_head in q6_K, so its file reads more bytes per token than a pure 4-bit one.");
                md.AppendLine();
            }

            BoundSection(md, model, modelRows, bound);
            if (model.Name == "gpt2-small") TargetsSection(md, modelRows, model, bound);
        }

        if (perplexity.Count > 0)
        {
            md.AppendLine("## Perplexity per precision");
            md.AppendLine();
            var first = perplexity.Values.First();
            md.AppendLine($"The default model on {first.Verses} held-out KJV verses (tests/Fixtures/kjv-heldout.txt, chapters the training never saw), {first.Tokens:N0} scored tokens; corpus perplexity = exp(mean negative log-likelihood), scored by the engine (GptModel.Score).");
            md.AppendLine();
            md.AppendLine("| precision | perplexity | vs fp32 |");
            md.AppendLine("|---|---:|---:|");
            double fp32 = perplexity.TryGetValue("fp32", out var p) ? p.Perplexity : double.NaN;
            foreach (var (precision, result) in perplexity)
                md.AppendLine($"| {precision} | {result.Perplexity:F3} | {(result.Perplexity / fp32 - 1).ToString("+0.00%;-0.00%", CultureInfo.InvariantCulture)} |");
            md.AppendLine();
        }

        if (ids is not null || models.Any(m => m.GgufError is not null))
        {
            md.AppendLine("## llama.cpp: same weights, same ids");
            md.AppendLine();
            var small = models.FirstOrDefault(m => m.Name == "gpt2-small");
            if (small?.GgufError is not null) md.AppendLine($"GGUF files could not be made: {small.GgufError}.");
            if (ids?.Error is not null) md.AppendLine($"The greedy-ids check failed: {ids.Error}.");
            else if (ids is not null)
                md.AppendLine($"Greedy ids of llama.cpp on the f32 GGUF against the engine (ONNX Runtime, fp32) on {ids.Prompts} prompts of 16 tokens, {options.NewTokens} new tokens each: " +
                              $"**{ids.Equal} of {ids.Positions} positions equal** ({ids.EqualPrefix} before the first difference).");
            md.AppendLine("llama.cpp's GPT-2 graph has no output bias, so it runs on the GPT-2-small-shaped model only: the default model's lm_head carries a bias for its vocabulary remap and cannot be converted exactly.");
            md.AppendLine();
        }

        if (prefix is not null)
        {
            md.AppendLine("## Shared prompt head (prefix caching)");
            md.AppendLine();
            md.AppendLine($"GPT-2-small shape, {prefix.Rows} rows of a shared {prefix.HeadTokens}-token head plus {prefix.RowTokens} tokens of their own, {prefix.NewTokens} new tokens, batch {prefix.Batch}, greedy; load {prefix.LoadAverage:F1} at the start.");
            md.AppendLine();
            md.AppendLine("| GenerationOptions.PrefixCaching | rows/s (median [range]) | vs off |");
            md.AppendLine("|---|---:|---:|");
            double off = Stats.Median(prefix.UncachedRowsPerSecond);
            foreach (var (name, values) in new[] { ("false", prefix.UncachedRowsPerSecond), ("true", prefix.CachedRowsPerSecond) })
                md.AppendLine($"| {name} | {Stats.Median(values):F3} [{values.Min():F3}-{values.Max():F3}] | {Stats.Median(values) / off:F2}x |");
            md.AppendLine();
            md.AppendLine($"Outputs identical with and without: **{(prefix.IdenticalOutputs ? "yes" : "NO")}**.");
            md.AppendLine();
        }

        if (constraints is not null) ConstraintSection(md, constraints);

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
        if (run.Concurrency is not null) ServingSections.Concurrency(md, run.Concurrency);
        if (run.Speculation is not null) ServingSections.Speculation(md, run.Speculation);
        if (run.Encode is { Count: > 0 } encodeRows) EncodeBench.Section(md, encodeRows);
        md.AppendLine("![tokens/s against batch size, and by precision](benchmarks.svg)");
        md.AppendLine();
        md.AppendLine("Reproduce: `dotnet run -c Release --project bench/MLNetGpt.Bench -- all`. Options: `--quick` (batches 1 and 8, one run per process), `--models default|gpt2-small`,");
        md.AppendLine("`--subjects engine,llama` (keys, or a key standing for itself and its variants: pipeline, engine, plain, genai, engine-int8, engine-int4 (with engine-int4-b128), genai-int8, genai-int4,");
        md.AppendLine("llama-f32, llama-q8_0, llama-q4_0, and the -nospin variants of engine, engine-int4, llama-f32, llama-q4_0),");
        md.AppendLine("`--sections throughput,bandwidth,perplexity,ids,prefix,constraints,continuous,concurrency,speculation,encode`, `--batches 1,8`, `--runs N`, `--rounds N`, `--timeout SECONDS` (per process); a filtered run writes artifacts/benchmarks-partial.md unless `--out` says otherwise.");
        md.AppendLine("The measurements are kept in artifacts/benchmarks-run.json; `all --from artifacts/benchmarks-run.json` renders the report from them again.");
        md.AppendLine("The GPT-2-small-shaped model, its int8/int4 copies and its GGUF files are made on first use into artifacts/ (tools/make_bench_model.py and tools/make_gguf.py need Debian's python3-torch, python3-onnx and python3-numpy).");
        md.AppendLine("Other modes: `encode ROUNDS MEGABYTES`, `bandwidth THREADS REPS`, `prefix MODEL ROWS BATCH RUNS THREADS`, `concurrency MODEL ROUNDS THREADS`, `speculation ROUNDS THREADS NAME=FOLDER[,DRAFT]...`, `constraints MODEL BATCH RUNS THREADS`, `profile MODEL BATCH PROMPT_TOKENS STEPS THREADS`, `micro` (BenchmarkDotNet, decoding controls).");
        return md.ToString();
    }

    /// <summary>The probe's table; returns the bound: the highest read-only reading at the engine's thread count.</summary>
    private static double BandwidthSection(StringBuilder md, List<Bandwidth.Result> results, int threads)
    {
        var readings = results.SelectMany(r => r.Readings).ToList();
        if (readings.Count == 0) return double.NaN;
        md.AppendLine("## Memory bandwidth");
        md.AppendLine();
        md.AppendLine($"Probe (bench `bandwidth` mode), run at the start and at the end: buffers of {string.Join(", ", Bandwidth.SizesMiB)} MiB (far above the last-level cache), a read-only pass (256-bit loads into eight accumulators)");
        md.AppendLine("and a triad pass (a = b + s * c, counted as 3 arrays moved), with the engine's threads and with 1, repetitions interleaved. Load average " +
                      string.Join(" and ", results.Select(r => r.LoadAverage.ToString("F1", CultureInfo.InvariantCulture))) + " when the probes started.");
        md.AppendLine();
        md.AppendLine("| pass | threads | readings | median GB/s | max GB/s | max per size (MiB: GB/s) |");
        md.AppendLine("|---|---:|---:|---:|---:|---|");
        foreach (var group in readings.GroupBy(r => (r.Kind, r.Threads)).OrderBy(g => g.Key.Kind).ThenByDescending(g => g.Key.Threads))
        {
            var sizes = string.Join(", ", group.GroupBy(r => r.SizeMiB).OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Max(r => r.GBps):F1}"));
            md.AppendLine($"| {group.Key.Kind} | {group.Key.Threads} | {group.Count()} | {Stats.Median(group.Select(r => r.GBps)):F1} | {group.Max(r => r.GBps):F1} | {sizes} |");
        }
        double bound = readings.Where(r => r.Kind == Bandwidth.Read && r.Threads == threads).Select(r => r.GBps).DefaultIfEmpty(double.NaN).Max();
        md.AppendLine();
        md.AppendLine($"**Bound used: {bound:F1} GB/s**, the highest read-only reading with {threads} threads in this run. Decoding reads weights, so the read-only pass is the relevant one; other work on the host");
        md.AppendLine("can only lower a reading (it competes for the same memory channels and cores), never raise it, so the maximum is the closest to what the machine can do, and the median shows how much contention there was.");
        md.AppendLine();
        return bound;
    }

    private static void BoundSection(StringBuilder md, ModelSpec model, List<Row> rows, double bandwidth)
    {
        var batchOne = rows.FirstOrDefault(r => r.Prompt == "short" && r.Workload.Batch == 1);
        if (batchOne is null || double.IsNaN(bandwidth)) return;
        md.AppendLine($"**Physical limit, batch 1.** A decode step reads every weight that feeds a computation once (embedding tables only gathered are not counted; fp16-stored weights count as the fp32 ONNX Runtime computes with). At {bandwidth:F1} GB/s:");
        md.AppendLine();
        md.AppendLine("| subject | MB read per token | bound tokens/s | median decode step ms | decode steps/s | % of bound |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|");
        foreach (var subject in AllSubjects.Where(s => batchOne.Results.ContainsKey(s.Key) && s.Key != "pipeline"))
        {
            var m = batchOne.Results[subject.Key];
            if (m.StepP50Ms is not double step) continue;
            long bytes = subject.Runner == "llama"
                ? (model.Gguf.TryGetValue(subject.Precision, out var gguf) ? new FileInfo(gguf).Length : 0)
                : model.Folders.TryGetValue(subject.Precision, out var folder) ? Precisions.BytesReadPerToken(folder) : 0;
            if (bytes == 0) continue;
            double bound = bandwidth * 1e9 / bytes, achieved = 1000.0 / step;
            md.AppendLine($"| {subject.Name} | {bytes / 1e6:F0}{(subject.Runner == "llama" ? " (file)" : "")} | {bound:F0} | {step:F2} | {achieved:F0} | {100 * achieved / bound:F0}% |");
        }
        md.AppendLine();
    }

    private static void TargetsSection(StringBuilder md, List<Row> rows, ModelSpec model, double bandwidth)
    {
        Row? Find(int batch) => rows.FirstOrDefault(r => r.Prompt == "short" && r.Workload.Batch == batch);
        var one = Find(1);
        var eight = Find(8);
        double boundShare = double.NaN;
        if (one is not null && one.Results.TryGetValue("engine-int4", out var int4) && int4.StepP50Ms is double step && model.Folders.TryGetValue("int4", out var folder))
            boundShare = 1000.0 / step / (bandwidth * 1e9 / Precisions.BytesReadPerToken(folder));
        double boundShare128 = double.NaN;
        if (one is not null && one.Results.TryGetValue("engine-int4-b128", out var b128) && b128.StepP50Ms is double step128 && model.Folders.TryGetValue("int4-b128", out var folder128))
            boundShare128 = 1000.0 / step128 / (bandwidth * 1e9 / Precisions.BytesReadPerToken(folder128));
        var targets = new (string Name, double Value, double Goal)[]
        {
            ("engine int4 / engine fp32, batch 1", Tps(one, "engine-int4") / Tps(one, "engine"), 3.5),
            ("engine int8 / engine fp32, batch 1", Tps(one, "engine-int8") / Tps(one, "engine"), 2.0),
            ("engine int4 / llama.cpp q4_0, batch 1", Tps(one, "engine-int4") / Tps(one, "llama-q4_0"), 1.2),
            ("engine int4 / llama.cpp q4_0, batch 8", Tps(eight, "engine-int4") / Tps(eight, "llama-q4_0"), 1.3),
            ("engine int4 batch-1 decode, share of its bandwidth bound", boundShare, 0.5),
            ("(block 128) engine int4 / engine fp32, batch 1", Tps(one, "engine-int4-b128") / Tps(one, "engine"), 3.5),
            ("(block 128) engine int4 / llama.cpp q4_0, batch 1", Tps(one, "engine-int4-b128") / Tps(one, "llama-q4_0"), 1.2),
            ("(block 128) engine int4 / llama.cpp q4_0, batch 8", Tps(eight, "engine-int4-b128") / Tps(eight, "llama-q4_0"), 1.3),
            ("(block 128) engine int4 batch-1 decode, share of its bandwidth bound", boundShare128, 0.5),
            ("(no spin-waiting, both) engine int4 / engine fp32, batch 1", Tps(one, "engine-int4-nospin") / Tps(one, "engine-nospin"), 3.5),
            ("(no spin-waiting, both) engine int4 / llama.cpp q4_0, batch 1", Tps(one, "engine-int4-nospin") / Tps(one, "llama-q4_0-nospin"), 1.2),
            ("(no spin-waiting, both) engine int4 / llama.cpp q4_0, batch 8", Tps(eight, "engine-int4-nospin") / Tps(eight, "llama-q4_0-nospin"), 1.3),
        };
        md.AppendLine("Targets (GPT-2-small shape, short prompts), measured as they came:");
        md.AppendLine();
        md.AppendLine("| target | goal | measured | met |");
        md.AppendLine("|---|---:|---:|---|");
        foreach (var (name, value, goal) in targets)
        {
            bool share = name.Contains("share", StringComparison.Ordinal);
            string shown = double.IsNaN(value) ? "-" : share ? F(100 * value, "F0") + "%" : F(value, "F2") + "x";
            string goalText = share ? $">= {100 * goal:F0}%" : $">= {goal:F1}x";
            md.AppendLine($"| {name} | {goalText} | {shown} | {(double.IsNaN(value) ? "-" : value >= goal ? "yes" : "no")} |");
        }
        md.AppendLine();
    }

    private static string Chart(List<ModelSpec> models, List<Row> rows)
    {
        const int width = 520, height = 300, left = 60, bottom = 40, top = 30;
        var panels = models.Where(m => rows.Any(r => r.Model == m.Name && r.Prompt == "short")).ToList();
        var barModel = panels.LastOrDefault(m => rows.Any(r => r.Model == m.Name && r.Results.Keys.Any(k => k.Contains('-'))));
        int count = panels.Count + (barModel is null ? 0 : 1);
        var svg = new StringBuilder($"<svg xmlns='http://www.w3.org/2000/svg' width='{width * Math.Max(1, count)}' height='{height + 60}' font-family='sans-serif' font-size='11'>");
        for (int mi = 0; mi < panels.Count; mi++)
        {
            var data = rows.Where(r => r.Model == panels[mi].Name && r.Prompt == "short").OrderBy(r => r.Workload.Batch).ToList();
            var subjects = AllSubjects.Where(s => GridSubjects.Contains(s.Key) || s.Key is "engine-int8" or "engine-int4").ToList();
            double max = data.SelectMany(r => r.Results.Values.Where(m => m.TokensPerSecond.Length > 0).Select(m => Stats.Median(m.TokensPerSecond))).DefaultIfEmpty(1).Max() * 1.1;
            int ox = mi * width;
            svg.Append($"<text x='{ox + left}' y='18' font-size='13'>{panels[mi].Name}: tokens/s vs batch size (short prompts)</text>");
            Axes(svg, ox, max);
            double X(int i) => ox + left + 20 + i * (width - left - 60.0) / Math.Max(1, data.Count - 1);
            for (int i = 0; i < data.Count; i++)
                svg.Append($"<text x='{X(i) - 4:F0}' y='{height - bottom + 15}'>{data[i].Workload.Batch}</text>");
            for (int s = 0; s < subjects.Count; s++)
            {
                var points = data.Select((r, i) => (i, ok: r.Results.TryGetValue(subjects[s].Key, out var m) && m.TokensPerSecond.Length > 0, m: r.Results.GetValueOrDefault(subjects[s].Key)))
                    .Where(p => p.ok).Select(p => $"{X(p.i):F0},{height - bottom - (height - bottom - top) * Stats.Median(p.m!.TokensPerSecond) / max:F0}").ToList();
                if (points.Count > 0) svg.Append($"<polyline fill='none' stroke='{subjects[s].Color}' stroke-width='2' points='{string.Join(' ', points)}'/>");
                svg.Append($"<text x='{ox + left + 10 + s % 3 * 140}' y='{height + 10 + s / 3 * 14}' fill='{subjects[s].Color}'>{subjects[s].Label}</text>");
            }
        }
        if (barModel is not null)
        {
            int ox = panels.Count * width;
            var batches = rows.Where(r => r.Model == barModel.Name && r.Prompt == "short" && r.Results.Keys.Any(k => k.Contains('-'))).OrderBy(r => r.Workload.Batch).ToList();
            string[] shown = ["engine", "engine-int8", "engine-int4", "engine-int4-b128", "genai-int4", "llama-f32", "llama-q8_0", "llama-q4_0", "engine-int4-nospin", "llama-q4_0-nospin"];
            var subjects = shown.Select(k => AllSubjects.Single(s => s.Key == k)).Where(s => batches.Any(r => r.Results.ContainsKey(s.Key))).ToList();
            double max = batches.SelectMany(r => subjects.Select(s => Tps(r, s.Key))).Where(v => !double.IsNaN(v)).DefaultIfEmpty(1).Max() * 1.1;
            svg.Append($"<text x='{ox + left}' y='18' font-size='13'>{barModel.Name}: tokens/s by precision (short prompts)</text>");
            Axes(svg, ox, max);
            double groupWidth = (width - left - 40.0) / Math.Max(1, batches.Count);
            double barWidth = groupWidth / (subjects.Count + 1);
            for (int b = 0; b < batches.Count; b++)
            {
                double gx = ox + left + 10 + b * groupWidth;
                svg.Append($"<text x='{gx + groupWidth / 2 - 20:F0}' y='{height - bottom + 15}'>batch {batches[b].Workload.Batch}</text>");
                for (int s = 0; s < subjects.Count; s++)
                {
                    double value = Tps(batches[b], subjects[s].Key);
                    if (double.IsNaN(value)) continue;
                    double h = (height - bottom - top) * value / max;
                    svg.Append($"<rect x='{gx + s * barWidth:F0}' y='{height - bottom - h:F0}' width='{barWidth - 1:F0}' height='{h:F0}' fill='{subjects[s].Color}'/>");
                }
            }
            for (int s = 0; s < subjects.Count; s++)
                svg.Append($"<text x='{ox + left + 10 + s % 3 * 140}' y='{height + 10 + s / 3 * 14}' fill='{subjects[s].Color}'>{subjects[s].Label}</text>");
        }
        return svg.Append("</svg>").ToString();

        static void Axes(StringBuilder svg, int ox, double max)
        {
            svg.Append($"<line x1='{ox + left}' y1='{height - bottom}' x2='{ox + width - 20}' y2='{height - bottom}' stroke='black'/>");
            svg.Append($"<line x1='{ox + left}' y1='{top}' x2='{ox + left}' y2='{height - bottom}' stroke='black'/>");
            for (int g = 0; g <= 4; g++)
            {
                double value = max * g / 4;
                double y = height - bottom - (height - bottom - top) * g / 4.0;
                svg.Append($"<text x='{ox + 5}' y='{y + 4:F0}'>{value:F0}</text><line x1='{ox + left}' y1='{y:F0}' x2='{ox + width - 20}' y2='{y:F0}' stroke='#eee'/>");
            }
        }
    }

    internal const int TimedOut = 124;

    /// <summary>Runs a child process; one that outlives <paramref name="timeoutSeconds"/> is killed (with its children) and reported as <see cref="TimedOut"/>.</summary>
    internal static int Exec(string file, string[] args, out string stdout, int timeoutSeconds = 0, Dictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        foreach (var (key, value) in environment ?? []) info.Environment[key] = value;
        using var process = Process.Start(info)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEndAsync();
        if (timeoutSeconds > 0 && !process.WaitForExit(TimeSpan.FromSeconds(timeoutSeconds)))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            stdout = "";
            Console.Error.WriteLine($"bench: {file} {string.Join(' ', args)} gave no result within {timeoutSeconds} s and was stopped");
            return TimedOut;
        }
        process.WaitForExit();
        stdout = output.Result;
        if (process.ExitCode != 0) Console.Error.WriteLine($"bench: {file} {string.Join(' ', args)} exited {process.ExitCode}: {error.Result}");
        return process.ExitCode;
    }

    private static string? Value(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    internal static string FindRoot()
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
