using System.Text.Json;
using Json.Schema;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Generation.Constraints;
using MLNetGpt.Tokenization;
using Xunit;
using DotNetRegex = System.Text.RegularExpressions.Regex;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>Token-level behaviour with the real GPT-2 vocabulary: simulated generations under the mask.</summary>
public sealed class CompiledConstraintTests
{
    private const int Eos = 50256;
    private static readonly Tokenizer Gpt2 = TiktokenTokenizer.CreateForModel("gpt2");
    private static readonly TokenByteTable Table = TokenByteTable.For(Gpt2, 50257);

    private const string PersonSchema = """
        {"type":"object","properties":{
          "name":{"type":"string","maxLength":20},
          "age":{"type":"integer","minimum":0,"maximum":120},
          "email":{"type":"string","format":"email"},
          "tags":{"type":"array","items":{"enum":["x","y","z w"]},"maxItems":3},
          "score":{"type":"number","minimum":-1,"maximum":1}},
         "required":["name","age"]}
        """;

    private const string ChoiceOrList = """
        {"anyOf":[{"enum":["yes","no"]},{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":4},{"type":"null"}]}
        """;

    /// <summary>
    /// Runs one generation picking uniformly random allowed tokens; checks the invariants on the
    /// way (EOS allowed exactly in accepting states, final states allow nothing but EOS, every
    /// allowed token advances) and returns the decoded text and whether it ended by EOS or IsFinal.
    /// </summary>
    private static string Generate(CompiledConstraint compiled, Random random, int budget)
    {
        var tokens = new List<int>();
        int state = compiled.Start;
        for (int remaining = budget; remaining > 0; remaining--)
        {
            var allowed = compiled.Allowed(state, remaining);
            Assert.False(allowed.IsEmpty, $"no token allowed after '{Gpt2.Decode(tokens)}'");
            Assert.Equal(compiled.IsAccepting(state), allowed.Contains(Eos));
            if (compiled.IsFinal(state))
            {
                Assert.Equal(1, allowed.Count);          // only EOS: the row must end
                break;
            }
            int token = Pick(allowed, random);
            if (token == Eos) break;
            int next = compiled.Advance(state, token);
            Assert.NotEqual(CompiledConstraint.Rejected, next);
            tokens.Add(token);
            state = next;
        }
        Assert.True(compiled.IsAccepting(state), $"the budget of {budget} ran out before '{Gpt2.Decode(tokens)}' was complete");
        return Gpt2.Decode(tokens);
    }

    private static int Pick(TokenSet allowed, Random random)
    {
        if (allowed.Count > allowed.VocabularySize / 16)
        {
            while (true)
            {
                int candidate = random.Next(allowed.VocabularySize);
                if (allowed.Contains(candidate)) return candidate;
            }
        }
        var ids = allowed.ToArray();
        return ids[random.Next(ids.Length)];
    }

    [Fact]
    public void Every_simulated_generation_under_a_choice_mask_is_one_of_the_choices()
    {
        string[] choices = ["positive", "negative", "neutral", "no", "none", "日本語", "😀 emoji"];
        var compiled = CompiledConstraint.For(OutputConstraint.Choices(choices), Table, [Eos]);
        var random = new Random(1);
        var seen = new HashSet<string>();
        for (int i = 0; i < 1000; i++)
        {
            string text = Generate(compiled, random, budget: 12);
            Assert.Contains(text, choices);
            seen.Add(text);
        }
        Assert.Equal(choices.Length, seen.Count);
    }

    [Theory]
    [InlineData(@"\d{3}-[A-Z]{2}(-\d+)?", @"[0-9]{3}-[A-Z]{2}(-[0-9]+)?", 16)]
    [InlineData(@"(yes|no|maybe)[.!]?", @"(yes|no|maybe)[.!]?", 4)]
    [InlineData(@"[a-z ]{10,30}", @"[a-z ]{10,30}", 8)]
    [InlineData(@"[é日😀]{2,5}x", @"(?:é|日|😀){2,5}x", 24)]
    public void Every_simulated_generation_under_a_regex_mask_matches_dotnet_regex(string pattern, string dotNetPattern, int budget)
    {
        var compiled = CompiledConstraint.For(OutputConstraint.Regex(pattern), Table, [Eos]);
        var reference = new DotNetRegex("^(?:" + dotNetPattern + @")\z");
        var random = new Random(pattern.Length);
        for (int i = 0; i < 1000; i++)
        {
            string text = Generate(compiled, random, budget);
            Assert.Matches(reference, text);
        }
    }

    [Theory]
    [InlineData(PersonSchema, 60)]
    [InlineData(ChoiceOrList, 20)]
    public void Every_simulated_generation_under_a_schema_mask_is_json_that_json_schema_net_accepts(string schemaJson, int budget)
    {
        var compiled = CompiledConstraint.For(OutputConstraint.JsonSchema(schemaJson, closeObjects: true), Table, [Eos]);
        var validator = JsonSchema.FromText(ConstraintTestKit.ForValidator(schemaJson));
        var options = new EvaluationOptions { RequireFormatValidation = true };
        var random = new Random(budget);
        for (int i = 0; i < 1000; i++)
        {
            string text = Generate(compiled, random, budget);
            using var document = JsonDocument.Parse(text);
            Assert.True(validator.Evaluate(document.RootElement, options).IsValid, $"JsonSchema.Net rejects {text}");
        }
    }

    [Fact]
    public void A_budget_equal_to_the_shortest_completion_still_completes()
    {
        var compiled = CompiledConstraint.For(OutputConstraint.Regex("[a-z]{6}"), Table, [Eos]);
        Assert.True(compiled.CanForceCompletion);
        Assert.Equal(6, compiled.MinBytesToAccept(compiled.Start));
        var random = new Random(3);
        for (int i = 0; i < 200; i++) Assert.Matches("^[a-z]{6}$", Generate(compiled, random, budget: 6));
        // Without a short budget, a six-letter token is allowed at once; with a budget of one token, only such tokens are.
        int sixLetters = Enumerable.Range(0, 50256).First(id => Table.Bytes(id).Length == 6 && Table.Bytes(id).IndexOfAnyExceptInRange((byte)'a', (byte)'z') < 0);
        Assert.True(compiled.Allowed(compiled.Start, 100).Contains(sixLetters));
        var lastChance = compiled.Allowed(compiled.Start, 1);
        Assert.True(lastChance.Contains(sixLetters));
        Assert.All(lastChance.ToArray(), id => Assert.Equal(6, Table.Bytes(id).Length));
    }

    [Fact]
    public void Eos_is_allowed_only_once_the_text_is_complete_and_advance_refuses_it()
    {
        var compiled = CompiledConstraint.For(OutputConstraint.Regex("ab?"), Table, [Eos]);
        Assert.False(compiled.Allowed(compiled.Start, 10).Contains(Eos));
        int a = compiled.Advance(compiled.Start, Gpt2.EncodeToIds("a").Single());
        Assert.True(compiled.IsAccepting(a));
        Assert.False(compiled.IsFinal(a));
        Assert.True(compiled.Allowed(a, 10).Contains(Eos));
        int ab = compiled.Advance(a, Gpt2.EncodeToIds("b").Single());
        Assert.True(compiled.IsFinal(ab));
        Assert.Equal([Eos], compiled.Allowed(ab, 10).ToArray());
        Assert.Equal(CompiledConstraint.Rejected, compiled.Advance(a, Eos));
        Assert.Equal(CompiledConstraint.Rejected, compiled.Advance(compiled.Start, Gpt2.EncodeToIds("x").Single()));
    }

    [Fact]
    public void Special_tokens_are_never_allowed_as_text()
    {
        var compiled = CompiledConstraint.For(OutputConstraint.Regex(@"<\|endoftext\|>"), Table, []);
        Assert.False(compiled.Allowed(compiled.Start, 50).Contains(Eos));
        Assert.Equal(CompiledConstraint.Rejected, compiled.Advance(compiled.Start, Eos));
    }

    [Fact]
    public void Concurrent_lookups_give_the_sets_a_single_thread_gives()
    {
        var constraint = OutputConstraint.JsonSchema(PersonSchema);
        var walks = Enumerable.Range(0, 64).Select(i => ConstraintTestKit.RandomWalk(constraint.Automaton, new Random(i), 80)).ToArray();
        var table = TokenByteTable.For(TiktokenTokenizer.CreateForModel("gpt2"), 50257);
        var sequential = new CompiledConstraint(constraint, table, [Eos]);
        var shared = new CompiledConstraint(constraint, table, [Eos]);
        var states = walks.SelectMany(w => Prefixes(constraint.Automaton, w)).Distinct().Take(300).ToArray();
        var expected = states.Select(s => sequential.Allowed(s, 1000).ToArray()).ToArray();
        var actual = new int[states.Length][];
        Parallel.For(0, states.Length * 4, new ParallelOptions { MaxDegreeOfParallelism = 8 }, k => actual[k % states.Length] = shared.Allowed(states[k % states.Length], 1000).ToArray());
        for (int i = 0; i < states.Length; i++) Assert.Equal(expected[i], actual[i]);
    }

    private static IEnumerable<int> Prefixes(ByteDfa dfa, byte[] bytes)
    {
        int state = dfa.Start;
        yield return state;
        foreach (byte b in bytes)
        {
            state = dfa.Next(state, b);
            yield return state;
        }
    }

    [Fact]
    public void Compiled_forms_are_cached_by_constraint_content_vocabulary_and_eos_ids()
    {
        var first = CompiledConstraint.For(OutputConstraint.Regex("[0-9]+"), Table, [Eos]);
        Assert.Same(first, CompiledConstraint.For(OutputConstraint.Regex("[0-9]+"), Table, [Eos]));
        Assert.NotSame(first, CompiledConstraint.For(OutputConstraint.Regex("[0-9]+"), Table, [Eos, 13]));
        Assert.NotSame(first, CompiledConstraint.For(OutputConstraint.Regex("[0-9]*"), Table, [Eos]));
    }

    [Fact]
    public void The_compile_cache_starts_over_instead_of_growing_with_every_distinct_constraint()
    {
        var table = TokenByteTable.For(TiktokenTokenizer.CreateForModel("gpt2"), 50257);
        var first = CompiledConstraint.For(OutputConstraint.Choices(["c0"]), table, [Eos]);
        for (int i = 1; i < 256; i++) CompiledConstraint.For(OutputConstraint.Choices([$"c{i}"]), table, [Eos]);
        Assert.Same(first, CompiledConstraint.For(OutputConstraint.Choices(["c0"]), table, [Eos]));
        CompiledConstraint.For(OutputConstraint.Choices(["one more"]), table, [Eos]);
        Assert.NotSame(first, CompiledConstraint.For(OutputConstraint.Choices(["c0"]), table, [Eos]));
    }

    [Fact]
    public void A_sentencepiece_first_token_may_carry_the_dummy_prefix_space_the_decoder_drops()
    {
        var (tokenizer, table) = TokenByteTableTests.SentencePieceFixture();
        var compiled = new CompiledConstraint(OutputConstraint.Choices(["the cat"]), table, [2]);
        Assert.False(compiled.CanForceCompletion);
        var allowed = compiled.Allowed(compiled.Start, 10);
        Assert.True(allowed.Contains(11));                 // "▁the" at the very start reads "the"
        Assert.False(allowed.Contains(3));                  // "▁" alone would read as nothing
        int state = compiled.Advance(compiled.Start, 11);
        Assert.True(compiled.Allowed(state, 10).Contains(14));   // then "▁cat" reads " cat"
        state = compiled.Advance(state, 14);
        Assert.True(compiled.IsFinal(state));
        Assert.Equal("the cat", tokenizer.Decode([11, 14]));
    }
}
