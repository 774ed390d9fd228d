using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace MLNetGpt.Tests.Stress;

/// <summary>
/// Random regexes and JSON schemas for the constraint compilers: well-formed ones of every supported construct, nested
/// far past the limits, with huge repetition counts, unsupported features and plain garbage mixed in. Seeded.
/// </summary>
internal static class RandomConstraints
{
    private static readonly string[] Atoms =
    [
        "a", "b", "z", "0", " ", ".", @"\d", @"\w", @"\s", @"\D", @"\W", @"\S", @"\.", @"\\", @"\n", @"\t", @"\x41", @"\u00e9", @"\uD83D\uDE00",
        "[a-z]", "[^a-z]", "[0-9A-F]", @"[\d\s]", "[^\n]", "é", "😀", "[]]", "{", "}", "-",
    ];

    private static readonly string[] Unsupported =
    [
        @"\1", @"(?=a)", @"(?!a)", @"(?<=a)", @"(?<!a)", @"\b", @"\p{L}", "(?i)", "(?>a)", "a*+", @"\A", "^", "$", "[[:alpha:]]", @"\012", @"\q", "(", ")", "[", "*", "?", "+",
    ];

    private static readonly string[] Quantifiers = ["*", "+", "?", "*?", "{2}", "{0,3}", "{1,}", "{3,1}", "{99999999999}"];

    public static string Regex(Random random) => random.Next(20) switch
    {
        0 => new string('(', random.Next(90, 2_000)) + "a" + new string(')', random.Next(90, 2_000)),
        1 => string.Concat(Enumerable.Range(0, random.Next(1, 200)).Select(_ => "(a|b)")) + "{" + random.Next(1, 5_000) + "}",
        2 => "(" + Piece(random, 3) + "){" + random.Next(0, 100_000) + "," + random.Next(0, 100_000) + "}",
        3 => new string('a', random.Next(1, 300_000)),
        4 => Garbage(random),
        _ => Piece(random, random.Next(1, 8)),
    };

    private static string Piece(Random random, int depth)
    {
        var sb = new StringBuilder();
        int items = random.Next(1, 5);
        for (int i = 0; i < items; i++)
        {
            int choice = random.Next(12);
            if (choice < 5 || depth <= 0) sb.Append(Atoms[random.Next(Atoms.Length)]);
            else if (choice < 8) sb.Append(random.Next(3) switch { 0 => "(", 1 => "(?:", _ => "(?<g>" }).Append(Piece(random, depth - 1)).Append(')');
            else if (choice < 10) sb.Append(Piece(random, depth - 1)).Append('|').Append(Piece(random, depth - 1));
            else if (choice == 10) sb.Append(Unsupported[random.Next(Unsupported.Length)]);
            else sb.Append(random.Next(1, 30) is var n ? new string((char)('a' + random.Next(26)), n) : "");
            if (random.Next(3) == 0) sb.Append(Quantifiers[random.Next(Quantifiers.Length)]);
        }
        return sb.ToString();
    }

    private static string Garbage(Random random)
    {
        const string alphabet = "()[]{}|*+?.\\^$-,:=!<>abc019\u00e9\U0001F600\0 ";
        var sb = new StringBuilder();
        for (int n = random.Next(1, 200); n > 0; n--) sb.Append(alphabet[random.Next(alphabet.Length)]);
        return sb.ToString();
    }

    private static readonly string[] Types = ["object", "array", "string", "integer", "number", "boolean", "null", "float", ""];
    private static readonly string[] Formats = ["date", "time", "date-time", "uuid", "email", "ipv4", "uri", ""];

    public static string Schema(Random random)
    {
        if (random.Next(25) == 0)
        {
            int depth = random.Next(60, 400);
            return string.Concat(Enumerable.Repeat("{\"type\":\"array\",\"items\":", depth)) + "{\"type\":\"null\"}" + new string('}', depth);
        }
        if (random.Next(25) == 0) return Garbage(random);
        var node = SchemaNode(random, random.Next(1, 7));
        string text = node.ToJsonString();
        return random.Next(30) == 0 && text.Length > 2 ? text[..random.Next(1, text.Length)] : text;
    }

    private static JsonNode Value(Random random, int depth) => random.Next(depth > 0 ? 8 : 6) switch
    {
        0 => JsonValue.Create(random.Next(-1000, 1000)),
        1 => JsonValue.Create(random.NextDouble() * 1e6 - 5e5),
        2 => JsonValue.Create(new string((char)('a' + random.Next(26)), random.Next(0, 30)) + "\"\\\n\u00e9")!,
        3 => JsonValue.Create(random.Next(2) == 0),
        4 => JsonValue.Create("😀")!,
        5 => JsonValue.Create(long.MaxValue),
        6 => new JsonArray(Enumerable.Range(0, random.Next(0, 4)).Select(_ => (JsonNode?)Value(random, depth - 1)).ToArray()),
        _ => new JsonObject(Enumerable.Range(0, random.Next(0, 4)).Select(i => KeyValuePair.Create("k" + i, (JsonNode?)Value(random, depth - 1)))),
    };

    private static JsonNode SchemaNode(Random random, int depth)
    {
        if (random.Next(40) == 0) return JsonValue.Create(random.Next(2) == 0);
        var o = new JsonObject();
        string type = Types[random.Next(Types.Length)];
        if (random.Next(12) != 0) o["type"] = random.Next(10) == 0 ? new JsonArray(JsonValue.Create(type), JsonValue.Create("null")) : type;
        switch (type)
        {
            case "object" when depth > 0:
            {
                var properties = new JsonObject();
                int count = random.Next(15) == 0 ? random.Next(100, 1_200) : random.Next(0, 8);
                for (int i = 0; i < count; i++) properties["p" + i.ToString(CultureInfo.InvariantCulture)] = count > 50 ? new JsonObject { ["const"] = i } : SchemaNode(random, depth - 1);
                o["properties"] = properties;
                if (random.Next(2) == 0)
                    o["required"] = new JsonArray(Enumerable.Range(0, count).Where(_ => random.Next(2) == 0).Select(i => (JsonNode?)JsonValue.Create("p" + i)).ToArray());
                if (random.Next(6) == 0) o["additionalProperties"] = random.Next(2) == 0;
                break;
            }
            case "array" when depth > 0:
                if (random.Next(3) == 0)
                    o["prefixItems"] = new JsonArray(Enumerable.Range(0, random.Next(8) == 0 ? random.Next(200, 400) : random.Next(0, 5)).Select(_ => (JsonNode?)SchemaNode(random, 0)).ToArray());
                if (random.Next(4) != 0) o["items"] = SchemaNode(random, depth - 1);
                if (random.Next(3) == 0) o["minItems"] = random.Next(-2, random.Next(2) == 0 ? 10 : 100_000);
                if (random.Next(3) == 0) o["maxItems"] = random.Next(-2, random.Next(2) == 0 ? 10 : 100_000);
                break;
            case "string":
                switch (random.Next(4))
                {
                    case 0: o["pattern"] = Regex(random); break;
                    case 1: o["format"] = Formats[random.Next(Formats.Length)]; break;
                    case 2:
                        o["minLength"] = random.Next(-2, 50);
                        o["maxLength"] = random.Next(2) == 0 ? random.Next(0, 100) : random.Next(0, 1_000_000);
                        break;
                }
                break;
            case "integer" or "number":
                if (random.Next(2) == 0) o[random.Next(2) == 0 ? "minimum" : "exclusiveMinimum"] = Bound(random);
                if (random.Next(2) == 0) o[random.Next(2) == 0 ? "maximum" : "exclusiveMaximum"] = Bound(random);
                break;
        }
        if (random.Next(8) == 0) o["enum"] = new JsonArray(Enumerable.Range(0, random.Next(0, 6)).Select(_ => (JsonNode?)Value(random, 2)).ToArray());
        if (random.Next(12) == 0) o["const"] = Value(random, 2);
        if (random.Next(10) == 0 && depth > 0)
            return new JsonObject { ["anyOf"] = new JsonArray(Enumerable.Range(0, random.Next(0, 4)).Select(_ => (JsonNode?)SchemaNode(random, depth - 1)).ToArray()) };
        if (random.Next(15) == 0) o[random.Next(2) == 0 ? "$ref" : "oneOf"] = "#/x";
        if (random.Next(10) == 0) o["description"] = new string('d', random.Next(0, 10_000));
        return o;
    }

    private static JsonNode Bound(Random random) => random.Next(6) switch
    {
        0 => JsonValue.Create(random.Next(-1000, 1000)),
        1 => JsonValue.Create(1e30),
        2 => JsonValue.Create(-79228162514264337593543950335m),
        3 => JsonValue.Create(0.5),
        4 => JsonValue.Create("7")!,
        _ => JsonValue.Create((long)random.Next() * random.Next()),
    };
}
