using Xunit;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>The public constraint type: validation, equality and the persisted form.</summary>
public sealed class OutputConstraintTests
{
    [Fact]
    public void Choices_accept_exactly_the_listed_strings_including_prefixes_of_each_other()
    {
        var c = OutputConstraint.Choices(["no", "none", "yes"]);
        Assert.Equal(OutputConstraintKind.Choices, c.Kind);
        Assert.Equal(["no", "none", "yes"], c.ChoiceList!);
        Assert.Null(c.Pattern);
        Assert.Null(c.Schema);
        foreach (var text in new[] { "no", "none", "yes" }) Assert.True(c.Accepts(text), text);
        foreach (var text in new[] { "", "n", "non", "nonee", "yes ", "Yes" }) Assert.False(c.Accepts(text), text);
    }

    [Fact]
    public void An_empty_choice_list_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.Choices([]));
        Assert.StartsWith("choices: at least one choice is needed; the list is empty.", e.Message);
    }

    [Fact]
    public void An_empty_choice_is_refused_naming_its_index()
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.Choices(["a", ""]));
        Assert.StartsWith("choices: the choice at index 1 is empty; every choice needs at least one character.", e.Message);
    }

    [Fact]
    public void A_repeated_choice_is_refused_naming_both_indices()
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.Choices(["a", "b", "a"]));
        Assert.StartsWith("choices: the choice at index 2 (\"a\") repeats the one at index 0.", e.Message);
    }

    [Fact]
    public void A_null_choice_or_list_is_refused()
    {
        var e = Assert.Throws<ArgumentNullException>(() => OutputConstraint.Choices(["a", null!]));
        Assert.StartsWith("choices: the choice at index 1 is null.", e.Message);
        Assert.Throws<ArgumentNullException>(() => OutputConstraint.Choices(null!));
        Assert.Throws<ArgumentNullException>(() => OutputConstraint.Regex(null!));
        Assert.Throws<ArgumentNullException>(() => OutputConstraint.JsonSchema(null!));
    }

    [Fact]
    public void A_choice_with_a_lone_surrogate_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.Choices(["ok", "\uD800x"]));
        Assert.StartsWith("choices: the choice at index 1 holds a lone surrogate, which UTF-8 text cannot hold.", e.Message);
    }

    [Fact]
    public void Constraints_are_equal_by_kind_and_content()
    {
        Assert.Equal(OutputConstraint.Choices(["a", "b"]), OutputConstraint.Choices(["a", "b"]));
        Assert.Equal(OutputConstraint.Choices(["a", "b"]).GetHashCode(), OutputConstraint.Choices(["a", "b"]).GetHashCode());
        Assert.NotEqual(OutputConstraint.Choices(["a", "b"]), OutputConstraint.Choices(["b", "a"]));
        Assert.Equal(OutputConstraint.Regex("a|b"), OutputConstraint.Regex("a|b"));
        Assert.NotEqual(OutputConstraint.Regex("a|b"), OutputConstraint.Regex("b|a"));
        Assert.NotEqual(OutputConstraint.Regex("a"), (object)OutputConstraint.Choices(["a"]));
        // The schema is compared as compact text, so whitespace does not matter.
        var spaced = OutputConstraint.JsonSchema("{ \"type\" : \"integer\" ,\n \"minimum\": 1 }");
        var compact = OutputConstraint.JsonSchema("{\"type\":\"integer\",\"minimum\":1}");
        Assert.Equal("{\"type\":\"integer\",\"minimum\":1}", spaced.Schema);
        Assert.Equal(compact, spaced);
        Assert.Equal(compact.GetHashCode(), spaced.GetHashCode());
        Assert.False(compact.Equals(null));
    }

    [Theory]
    [InlineData("{\"guided_choice\":[\"yes\",\"no \\\"really\\\"\",\"日本\"]}")]
    [InlineData("{\"guided_regex\":\"\\\\d{3}-[a-z]+\"}")]
    [InlineData("{\"guided_json\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^x+$\"}},\"required\":[\"a\"]}}")]
    public void The_persisted_form_uses_vllms_names_and_round_trips(string json)
    {
        var constraint = OutputConstraint.FromJson(json, "stage settings");
        var again = OutputConstraint.FromJson(constraint.ToJson(), "stage settings");
        Assert.Equal(constraint, again);
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(System.Text.Json.Nodes.JsonNode.Parse(json), System.Text.Json.Nodes.JsonNode.Parse(constraint.ToJson())),
            $"{constraint.ToJson()} differs from {json}");
        Assert.Equal(constraint.ToJson(), constraint.ToString());
    }

    [Theory]
    [InlineData("[1]", "model.json: an output constraint must be a JSON object with one of guided_choice (an array of strings), guided_regex (a string), guided_json (a schema object); found Array.")]
    [InlineData("{}", "model.json: an output constraint needs exactly one key, one of guided_choice (an array of strings), guided_regex (a string), guided_json (a schema object); found none.")]
    [InlineData("{\"guided_regex\":\"a\",\"guided_json\":{}}", "model.json: an output constraint needs exactly one key, one of guided_choice (an array of strings), guided_regex (a string), guided_json (a schema object); found guided_regex, guided_json.")]
    [InlineData("{\"guided_grammar\":\"x\"}", "model.json: the key 'guided_grammar' is not an output constraint; expected one of guided_choice (an array of strings), guided_regex (a string), guided_json (a schema object).")]
    [InlineData("{\"guided_regex\":3}", "model.json: the key 'guided_regex' holds Number, which does not fit; expected one of guided_choice (an array of strings), guided_regex (a string), guided_json (a schema object).")]
    [InlineData("{\"guided_choice\":[\"a\",1]}", "model.json: the key 'guided_choice' holds Array, which does not fit; expected one of guided_choice (an array of strings), guided_regex (a string), guided_json (a schema object).")]
    public void A_malformed_persisted_form_names_the_source_and_the_expected_keys(string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() => OutputConstraint.FromJson(json, "model.json"));
        Assert.Equal(expected, e.Message);
    }

    [Fact]
    public void A_persisted_form_that_is_not_json_names_the_source()
    {
        var e = Assert.Throws<FormatException>(() => OutputConstraint.FromJson("{\"guided_regex\":", "model.json"));
        Assert.StartsWith("model.json: the output constraint is not JSON (", e.Message);
    }

    [Fact]
    public void A_persisted_constraint_that_no_longer_compiles_reports_the_compiler_message()
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.FromJson("{\"guided_regex\":\"(a\"}", "model.json"));
        Assert.Equal("regex: the group opened at position 0 is not closed.", e.Message);
    }
}
