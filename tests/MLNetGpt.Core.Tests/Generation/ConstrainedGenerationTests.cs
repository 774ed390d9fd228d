using System.Text.Json;
using Json.Schema;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>
/// Output constraints in the decode loop, on the default model: every output matches its regex or
/// validates against its schema (checked by .NET's Regex and JsonSchema.Net, independent of the
/// automata), choices come out as one of the labels, and the loop's guarantees (batch invariance,
/// per-row constraints, continuous batching) hold.
/// </summary>
public sealed class ConstrainedGenerationTests
{
    private static readonly string[] Prompts = ["And God said,", "The LORD is my shepherd;", "In the beginning", "Blessed are the meek", "And it came to pass",
        "Hear, O Israel:", "Thus saith the LORD", "And Moses spake", "Praise ye the LORD.", "For unto us a child is born"];

    // The cases live in a fixture file, so the bench's constraint section times the same ones.
    private static readonly JsonElement Cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.Root, "constraint-cases.json"))).RootElement;

    private static readonly string[] Regexes = Cases.GetProperty("regexes").EnumerateArray().Select(e => e.GetString()!).ToArray();

    private static readonly string[] Schemas = Cases.GetProperty("schemas").EnumerateArray().Select(e => JsonSerializer.Serialize(e)).ToArray();

    private static GptModel Open() => GptModel.Open(Fixtures.DefaultModel);

    private static GenerationOptions Sampling(OutputConstraint constraint, int maxNewTokens = 64) => new()
    {
        Constraint = constraint, DoSample = true, Temperature = 1.0f, TopK = 0, TopP = 1f, Seed = 123, MaxNewTokens = maxNewTokens,
    };

    [Fact]
    public void A_thousand_sampled_rows_all_match_their_regex_or_validate_against_their_schema()
    {
        using var model = Open();
        var failures = new List<string>();
        int rows = 0;
        foreach (var pattern in Regexes)
        {
            var regex = new System.Text.RegularExpressions.Regex($"^(?:{pattern})\\z");
            var results = model.Generate(Enumerable.Range(0, 84).Select(i => Prompts[i % Prompts.Length] + " " + i), Sampling(OutputConstraint.Regex(pattern)), batchSize: 16);
            foreach (var r in results)
            {
                rows++;
                if (!regex.IsMatch(r.Text)) failures.Add($"regex {pattern}: '{r.Text}' ({r.FinishReason})");
            }
        }
        foreach (var schemaText in Schemas)
        {
            var schema = JsonSchema.FromText(schemaText);
            var results = model.Generate(Enumerable.Range(0, 83).Select(i => Prompts[i % Prompts.Length] + " " + i), Sampling(OutputConstraint.JsonSchema(schemaText), 96), batchSize: 16);
            foreach (var r in results)
            {
                rows++;
                JsonElement node;
                try
                {
                    using var document = JsonDocument.Parse(r.Text);
                    node = document.RootElement.Clone();
                }
                catch (JsonException e)
                {
                    failures.Add($"schema {schemaText}: not JSON '{r.Text}' ({e.Message})");
                    continue;
                }
                var evaluation = schema.Evaluate(node, new EvaluationOptions { OutputFormat = OutputFormat.List, RequireFormatValidation = true });
                if (!evaluation.IsValid) failures.Add($"schema {schemaText}: '{r.Text}' does not validate");
            }
        }
        Assert.True(rows >= 1000, $"only {rows} rows");
        Assert.True(failures.Count == 0, $"{failures.Count} of {rows} outputs are invalid:\n" + string.Join("\n", failures.Take(10)));
    }

    [Fact]
    public void Every_output_under_a_choice_constraint_is_one_of_the_labels()
    {
        using var model = Open();
        string[] labels = ["the Lord", "Moses", "Aaron and his sons", "a man of God", "nobody"];
        var results = model.Generate(Enumerable.Range(0, 40).Select(i => Prompts[i % Prompts.Length]), Sampling(OutputConstraint.Choices(labels)), batchSize: 8);
        Assert.All(results, r =>
        {
            Assert.Contains(r.Text, labels);
            Assert.Equal(FinishReason.Constraint, r.FinishReason);
        });
    }

    [Fact]
    public void Under_greedy_decoding_the_choice_is_the_label_with_the_highest_log_likelihood()
    {
        using var model = Open();
        // Labels that are one token each: the constrained distribution is the model's, renormalised over them.
        string[] labels = [" God", " LORD", " Moses", " Israel", " Egypt"];
        Assert.All(labels, l => Assert.Single(model.Tokenizer.EncodeToIds(l)));
        foreach (var prompt in Prompts)
        {
            var result = model.Generate(prompt, new GenerationOptions { Constraint = OutputConstraint.Choices(labels), DoSample = false, RepetitionPenalty = 1f, NoRepeatNgramSize = 0, MaxNewTokens = 8 });
            var best = labels.MaxBy(l => model.Score(l, prompt).LogLikelihood);
            Assert.Equal(best, result.Text);
        }
    }

    [Fact]
    public void Multi_token_choices_are_written_as_the_tokenizer_writes_them_and_greedy_takes_the_most_likely_first_token()
    {
        using var model = Open();
        string[] labels = [" children of Israel", " house of David", " land of Egypt", " word of the LORD"];
        var firsts = labels.Select(l => model.Tokenizer.EncodeToIds(l)[0]).ToArray();
        Assert.Equal(labels.Length, firsts.Distinct().Count());
        foreach (var prompt in Prompts.Take(6))
        {
            var result = model.Generate(prompt, new GenerationOptions
            {
                Constraint = OutputConstraint.Choices(labels), DoSample = false, RepetitionPenalty = 1f, NoRepeatNgramSize = 0, MaxNewTokens = 8,
            });
            Assert.Equal(model.Tokenizer.EncodeToIds(result.Text), result.TokenIds);     // the label's own tokens, no odd split
            var best = labels.MaxBy(l => model.Score(model.Tokenizer.Decode([model.Tokenizer.EncodeToIds(l)[0]]), prompt).LogLikelihood);
            Assert.Equal(best, result.Text);
        }
    }

    [Fact]
    public void A_seeded_constrained_result_does_not_depend_on_the_batch_size_or_continuous_batching()
    {
        using var model = Open();
        var options = Sampling(OutputConstraint.Regex(Regexes[0]), 24);
        var prompts = Enumerable.Range(0, 12).Select(i => Prompts[i % Prompts.Length] + " " + i).ToList();
        var one = model.Generate(prompts, options, batchSize: 1).Select(r => r.Text).ToList();
        var five = model.Generate(prompts, options, batchSize: 5).Select(r => r.Text).ToList();
        Assert.Equal(one, five);
    }

    [Fact]
    public void Rows_with_different_constraints_share_a_batch_and_each_keeps_its_own()
    {
        using var model = Open();
        var requests = new (string, OutputConstraint?)[]
        {
            ("And God said,", OutputConstraint.Regex(@"\d{3}")),
            ("The LORD is", OutputConstraint.Choices(["good", "great"])),
            ("In the beginning", null),
            ("Blessed are", OutputConstraint.JsonSchema("""{"type":"boolean"}""")),
        };
        var results = model.Generate(requests, new GenerationOptions { MaxNewTokens = 12, DoSample = true, Seed = 4 }, batchSize: 4);
        Assert.Matches(@"^\d{3}$", results[0].Text);
        Assert.Contains(results[1].Text, new[] { "good", "great" });
        Assert.Contains(results[3].Text, new[] { "true", "false" });
        Assert.Equal(FinishReason.Constraint, results[3].FinishReason);
    }

    [Fact]
    public void A_constraint_with_a_short_token_budget_still_completes()
    {
        using var model = Open();
        var result = model.Generate("And God said,", new GenerationOptions
        {
            Constraint = OutputConstraint.Regex(@"[a-z]{3,40}\."), DoSample = true, Temperature = 1f, Seed = 9, MaxNewTokens = 5,
        });
        Assert.Matches(@"^[a-z]{3,40}\.$", result.Text);
    }

    [Fact]
    public void The_constraint_survives_the_json_form_of_the_options()
    {
        var options = new GenerationOptions { MaxNewTokens = 4, Constraint = OutputConstraint.Regex("(yes|no)") };
        string json = options.ToJson();
        Assert.Contains("\"constraint\":{\"guided_regex\":\"(yes|no)\"}", json);
        Assert.Equal(options.Constraint, GenerationOptions.FromJson(json).Constraint);
    }
}
