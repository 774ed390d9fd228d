using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Xunit;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>The JSON schema automaton against JsonSchema.Net 8.0.5 and System.Text.Json.</summary>
public sealed class JsonSchemaConstraintTests
{
    public const string Nested = """
        {"type":"object","properties":{
          "name":{"type":"string","maxLength":12},
          "age":{"type":"integer","minimum":0,"maximum":150},
          "address":{"type":"object","properties":{
             "city":{"type":"string","minLength":1,"maxLength":8},
             "zip":{"type":"string","pattern":"^[0-9]{5}$"},
             "code":{"type":"string","pattern":"[A-Z]{2}"}},
           "required":["city"]},
          "note":{"type":["string","null"]}},
         "required":["name","age"]}
        """;

    public const string Arrays = """
        {"type":"array","minItems":1,"maxItems":4,"items":{"type":"object","properties":{
          "id":{"type":"integer","exclusiveMinimum":-5,"exclusiveMaximum":1000},
          "tags":{"type":"array","items":{"enum":["a","b","c d"]},"maxItems":3}},
         "required":["id","tags"]}}
        """;

    public const string Enums = """
        {"enum":["red","green",1,-2.5,null,true,{"k":[1,2],"q":"quote\"d\\"},["x"],"tab\tnew\nline","ünï😀"]}
        """;

    public const string Numbers = """
        {"type":"object","properties":{
          "x":{"type":"number","minimum":-10,"maximum":10},
          "y":{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1},
          "z":{"type":"number"},
          "n":{"type":"integer","minimum":-1234,"maximum":98765},
          "m":{"type":"integer","exclusiveMaximum":-7},
          "p":{"type":"integer","minimum":12.5}},
         "required":["x","y","z","n","m","p"]}
        """;

    public const string Formats = """
        {"type":"object","properties":{
          "d":{"type":"string","format":"date"},
          "t":{"type":"string","format":"time"},
          "dt":{"type":"string","format":"date-time"},
          "u":{"type":"string","format":"uuid"},
          "e":{"type":"string","format":"email"},
          "ip":{"type":"string","format":"ipv4"}},
         "required":["d","t","dt","u","e","ip"]}
        """;

    public const string Alternatives = """
        {"anyOf":[
          {"type":"string","enum":["none",3]},
          {"type":"array","prefixItems":[{"type":"boolean"},{"type":["integer","null"]}],"items":{"type":"string","maxLength":3},"maxItems":5},
          {"type":"object","properties":{"ok":{"const":true},"why":{"type":"string","minLength":2}},"required":["ok"]}]}
        """;

    public static readonly TheoryData<string, string> Schemas = new()
    {
        { "nested", Nested }, { "arrays", Arrays }, { "enums", Enums }, { "numbers", Numbers }, { "formats", Formats }, { "alternatives", Alternatives },
    };

    private static readonly EvaluationOptions Validation = new() { RequireFormatValidation = true };

    private static bool Valid(JsonSchema schema, string text)
    {
        using var document = JsonDocument.Parse(text);
        return schema.Evaluate(document.RootElement, Validation).IsValid;
    }

    [Theory]
    [MemberData(nameof(Schemas))]
    public void Random_walks_are_valid_json_that_json_schema_net_accepts(string name, string schemaJson)
    {
        // Closed objects against the schema with additionalProperties false added; open ones (the default) against the schema itself.
        RandomWalksAreValid(name, OutputConstraint.JsonSchema(schemaJson, closeObjects: true), JsonSchema.FromText(ConstraintTestKit.ForValidator(schemaJson)));
        RandomWalksAreValid(name + " (open)", OutputConstraint.JsonSchema(schemaJson), JsonSchema.FromText(schemaJson));
    }

    private static void RandomWalksAreValid(string name, OutputConstraint constraint, JsonSchema validator)
    {
        var random = new Random(name.Length * 31);
        int checkedCount = 0;
        for (int i = 0; i < 1500; i++)
        {
            string text = Encoding.UTF8.GetString(ConstraintTestKit.RandomWalk(constraint.Automaton, random, softLength: 120, stop: 0.3));
            var node = JsonNode.Parse(text);          // throws when the text is not JSON
            if (!ConstraintTestKit.LengthsAgree(node)) continue;   // JsonSchema.Net counts text elements, the schema code points
            Assert.True(Valid(validator, text), $"{name}: JsonSchema.Net rejects the generated {text}");
            Assert.DoesNotContain('\n', text.Where((c, k) => !InsideString(text, k)));
            checkedCount++;
        }
        // Random code points include combining marks, where JsonSchema.Net's text-element count differs: those are skipped.
        Assert.True(checkedCount > 700, $"{name}: only {checkedCount} walks checked");
    }

    [Theory]
    [InlineData("nested", Nested)]
    [InlineData("arrays", Arrays)]
    [InlineData("enums", Enums)]
    [InlineData("numbers", Numbers)]
    [InlineData("alternatives", Alternatives)]
    public void On_canonical_mutated_documents_the_automaton_agrees_with_json_schema_net(string name, string schemaJson)
    {
        MutatedDocumentsAgree(name, OutputConstraint.JsonSchema(schemaJson, closeObjects: true), JsonSchema.FromText(ConstraintTestKit.ForValidator(schemaJson)));
        MutatedDocumentsAgree(name + " (open)", OutputConstraint.JsonSchema(schemaJson), JsonSchema.FromText(schemaJson));
    }

    private static void MutatedDocumentsAgree(string name, OutputConstraint constraint, JsonSchema validator)
    {
        var random = new Random(name.Length * 101);
        int compared = 0, valid = 0;
        for (int i = 0; i < 3000; i++)
        {
            string walk = Encoding.UTF8.GetString(ConstraintTestKit.RandomWalk(constraint.Automaton, random, softLength: 120, stop: 0.3));
            var mutated = ConstraintTestKit.MutateValue(JsonNode.Parse(walk), random);
            if (!ConstraintTestKit.LengthsAgree(mutated) || ConstraintTestKit.Canonical(mutated) is not { } text) continue;
            bool expected = Valid(validator, text);
            // Documented generation subset: an integer without bounds is written with at most 9 digits.
            if (expected && !constraint.Accepts(text) && System.Text.RegularExpressions.Regex.IsMatch(text, @"(?<![0-9.eE])-?[0-9]{10,}(?![0-9.eE])")) continue;
            Assert.True(expected == constraint.Accepts(text),
                $"{name}: JsonSchema.Net says {(expected ? "valid" : "invalid")}, the automaton the opposite, for {text}");
            compared++;
            if (expected) valid++;
        }
        Assert.True(compared > 1200, $"{name}: only {compared} documents compared");
        Assert.InRange(valid, compared / 50, compared - compared / 10);
    }

    [Theory]
    [InlineData("\"2024-02-29\"", "date", true)]
    [InlineData("\"2023-02-29\"", "date", false)]
    [InlineData("\"2000-02-29\"", "date", true)]
    [InlineData("\"1900-02-29\"", "date", false)]
    [InlineData("\"2023-04-31\"", "date", false)]
    [InlineData("\"0000-01-01\"", "date", false)]
    [InlineData("\"23:59:59.123456789+05:30\"", "time", true)]
    [InlineData("\"24:00:00Z\"", "time", false)]
    [InlineData("\"12:00:00\"", "time", false)]
    [InlineData("\"2024-01-01T00:00:00Z\"", "date-time", true)]
    [InlineData("\"0123abcd-0000-ABCD-0000-00000000000f\"", "uuid", true)]
    [InlineData("\"0123abcd-0000-ABCD-0000-00000000000\"", "uuid", false)]
    [InlineData("\"a.b+c@x-y.example.com\"", "email", true)]
    [InlineData("\"a..b@example.com\"", "email", false)]
    [InlineData("\"a@b.c1\"", "email", false)]
    [InlineData("\"255.0.10.1\"", "ipv4", true)]
    [InlineData("\"256.0.0.1\"", "ipv4", false)]
    [InlineData("\"01.0.0.1\"", "ipv4", false)]
    public void Formats_accept_what_json_schema_net_accepts_on_typical_and_edge_values(string text, string format, bool expected)
    {
        string schemaJson = $$"""{"type":"string","format":"{{format}}"}""";
        Assert.Equal(expected, Valid(JsonSchema.FromText(schemaJson), text));
        Assert.Equal(expected, OutputConstraint.JsonSchema(schemaJson).Accepts(text));
    }

    [Theory]
    [InlineData("https://json-schema.org/draft/2020-12/schema")]
    [InlineData("http://json-schema.org/draft-07/schema#")]
    [InlineData("https://json-schema.org/draft/2019-09/schema")]
    [InlineData("http://json-schema.org/draft-04/schema#")]
    public void The_standard_metaschemas_are_accepted_in_schema(string dialect)
    {
        var constraint = OutputConstraint.JsonSchema($$"""{"$schema":"{{dialect}}","type":"integer","minimum":1,"maximum":3}""");
        Assert.True(constraint.Accepts("2"));
        Assert.False(constraint.Accepts("4"));
    }

    [Fact]
    public void Under_unevaluated_properties_a_value_that_matches_several_any_of_branches_has_all_their_members_evaluated()
    {
        const string schema = """
            {"type":"object","properties":{"foo":{"type":"string"}},"anyOf":[
              {"properties":{"bar":{"const":"bar"}},"required":["bar"]},
              {"properties":{"baz":{"const":"baz"}},"required":["baz"]}],
             "unevaluatedProperties":false}
            """;
        var constraint = OutputConstraint.JsonSchema(schema);
        var validator = JsonSchema.FromText(schema);
        foreach (string text in new[] { """{"foo":"x","bar":"bar"}""", """{"foo":"x","bar":"bar","baz":"baz"}""", """{"baz":"baz"}""",
                     """{"foo":"x","bar":"bar","baz":"no"}""", """{"bar":"bar","qux":1}""", """{"foo":"x"}""" })
            Assert.True(Valid(validator, text) == constraint.Accepts(text), $"JsonSchema.Net says {Valid(validator, text)} for {text}");
        Assert.True(constraint.Accepts("""{"foo":"x","bar":"bar","baz":"baz"}"""));
        RandomWalksAreValid("anyOf under unevaluatedProperties", constraint, validator);
    }

    [Fact]
    public void Under_unevaluated_items_an_any_of_branch_that_evaluates_every_item_counts_beside_a_true_branch()
    {
        const string schema = """{"unevaluatedItems":{"type":"boolean"},"anyOf":[{"items":{"type":"string"}},true]}""";
        var constraint = OutputConstraint.JsonSchema(schema);
        var validator = JsonSchema.FromText(schema);
        foreach (string text in new[] { """[true,false]""", """["yes","no"]""", """["yes",false]""", """[]""", """[1]""" })
            Assert.True(Valid(validator, text) == constraint.Accepts(text), $"JsonSchema.Net says {Valid(validator, text)} for {text}");
        Assert.True(constraint.Accepts("""["yes","no"]"""));
        RandomWalksAreValid("anyOf under unevaluatedItems", constraint, validator);
    }

    [Fact]
    public void The_complement_of_integer_holds_the_numbers_with_a_fraction()
    {
        const string schema = """{"oneOf":[{"type":"integer"},{"minimum":2}]}""";
        var constraint = OutputConstraint.JsonSchema(schema);
        var validator = JsonSchema.FromText(schema);
        foreach (string text in new[] { "1", "2.5", "3", "1.5", "2", "-4", "7.25", "\"a\"" })
            Assert.True(Valid(validator, text) == constraint.Accepts(text), $"JsonSchema.Net says {Valid(validator, text)} for {text}");
        Assert.True(constraint.Accepts("2.5"));
        Assert.False(constraint.Accepts("3"));
        RandomWalksAreValid("oneOf of integer and minimum", constraint, validator);
        // not integer, alone: strings and fractions, never an integral number in any spelling the generator writes.
        var notInteger = OutputConstraint.JsonSchema("""{"not":{"type":"integer"}}""");
        Assert.True(notInteger.Accepts("0.5") && notInteger.Accepts("-12.75") && notInteger.Accepts("null"));
        Assert.False(notInteger.Accepts("1") || notInteger.Accepts("1.0") || notInteger.Accepts("1e2") || notInteger.Accepts("0"));
    }

    [Fact]
    public void Output_is_compact_with_properties_in_schema_order_and_optional_ones_present_or_absent()
    {
        var c = OutputConstraint.JsonSchema("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"boolean"},"c":{"type":"null"}},"required":["b"]}""");
        Assert.True(c.Accepts("""{"b":true}"""));
        Assert.True(c.Accepts("""{"a":1,"b":false,"c":null}"""));
        Assert.True(c.Accepts("""{"b":true,"c":null}"""));
        Assert.False(c.Accepts("""{"b":true,"a":1}"""));          // out of schema order
        Assert.False(c.Accepts("""{"a":1}"""));                   // required b missing
        Assert.False(c.Accepts("""{ "b":true}"""));               // whitespace
        Assert.True(c.Accepts("""{"b":true,"d":1}"""));           // additionalProperties absent: open, as JSON Schema says
        Assert.False(c.Accepts("""{"b":true,"d":1,"a":1}"""));    // undeclared properties come after the declared ones
        Assert.False(c.Accepts("""{"b":true,"a":2}"""));          // a declared name is never an extra one
        var closed = OutputConstraint.JsonSchema("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"boolean"},"c":{"type":"null"}},"required":["b"]}""", closeObjects: true);
        Assert.True(closed.ClosesObjects);
        Assert.True(closed.Accepts("""{"a":1,"b":false}"""));
        Assert.False(closed.Accepts("""{"b":true,"d":1}"""));     // closed: no undeclared property
        Assert.False(c.Accepts("""{"a":01,"b":true}"""));         // leading zero
        Assert.False(c.Accepts("""{"a":-0,"b":true}"""));         // negative zero
    }

    [Fact]
    public void Strings_allow_every_json_escape_but_no_raw_control_character()
    {
        var c = OutputConstraint.JsonSchema("""{"type":"string","maxLength":3}""");
        Assert.True(c.Accepts("\"\\\"\\\\\\/\""));
        Assert.True(c.Accepts("\"\\b\\f\\n\""));
        Assert.True(c.Accepts("\"\\r\\t\\u00E9\""));
        Assert.True(c.Accepts("\"\\ud83d\\ude00\""));     // a surrogate pair escape is one character
        Assert.False(c.Accepts("\"\\ud83d\""));             // a lone surrogate escape
        Assert.False(c.Accepts("\"a\nb\""));
        Assert.False(c.Accepts("\"\\x41\""));
        Assert.False(c.Accepts("\"abcd\""));
        Assert.True(c.Accepts("\"😀😀😀\""));              // lengths count code points
    }

    [Fact]
    public void Integer_bounds_are_exact_at_both_ends()
    {
        var c = OutputConstraint.JsonSchema("""{"type":"integer","minimum":-1234,"maximum":98765}""");
        for (int v = -3000; v <= 100_000; v++)
            Assert.True((v >= -1234 && v <= 98765) == c.Accepts(v.ToString(System.Globalization.CultureInfo.InvariantCulture)), v.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Number_bounds_are_exact_for_fractions()
    {
        var c = OutputConstraint.JsonSchema("""{"type":"number","exclusiveMinimum":-2,"maximum":3}""");
        string[] inside = ["-1.999", "-1", "0", "0.5", "2.9999", "3", "3.000", "-0.5"];
        string[] outside = ["-2", "-2.0", "-2.5", "3.0001", "4", "-0", "-0.0", "1e0", "03"];
        foreach (var t in inside) Assert.True(c.Accepts(t), t);
        foreach (var t in outside) Assert.False(c.Accepts(t), t);
    }

    private static bool InsideString(string text, int index)
    {
        bool inside = false;
        for (int i = 0; i < index; i++)
        {
            if (text[i] == '\\' && inside) i++;
            else if (text[i] == '"') inside = !inside;
        }
        return inside;
    }
}
