using System.Text;
using MLNetGpt.Generation.Constraints;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>
/// Regexes and JSON schemas from a request nested as deep as an attacker likes: refused in one line naming the input
/// and where, on a thread-pool thread and on a 256 KB stack, never a stack overflow.
/// </summary>
public sealed class ConstraintLimitTests
{
    private const int Million = 1_000_000;

    public static TheoryData<string> Threads => SmallStacks.Threads;

    private static string Repeat(string text, int times) => new StringBuilder(text.Length * times).Insert(0, text, times).ToString();

    private static ArgumentException Refusal(string thread, Action action) => Assert.IsType<ArgumentException>(SmallStacks.Run(thread, action));

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_million_nested_groups_are_refused_by_the_regex_parser_at_the_group_that_is_too_deep(string thread)
    {
        var pattern = Repeat("(", Million) + "a" + Repeat(")", Million);
        var e = Refusal(thread, () => RegexParser.Parse(pattern, "regex"));
        Assert.Equal("regex: groups nest more than 100 levels deep (the group at position 100).", e.Message);
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void Nested_groups_of_every_kind_are_refused_through_the_public_factory_on_small_stacks(string thread)
    {
        foreach (var open in new[] { "(", "(?:", "(?<n>", "(a|" })
        {
            var pattern = Repeat(open, 10_000) + "a" + Repeat(")", 10_000);
            var e = Refusal(thread, () => OutputConstraint.Regex(pattern));
            Assert.StartsWith("regex: groups nest more than 100 levels deep", e.Message);
        }
        var quantified = Repeat("(", 100_000) + "a" + Repeat(")*", 100_000);
        Assert.StartsWith("regex: groups nest more than 100 levels deep", Refusal(thread, () => OutputConstraint.Regex(quantified)).Message);
    }

    [Fact]
    public void A_pattern_or_schema_text_longer_than_a_million_characters_is_refused_before_it_is_parsed()
    {
        var pattern = Repeat("(", Million) + "a" + Repeat(")", Million);
        Assert.Equal("regex: the pattern is 2,000,001 characters long, more than the 1,048,576 accepted. (Parameter 'pattern')",
            Assert.Throws<ArgumentException>(() => OutputConstraint.Regex(pattern)).Message);
        var schema = Repeat("[", Million) + Repeat("]", Million);
        Assert.StartsWith("JSON schema: the text is 2,000,000 characters long, more than the 1,048,576 accepted.",
            Assert.Throws<ArgumentException>(() => OutputConstraint.JsonSchema(schema)).Message);
        var choices = Enumerable.Range(0, 200_000).Select(i => $"choice {i}").ToList();
        Assert.StartsWith("choices: the 200,000 choices hold 2,488,890 characters in all, more than the 1,048,576 accepted.",
            Assert.Throws<ArgumentException>(() => OutputConstraint.Choices(choices)).Message);
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_schema_document_nested_half_a_million_levels_is_refused_by_the_json_reader(string thread)
    {
        var schema = Repeat("[", 500_000) + Repeat("]", 500_000);
        var e = Refusal(thread, () => OutputConstraint.JsonSchema(schema));
        Assert.StartsWith("JSON schema: the document nests more than 256 levels deep", e.Message);
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void Schemas_nested_a_hundred_deep_are_refused_naming_the_pointer_where_the_limit_is_met(string thread)
    {
        var schema = Repeat("{\"type\":\"array\",\"items\":", 100) + "{\"type\":\"null\"}" + Repeat("}", 100);
        var e = Refusal(thread, () => OutputConstraint.JsonSchema(schema));
        Assert.Equal($"JSON schema: schemas nest more than 64 levels deep inside one another at {Repeat("/items", 64)}.", e.Message);
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_schema_pattern_with_half_a_million_nested_groups_is_refused_naming_the_keyword(string thread)
    {
        var schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"" + Repeat("(", 500_000) + "a" + Repeat(")", 500_000) + "\"}},\"required\":[\"a\"]}";
        var e = Refusal(thread, () => OutputConstraint.JsonSchema(schema));
        Assert.Equal("JSON schema: pattern at /properties/a/pattern: groups nest more than 100 levels deep (the group at position 100).", e.Message);
    }

    private static string ObjectSchema(int properties, bool required)
    {
        var declared = string.Join(",", Enumerable.Range(0, properties).Select(i => $"\"p{i}\":{{\"const\":{i % 10}}}"));
        var names = required ? ",\"required\":[" + string.Join(",", Enumerable.Range(0, properties).Select(i => $"\"p{i}\"")) + "]" : "";
        return "{\"type\":\"object\",\"properties\":{" + declared + "}" + names + "}";
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_hundred_optional_properties_compile_as_one_flat_choice_and_match_as_json_schema_says(string thread)
    {
        OutputConstraint? constraint = null;
        Assert.Null(SmallStacks.Run(thread, () => constraint = OutputConstraint.JsonSchema(ObjectSchema(100, required: false))));
        Assert.True(constraint!.Accepts("{}"));
        Assert.True(constraint.Accepts("{\"p3\":3,\"p99\":9}"));
        Assert.False(constraint.Accepts("{\"p99\":9,\"p3\":3}"));    // properties in the schema's order
        Assert.False(constraint.Accepts("{\"p3\":4}"));
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_thousand_properties_compile_required_or_optional_with_each_member_once_in_the_automaton(string thread)
    {
        OutputConstraint? required = null, optional = null;
        Assert.Null(SmallStacks.Run(thread, () => required = OutputConstraint.JsonSchema(ObjectSchema(1_000, required: true))));
        Assert.True(required!.Accepts("{" + string.Join(",", Enumerable.Range(0, 1_000).Select(i => $"\"p{i}\":{i % 10}")) + "}"));
        Assert.Null(SmallStacks.Run(thread, () => optional = OutputConstraint.JsonSchema(ObjectSchema(1_000, required: false), closeObjects: true)));
        Assert.True(optional!.Accepts("{\"p3\":3,\"p999\":9}"));
        Assert.False(optional.Accepts("{\"p999\":9,\"p3\":3}"));
        Assert.False(optional.Accepts("{\"p3\":3,}"));
        // A member is compiled once, not once per member before it: the automaton grows linearly with the count.
        Assert.InRange(optional.Automaton.StateCount, 1, ByteNfa.MaxStates);
    }

    [Fact]
    public void An_object_with_more_than_a_thousand_properties_is_refused_before_its_tree_is_built()
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.JsonSchema(ObjectSchema(30_000, required: true)));
        Assert.Equal("JSON schema: an object with more than 1,000 properties is not supported at /properties.", e.Message);
    }

    [Fact]
    public void PrefixItems_beyond_256_schemas_are_refused_naming_the_pointer()
    {
        var items = string.Join(",", Enumerable.Repeat("{\"type\":\"null\"}", 300));
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.JsonSchema("{\"type\":\"array\",\"prefixItems\":[" + items + "]}"));
        Assert.Equal("JSON schema: prefixItems with 300 schemas is not supported (at most 256) at /prefixItems.", e.Message);
        var allowed = OutputConstraint.JsonSchema("{\"type\":\"array\",\"prefixItems\":[" + string.Join(",", Enumerable.Repeat("{\"type\":\"null\"}", 256)) + "]}");
        Assert.True(allowed.Accepts("[" + string.Join(",", Enumerable.Repeat("null", 256)) + "]"));
    }

    [Fact]
    public void Arrays_of_any_length_nested_sixty_levels_compile_with_one_copy_of_the_item_per_level()
    {
        var schema = Repeat("{\"type\":\"array\",\"items\":", 60) + "{\"type\":\"null\"}" + Repeat("}", 60);
        var constraint = OutputConstraint.JsonSchema(schema);
        Assert.True(constraint.Accepts(Repeat("[", 60) + "null,null" + Repeat("]", 60)));
        Assert.False(constraint.Accepts(Repeat("[", 59) + "null" + Repeat("]", 59)));
    }

    [Fact]
    public void A_constraint_tree_deeper_than_its_backstop_cannot_be_built()
    {
        ConstraintNode node = ConstraintNode.Literal("a");
        var e = Assert.Throws<ConstraintDepthException>(() =>
        {
            for (var i = 0; i < ConstraintNode.MaxDepth + 10; i++) node = ConstraintNode.Repeat(node, 0, -1, "test");
        });
        Assert.Equal("the expression nests more than 2,000 levels deep", e.Message);
    }

    [Fact]
    public void A_cancelled_token_stops_a_schema_and_a_regex_compile_with_operation_canceled()
    {
        using var cancellation = new CancellationTokenSource();
        cancellation.Cancel();
        Assert.Throws<OperationCanceledException>(() => OutputConstraint.JsonSchema("{\"type\":\"string\"}", cancellation.Token));
        Assert.Throws<OperationCanceledException>(() => OutputConstraint.Regex(Repeat("ab", 5_000), cancellation.Token));
    }

    [Fact]
    public void Arrays_nested_sixty_levels_whose_item_schema_is_used_twice_per_level_are_sized_once_per_node_and_refused()
    {
        // Each array of at least two items refers to its item schema twice (first item, further items): 2^60 paths through
        // a graph of 60 nodes. Sizing it path by path ran for hours; sized per node it is refused at once.
        var schema = Repeat("{\"type\":\"array\",\"minItems\":2,\"items\":", 60) + "{\"type\":\"null\"}" + Repeat("}", 60);
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.JsonSchema(schema));
        Assert.StartsWith("JSON schema: the automaton would need too many states, more than the limit of 100,000", e.Message);
    }
}
