using System.Diagnostics;
using System.Globalization;
using System.Text;
using MLNetGpt.Training;

namespace MLNetGpt.Bench;

/// <summary>
/// Does fine-tuning adapt the default model to a new domain? It trains on Debian's licence texts
/// (/usr/share/common-licenses: GPL-1/2/3, LGPL-2/2.1/3, GFDL-1.2/1.3, Artistic, BSD, CC0-1.0, MPL-1.1), holds out
/// Apache-2.0 and MPL-2.0, and measures the held-out loss (nats/token, sequences of 128 tokens) before and after full
/// fine-tuning, LoRA (rank 8) and full fine-tuning with the vocabulary extended, together with the loss on held-out KJV
/// verses (tests/Fixtures/kjv-heldout.txt: what the model knew before, to show forgetting). Each row records the load average.
///   finetune-licenses [--runs full,lora,full-extend] [--steps 300] [--threads 2] [--lr-full 3e-4] [--lr-lora 2e-3]
///                     [--lr-extend 3e-4] [--warmup 30] [--seed 42] [--licenses /usr/share/common-licenses] [--work DIR]
/// </summary>
internal static class FineTuneLicenses
{
    public static readonly string[] TrainingLicenses =
        ["GPL-1", "GPL-2", "GPL-3", "LGPL-2", "LGPL-2.1", "LGPL-3", "GFDL-1.2", "GFDL-1.3", "Artistic", "BSD", "CC0-1.0", "MPL-1.1"];

    public static readonly string[] HeldOutLicenses = ["Apache-2.0", "MPL-2.0"];

    private const int Batch = 8, Sequence = 128;

    public static int Run(string[] args)
    {
        string Arg(string name, string fallback)
        {
            int i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }
        double Number(string name, string fallback) => double.Parse(Arg(name, fallback), CultureInfo.InvariantCulture);
        string[] runs = Arg("--runs", "full,lora,full-extend").Split(',', StringSplitOptions.RemoveEmptyEntries);
        int steps = int.Parse(Arg("--steps", "300"), CultureInfo.InvariantCulture);
        int threads = int.Parse(Arg("--threads", "2"), CultureInfo.InvariantCulture);
        int warmup = int.Parse(Arg("--warmup", "30"), CultureInfo.InvariantCulture);
        int seed = int.Parse(Arg("--seed", "42"), CultureInfo.InvariantCulture);
        string licenses = Arg("--licenses", "/usr/share/common-licenses");
        string work = Arg("--work", Path.Combine(Path.GetTempPath(), "mlnetgpt-finetune-licenses"));
        var rates = new Dictionary<string, double>
        {
            ["full"] = Number("--lr-full", "3e-4"),
            ["lora"] = Number("--lr-lora", "2e-3"),
            ["full-extend"] = Number("--lr-extend", "3e-4"),
        };

        string model = GptModel.DefaultModelFolder;
        string[] training = TrainingLicenses.Select(n => File.ReadAllText(Path.Combine(licenses, n))).ToArray();
        string[] heldOut = HeldOutLicenses.Select(n => File.ReadAllText(Path.Combine(licenses, n))).ToArray();
        string[] kjv = [KjvHeldOut(Report.FindRoot())];
        Directory.CreateDirectory(work);

        var rows = new List<Row>();
        var before = new Row { Name = "untuned", LoadBefore = Load() };
        var clock = Stopwatch.StartNew();
        before.Licenses = HeldOutLoss(model, heldOut, threads);
        before.Kjv = HeldOutLoss(model, kjv, threads);
        before.Minutes = clock.Elapsed.TotalMinutes;
        before.LoadAfter = Load();
        rows.Add(before);
        Console.WriteLine(Invariant($"untuned: licences {before.Licenses:F3}, KJV {before.Kjv:F3} nats/token (load {before.LoadBefore:F2})"));

        foreach (string run in runs)
        {
            if (!rates.TryGetValue(run, out double rate)) throw new ArgumentException($"--runs: '{run}' is not full, lora or full-extend.");
            string output = Path.Combine(work, run);
            if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
            var options = new FineTuneOptions
            {
                Method = run == "lora" ? FineTuneMethod.LoRA : FineTuneMethod.Full,
                LoraRank = 8,
                MaxSteps = steps,
                BatchSize = Batch,
                SequenceLength = Sequence,
                LearningRate = rate,
                WarmupSteps = warmup,
                ExtendVocabulary = run == "full-extend",
                EvaluateEveryNSteps = Math.Max(1, steps / 4),
                Threads = threads,
                Seed = seed,
                Log = line => Console.WriteLine("  " + line),
            };
            var row = new Row { Name = run, LearningRate = rate, LoadBefore = Load() };
            clock.Restart();
            var progress = new Progress(steps);
            var report = GptFineTuner.FineTune(model, output, training, heldOut, options, progress);
            row.Minutes = clock.Elapsed.TotalMinutes;
            row.LoadAfter = Load();
            row.Report = report;
            row.Licenses = HeldOutLoss(output, heldOut, threads);
            row.Kjv = HeldOutLoss(output, kjv, threads);
            rows.Add(row);
            Console.WriteLine(Invariant($"{run}: licences {report.ValidationLossBefore:F3} -> {report.ValidationLossAfter:F3} (re-read {row.Licenses:F3}), KJV {before.Kjv:F3} -> {row.Kjv:F3}, {row.Minutes:F1} min, load {row.LoadBefore:F2}/{row.LoadAfter:F2}"));
        }
        Console.WriteLine();
        Console.WriteLine(Table(rows, steps, threads, warmup, seed));
        return 0;
    }

    /// <summary>Held-out KJV verses (comment lines dropped), one text.</summary>
    public static string KjvHeldOut(string root) =>
        string.Join("\n", File.ReadLines(Path.Combine(root, "tests", "Fixtures", "kjv-heldout.txt")).Where(l => l.Length > 0 && !l.StartsWith('#')));

    /// <summary>
    /// The mean next-token loss (nats/token) of <paramref name="texts"/> under the model in <paramref name="folder"/>, packed
    /// as the trainer packs its validation set (EOS-joined, sequences of 128): the same measure as the report's validation loss.
    /// </summary>
    public static double HeldOutLoss(string folder, IEnumerable<string> texts, int threads)
    {
        SpecialIds ids;
        List<int[]> documents;
        using (var model = GptModel.Open(folder, new GptModelOptions { IntraOpThreads = 1 }))
        {
            ids = new SpecialIds(model.Info.BosTokenId, model.Info.EosTokenIds[0], model.Info.PadTokenId);
            documents = texts.Select(t => model.Tokenizer.EncodeToIds(t).ToArray()).ToList();
        }
        var sequences = SequencePacker.PackDocuments(documents, Sequence, ids);
        using var graph = TrainingGraph.Create(folder, new TrainingGraphOptions { Method = TrainingMethod.Lora, Threads = threads, VerifyLayout = false });
        double sum = 0;
        long count = 0;
        for (int start = 0; start < sequences.Count; start += Batch)
        {
            var part = sequences.Skip(start).Take(Batch).ToList();
            var (loss, tokens) = graph.Evaluate(part.SelectMany(s => s.Inputs).ToArray(), part.SelectMany(s => s.Targets).ToArray(), part.Count, Sequence);
            sum += loss;
            count += tokens;
        }
        return sum / count;
    }

    public static double Load() => double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);

    private sealed class Row
    {
        public string Name { get; set; } = "";
        public double LearningRate { get; set; }
        public double Licenses { get; set; }
        public double Kjv { get; set; }
        public double Minutes { get; set; }
        public double LoadBefore { get; set; }
        public double LoadAfter { get; set; }
        public FineTuneReport? Report { get; set; }
    }

    private sealed class Progress(int steps) : IProgress<FineTuneProgress>
    {
        public void Report(FineTuneProgress value)
        {
            if (value.Step % 25 == 0 || value.Step == steps || value.ValidationLoss is not null)
                Console.WriteLine("  " + value + Invariant($" (load {Load():F2})"));
        }
    }

    private static string Table(List<Row> rows, int steps, int threads, int warmup, int seed)
    {
        var s = new StringBuilder();
        s.AppendLine(Invariant($"Default model on Debian's licence texts: {steps} steps of {Batch}x{Sequence}, AdamW (weight decay 0.01, clip 1), {warmup} warm-up steps then cosine, seed {seed}, {threads} threads, {DateTime.UtcNow:yyyy-MM-dd} UTC."));
        s.AppendLine("Held-out: Apache-2.0 + MPL-2.0 (licences) and tests/Fixtures/kjv-heldout.txt (KJV), nats/token over sequences of 128.");
        s.AppendLine();
        s.AppendLine("| Run | Learning rate | Licences held-out | KJV held-out | Train loss first -> last | Added tokens | Tokens/s | Minutes | Load (1 min) before/after |");
        s.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in rows)
        {
            string train = r.Report is { TrainLosses.Count: > 0 } report ? Invariant($"{report.TrainLosses[0]:F2} -> {report.TrainLosses[^1]:F2}") : "";
            s.AppendLine(Invariant($"| {r.Name} | {(r.Report is null ? "" : r.LearningRate.ToString("G3", CultureInfo.InvariantCulture))} | {r.Licenses:F3} | {r.Kjv:F3} | {train} | {r.Report?.AddedTokens.ToString(CultureInfo.InvariantCulture) ?? ""} | {(r.Report is null ? "" : r.Report.TokensPerSecond.ToString("F0", CultureInfo.InvariantCulture))} | {r.Minutes:F1} | {r.LoadBefore:F2} / {r.LoadAfter:F2} |"));
        }
        return s.ToString();
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
