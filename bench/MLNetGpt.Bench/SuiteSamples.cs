using System.Diagnostics;
using System.Text.Json;

namespace MLNetGpt.Bench;

/// <summary>
/// Outputs sampled at temperature 1 under every schema of the JSON-Schema-Test-Suite (draft 2020-12 files) that
/// <see cref="OutputConstraint.JsonSchema(string)"/> accepts, written as JSON lines for an independent validator
/// (tools/validate-suite-samples.py runs Python's jsonschema on them). A few samples per schema, within a time budget.
/// </summary>
internal static class SuiteSamples
{
    public static void Write(string suiteFolder, string modelFolder, string outFile, int perSchema, int maxNewTokens, double budgetSeconds)
    {
        using var model = GptModel.Open(modelFolder);
        using var writer = new StreamWriter(outFile);
        var clock = Stopwatch.StartNew();
        int schemas = 0, refused = 0, samples = 0, incomplete = 0;
        foreach (string path in Directory.GetFiles(suiteFolder, "*.json").Order(StringComparer.Ordinal))
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            foreach (var group in document.RootElement.EnumerateArray())
            {
                if (clock.Elapsed.TotalSeconds > budgetSeconds) break;
                string schema = group.GetProperty("schema").GetRawText();
                OutputConstraint constraint;
                try
                {
                    constraint = OutputConstraint.JsonSchema(schema);
                }
                catch (ArgumentException)
                {
                    refused++;
                    continue;
                }
                schemas++;
                for (int seed = 0; seed < perSchema; seed++)
                {
                    var result = model.Generate("{", new GenerationOptions
                    {
                        Constraint = constraint, DoSample = true, Temperature = 1f, Seed = seed, MaxNewTokens = maxNewTokens,
                    });
                    if (result.FinishReason == FinishReason.Length) incomplete++;
                    samples++;
                    writer.WriteLine(JsonSerializer.Serialize(new
                    {
                        file = Path.GetFileName(path), description = group.GetProperty("description").GetString(), seed,
                        schema = JsonSerializer.Deserialize<JsonElement>(schema), output = result.Text, finish = result.FinishReason.ToString(),
                    }));
                }
            }
        }
        Console.WriteLine(JsonSerializer.Serialize(new { schemas, refused, samples, incomplete, seconds = Math.Round(clock.Elapsed.TotalSeconds, 1), load = File.ReadAllText("/proc/loadavg").Trim() }));
    }
}
