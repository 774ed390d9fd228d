using System.Text.Json;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// Any compact JSON value, containers nested at most <see cref="MaxDepth"/> deep: what "JSON, no schema" asks for
/// (Microsoft.Extensions.AI's <c>ChatResponseFormat.Json</c>). Deeper than the schema compiler's free values
/// (<see cref="JsonSchemaCompiler.AnyValueDepth"/>), built from the compiler's own scalar pieces, so strings and
/// numbers follow exactly the rules of <see cref="JsonSchemaCompiler"/>.
/// </summary>
/// <remarks>
/// A regular language cannot nest without bound, and every level holds the level below four times (an array's
/// first and further items, an object's first and further members), so the automaton grows fourfold per level:
/// at depth 4 it has 80,503 NFA states, within <see cref="ByteNfa.MaxStates"/>; depth 5 (about 320,000) would not fit.
/// </remarks>
internal static class AnyJson
{
    public const int MaxDepth = 4;

    public static ConstraintNode Build()
    {
        var scalar = Compile("""{"type":["string","number","boolean","null"]}""");
        var key = Compile("""{"type":"string"}""");
        var comma = ConstraintNode.Literal(",");
        var value = scalar;
        for (int depth = 1; depth <= MaxDepth; depth++)
        {
            var member = ConstraintNode.Sequence(key, ConstraintNode.Literal(":"), value);
            string origin = $"a JSON container at depth {depth}";
            var members = ConstraintNode.Sequence(member, ConstraintNode.Repeat(ConstraintNode.Sequence(comma, member), 0, -1, origin));
            var items = ConstraintNode.Sequence(value, ConstraintNode.Repeat(ConstraintNode.Sequence(comma, value), 0, -1, origin));
            value = ConstraintNode.Choice(
                scalar,
                ConstraintNode.Sequence(ConstraintNode.Literal("{"), ConstraintNode.Optional(members), ConstraintNode.Literal("}")),
                ConstraintNode.Sequence(ConstraintNode.Literal("["), ConstraintNode.Optional(items), ConstraintNode.Literal("]")));
        }
        return value;
    }

    private static ConstraintNode Compile(string schema)
    {
        using var document = JsonDocument.Parse(schema);
        return JsonSchemaCompiler.Compile(document.RootElement);
    }
}
