using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using MLNetGpt.Bench;

// MLNetGpt benchmarks. One command reproduces the whole report (docs/benchmarks.md):
//   dotnet run -c Release --project bench/MLNetGpt.Bench -- all
// Child modes (the report runs each measurement in a fresh process, so peak memory is its own):
//   one SUBJECT MODEL BATCH PROMPT_TOKENS NEW_TOKENS ROWS RUNS THREADS
//   continuous MODEL ROWS BATCH RUNS THREADS
//   bandwidth THREADS [REPETITIONS]   (read-only and triad passes over 256 MiB-1 GiB buffers, THREADS and 1 thread)
//   perplexity MODEL VERSES.txt THREADS   (corpus perplexity of one verse per line)
//   llama-ids MODEL GGUF PROMPTS PROMPT_TOKENS NEW_TOKENS THREADS   (greedy ids of llama.cpp against the engine)
//   prefix MODEL ROWS BATCH RUNS THREADS   (shared 256-token head: PrefixCaching on against off)
//   constraints MODEL BATCH RUNS THREADS   (structured-output constraints at GPT-2's vocabulary against the model's decode step)
//   suite-samples SUITE MODEL OUT.jsonl PER_SCHEMA MAX_TOKENS SECONDS   (temperature-1 outputs under the accepted JSON-Schema-Test-Suite schemas, for tools/validate-suite-samples.py)
//   micro            (BenchmarkDotNet micro-benchmarks of the decoding controls and of structured-output constraints)
//   profile MODEL BATCH PROMPT_TOKENS STEPS THREADS   (engine step against the leanest ONNX Runtime loop)
//   gpu MODEL [MODEL...]   (the CUDA path on a machine with an NVIDIA GPU: correctness against the CPU, throughput)
//   settings MODEL BATCH PROMPT_TOKENS STEPS THREADS ROUNDS   (engine step under ONNX Runtime thread/spinning settings)
//   encode [ROUNDS] [MEGABYTES]   (tokenizer.json encode throughput against Hugging Face's Rust tokenizers; prints the docs table)
//   training [--models default,gpt2-small] [--threads 1,2] [--methods full,lora] [--steps N] [--rounds N]
//            (training tokens/s of the training graph against torch 1.13, interleaved; see TrainingBench.cs)
//   training-one MODEL_FOLDER full|lora THREADS STEPS   (one training measurement of the training graph)
//   training-profile MODEL_FOLDER full|lora THREADS [RUNS]   (ONNX Runtime's profiler over the training graph: time per operator)
//   concurrency MODEL ROUNDS THREADS   (1, 4, 8, 16 callers through Generate and GptChatClient against one by one and static batches of 8; streaming against Generate)
//   speculation ROUNDS THREADS NAME=FOLDER[,DRAFT] ...   (prompt lookup and a draft model against plain decoding at batch 1, per task, greedy and seeded)
//   training-cuda MODEL_FOLDER [--steps 8] [--threads N] [--dry-run]   (the training graph on CUDA against the CPU: losses per step, tokens/s)
//   finetune-licenses [--runs full,lora,full-extend] [--steps 300] [--threads 2] ...   (the default model adapted to Debian's licences; see FineTuneLicenses.cs)
//   finetune-labels [--steps 200] [--threads 2] [--lr 1e-3] [--method full|lora]   (supervised fine-tune: GNU licence paragraph -> family, ClassifyText zero-shot against tuned)
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
string mode = args.Length > 0 ? args[0] : "all";
switch (mode)
{
    case "one":
    {
        var w = new Workload(args[2], int.Parse(args[3]), int.Parse(args[4]), int.Parse(args[5]), int.Parse(args[6]), int.Parse(args[7]), int.Parse(args[8]));
        Measurement m;
        try
        {
            m = Subjects.Measure(args[1], w);
        }
        catch (Exception e)
        {
            m = new Measurement { Subject = args[1], Error = e.GetType().Name + ": " + e.Message };
        }
        m.PeakWorkingSetBytes = Process.GetCurrentProcess().PeakWorkingSet64;
        Console.WriteLine(JsonSerializer.Serialize(m, Measurement.Json));
        return 0;
    }
    case "continuous":
        Console.WriteLine(JsonSerializer.Serialize(Continuous.Measure(args[1], int.Parse(args[2]), int.Parse(args[3]), int.Parse(args[4]), int.Parse(args[5]))));
        return 0;
    case "bandwidth":
        Console.WriteLine(JsonSerializer.Serialize(Bandwidth.Measure(int.Parse(args[1]), args.Length > 2 ? int.Parse(args[2]) : 5)));
        return 0;
    case "perplexity":
        Console.WriteLine(JsonSerializer.Serialize(Precisions.Perplexity(args[1], args[2], int.Parse(args[3]))));
        return 0;
    case "llama-ids":
        Console.WriteLine(JsonSerializer.Serialize(LlamaFiles.CompareGreedyIds(Report.FindRoot(), args[1], args[2], int.Parse(args[3]), int.Parse(args[4]), int.Parse(args[5]), int.Parse(args[6]))));
        return 0;
    case "prefix":
        Console.WriteLine(JsonSerializer.Serialize(PrefixBench.Measure(args[1], int.Parse(args[2]), int.Parse(args[3]), int.Parse(args[4]), int.Parse(args[5]))));
        return 0;
    case "suite-samples":
        SuiteSamples.Write(args[1], args[2], args[3], int.Parse(args[4]), int.Parse(args[5]), double.Parse(args[6], System.Globalization.CultureInfo.InvariantCulture));
        return 0;
    case "constraints":
        Console.WriteLine(JsonSerializer.Serialize(ConstraintCost.Measure(Report.FindRoot(), args[1], int.Parse(args[2]), int.Parse(args[3]), int.Parse(args[4]))));
        return 0;
    case "profile":
        Profile.Run(args[1], int.Parse(args[2]), int.Parse(args[3]), int.Parse(args[4]), int.Parse(args[5]));
        return 0;
    case "settings":
        Settings.Run(args[1], int.Parse(args[2]), int.Parse(args[3]), int.Parse(args[4]), int.Parse(args[5]), int.Parse(args[6]));
        return 0;
    case "concurrency":
        Console.WriteLine(JsonSerializer.Serialize(Concurrency.Measure(args[1], int.Parse(args[2]), int.Parse(args[3]))));
        return 0;
    case "speculation":
    {
        var models = args[3..].Select(a =>
        {
            var (name, rest) = (a[..a.IndexOf('=')], a[(a.IndexOf('=') + 1)..]);
            var parts = rest.Split(',');
            return (name, parts[0], parts.Length > 1 ? parts[1] : (string?)null);
        }).ToList();
        Console.WriteLine(JsonSerializer.Serialize(SpeculationBench.Measure(models, int.Parse(args[1]), int.Parse(args[2]))));
        return 0;
    }
    case "probe":
        SpeculationProbeReport.Run(args[1]);
        return 0;
    case "gpu":
        return GpuCheck.Run(args[1..]);
    case "encode":
    {
        var rows = EncodeBench.Run(Report.FindRoot(), args.Length > 1 ? int.Parse(args[1]) : 3, args.Length > 2 ? int.Parse(args[2]) : 10);
        Console.WriteLine(EncodeBench.Table(rows));
        Console.WriteLine(JsonSerializer.Serialize(rows));
        return 0;
    }
    case "training":
        return TrainingBench.Run(args[1..]);
    case "training-profile":
        TrainingProfile.Run(args[1], args[2], int.Parse(args[3]), args.Length > 4 ? int.Parse(args[4]) : 2);
        return 0;
    case "training-one":
    {
        TrainingBench.Result r;
        try
        {
            r = TrainingBench.MeasureOne(args[1], args[2], int.Parse(args[3]), int.Parse(args[4]));
        }
        catch (Exception e)
        {
            r = new TrainingBench.Result { Error = e.GetType().Name + ": " + e.Message };
        }
        Console.WriteLine(JsonSerializer.Serialize(r));
        return 0;
    }
    case "training-cuda":
        return TrainingCuda.Run(args[1..]);
    case "finetune-licenses":
        return FineTuneLicenses.Run(args[1..]);
    case "finetune-labels":
        return FineTuneLabels.Run(args[1..]);
    case "choose":
        Choose.Run(args[1], int.Parse(args[2]));
        return 0;
    case "micro":
        BenchmarkDotNet.Running.BenchmarkRunner.Run<MicroBenchmarks>(args: args[1..]);
        BenchmarkDotNet.Running.BenchmarkRunner.Run<ConstraintBenchmarks>(args: args[1..]);
        return 0;
    case "all":
        return Report.Run(args[1..]);
    default:
        Console.Error.WriteLine($"unknown mode '{mode}'; use all, one, continuous, concurrency, speculation, probe, bandwidth, perplexity, llama-ids, prefix, constraints, suite-samples, profile, settings, gpu, training, training-one, training-profile, training-cuda, finetune-licenses, finetune-labels, choose, encode or micro");
        return 1;
}
