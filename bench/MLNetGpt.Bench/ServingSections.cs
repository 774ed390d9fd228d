using System.Globalization;
using System.Text;

namespace MLNetGpt.Bench;

/// <summary>The report's sections on serving: many callers through the shared scheduler, and speculative decoding.</summary>
internal static class ServingSections
{
    private static string Range(IReadOnlyCollection<double> values, string format = "F0") => values.Count == 0 ? "-"
        : $"{Stats.Median(values).ToString(format, CultureInfo.InvariantCulture)} [{values.Min().ToString(format, CultureInfo.InvariantCulture)}-{values.Max().ToString(format, CultureInfo.InvariantCulture)}]";

    private static string Pct(IReadOnlyCollection<double> values, double p) => values.Count == 0 ? "-" : Stats.Percentile(values, p).ToString("F1", CultureInfo.InvariantCulture);

    private static string Loads(IEnumerable<double> loads) => string.Join(" / ", loads.Select(l => l.ToString("F1", CultureInfo.InvariantCulture)));

    public static void Concurrency(StringBuilder md, Concurrency.Result r)
    {
        md.AppendLine("## Many callers: one shared scheduler");
        md.AppendLine();
        md.AppendLine($"The {r.Model} model on {r.Threads} threads: {MLNetGpt.Bench.Concurrency.Requests} requests of 16-token prompts, {MLNetGpt.Bench.Concurrency.NewTokens} new tokens each " +
                      "(seeded sampling, temperature 0.8, top-k 40, end-of-sequence off), sent by N concurrent callers, each sending its share one after another, " +
                      "through `GptModel.Generate` (one thread per caller) and through `GptChatClient` streaming (async callers; the model folder with a pass-through chat template). " +
                      $"References in the same process: the requests one by one and as static batches of 8 in a loop of their own (no scheduler). {r.Rounds} interleaved rounds, the order rotating; " +
                      "a figure is the median [range] of the rounds' tokens/s; latency is per request from the call to its result; first token is the first streamed text. " +
                      $"\"Identical\": every text equals the static batches' (Generate) or the same chat request's alone. Load: the 1-minute load average at each round's start (2 cores). {r.Minutes:F0} minutes.");
        md.AppendLine();
        var staticBatch = r.Subjects.First(s => s.Name.StartsWith("static batches", StringComparison.Ordinal));
        var lone = r.Subjects.First(s => s.Name == "Generate, 1 caller(s)");
        double staticTps = Stats.Median(staticBatch.TokensPerSecond), loneLatency = Stats.Median(lone.LatencyMs);
        md.AppendLine("| subject | tokens/s | vs static batches of 8 | latency p50 / p95 ms | p95 / lone request | first token p50 / p95 ms | most rows in a step | identical | load |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---|---|");
        foreach (var s in r.Subjects)
        {
            double tps = Stats.Median(s.TokensPerSecond);
            string p95 = s.LatencyMs.Count == 0 ? "-" : (Stats.Percentile(s.LatencyMs, 0.95) / loneLatency).ToString("F2", CultureInfo.InvariantCulture);
            string first = s.FirstTokenMs.Count == 0 ? "-" : $"{Pct(s.FirstTokenMs, 0.5)} / {Pct(s.FirstTokenMs, 0.95)}";
            string latency = s.LatencyMs.Count == 0 ? "-" : $"{Pct(s.LatencyMs, 0.5)} / {Pct(s.LatencyMs, 0.95)}";
            string rows = s.Api == "loop" ? "-" : s.PeakRows.ToString(CultureInfo.InvariantCulture);
            md.AppendLine($"| {s.Name} | {Range(s.TokensPerSecond)} | {tps / staticTps:F2}x | {latency} | {p95} | {first} | {rows} | {(s.Identical ? "yes" : "**NO**")} | {Loads(s.Loads)} |");
        }
        md.AppendLine();
        md.AppendLine("\"Lone request\": the median latency of one caller through Generate. \"Most rows in a step\": the scheduler's largest batch since the model opened (it only grows).");
        md.AppendLine();

        double Tps(string name) => Stats.Median(r.Subjects.First(s => s.Name == name).TokensPerSecond);
        double P95(string name) => Stats.Percentile(r.Subjects.First(s => s.Name == name).LatencyMs, 0.95);
        md.AppendLine("Targets (same run):");
        md.AppendLine();
        md.AppendLine("| target | measured | met |");
        md.AppendLine("|---|---:|---|");
        foreach (var api in new[] { "Generate", "GptChatClient streaming" })
        {
            double eight = Tps($"{api}, 8 caller(s)"), sixteen = Tps($"{api}, 16 caller(s)");
            md.AppendLine($"| {api}, 8 callers >= 0.9x static batches of 8 | {eight / staticTps:F2}x | {(eight >= 0.9 * staticTps ? "yes" : "no")} |");
            md.AppendLine($"| {api}, 8 callers: p95 latency <= 4x a lone request | {P95($"{api}, 8 caller(s)") / loneLatency:F2}x | {(P95($"{api}, 8 caller(s)") <= 4 * loneLatency ? "yes" : "no")} |");
            md.AppendLine($"| {api}, 16 callers >= 8 callers | {sixteen / eight:F2}x | {(sixteen >= eight ? "yes" : "no")} |");
        }
        md.AppendLine();

        var st = r.Streaming;
        if (st.GenerateMs.Count > 0)
        {
            double generate = Stats.Median(st.GenerateMs), stream = Stats.Median(st.StreamMs);
            md.AppendLine($"Streaming against Generate, one caller, {st.GenerateMs.Count} requests each, alternating (load {Loads(st.Loads)}):");
            md.AppendLine();
            md.AppendLine("| measure | p50 ms | p95 ms |");
            md.AppendLine("|---|---:|---:|");
            md.AppendLine($"| Generate, {MLNetGpt.Bench.Concurrency.NewTokens} tokens | {Pct(st.GenerateMs, 0.5)} | {Pct(st.GenerateMs, 0.95)} |");
            md.AppendLine($"| GenerateStreamingAsync, {MLNetGpt.Bench.Concurrency.NewTokens} tokens | {Pct(st.StreamMs, 0.5)} | {Pct(st.StreamMs, 0.95)} |");
            md.AppendLine($"| Generate of 1 token (prefill and the first token) | {Pct(st.OneTokenGenerateMs, 0.5)} | {Pct(st.OneTokenGenerateMs, 0.95)} |");
            md.AppendLine($"| GenerateStreamingAsync, first piece | {Pct(st.StreamFirstPieceMs, 0.5)} | {Pct(st.StreamFirstPieceMs, 0.95)} |");
            md.AppendLine($"| gap between consecutive pieces | {Pct(st.PieceGapMs, 0.5)} | {Pct(st.PieceGapMs, 0.95)} |");
            md.AppendLine($"| one decode step of one row (the engine's own loop) | {Pct(st.StepMs, 0.5)} | {Pct(st.StepMs, 0.95)} |");
            md.AppendLine();
            md.AppendLine($"A streamed token costs **{stream / generate:F2}x** a Generate token (median latency over {MLNetGpt.Bench.Concurrency.NewTokens} tokens); pieces arrive one step apart.");
            md.AppendLine();
        }
    }

    public static void Speculation(StringBuilder md, SpeculationBench.Result r)
    {
        md.AppendLine("## Speculative decoding");
        md.AppendLine();
        md.AppendLine("What a verification step costs: a forward pass of 1 + k tokens on top of a 64-token cache, against a one-token step (batch 1, medians of 6 interleaved repetitions):");
        md.AppendLine();
        md.AppendLine("| model | " + string.Join(" | ", Enumerable.Range(1, 10).Select(k => $"k={k}")) + " |");
        md.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---:|", 10)));
        foreach (var (model, ratios) in r.StepCostRatios)
            md.AppendLine($"| {model} | " + string.Join(" | ", ratios.Select(x => x.ToString("F2", CultureInfo.InvariantCulture))) + " |");
        md.AppendLine();
        md.AppendLine($"Batch 1, {SpeculationBench.NewTokens} new tokens per prompt, three prompts per task (tasks in bench/MLNetGpt.Bench/SpeculationBench.cs), greedy and seeded sampling " +
                      $"(temperature 0.7, top-k 40); subjects interleaved prompt by prompt, {r.Rounds} rounds; tokens/s is the median [range] of the rounds. " +
                      "\"Tokens per verification\": what one speculative step yielded on average (accepted proposals plus the token chosen after them); \"steps\": how many " +
                      $"speculative steps ran (the engine speculates only where its cost model expects a gain). \"Identical\": every output equals plain decoding's. {r.Minutes:F0} minutes.");
        md.AppendLine();
        md.AppendLine("| model | decoding | task | subject | tokens/s | vs plain | tokens per verification | steps | identical | load |");
        md.AppendLine("|---|---|---|---|---:|---:|---:|---:|---|---|");
        foreach (var group in r.Cells.GroupBy(c => (c.Model, c.Decoding, c.Task)))
        {
            double plain = Stats.Median(group.First(c => c.Subject == "plain").TokensPerSecond);
            foreach (var c in group)
            {
                double tps = Stats.Median(c.TokensPerSecond);
                string perStep = c.Verified == 0 ? "-" : c.TokensPerVerification.ToString("F2", CultureInfo.InvariantCulture);
                string steps = c.Subject == "plain" ? "-" : c.Verified.ToString(CultureInfo.InvariantCulture);
                md.AppendLine($"| {c.Model} | {c.Decoding} | {c.Task} | {c.Subject} | {Range(c.TokensPerSecond, "F1")} | {(c.Subject == "plain" ? "1.00x" : $"{tps / plain:F2}x")} | " +
                              $"{perStep} | {steps} | {(c.Identical ? "yes" : "**NO**")} | {Loads(c.Loads)} |");
            }
        }
        md.AppendLine();
    }
}
