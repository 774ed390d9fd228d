using Xunit;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>Every refused schema keyword or form is named with its JSON pointer.</summary>
public sealed class JsonSchemaRefusalTests
{
    private const string Supported = "(supported: type, enum, const, anyOf, properties, required, additionalProperties: false, items, prefixItems, "
        + "minItems, maxItems, minLength, maxLength, pattern, format, minimum, maximum, exclusiveMinimum, exclusiveMaximum; annotations ignored).";

    [Theory]
    [InlineData("patternProperties", """{"type":"object","properties":{"a":{"type":"object","patternProperties":{"x":{}}}}}""", "/properties/a")]
    [InlineData("$ref", """{"type":"object","properties":{"a":{"$ref":"#/$defs/x"}}}""", "/properties/a")]
    [InlineData("$defs", """{"$defs":{},"type":"string"}""", "the root")]
    [InlineData("oneOf", """{"oneOf":[{"type":"string"}]}""", "the root")]
    [InlineData("allOf", """{"type":"array","items":{"allOf":[]}}""", "/items")]
    [InlineData("not", """{"not":{"type":"string"}}""", "the root")]
    [InlineData("multipleOf", """{"type":"integer","multipleOf":3}""", "the root")]
    [InlineData("uniqueItems", """{"type":"array","items":{"type":"string"},"uniqueItems":true}""", "the root")]
    [InlineData("if", """{"if":{},"then":{}}""", "the root")]
    [InlineData("dependentRequired", """{"type":"object","dependentRequired":{}}""", "the root")]
    [InlineData("minProperties", """{"type":"object","minProperties":1}""", "the root")]
    [InlineData("contains", """{"type":"array","items":{"type":"null"},"contains":{}}""", "the root")]
    [InlineData("propertyNames", """{"type":"object","propertyNames":{}}""", "the root")]
    [InlineData("contentEncoding", """{"type":"object","properties":{"a/b":{"type":"string","contentEncoding":"base64"}}}""", "/properties/a~1b")]
    public void An_unsupported_keyword_is_named_with_its_json_pointer(string keyword, string schema, string pointer)
    {
        var e = Assert.Throws<ArgumentException>(() => OutputConstraint.JsonSchema(schema));
        Assert.Equal($"JSON schema: keyword '{keyword}' at {pointer} is not supported {Supported}", e.Message);
    }

    [Theory]
    [InlineData("""{"type":"object","additionalProperties":true}""", "JSON schema: additionalProperties other than false (true) is not supported (absent counts as false) at /additionalProperties.")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"object","additionalProperties":{"type":"string"}}}}""", "additionalProperties other than false ({\"type\":\"string\"}) is not supported (absent counts as false) at /properties/a/additionalProperties.")]
    [InlineData("""{"type":"object","properties":{"a":true}}""", "JSON schema: the schema 'true' (any value) at /properties/a is not supported")]
    [InlineData("""{"title":"x"}""", "JSON schema: a schema without 'type', 'enum', 'const' or 'anyOf' (any value) is not supported; give a type at the root.")]
    [InlineData("""{"type":"array"}""", "JSON schema: an array without 'items' or 'prefixItems' (items of any value) is not supported at the root.")]
    [InlineData("""{"type":"array","items":[{"type":"string"}]}""", "JSON schema: items as an array (draft-07 tuples) is not supported; use prefixItems at /items.")]
    [InlineData("""{"type":"string","format":"hostname"}""", "JSON schema: the format 'hostname' is not supported (supported: date, time, date-time, uuid, email, ipv4) at /format.")]
    [InlineData("""{"type":"number","minimum":0.5}""", "JSON schema: the number bound 0.5 is not an integer; number bounds must be integers so that decimals stay exact (use a multiple of 1 or type integer) at /minimum.")]
    [InlineData("""{"type":"integer","minimum":5,"maximum":4}""", "JSON schema: no integer lies between the bounds (5 to 4) at the root.")]
    [InlineData("""{"type":"strin"}""", "JSON schema: the type 'strin' is unknown (expected one of object, array, string, integer, number, boolean, null) at /type.")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string"}},"required":["b"]}""", "JSON schema: the required property 'b' is not declared in properties (its value's schema is needed) at /required.")]
    [InlineData("""{"type":"string","pattern":"a(?=b)"}""", "JSON schema: pattern at /pattern: a lookahead (?= at position 1 is not supported; supported: literals, escapes, classes, '.', '|', groups, ?, *, +, {m,n}")]
    [InlineData("""{"type":"string","pattern":"a+","maxLength":3}""", "JSON schema: pattern together with minLength/maxLength is not supported (write the length into the pattern) at the root.")]
    [InlineData("""{"type":"string","maxLength":-1}""", "JSON schema: maxLength must be a non-negative integer, not -1, at /maxLength.")]
    [InlineData("""{"anyOf":[{"type":"string"}],"type":"string"}""", "JSON schema: anyOf cannot be combined with 'type' (put it inside each branch) at the root.")]
    [InlineData("""{"anyOf":[]}""", "JSON schema: anyOf must be a non-empty array of schemas, not [], at /anyOf.")]
    [InlineData("""{"enum":["a"],"type":"integer"}""", "JSON schema: no value of enum/const satisfies the other keywords at the root.")]
    [InlineData("""[1]""", "JSON schema: a schema must be an object or a boolean, not an array, at the root.")]
    [InlineData("""{"type":"string",""", "JSON schema: the text is not JSON")]
    [InlineData("""false""", "JSON schema: no JSON value satisfies the schema at the root.")]
    [InlineData("""{"type":"array","items":{"type":"string","maxLength":2000},"maxItems":100}""", "JSON schema: the automaton would need")]
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
