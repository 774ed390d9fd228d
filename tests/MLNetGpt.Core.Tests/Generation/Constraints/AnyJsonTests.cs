using System.Text.Json;
using MLNetGpt.Generation.Constraints;
using Xunit;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>
/// The bounded-depth "any JSON value" language behind the chat client's JSON response format: System.Text.Json is
/// the independent judge of what is JSON; the automaton takes compact JSON up to its nesting depth and nothing else.
/// </summary>
public sealed class AnyJsonTests
{
    private static readonly OutputConstraint Any = OutputConstraint.AnyJsonValue();

    [Theory]
    [InlineData("null")]
    [InlineData("true")]
    [InlineData("-12.5e+3")]
    [InlineData("\"a \\\"quoted\\\" \\u00e9 text\"")]
    [InlineData("{}")]
    [InlineData("[]")]
    [InlineData("{\"a\":1,\"b\":[true,null,\"x\"],\"c\":{\"d\":{}}}")]
    [InlineData("[[[[1,2],[]]]]")]
    [InlineData("{\"same\":1,\"same\":2}")]
    public void Compact_JSON_values_nested_up_to_the_depth_limit_are_accepted(string json)
    {
        using var _ = JsonDocument.Parse(json);   // the reference: it is JSON
        Assert.True(Any.Accepts(json), json);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{\"a\": 1}")]
    [InlineData("[1,]")]
    [InlineData("{a:1}")]
    [InlineData("01")]
    [InlineData("\"unterminated")]
    [InlineData("nul")]
    [InlineData("[1] [2]")]
    public void Text_that_is_not_compact_JSON_is_refused(string text)
    {
        Assert.False(Any.Accepts(text), text);
    }

    [Fact]
    public void Containers_nested_deeper_than_the_limit_are_refused()
    {
        string Nested(int depth) => new string('[', depth) + "1" + new string(']', depth);
        Assert.True(Any.Accepts(Nested(AnyJson.MaxDepth)));
        Assert.False(Any.Accepts(Nested(AnyJson.MaxDepth + 1)));
    }

    [Fact]
    public void The_language_fits_the_automaton_limit_and_is_persisted_as_the_empty_schema()
    {
        int states = ByteNfa.Build(AnyJson.Build(), "any JSON").StateCount;
        Assert.InRange(states, 1, ByteNfa.MaxStates);
        Assert.Equal("{}", Any.Schema);
        Assert.Equal("{\"guided_json\":{}}", Any.ToString());
        Assert.Equal(Any, OutputConstraint.FromJson(Any.ToString(), "test"));
        var open = OutputConstraint.JsonSchema("{}");    // the public factory: an object whose free values nest at most 3 containers deep
        Assert.True(open.Accepts("{\"a\":[1,{\"b\":[null]}]}"));
        Assert.False(open.Accepts("{\"a\":[{\"b\":[{}]}]}"));
    }
}
