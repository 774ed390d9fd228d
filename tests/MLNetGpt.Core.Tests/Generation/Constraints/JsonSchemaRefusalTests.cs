using Xunit;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>Every refused schema keyword or form is named with its JSON pointer.</summary>
public sealed class JsonSchemaRefusalTests
{
    [Theory]
    [InlineData("$recursiveRef", """{"type":"object","properties":{"a":{"$recursiveRef":"#"}}}""", "/properties/a")]
    [InlineData("contentEncodingX", """{"type":"object","properties":{"a/b":{"type":"string","contentEncodingX":"base64"}}}""", "/properties/a~1b")]
    [InlineData("dependencies", """{"type":"object","dependencies":{}}""", "the root")]
    [InlineData("additionalItems", """{"type":"array","items":{"allOf":[{"additionalItems":false}]}}""", "/items/allOf/0")]
    public void An_unsupported_keyword_is_named_with_its_json_pointer(string keyword, string schema, string pointer)
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.JsonSchema(schema));
        Assert.StartsWith($"JSON schema: keyword '{keyword}' at {pointer} is not supported (supported: type, enum, const, $ref,", e.Message);
    }

    [Theory]
    [InlineData("""{"type":"array","items":{"type":"string"},"uniqueItems":true}""", "JSON schema: keyword 'uniqueItems' (true) at the root is not supported: distinct items are not a regular language")]
    [InlineData("""{"properties":{"a":{"type":"number","multipleOf":1.5}}}""", "JSON schema: multipleOf 1.5 is not supported (only integers from 1 to 1000) at /properties/a/multipleOf.")]
    [InlineData("""{"type":"integer","multipleOf":0}""", "JSON schema: multipleOf must be a number above 0, not 0, at /multipleOf.")]
    [InlineData("""{"not":{"patternProperties":{"a":{"type":"string"}}}}""", "JSON schema: keyword 'patternProperties' inside not (or if) at /not/patternProperties is not supported: its complement is not expressible")]
    [InlineData("""{"if":{"additionalProperties":false},"then":{"type":"object"}}""", "JSON schema: keyword 'additionalProperties' inside not (or if) at /if/additionalProperties is not supported")]
    [InlineData("""{"oneOf":[{"type":"object"},{"patternProperties":{"x":{"type":"null"}}}]}""", "JSON schema: oneOf whose branches 0 and 1 may both match one value needs each branch's complement, and branch 1's is not expressible")]
    [InlineData("""{"$ref":"https://example.com/other.json"}""", "JSON schema: $ref 'https://example.com/other.json' points outside this document (https://example.com/other.json); remote references are not fetched at /$ref.")]
    [InlineData("""{"properties":{"a":{"$ref":"#/$defs/missing"}}}""", "JSON schema: $ref '#/$defs/missing' points at nothing in the document at /properties/a/$ref.")]
    [InlineData("""{"$ref":"#nowhere"}""", "JSON schema: $ref '#nowhere' names an anchor that this document does not define at /$ref.")]
    [InlineData("""{"type":"string","format":"hostname","maxLength":-1}""", "JSON schema: maxLength must be a non-negative integer, not -1, at /maxLength.")]
    [InlineData("""{"type":"number","minimum":0.5}""", "JSON schema: the number bound 0.5 is not an integer; number bounds must be integers so that decimals stay exact (use a multiple of 1 or type integer) at /minimum.")]
    [InlineData("""{"type":"strin"}""", "JSON schema: the type 'strin' is unknown (expected one of object, array, string, integer, number, boolean, null) at /type.")]
    [InlineData("""{"type":"string","pattern":"a(?=b)"}""", "JSON schema: pattern at /pattern: a lookahead (?= at position 1 is not supported; supported: literals, escapes, classes, '.', '|', groups, ?, *, +, {m,n}")]
    [InlineData("""{"anyOf":[]}""", "JSON schema: anyOf must be a non-empty array of schemas, not [], at /anyOf.")]
    [InlineData("""{"type":"array","items":[{"type":"string"}]}""", "JSON schema: items as an array (draft-07 tuples) is not supported; use prefixItems at /items.")]
    [InlineData("""{"type":"object","patternProperties":{"a":{},"b":{},"c":{},"d":{},"e":{}}}""", "JSON schema: more than 4 patterns of patternProperties in one object are not supported at /patternProperties.")]
    [InlineData("""{"type":"array","contains":{"type":"null"},"maxContains":17}""", "JSON schema: maxContains above 16 is not supported at /maxContains.")]
    [InlineData("""{"type":"object","properties":{"a":{}},"maxProperties":2}""", "JSON schema: minProperties/maxProperties together with declared or required properties is not supported at the root.")]
    [InlineData("""{"anyOf":[{"type":"string"},{"type":"null"}],"oneOf":[{"type":"string"},{"type":"null"}],"allOf":[{"anyOf":[{"type":"string"},{"type":"null"},{"type":"boolean"},{"type":"object"},{"type":"array"},{"type":"number"},{"maxLength":2},{"minLength":5},{"type":"integer"}]},{"anyOf":[{"type":"string"},{"type":"null"},{"type":"boolean"},{"type":"object"},{"type":"array"},{"type":"number"},{"maxLength":2},{"minLength":5},{"type":"integer"}]}]}""", "JSON schema: the schema expands to more than 64 alternatives")]
    [InlineData("""{"enum":["a"],"type":"integer"}""", "JSON schema: no JSON value satisfies the schema at the root.")]
    [InlineData("""{"type":"integer","minimum":5,"maximum":4}""", "JSON schema: no JSON value satisfies the schema at the root.")]
    [InlineData("""[1]""", "JSON schema: a schema must be an object or a boolean, not an array, at the root.")]
    [InlineData("""{"type":"string",""", "JSON schema: the text is not JSON")]
    [InlineData("""false""", "JSON schema: no JSON value satisfies the schema at the root.")]
    [InlineData("""{"type":"array","items":{"type":"string","maxLength":2000},"maxItems":100}""", "JSON schema: the automaton would need")]
    [InlineData("""{"$schema":"http://localhost:1234/draft2020-12/metaschema-no-validation.json","type":"number"}""", "JSON schema: $schema 'http://localhost:1234/draft2020-12/metaschema-no-validation.json' at the root names a metaschema other than the standard drafts' (json-schema.org/draft/2020-12/schema, json-schema.org/draft/2019-09/schema, json-schema.org/draft-07/schema, json-schema.org/draft-06/schema, json-schema.org/draft-04/schema): its vocabularies are unknown, and nothing is fetched.")]
    [InlineData("""{"type":"object","properties":{"a":{"$schema":7}}}""", "JSON schema: $schema 7 at /properties/a names a metaschema other than the standard drafts'")]
    public void An_unsupported_or_contradictory_form_is_named_with_its_json_pointer(string schema, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.JsonSchema(schema));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void The_size_guard_names_the_keyword_that_makes_the_automaton_large()
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.JsonSchema("""{"type":"object","properties":{"a":{"type":"string","maxLength":100000}}}"""));
        Assert.Contains("maxLength 100000 at /properties/a makes it that large", e.Message);
    }

    [Fact]
    public void A_self_referencing_schema_is_written_down_to_the_documented_depth_and_no_deeper()
    {
        var constraint = OutputConstraint.JsonSchema("""{"type":"object","properties":{"next":{"$ref":"#"}},"additionalProperties":false}""");
        Assert.True(constraint.Accepts("""{"next":{"next":{"next":{"next":{}}}}}"""));         // four references deep
        Assert.False(constraint.Accepts("""{"next":{"next":{"next":{"next":{"next":{}}}}}}"""));  // a fifth is not generated
        Assert.Equal(4, MLNetGpt.Generation.Constraints.JsonSchemaCompiler.MaxRefDepth);
    }

    [Fact]
    public void A_reference_cycle_that_consumes_nothing_allows_no_value_instead_of_looping()
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.JsonSchema("""{"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}"""));
        Assert.Equal("JSON schema: no JSON value satisfies the schema at the root.", e.Message);
    }

    [Fact]
    public void References_that_double_at_every_level_are_refused_by_the_work_limit()
    {
        // Twenty references per level, four levels: 160,000 subschemas from a document of a few hundred characters.
        var fanOut = string.Join(",", Enumerable.Range(0, 20).Select(i => $"\"p{i}\":{{\"$ref\":\"#\"}}"));
        var schema = "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{" + fanOut + "}}";
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.JsonSchema(schema));
        Assert.Contains("the schema expands to more than 20,000 subschemas (through $ref)", e.Message);
    }

    [Theory]
    // Values of other types satisfy an object, number or string keyword, so its complement never holds them.
    [InlineData("""{"oneOf":[{"required":["foo"]},{"required":["bar"]}]}""", """{"foo":1}""", "100")]
    [InlineData("""{"not":{"minimum":3}}""", "2", "\"x\"")]
    [InlineData("""{"not":{"maxLength":2}}""", "\"abc\"", "null")]
    [InlineData("""{"if":{"minItems":1},"then":{"type":"array"},"else":{"const":0}}""", "[1]", "true")]
    [InlineData("""{"not":{"required":["a"]}}""", """{"b":1}""", "[]")]
    public void The_complement_of_a_keyword_holds_only_values_of_its_own_type(string schema, string accepted, string rejected)
    {
        var constraint = OutputConstraint.JsonSchema(schema);
        Assert.True(constraint.Accepts(accepted));
        Assert.False(constraint.Accepts(rejected));
    }

    [Fact]
    public void Annotations_are_ignored()
    {
        var plain = OutputConstraint.JsonSchema("""{"type":"boolean"}""");
        var annotated = OutputConstraint.JsonSchema("""{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"x","title":"t","description":"d","examples":[true],"default":false,"$comment":"c","type":"boolean"}""");
        Assert.True(annotated.Accepts("true"));
        Assert.True(annotated.Accepts("false"));
        Assert.False(annotated.Accepts("null"));
        Assert.Equal(plain.Automaton.MinBytesToAccept(plain.Automaton.Start), annotated.Automaton.MinBytesToAccept(annotated.Automaton.Start));
    }
}
