using System.Diagnostics;

namespace MLNetGpt.Bench;

/// <summary>
/// Speculative decoding at batch 1: plain decoding against prompt lookup (and, where a draft is given, a draft model)
/// on input-copying tasks (extract a field, rewrite a sentence, continue a quoted passage) and free generation,
/// greedy and seeded sampling: tokens/s, tokens per verification step, and whether every output equals plain
/// decoding's. Subjects are interleaved prompt by prompt within each round, and rounds rotate their order.
/// </summary>
internal static class SpeculationBench
{
    public const int NewTokens = 32;

    public static readonly (string Task, string[] Prompts)[] Tasks =
    [
        ("extract a field", [
            "Name: Jonathan Whitfield\nCity: Boston\nOccupation: carpenter\nAge: 42\n\nThe record says that the occupation of Jonathan Whitfield is carpenter and his city is",
            "Invoice 4471\nCustomer: Maria Lopez\nAmount: 318 dollars\nDue: the first of March\n\nInvoice 4471 belongs to the customer Maria Lopez, who owes",
            "Title: The Pilgrim's Progress\nAuthor: John Bunyan\nYear: 1678\n\nThe book The Pilgrim's Progress was written by",
        ]),
        ("rewrite a sentence", [
            "Sentence: And God said, Let there be light: and there was light. And God saw the light, that it was good.\nThe same sentence again: And God said,",
            "Sentence: The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures.\nThe same sentence again: The LORD is",
            "Sentence: Blessed are the meek: for they shall inherit the earth. Blessed are they which do hunger.\nThe same sentence again: Blessed are",
        ]),
        ("continue a quoted passage", [
            "He read aloud: \"In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness was upon the face of the deep.\" Then he read it once more: \"In the beginning God created",
            "She sang: \"Praise ye the LORD. Praise God in his sanctuary: praise him in the firmament of his power. Praise him for his mighty acts.\" And again she sang: \"Praise ye the LORD. Praise God",
            "The scroll said: \"Hear, O Israel: The LORD our God is one LORD: And thou shalt love the LORD thy God with all thine heart.\" He repeated: \"Hear, O Israel: The LORD",
        ]),
        ("free generation", [
            "And it came to pass in those days, that",
            "Then spake Jesus again unto them, saying,",
            "Now the serpent was more subtil than any beast of the field",
        ]),
    ];

    public sealed class Cell
    {
        public string Model { get; set; } = "";
        public string Task { get; set; } = "";
        public string Decoding { get; set; } = "";
        public string Subject { get; set; } = "";
        public List<double> TokensPerSecond { get; set; } = [];
        public long Verified { get; set; }
        public long Proposed { get; set; }
        public long Accepted { get; set; }
        public long Tokens { get; set; }
        public bool Identical { get; set; } = true;
        public List<double> Loads { get; set; } = [];

        /// <summary>Tokens a verification step yielded on average (the accepted proposals and the chosen token after them).</summary>
        [System.Text.Json.Serialization.JsonIgnore]
        public double TokensPerVerification => Verified == 0 ? double.NaN : 1 + (double)Accepted / Verified;
    }

    public sealed class Result
    {
        public List<Cell> Cells { get; set; } = [];
        public Dictionary<string, double[]> StepCostRatios { get; set; } = [];
        public int Rounds { get; set; }
        public double Minutes { get; set; }
    }

    /// <summary>
    /// Measures each model folder (name=folder[,draft=folder]) with plain decoding, prompt lookup and, where given,
    /// the draft model, over every task and both decodings.
    /// </summary>
    public static Result Measure(IReadOnlyList<(string Name, string Folder, string? Draft)> models, int rounds, int threads)
    {
        var clock = Stopwatch.StartNew();
        var result = new Result { Rounds = rounds };
        foreach (var (name, folder, draftFolder) in models)
        {
            Console.Error.WriteLine($"speculation: {name}...");
            using var model = GptModel.Open(folder, new GptModelOptions { IntraOpThreads = threads });
            using var drafted = draftFolder is null ? null : GptModel.Open(folder, new GptModelOptions { IntraOpThreads = threads, DraftModelFolder = draftFolder });
            result.StepCostRatios[name] = StepCostRatios(model);
            var subjects = new List<(string Name, GptModel Model, int Lookup)> { ("plain", model, 0), ("prompt lookup", model, 10) };
            if (drafted is not null) subjects.Add(("draft model", drafted, 0));
            foreach (var (decoding, sample) in new[] { ("greedy", false), ("seeded sampling", true) })
            {
                foreach (var (task, prompts) in Tasks)
                {
                    var cells = subjects.Select(s => new Cell { Model = name, Task = task, Decoding = decoding, Subject = s.Name }).ToList();
                    var reference = new string[prompts.Length];
                    // Warm-up, which also gives the cost model its first steps and the reference outputs.
                    for (int p = 0; p < prompts.Length; p++)
                        foreach (var s in subjects)
                        {
                            var text = s.Model.Generate(prompts[p], Options(sample, s.Lookup)).Text;
                            if (s.Name == "plain") reference[p] = text;
                        }
                    for (int round = 0; round < rounds; round++)
                    {
                        var order = Enumerable.Range(0, subjects.Count).Select(i => (i + round) % subjects.Count).ToList();
                        var seconds = new double[subjects.Count];
                        var tokens = new long[subjects.Count];
                        foreach (var c in order) cells[c].Loads.Add(Load.Now());
                        for (int p = 0; p < prompts.Length; p++)
                        {
                            foreach (int i in order)
                            {
                                var (_, gpt, lookup) = subjects[i];
                                var counters = gpt.Engine.SpeculationCounters;
                                long verified = counters.Verified, proposed = counters.Proposed, accepted = counters.Accepted;
                                var timer = Stopwatch.StartNew();
                                var output = gpt.Generate(prompts[p], Options(sample, lookup));
                                seconds[i] += timer.Elapsed.TotalSeconds;
                                tokens[i] += output.TokenIds.Count;
                                var cell = cells[i];
                                cell.Identical &= output.Text == reference[p];
                                cell.Verified += counters.Verified - verified;
                                cell.Proposed += counters.Proposed - proposed;
                                cell.Accepted += counters.Accepted - accepted;
                                cell.Tokens += output.TokenIds.Count;
                            }
                        }
                        for (int i = 0; i < subjects.Count; i++) cells[i].TokensPerSecond.Add(tokens[i] / seconds[i]);
                    }
                    foreach (var cell in cells)
                        Console.Error.WriteLine($"speculation:   {name} {decoding} {task} {cell.Subject}: {Stats.Median(cell.TokensPerSecond):F1} tokens/s, " +
                            $"{cell.TokensPerVerification:F2} tokens per verification ({cell.Verified} steps), identical {cell.Identical}, load {cell.Loads.Average():F1}");
                    result.Cells.AddRange(cells);
                }
            }
        }
        result.Minutes = clock.Elapsed.TotalMinutes;
        return result;
    }

    private static GenerationOptions Options(bool sample, int lookup) => new()
    {
        MaxNewTokens = NewTokens, EosTokenIds = [], DoSample = sample, Temperature = 0.7f, TopK = 40, Seed = 23, RepetitionPenalty = 1f,
        PromptLookupNumTokens = lookup,
        // Each prompt runs several times: a prefix-cache head from an earlier run would change how its prefill is computed.
        PrefixCaching = false,
    };

    /// <summary>A forward step of 1 + k tokens on top of a 64-token cache against a one-token step, for k = 1..10 (medians of interleaved repetitions).</summary>
    private static double[] StepCostRatios(GptModel model)
    {
        var backend = model.Engine.Backend;
        var ids = Prompts.Make(model, 1, 64)[0];
        var samples = Enumerable.Range(0, 11).Select(_ => new List<double>()).ToArray();
        using var runOptions = new Microsoft.ML.OnnxRuntime.RunOptions();
        for (int repetition = 0; repetition < 7; repetition++)
        {
            for (int length = 1; length <= 11; length++)
            {
                var mask = new MLNetGpt.Generation.ColumnMask(128, backend.Graph.Padding);
                var (first, cache) = MLNetGpt.Generation.StepRunner.Extend(backend, runOptions, backend.EmptyCache(1), [mask], [ids], [0], model.Info.PadTokenId, true, CancellationToken.None, out _);
                first.Dispose();
                var timer = Stopwatch.StartNew();
                var (logits, grown) = MLNetGpt.Generation.StepRunner.Extend(backend, runOptions, cache, [mask], [ids[..length]], [ids.Length], model.Info.PadTokenId, false, CancellationToken.None, out _);
                double ms = timer.Elapsed.TotalMilliseconds;
                logits.Dispose();
                grown.Dispose();
                if (repetition > 0) samples[length - 1].Add(ms);
            }
        }
        double one = Stats.Median(samples[0]);
        return samples.Skip(1).Select(s => Stats.Median(s) / one).ToArray();
    }
}
