using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Generation.Constraints;
using MLNetGpt.Tokenization;

namespace MLNetGpt.Bench;

/// <summary>
/// What a structured-output constraint costs in the decode loop, against the decode step it rides on:
/// for each regex and schema of the validity test (tests/.../Fixtures/constraint-cases.json), the
/// build time of the automaton, the first visit of the start state at GPT-2's 50,257-token
/// vocabulary (the trie walk that makes its allowed set), and the per-step work after warm-up
/// (the cached allowed set, masking a 50,257-wide logits row, advancing the state), summed over
/// the rows of a batch; and, in the same process, the default model's decode step at that batch.
/// </summary>
internal static class ConstraintCost
{
    private const int Vocabulary = 50257;
    private const int Eos = 50256;

    public sealed class Case
    {
        public string Kind { get; set; } = "";
        public string Text { get; set; } = "";
        public double BuildMs { get; set; }
        public double StartVisitMs { get; set; }
        public int StatesVisited { get; set; }
        public double WarmStepUsPerRow { get; set; }
        public int Steps { get; set; }
    }

    public sealed class Result
    {
        public int Batch { get; set; }
        public int VocabularySize { get; set; } = Vocabulary;
        public double DecodeStepMs { get; set; }
        public double[] DecodeStepRunsMs { get; set; } = [];
        public List<Case> Cases { get; set; } = [];
        public double TrieBuildMs { get; set; }
        public double LoadAverage { get; set; }
    }

    public static Result Measure(string root, string model, int batch, int runs, int threads)
    {
        var result = new Result { Batch = batch, LoadAverage = Load.Now() };
        var table = TokenByteTable.For(TiktokenTokenizer.CreateForModel("gpt2"), Vocabulary);
        var trie = Stopwatch.StartNew();
        var first = new CompiledConstraint(OutputConstraint.Regex("a"), table, [Eos]);
        first.Allowed(first.Start, 1000);   // the shared vocabulary trie is built on first use
        result.TrieBuildMs = trie.Elapsed.TotalMilliseconds;
        var cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "tests", "Fixtures", "constraint-cases.json"))).RootElement;
        var all = cases.GetProperty("regexes").EnumerateArray().Select(e => ("regex", e.GetString()!))
            .Concat(cases.GetProperty("schemas").EnumerateArray().Select(e => ("schema", JsonSerializer.Serialize(e))));
        foreach (var (kind, text) in all)
        {
            OutputConstraint Build() => kind == "regex" ? OutputConstraint.Regex(text) : OutputConstraint.JsonSchema(text);
            Build();   // JIT
            var clock = Stopwatch.StartNew();
            const int builds = 20;
            for (int i = 0; i < builds; i++) Build();
            double buildMs = clock.Elapsed.TotalMilliseconds / builds;

            var constraint = Build();
            var compiled = new CompiledConstraint(constraint, table, [Eos]);
            clock.Restart();
            compiled.Allowed(compiled.Start, 1000);
            double startMs = clock.Elapsed.TotalMilliseconds;

            // One trajectory per row: a seeded random walk through allowed tokens (the warm-up, which
            // visits every state once), then the same walks replayed and timed.
            var walks = Enumerable.Range(0, batch).Select(r => Walk(compiled, new Random(r + 1), 64)).ToList();
            var logits = new float[Vocabulary];
            var perStep = new List<double>();
            int steps = walks.Max(w => w.Count);
            for (int repeat = 0; repeat < 20; repeat++)
                for (int step = 0; step < steps; step++)
                {
                    long start = Stopwatch.GetTimestamp();
                    int active = 0;
                    foreach (var walk in walks)
                    {
                        if (step >= walk.Count) continue;
                        active++;
                        var (state, token, remaining) = walk[step];
                        compiled.Allowed(state, remaining).Apply(logits);
                        compiled.Advance(state, token);
                    }
                    if (active > 0) perStep.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds / active);
                }
            result.Cases.Add(new Case
            {
                Kind = kind, Text = text, BuildMs = buildMs, StartVisitMs = startMs, StatesVisited = compiled.AutomatonStates,
                WarmStepUsPerRow = Stats.Median(perStep), Steps = steps,
            });
        }

        // The decode step the constraint rides on: the default model, greedy, a full batch, no constraint.
        using var gpt = GptModel.Open(model, new GptModelOptions { IntraOpThreads = threads });
        var settings = gpt.Engine.Resolve(new GenerationOptions { MaxNewTokens = 32, DoSample = false, EosTokenIds = [], RepetitionPenalty = 1f });
        var prompts = Prompts.Make(gpt, batch, 16).Select((p, i) => gpt.Engine.Prompts.FromIds(p, i, settings)).ToList();
        var medians = new List<double>();
        for (int run = 0; run <= runs; run++)
        {
            var timings = new List<(bool Prefill, int Rows, double Milliseconds)>();
            using var loop = gpt.Engine.CreateLoop(settings, batch, continuous: true, (_, _) => { });
            loop.StepTimings = timings;
            loop.Run(prompts.GetEnumerator(), CancellationToken.None);
            if (run > 0) medians.Add(Stats.Median(timings.Where(t => !t.Prefill && t.Rows == batch).Select(t => t.Milliseconds)));   // run 0 is the warm-up
        }
        result.DecodeStepRunsMs = medians.ToArray();
        result.DecodeStepMs = Stats.Median(medians);
        return result;
    }

    /// <summary>A seeded walk of up to <paramref name="maxSteps"/> allowed text tokens (ending early where only end-of-sequence is left).</summary>
    private static List<(int State, int Token, int Remaining)> Walk(CompiledConstraint compiled, Random random, int maxSteps)
    {
        var walk = new List<(int, int, int)>();
        int state = compiled.Start;
        for (int step = 0; step < maxSteps; step++)
        {
            var text = compiled.Allowed(state, maxSteps - step).ToArray().Where(t => t != Eos).ToArray();
            if (text.Length == 0) break;
            int token = text[random.Next(text.Length)];
            walk.Add((state, token, maxSteps - step));
            state = compiled.Advance(state, token);
            if (state == CompiledConstraint.Rejected) throw new InvalidOperationException($"an allowed token ({token}) was rejected");
        }
        return walk;
    }
}
