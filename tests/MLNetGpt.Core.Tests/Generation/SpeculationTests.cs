using MLNetGpt.Generation;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation;

/// <summary>
/// Speculative decoding never changes a result: greedy and seeded outputs are the same with and without it, on every
/// fixture layout, with prompt lookup and with a draft model. The tests force proposals on every step (the engine
/// would otherwise speculate only where its cost model says it pays), and check that proposals were both accepted
/// and rejected, so verification and the cache rollback are exercised.
/// </summary>
public sealed class SpeculationTests
{
    private static readonly string[] Prompts =
    [
        "one two three one two three one two three one two",
        "In the beginning God created the heaven and the earth. In the beginning God",
        "The quick brown fox jumps over the lazy dog. The quick brown",
        "a b a b a b a",
    ];

    public static TheoryData<string, bool> Layouts()
    {
        var data = new TheoryData<string, bool>();
        foreach (var folder in Fixtures.WithGolden.Select(f => f.Folder).Append("tiny-chatml").Distinct())
            foreach (bool sample in new[] { false, true })
                data.Add(folder, sample);
        return data;
    }

    private static GenerationOptions Options(bool sample, int lookup) => new()
    {
        MaxNewTokens = 24, EosTokenIds = [], DoSample = sample, Temperature = 0.9f, TopK = 40, Seed = 5, PromptLookupNumTokens = lookup,
        RepetitionPenalty = 1f,
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Prompt_lookup_gives_the_same_tokens_as_plain_decoding_on_every_fixture_layout(string fixture, bool sample)
    {
        using var plain = GptModel.Open(Fixtures.Folder(fixture));
        using var speculating = GptModel.Open(Fixtures.Folder(fixture));
        speculating.Engine.ForcedProposals = 4;
        foreach (int batch in new[] { 1, 3 })
        {
            var expected = plain.Generate(Prompts, Options(sample, lookup: 0), batch);
            var actual = speculating.Generate(Prompts, Options(sample, lookup: 10), batch);
            Assert.Equal(expected.Select(r => r.TokenIds), actual.Select(r => r.TokenIds));
            Assert.Equal(expected.Select(r => r.Text), actual.Select(r => r.Text));
        }
        // Single requests go through the same loop.
        foreach (var prompt in Prompts)
            Assert.Equal(plain.Generate(prompt, Options(sample, 0)).TokenIds, speculating.Generate(prompt, Options(sample, 10)).TokenIds);
        var counters = speculating.Engine.SpeculationCounters;
        Assert.True(counters.Proposed > 0, $"{fixture}: nothing was proposed");
        Assert.True(counters.Accepted < counters.Proposed, $"{fixture}: every proposal was accepted, so no rollback was exercised");
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void A_model_drafting_for_itself_has_its_greedy_proposals_accepted_and_changes_no_output_on_every_fixture_layout(string fixture, bool sample)
    {
        // The random-weight Llama fixtures rarely repeat, so prompt lookup's proposals are rejected there; a draft with
        // the target's own weights is accepted wherever decoding is greedy, which exercises keeping verified positions.
        using var plain = GptModel.Open(Fixtures.Folder(fixture));
        using var drafted = GptModel.Open(Fixtures.Folder(fixture), new GptModelOptions { DraftModelFolder = Fixtures.Folder(fixture) });
        drafted.Engine.ForcedProposals = 4;
        var expected = plain.Generate(Prompts, Options(sample, 0), 2);
        var actual = drafted.Generate(Prompts, Options(sample, 0), 2);
        Assert.Equal(expected.Select(r => r.TokenIds), actual.Select(r => r.TokenIds));
        Assert.Equal(plain.Generate(Prompts[1], Options(sample, 0)).TokenIds, drafted.Generate(Prompts[1], Options(sample, 0)).TokenIds);
        var counters = drafted.Engine.SpeculationCounters;
        Assert.True(counters.Proposed > 0, $"{fixture}: nothing was proposed");
        if (sample) Assert.True(counters.Accepted < counters.Proposed, $"{fixture}: every sampled proposal was accepted");
        else Assert.True(counters.Accepted >= counters.Proposed * 9 / 10, $"{fixture}: {counters.Accepted} of {counters.Proposed} greedy proposals accepted");
    }

    [Fact]
    public void Prompt_lookup_keeps_stop_strings_constraints_eos_and_log_probabilities_exact()
    {
        using var plain = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        using var speculating = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        speculating.Engine.ForcedProposals = 6;
        var reference = plain.Generate(Prompts[0], Options(false, 0));
        string stop = reference.Text.Length > 12 ? reference.Text.Substring(8, 3) : "never";
        int eos = reference.TokenIds[5];
        var cases = new (GenerationOptions Options, OutputConstraint? Constraint)[]
        {
            (new GenerationOptions { MaxNewTokens = 30, EosTokenIds = [], StopStrings = [stop], RepetitionPenalty = 1f }, null),
            (new GenerationOptions { MaxNewTokens = 30, EosTokenIds = [eos], RepetitionPenalty = 1f }, null),
            (new GenerationOptions { MaxNewTokens = 30, EosTokenIds = [eos], MinNewTokens = 8, RepetitionPenalty = 1.3f, ReturnLogProbabilities = true }, null),
            (new GenerationOptions { MaxNewTokens = 30, EosTokenIds = [], NoRepeatNgramSize = 3, DoSample = true, Seed = 9 }, null),
            (new GenerationOptions { MaxNewTokens = 30, EosTokenIds = [], DoSample = true, Seed = 3, TopP = 0.8f }, OutputConstraint.Regex("( one| two| three)+")),
        };
        foreach (var (options, constraint) in cases)
        {
            options.Constraint = constraint;
            var expected = plain.Generate(Prompts, options, 2);
            var lookup = options.Clone();
            lookup.PromptLookupNumTokens = 8;
            var actual = speculating.Generate(Prompts, lookup, 2);
            Assert.Equal(expected.Select(r => r.TokenIds), actual.Select(r => r.TokenIds));
            Assert.Equal(expected.Select(r => r.Text), actual.Select(r => r.Text));
            Assert.Equal(expected.Select(r => r.FinishReason), actual.Select(r => r.FinishReason));
            if (options.ReturnLogProbabilities == true)
                for (int i = 0; i < expected.Count; i++)
                    Assert.Equal(expected[i].LogProbabilities!, actual[i].LogProbabilities!, (a, b) => Math.Abs(a - b) < 1e-3f);
        }
        Assert.True(speculating.Engine.SpeculationCounters.Accepted > 0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_draft_model_with_the_same_weights_changes_no_output_and_its_greedy_proposals_are_all_accepted(bool sample)
    {
        using var plain = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        using var drafted = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { DraftModelFolder = Fixtures.Folder("tiny-gpt2-a-pair") });
        drafted.Engine.ForcedProposals = 5;
        foreach (int batch in new[] { 1, 4 })
        {
            var expected = plain.Generate(Prompts, Options(sample, 0), batch);
            var actual = drafted.Generate(Prompts, Options(sample, 0), batch);
            Assert.Equal(expected.Select(r => r.TokenIds), actual.Select(r => r.TokenIds));
        }
        var counters = drafted.Engine.SpeculationCounters;
        Assert.True(counters.Proposed > 0);
        if (!sample) Assert.Equal(counters.Proposed, counters.Accepted);
        else Assert.True(counters.Accepted < counters.Proposed);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_draft_model_that_disagrees_and_has_a_shorter_context_changes_no_output(bool sample)
    {
        using var plain = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        // tiny-gpt2-b: other weights, 64 positions where tiny-gpt2-a has 128.
        using var drafted = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { DraftModelFolder = Fixtures.Folder("tiny-gpt2-b") });
        drafted.Engine.ForcedProposals = 3;
        var options = Options(sample, 0);
        options.MaxNewTokens = 60;
        var expected = plain.Generate(Prompts, options, 2);
        var actual = drafted.Generate(Prompts, options, 2);
        Assert.Equal(expected.Select(r => r.TokenIds), actual.Select(r => r.TokenIds));
        var counters = drafted.Engine.SpeculationCounters;
        Assert.True(counters.Proposed > 0);
        Assert.True(counters.Accepted < counters.Proposed);
    }

    [Fact]
    public void A_draft_model_with_another_tokenizer_is_refused_naming_both_folders()
    {
        var e = Assert.Throws<GptModelException>(() =>
            GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { DraftModelFolder = Fixtures.Folder("tiny-llama-builder") }));
        Assert.Contains("tiny-llama-builder", e.Message);
        Assert.Contains("tiny-gpt2-a", e.Message);
        Assert.Contains("does not share the tokenizer", e.Message);
    }

    [SharedDataFact("peer-models/onnxruntime-genai/tiny-random-lfm2-fp32")]
    public void A_draft_model_with_recurrent_states_is_refused_and_a_target_with_them_ignores_its_draft_with_a_note()
    {
        string lfm2 = SharedData.PathOf("peer-models/onnxruntime-genai/tiny-random-lfm2-fp32");
        var e = Assert.Throws<GptModelException>(() => GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { DraftModelFolder = lfm2 }));
        Assert.Contains("recurrent states", e.Message);
        Assert.Contains("tiny-random-lfm2-fp32", e.Message);
        var log = new List<string>();
        using var target = GptModel.Open(lfm2, new GptModelOptions { DraftModelFolder = Fixtures.Folder("tiny-gpt2-a"), Log = log.Add });
        Assert.Null(target.Engine.Draft);
        Assert.Contains(log, line => line.Contains("is not used") && line.Contains("recurrent states"));
    }

    [SharedDataFact("peer-models/onnxruntime-genai/tiny-random-lfm2-fp32")]
    public void A_model_with_recurrent_states_ignores_prompt_lookup_and_generates_as_without_it()
    {
        using var model = GptModel.Open(SharedData.PathOf("peer-models/onnxruntime-genai/tiny-random-lfm2-fp32"));
        model.Engine.ForcedProposals = 4;
        var prompt = (IReadOnlyList<int>)Enumerable.Range(10, 12).Concat(Enumerable.Range(10, 12)).ToArray();
        var plain = model.GenerateTokens([prompt], new GenerationOptions { MaxNewTokens = 8, EosTokenIds = [] }, 1);
        var lookup = model.GenerateTokens([prompt], new GenerationOptions { MaxNewTokens = 8, EosTokenIds = [], PromptLookupNumTokens = 10 }, 1);
        Assert.Equal(plain[0].TokenIds, lookup[0].TokenIds);
        Assert.Equal(0, model.Engine.SpeculationCounters.Proposed);
    }

    [Fact]
    public void Speculation_stays_off_with_a_note_where_a_verification_pass_rounds_differently_from_one_token_steps()
    {
        // Float32 kernels differ by rounding only: the probe finds the fixture exact.
        using (var fp32 = GptModel.Open(Fixtures.Folder("tiny-gpt2-a")))
        {
            Assert.True(SpeculationProbe.Difference(fp32.Engine.Backend, fp32.Info) <= SpeculationProbe.Tolerance);
            Assert.True(fp32.Engine.SpeculationExact);
        }
        // A model whose verification pass rounds differently (MatMulNBits with int8 dot products measured 8e-3 on
        // GPT-2 small's shape; whether a tiny fixture shows it depends on the CPU's kernels, so the figure is given).
        var log = new List<string>();
        using var model = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"), new GptModelOptions { Log = log.Add });
        model.Engine.ProbeDifferenceOverride = 8e-3;
        model.Engine.ForcedProposals = 4;
        var plain = model.Generate(Prompts, Options(true, 0), 1);
        var lookup = model.Generate(Prompts, Options(true, 10), 1);
        Assert.Equal(plain.Select(r => r.TokenIds), lookup.Select(r => r.TokenIds));
        Assert.False(model.Engine.SpeculationExact);
        Assert.Equal(0, model.Engine.SpeculationCounters.Proposed);
        Assert.Contains(log, line => line.Contains("Speculative decoding is off") && line.Contains("tiny-gpt2-a"));
    }

    [Fact]
    public void Prompt_lookup_proposes_what_followed_the_most_recent_match_of_the_longest_suffix()
    {
        // The 3-token suffix 7 8 9 occurred at 1..3 (followed by 4 5) and, more recently, at 6..8 (followed by 1 2).
        var tokens = new List<int> { 0, 7, 8, 9, 4, 5, 7, 8, 9, 1, 2, 3, 7, 8, 9 };
        int n = PromptLookup.Find(tokens, 4, out int start);
        Assert.Equal(9, start);
        Assert.Equal(4, n);
        Assert.Equal([1, 2, 3, 7], tokens.GetRange(start, n));
        // Only a 1-token match: 5 occurred once, followed by 6.
        n = PromptLookup.Find([5, 6, 1, 2, 5], 10, out start);
        Assert.Equal((1, 4), (start, n));
        Assert.Equal(0, PromptLookup.Find([1, 2, 3, 4], 10, out _));
        Assert.Equal(0, PromptLookup.Find([1, 2, 1, 2], 0, out _));
    }

    [Fact]
    public void The_step_cost_model_learns_a_line_from_measured_steps_and_clips_delayed_ones()
    {
        var costs = new StepCostModel();
        Assert.Equal(1, costs.Predict(1), 6);          // before any step: units of a one-token step
        Assert.Equal(3, costs.Predict(11), 6);         // a fifth of a step per extra token
        for (int i = 0; i < 200; i++)
        {
            costs.Add(1, 1.0);
            costs.Add(11, 2.8);
        }
        Assert.Equal(1.0, costs.Predict(1), 2);
        Assert.Equal(2.8, costs.Predict(11), 2);
        Assert.Equal(1.9, costs.Predict(6), 2);
        costs.Add(1, 1000);                              // another process took the cores for a second
        Assert.True(costs.Predict(1) < 1.1, $"one delayed step moved the prediction to {costs.Predict(1)}");
    }

    [Fact]
    public void Expected_tokens_per_step_follow_the_acceptance_rate()
    {
        Assert.Equal((1 - Math.Pow(0.9, 11)) / 0.1, Speculator.ExpectedTokens(0.9, 10), 9);
        Assert.Equal(11, Speculator.ExpectedTokens(1.0, 10));
        Assert.Equal(1, Speculator.ExpectedTokens(0.0, 10));
    }

    [Fact]
    public void The_speculation_length_adapts_to_what_a_longer_step_costs_and_to_the_acceptance_rate()
    {
        // Measured shapes (docs/serving.md): 11 tokens cost 1.4x one token on GPT-2 small in fp32, 3.6x in int4.
        double Fp32(int n) => 1 + 0.04 * (n - 1);
        double Int4(int n) => 1 + 0.26 * (n - 1);
        int copying = Speculator.ChooseLength([(0.9, 10)], Fp32, 0);
        int copyingInt4 = Speculator.ChooseLength([(0.9, 10)], Int4, 0);
        Assert.Equal(11, copying);
        Assert.InRange(copyingInt4, 3, 10);
        // Rarely accepted proposals do not pay where a longer step is dear, and pay a little where it is cheap.
        Assert.Equal(1, Speculator.ChooseLength([(0.1, 10)], Int4, 0));
        Assert.Equal(2, Speculator.ChooseLength([(0.1, 10)], Fp32, 0));
        // A row without proposals still costs its share of a longer step.
        Assert.True(Speculator.ChooseLength([(0.9, 10), (0, 0), (0, 0), (0, 0)], Int4, 0) < copyingInt4);
        // A draft pass that costs as much as a step leaves nothing to gain.
        Assert.Equal(1, Speculator.ChooseLength([(0.5, 10)], Fp32, 1.0));
    }
}
