// Runs one benchmark workload with ONNX Runtime GenAI and prints one JSON line:
//   GenAiRunner MODEL_DIR PROMPTS.json BATCH NEW_TOKENS RUNS
// MODEL_DIR must hold genai_config.json (the benchmark writes one of type "decoder" for our folders).
// PROMPTS.json: [[ids...], ...], all of one length (GenAI pads with pad_token_id otherwise).
using System.Diagnostics;
using System.Text.Json;
using MLNetGpt.Bench;
using Microsoft.ML.OnnxRuntimeGenAI;

if (args.Length != 5)
{
    Console.Error.WriteLine("usage: GenAiRunner MODEL_DIR PROMPTS.json BATCH NEW_TOKENS RUNS");
    return 1;
}
string folder = args[0];
var prompts = JsonSerializer.Deserialize<int[][]>(File.ReadAllText(args[1]))!;
int batch = int.Parse(args[2]), newTokens = int.Parse(args[3]), runs = int.Parse(args[4]);
int length = prompts[0].Length;

using var model = new Model(folder);
var prefill = new List<double>();
var steps = new List<double>();

int RunBatch(int[][] rows, bool record)
{
    using var parameters = new GeneratorParams(model);
    parameters.SetSearchOption("max_length", length + newTokens);
    parameters.SetSearchOption("min_length", length + newTokens);
    parameters.SetSearchOption("do_sample", false);
    parameters.SetSearchOption("batch_size", rows.Length);
    using var generator = new Generator(model, parameters);
    var clock = Stopwatch.StartNew();
    generator.AppendTokens(rows.SelectMany(r => r).ToArray());
    int generated = 0;
    bool first = true;
    while (!generator.IsDone())
    {
        if (!first) clock.Restart();
        generator.GenerateNextToken();
        if (record) (first ? prefill : steps).Add(clock.Elapsed.TotalMilliseconds);
        first = false;
        generated += rows.Length;
    }
    return generated;
}

RunBatch(prompts.Take(Math.Min(batch, prompts.Length)).ToArray(), record: false);   // warm-up
var tokensPerSecond = new List<double>();
var rowsPerSecond = new List<double>();
for (int run = 0; run < runs; run++)
{
    var clock = Stopwatch.StartNew();
    int generated = prompts.Chunk(batch).Sum(rows => RunBatch(rows, record: true));
    double seconds = clock.Elapsed.TotalSeconds;
    tokensPerSecond.Add(generated / seconds);
    rowsPerSecond.Add(prompts.Length / seconds);
}

Stats.PrintMeasurement("genai", tokensPerSecond, rowsPerSecond, prefill, steps);
return 0;
