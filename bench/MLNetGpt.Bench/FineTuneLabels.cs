using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML;
using MLNetGpt.Models;

namespace MLNetGpt.Bench;

/// <summary>
/// Does a supervised fine-tune (prompt/completion rows, loss on the completion only) teach the default model a labelling
/// task? Paragraphs of the GNU licences in /usr/share/common-licenses, each labelled with its family by the word that
/// follows "GNU" in the family's name, lowercase: GPL-1/2/3 " general", LGPL-2/2.1/3 " lesser", GFDL-1.2/1.3 " free" (words the
/// model's KJV vocabulary has rows for; the mode checks it). Every third paragraph of each licence is held out (and any
/// held-out paragraph whose text also occurs in training, or in two families, is dropped). ClassifyText's macro
/// accuracy on the held-out rows, measured with MulticlassClassification.Evaluate, zero-shot against tuned.
///   finetune-labels [--steps 200] [--threads 2] [--lr 1e-3] [--warmup 20] [--method full|lora] [--extend-vocabulary] [--seed 42] [--work DIR]
///   finetune-labels --probe " word, word"   (the ids of each word and whether the model has a row of its own for each)
/// </summary>
internal static class FineTuneLabels
{
    private static readonly (string Label, string[] Licenses)[] Families =
    [
        ("general", ["GPL-1", "GPL-2", "GPL-3"]),
        ("lesser", ["LGPL-2", "LGPL-2.1", "LGPL-3"]),
        ("free", ["GFDL-1.2", "GFDL-1.3"]),
    ];

    /// <summary>What follows each paragraph: the label is the next word.</summary>
    public const string Suffix = "\nThis text is from the GNU";

    private const int MaxWords = 48, MinWords = 12;

    public sealed class Example
    {
        public string Text { get; set; } = "";
        public string Family { get; set; } = "";
    }

    private sealed class KeyRow
    {
        public string Family { get; set; } = "";
    }

    public static int Run(string[] args)
    {
        string Arg(string name, string fallback)
        {
            int i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }
        int steps = int.Parse(Arg("--steps", "200"), CultureInfo.InvariantCulture);
        int threads = int.Parse(Arg("--threads", "2"), CultureInfo.InvariantCulture);
        int warmup = int.Parse(Arg("--warmup", "20"), CultureInfo.InvariantCulture);
        int seed = int.Parse(Arg("--seed", "42"), CultureInfo.InvariantCulture);
        double rate = double.Parse(Arg("--lr", "1e-3"), CultureInfo.InvariantCulture);
        var method = Arg("--method", "full") == "lora" ? FineTuneMethod.LoRA : FineTuneMethod.Full;
        bool extend = args.Contains("--extend-vocabulary");
        string licenses = Arg("--licenses", "/usr/share/common-licenses");
        string work = Arg("--work", Path.Combine(Path.GetTempPath(), "mlnetgpt-finetune-labels"));
        string model = GptModel.DefaultModelFolder;

        if (Arg("--probe", "") is { Length: > 0 } probe)
        {
            using var m = GptModel.Open(model, new GptModelOptions { IntraOpThreads = 1 });
            var map = VocabularyMap.Read(Path.Combine(model, m.Info.ModelFiles[0]))!;
            foreach (var word in probe.Split(','))
                Console.WriteLine($"'{word}': " + string.Join(" ", m.Tokenizer.EncodeToIds(word).Select(i => $"{i}{(map.IsKept(i) ? "" : "(unk)")}")));
            return 0;
        }
        var (train, heldOut) = Split(licenses);
        string[] labels = Families.Select(f => " " + f.Label).ToArray();
        CheckLabels(model, labels);
        Console.WriteLine(Invariant($"{train.Count} training rows, {heldOut.Count} held-out rows ({string.Join(", ", Families.Select(f => $"{f.Label} {heldOut.Count(e => e.Family == f.Label)}"))})"));

        double loadBefore = FineTuneLicenses.Load();
        var clock = Stopwatch.StartNew();
        var (zeroShot, zeroShotMicro) = MacroAccuracy(model, heldOut, labels);
        Console.WriteLine(Invariant($"zero-shot: macro accuracy {zeroShot:F3}, micro {zeroShotMicro:F3} ({clock.Elapsed.TotalSeconds:F0} s, load {loadBefore:F2})"));

        string output = Path.Combine(work, FineTuneReport.MethodName(method) + (extend ? "-extend" : ""));
        if (Directory.Exists(output)) Directory.Delete(output, recursive: true);
        var options = new FineTuneOptions
        {
            Method = method,
            MaxSteps = steps,
            BatchSize = 8,
            SequenceLength = 96,
            LearningRate = rate,
            WarmupSteps = warmup,
            Threads = threads,
            Seed = seed,
            ExtendVocabulary = extend,
            Log = line => Console.WriteLine("  " + line),
        };
        clock.Restart();
        double loadTrain = FineTuneLicenses.Load();
        var report = GptFineTuner.FineTune(model, output, train.Select(e => (e.Text, " " + e.Family)), heldOut.Select(e => (e.Text, " " + e.Family)), options);
        double minutes = clock.Elapsed.TotalMinutes;
        var (tuned, tunedMicro) = MacroAccuracy(output, heldOut, labels);
        double loadAfter = FineTuneLicenses.Load();
        Console.WriteLine(Invariant($"tuned: macro accuracy {tuned:F3}, micro {tunedMicro:F3}; completion loss {report.ValidationLossBefore:F3} -> {report.ValidationLossAfter:F3}"));
        Console.WriteLine();
        Console.WriteLine(Invariant($"GNU licence paragraph -> family (' general' GPL, ' lesser' LGPL, ' free' GFDL), default model, {FineTuneReport.MethodName(method)} supervised fine-tune{(extend ? $" with the vocabulary extended ({report.AddedTokens} tokens)" : "")}: {steps} steps of 8 rows (sequence 96), learning rate {rate:G3}, {warmup} warm-up steps, seed {seed}, {threads} threads, {DateTime.UtcNow:yyyy-MM-dd} UTC; {train.Count} training rows, {heldOut.Count} held-out rows."));
        Console.WriteLine();
        Console.WriteLine("| Model | Macro accuracy | Micro accuracy | Held-out completion loss | Minutes training | Load (1 min) before/training/after |");
        Console.WriteLine("|---|---:|---:|---:|---:|---|");
        Console.WriteLine(Invariant($"| zero-shot | {zeroShot:F3} | {zeroShotMicro:F3} | {report.ValidationLossBefore:F3} | | {loadBefore:F2} |"));
        Console.WriteLine(Invariant($"| tuned | {tuned:F3} | {tunedMicro:F3} | {report.ValidationLossAfter:F3} | {minutes:F1} | {loadTrain:F2} / {loadAfter:F2} |"));
        Console.WriteLine(Invariant($"\nMacro accuracy gain: {tuned - zeroShot:+0.000;-0.000} (chance {1.0 / Families.Length:F2})"));
        return 0;
    }

    /// <summary>Paragraphs of each family's licences, every third held out; held-out text seen in training or in two families is dropped.</summary>
    public static (List<Example> Train, List<Example> HeldOut) Split(string licenses)
    {
        var train = new List<Example>();
        var heldOut = new List<Example>();
        var familiesOf = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var (label, files) in Families)
            foreach (string file in files)
            {
                var paragraphs = Regex.Split(File.ReadAllText(Path.Combine(licenses, file)), @"\n\s*\n")
                    .Select(p => string.Join(' ', p.Split((char[])[' ', '\n', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries).Take(MaxWords)))
                    .Where(p => p.Split(' ').Length >= MinWords)
                    .ToList();
                for (int i = 0; i < paragraphs.Count; i++)
                {
                    (familiesOf.TryGetValue(paragraphs[i], out var set) ? set : familiesOf[paragraphs[i]] = []).Add(label);
                    (i % 3 == 2 ? heldOut : train).Add(new Example { Text = paragraphs[i] + Suffix, Family = label });
                }
            }
        var seen = train.Select(e => e.Text).ToHashSet(StringComparer.Ordinal);
        heldOut = heldOut.Where(e => !seen.Contains(e.Text) && familiesOf[e.Text[..^Suffix.Length]].Count == 1).ToList();
        return (train, heldOut);
    }

    /// <summary>Each label must be one token with a row of its own, or the model could not tell them apart.</summary>
    private static void CheckLabels(string folder, string[] labels)
    {
        using var model = GptModel.Open(folder, new GptModelOptions { IntraOpThreads = 1 });
        var map = VocabularyMap.Read(Path.Combine(folder, model.Info.ModelFiles[0]));
        foreach (string label in labels)
        {
            var ids = model.Tokenizer.EncodeToIds(label);
            if (ids.Count != 1 || map is not null && !map.IsKept(ids[0]))
                throw new InvalidOperationException($"The label '{label}' is {ids.Count} tokens ({string.Join(", ", ids)}), not one with a row of its own in '{folder}'.");
        }
    }

    /// <summary>ClassifyText over the held-out rows, evaluated by ML.NET: (macro accuracy, micro accuracy).</summary>
    public static (double Macro, double Micro) MacroAccuracy(string folder, IReadOnlyList<Example> rows, string[] labels)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(rows);
        var keys = ml.Data.LoadFromEnumerable(labels.Select(l => new KeyRow { Family = l.Trim() }));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", nameof(Example.Family), keyData: keys)
            .Append(ml.Transforms.Text.ClassifyText("PredictedLabel", nameof(Example.Text), folder, labels));
        var metrics = ml.MulticlassClassification.Evaluate(pipeline.Fit(data).Transform(data));
        return (metrics.MacroAccuracy, metrics.MicroAccuracy);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
