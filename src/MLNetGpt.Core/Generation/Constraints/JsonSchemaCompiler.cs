using System.Globalization;
using System.Numerics;
using System.Text.Json;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// Compiles the JSON Schema subset of <see cref="OutputConstraint.JsonSchema(string)"/> straight into a
/// <see cref="ConstraintNode"/> for compact canonical JSON text. Every refused keyword or form is
/// named with its JSON pointer.
/// </summary>
internal sealed class JsonSchemaCompiler
{
    public const string Supported = "supported: type, enum, const, anyOf, properties, required, additionalProperties: false, "
        + "items, prefixItems, minItems, maxItems, minLength, maxLength, pattern, format, minimum, maximum, exclusiveMinimum, "
        + "exclusiveMaximum; annotations ignored";

    private static readonly HashSet<string> Annotations = new(StringComparer.Ordinal)
        { "$schema", "$id", "title", "description", "examples", "default", "$comment" };

    private static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "type", "enum", "const", "anyOf", "properties", "required", "additionalProperties", "items", "prefixItems",
        "minItems", "maxItems", "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    };

    private static readonly string[] ObjectKeywords = ["properties", "required", "additionalProperties"];
    private static readonly string[] ArrayKeywords = ["items", "prefixItems", "minItems", "maxItems"];
    private static readonly string[] TypeNames = ["object", "array", "string", "integer", "number", "boolean", "null"];

    private static readonly ConstraintNode Quote = ConstraintNode.Literal("\"");
    private static readonly ConstraintNode Comma = ConstraintNode.Literal(",");
    private static readonly ConstraintNode Hex = ConstraintNode.Chars(CodePointSet.Of([('0', '9'), ('a', 'f'), ('A', 'F')]));

    /// <summary>One character of a JSON string as written: raw (not '"', '\' or a control character) or escaped.</summary>
    private static readonly ConstraintNode StringCharacter = BuildStringCharacter();

    /// <summary>Any JSON string's content: the free text around a pattern's match.</summary>
    private static readonly ConstraintNode AnyStringContent = ConstraintNode.Repeat(StringCharacter, 0, -1, "a string");

    /// <summary>Schemas nested deeper than this inside one another are refused (System.Text.Json's own default depth).</summary>
    public const int MaxSchemaDepth = 64;

    /// <summary>prefixItems longer than this are refused: each item nests the ones after it one level deeper.</summary>
    public const int MaxPrefixItems = 256;

    /// <summary>
    /// Objects with more properties than this are refused: each member carries the members after it, so the tree
    /// grows with the square of the count (and the automaton too, for optional members) before its size is known.
    /// </summary>
    public const int MaxProperties = 1_000;

    /// <summary>How a schema document is read: deep enough for <see cref="MaxSchemaDepth"/> schemas and the values inside them.</summary>
    public static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 4 * MaxSchemaDepth };

    private readonly CancellationToken _cancellation;
    private int _depth;

    private JsonSchemaCompiler(CancellationToken cancellation) => _cancellation = cancellation;

    public static ConstraintNode Compile(JsonElement schema, CancellationToken cancellation = default)
    {
        try
        {
            return new JsonSchemaCompiler(cancellation).Schema(schema, "");
        }
        catch (ConstraintDepthException e)
        {
            throw new ArgumentException($"JSON schema: {e.Message}.");
        }
    }

    private static string Where(string pointer) => pointer.Length == 0 ? "the root" : pointer;

    private static ArgumentException Error(string pointer, string problem) => new($"JSON schema: {problem} at {Where(pointer)}.");

    private static string Child(string pointer, string token) => pointer + "/" + token.Replace("~", "~0").Replace("/", "~1");

    private ConstraintNode Schema(JsonElement schema, string pointer)
    {
        _cancellation.ThrowIfCancellationRequested();
        if (_depth >= MaxSchemaDepth)
            throw Error(pointer, $"schemas nest more than {MaxSchemaDepth} levels deep inside one another");
        _depth++;
        try
        {
            return SchemaAtDepth(schema, pointer);
        }
        finally
        {
            _depth--;
        }
    }

    private ConstraintNode SchemaAtDepth(JsonElement schema, string pointer)
    {
        if (schema.ValueKind == JsonValueKind.False) return ConstraintNode.Nothing;
        if (schema.ValueKind == JsonValueKind.True)
            throw new ArgumentException($"JSON schema: the schema 'true' (any value) at {Where(pointer)} is not supported ({Supported}).");
        if (schema.ValueKind != JsonValueKind.Object)
            throw Error(pointer, $"a schema must be an object or a boolean, not {Kind(schema)},");

        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in schema.EnumerateObject())
        {
            if (Annotations.Contains(property.Name)) continue;
            if (!Keywords.Contains(property.Name))
                throw new ArgumentException($"JSON schema: keyword '{property.Name}' at {Where(pointer)} is not supported ({Supported}).");
            keys.Add(property.Name);
        }

        if (keys.Contains("enum") || keys.Contains("const")) return EnumOrConst(schema, pointer, keys);
        if (keys.Contains("anyOf"))
        {
            var others = keys.Where(k => k != "anyOf").ToList();
            if (others.Count > 0)
                throw Error(pointer, $"anyOf cannot be combined with '{others[0]}' (put it inside each branch)");
            var branches = schema.GetProperty("anyOf");
            if (branches.ValueKind != JsonValueKind.Array || branches.GetArrayLength() == 0)
                throw Error(Child(pointer, "anyOf"), "anyOf must be a non-empty array of schemas, not " + Describe(branches) + ",");
            return ConstraintNode.Choice(branches.EnumerateArray().Select((b, i) => Schema(b, Child(Child(pointer, "anyOf"), i.ToString(CultureInfo.InvariantCulture)))));
        }

        var types = Types(schema, pointer, keys);
        return ConstraintNode.Choice(types.Select(type => type switch
        {
            "object" => Object(schema, pointer),
            "array" => Array(schema, pointer),
            "string" => String(schema, pointer),
            "integer" => Integer(schema, pointer),
            "number" => Number(schema, pointer),
            "boolean" => ConstraintNode.Choice(ConstraintNode.Literal("true"), ConstraintNode.Literal("false")),
            _ => ConstraintNode.Literal("null"),
        }));
    }

    private static List<string> Types(JsonElement schema, string pointer, HashSet<string> keys)
    {
        if (schema.TryGetProperty("type", out var type))
        {
            var names = new List<string>();
            if (type.ValueKind == JsonValueKind.String) names.Add(type.GetString()!);
            else if (type.ValueKind == JsonValueKind.Array && type.GetArrayLength() > 0)
            {
                foreach (var item in type.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String) throw Error(Child(pointer, "type"), $"a type name must be a string, not {Describe(item)},");
                    names.Add(item.GetString()!);
                }
            }
            else throw Error(Child(pointer, "type"), $"type must be a type name or a non-empty array of them, not {Describe(type)},");
            foreach (var name in names)
                if (System.Array.IndexOf(TypeNames, name) < 0)
                    throw Error(Child(pointer, "type"), $"the type '{name}' is unknown (expected one of {string.Join(", ", TypeNames)})");
            return names.Distinct().ToList();
        }
        // Without "type", object or array keywords decide it (documented: stricter than JSON Schema, which would also allow other types).
        bool isObject = ObjectKeywords.Any(keys.Contains), isArray = ArrayKeywords.Any(keys.Contains);
        if (isObject && !isArray) return ["object"];
        if (isArray && !isObject) return ["array"];
        throw Error(pointer, "a schema without 'type', 'enum', 'const' or 'anyOf' (any value) is not supported; give a type");
    }

    private ConstraintNode EnumOrConst(JsonElement schema, string pointer, HashSet<string> keys)
    {
        var candidates = new List<JsonElement>();
        if (schema.TryGetProperty("enum", out var values))
        {
            if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0)
                throw Error(Child(pointer, "enum"), $"enum must be a non-empty array, not {Describe(values)},");
            candidates.AddRange(values.EnumerateArray());
        }
        if (schema.TryGetProperty("const", out var constant))
        {
            string wanted = JsonText.Canonical(constant);
            candidates = keys.Contains("enum") ? candidates.Where(c => JsonText.Canonical(c) == wanted).ToList() : [constant];
        }
        // Other keywords beside enum/const filter the values: each value's text must satisfy the rest of the schema.
        var rest = keys.Where(k => k is not "enum" and not "const").ToList();
        ByteDfa? filter = null;
        if (rest.Count > 0)
        {
            using var restSchema = JsonDocument.Parse("{" + string.Join(",", schema.EnumerateObject()
                .Where(p => rest.Contains(p.Name)).Select(p => JsonSerializer.Serialize(p.Name) + ":" + p.Value.GetRawText())) + "}", DocumentOptions);
            filter = new ByteDfa(ByteNfa.Build(Schema(restSchema.RootElement, pointer), "JSON schema"));
        }
        var texts = candidates.Select(JsonText.Canonical).Distinct()
            .Where(text =>
            {
                _cancellation.ThrowIfCancellationRequested();
                return filter is null || filter.Matches(System.Text.Encoding.UTF8.GetBytes(text));
            }).ToList();
        if (texts.Count == 0) throw Error(pointer, "no value of enum/const satisfies the other keywords");
        return ConstraintNode.Choice(texts.Select(ConstraintNode.Literal));
    }

    private ConstraintNode Object(JsonElement schema, string pointer)
    {
        if (schema.TryGetProperty("additionalProperties", out var additional) && additional.ValueKind != JsonValueKind.False)
            throw Error(Child(pointer, "additionalProperties"), $"additionalProperties other than false ({Describe(additional)}) is not supported (absent counts as false)");
        var properties = new List<(string Name, JsonElement Schema)>();
        if (schema.TryGetProperty("properties", out var declared))
        {
            if (declared.ValueKind != JsonValueKind.Object) throw Error(Child(pointer, "properties"), $"properties must be an object, not {Describe(declared)},");
            foreach (var p in declared.EnumerateObject())
            {
                if (properties.Count == MaxProperties)
                    throw Error(Child(pointer, "properties"), $"an object with more than {MaxProperties:N0} properties is not supported");
                properties.Add((p.Name, p.Value));
            }
        }
        var required = new HashSet<string>(StringComparer.Ordinal);
        if (schema.TryGetProperty("required", out var names))
        {
            if (names.ValueKind != JsonValueKind.Array) throw Error(Child(pointer, "required"), $"required must be an array of names, not {Describe(names)},");
            foreach (var name in names.EnumerateArray())
            {
                if (name.ValueKind != JsonValueKind.String) throw Error(Child(pointer, "required"), $"a required name must be a string, not {Describe(name)},");
                string n = name.GetString()!;
                if (!properties.Any(p => p.Name == n))
                    throw Error(Child(pointer, "required"), $"the required property '{n}' is not declared in properties (its value's schema is needed)");
                required.Add(n);
            }
        }

        var members = properties.Select(p => (
            Node: ConstraintNode.Sequence(ConstraintNode.Literal("\"" + JsonText.EscapeString(p.Name) + "\":"), Schema(p.Schema, Child(Child(pointer, "properties"), p.Name))),
            Required: required.Contains(p.Name))).ToList();

        // After(i): members i.. once some member was written (each needs a leading comma);
        // First(i): members i.. when none was written yet.
        var after = new ConstraintNode[members.Count + 1];
        after[members.Count] = ConstraintNode.Empty;
        for (int i = members.Count - 1; i >= 0; i--)
        {
            var withComma = ConstraintNode.Sequence(Comma, members[i].Node);
            after[i] = ConstraintNode.Sequence(members[i].Required ? withComma : ConstraintNode.Optional(withComma), after[i + 1]);
        }
        // A run of optional members is one flat choice (take this one first, or one of the later ones, or none),
        // not a choice nested once per member: a thousand optional properties stay one level deep.
        var first = ConstraintNode.Empty;
        for (int i = members.Count - 1; i >= 0; i--)
        {
            var taken = ConstraintNode.Sequence(members[i].Node, after[i + 1]);
            first = members[i].Required ? taken
                : first is ChoiceNode later && i + 1 < members.Count && !members[i + 1].Required ? ConstraintNode.Choice([taken, .. later.Items])
                : ConstraintNode.Choice(taken, first);
        }
        return ConstraintNode.Sequence(ConstraintNode.Literal("{"), first, ConstraintNode.Literal("}"));
    }

    private ConstraintNode Array(JsonElement schema, string pointer)
    {
        var prefix = new List<ConstraintNode>();
        if (schema.TryGetProperty("prefixItems", out var prefixItems))
        {
            if (prefixItems.ValueKind != JsonValueKind.Array) throw Error(Child(pointer, "prefixItems"), $"prefixItems must be an array of schemas, not {Describe(prefixItems)},");
            if (prefixItems.GetArrayLength() > MaxPrefixItems)
                throw Error(Child(pointer, "prefixItems"), $"prefixItems with {prefixItems.GetArrayLength():N0} schemas is not supported (at most {MaxPrefixItems})");
            int i = 0;
            foreach (var item in prefixItems.EnumerateArray())
                prefix.Add(Schema(item, Child(Child(pointer, "prefixItems"), (i++).ToString(CultureInfo.InvariantCulture))));
        }
        ConstraintNode items;
        if (schema.TryGetProperty("items", out var itemSchema))
        {
            if (itemSchema.ValueKind == JsonValueKind.Array)
                throw Error(Child(pointer, "items"), "items as an array (draft-07 tuples) is not supported; use prefixItems");
            items = Schema(itemSchema, Child(pointer, "items"));
        }
        else if (prefix.Count > 0) items = ConstraintNode.Nothing;    // documented: no items beyond prefixItems
        else throw Error(pointer, "an array without 'items' or 'prefixItems' (items of any value) is not supported");

        int min = Count(schema, "minItems", pointer) ?? 0;
        int? max = Count(schema, "maxItems", pointer);
        if (max < min) throw Error(pointer, $"maxItems {max} is below minItems {min}");

        ConstraintNode Element(int index) => index < prefix.Count ? prefix[index] : items;
        string origin = max is null ? $"minItems {min} at {Where(pointer)}" : $"maxItems {max} at {Where(pointer)}";

        // Rest(j): what follows once j elements were written.
        ConstraintNode Rest(int j)
        {
            if (max is { } m && j >= m) return ConstraintNode.Empty;
            if (j >= prefix.Count)
                return ConstraintNode.Repeat(ConstraintNode.Sequence(Comma, items), Math.Max(0, min - j), max is { } mm ? mm - j : -1, origin);
            var next = ConstraintNode.Sequence(Comma, Element(j), Rest(j + 1));
            return j >= min ? ConstraintNode.Optional(next) : next;
        }

        ConstraintNode content = max == 0 ? ConstraintNode.Empty : ConstraintNode.Sequence(Element(0), Rest(1));
        if (min == 0 && max != 0) content = ConstraintNode.Optional(content);
        return ConstraintNode.Sequence(ConstraintNode.Literal("["), content, ConstraintNode.Literal("]"));
    }

    private ConstraintNode String(JsonElement schema, string pointer)
    {
        int? minLength = Count(schema, "minLength", pointer);
        int? maxLength = Count(schema, "maxLength", pointer);
        bool hasPattern = schema.TryGetProperty("pattern", out var pattern);
        bool hasFormat = schema.TryGetProperty("format", out var format);
        if (hasPattern && hasFormat) throw Error(pointer, "pattern together with format is not supported (choose one)");
        if ((hasPattern || hasFormat) && (minLength is not null || maxLength is not null))
            throw Error(pointer, $"{(hasPattern ? "pattern" : "format")} together with minLength/maxLength is not supported (write the length into the pattern)");
        if (hasFormat)
        {
            if (format.ValueKind != JsonValueKind.String) throw Error(Child(pointer, "format"), $"format must be a string, not {Describe(format)},");
            var language = JsonStringFormats.For(format.GetString()!)
                ?? throw Error(Child(pointer, "format"), $"the format '{format.GetString()}' is not supported (supported: {JsonStringFormats.Names})");
            return ConstraintNode.Sequence(Quote, language, Quote);
        }
        if (hasPattern)
        {
            if (pattern.ValueKind != JsonValueKind.String) throw Error(Child(pointer, "pattern"), $"pattern must be a string, not {Describe(pattern)},");
            var value = RegexParser.Parse(pattern.GetString()!, $"JSON schema: pattern at {Where(Child(pointer, "pattern"))}", _cancellation, out bool anchoredStart, out bool anchoredEnd);
            // JSON Schema's pattern is a search: free text may surround the match unless anchored.
            return ConstraintNode.Sequence(Quote, anchoredStart ? ConstraintNode.Empty : AnyStringContent, EscapeForJson(value),
                anchoredEnd ? ConstraintNode.Empty : AnyStringContent, Quote);
        }
        int min = minLength ?? 0;
        if (maxLength < min) throw Error(pointer, $"maxLength {maxLength} is below minLength {min}");
        string origin = maxLength is null ? $"minLength {min} at {Where(pointer)}" : $"maxLength {maxLength} at {Where(pointer)}";
        return ConstraintNode.Sequence(Quote, ConstraintNode.Repeat(StringCharacter, min, maxLength ?? -1, origin), Quote);
    }

    private static ConstraintNode Integer(JsonElement schema, string pointer)
    {
        var (lo, loOpen, hi, hiOpen) = Bounds(schema, pointer, integersOnly: false);
        BigInteger? first = lo is { } l ? (loOpen ? Floor(l) + 1 : Ceiling(l)) : null;
        BigInteger? last = hi is { } h ? (hiOpen ? Ceiling(h) - 1 : Floor(h)) : null;
        if (first > last) throw Error(pointer, $"no integer lies between the bounds ({lo} to {hi})");
        return DecimalRanges.Integers(first, last);
    }

    private static ConstraintNode Number(JsonElement schema, string pointer)
    {
        var (lo, loOpen, hi, hiOpen) = Bounds(schema, pointer, integersOnly: true);
        if (lo is null && hi is null)
        {
            var digits = ConstraintNode.Repeat(ConstraintNode.ByteRange((byte)'0', (byte)'9'), 1, -1, "a number");
            var exponent = ConstraintNode.Sequence(ConstraintNode.Chars(CodePointSet.Of([('e', 'e'), ('E', 'E')])),
                ConstraintNode.Optional(ConstraintNode.Chars(CodePointSet.Of([('+', '+'), ('-', '-')]))), digits);
            return ConstraintNode.Sequence(DecimalRanges.Decimals(null, false, null, false), ConstraintNode.Optional(exponent));
        }
        var result = DecimalRanges.Decimals(lo is { } l ? new BigInteger(l) : null, loOpen, hi is { } h ? new BigInteger(h) : null, hiOpen);
        if (ReferenceEquals(result, ConstraintNode.Nothing)) throw Error(pointer, $"no number lies between the bounds ({lo} to {hi})");
        return result;
    }

    /// <summary>The tightest lower and upper bounds of minimum/exclusiveMinimum and maximum/exclusiveMaximum.</summary>
    private static (decimal? Lo, bool LoOpen, decimal? Hi, bool HiOpen) Bounds(JsonElement schema, string pointer, bool integersOnly)
    {
        decimal? lo = null, hi = null;
        bool loOpen = false, hiOpen = false;
        foreach (var (name, lower, open) in new[] { ("minimum", true, false), ("exclusiveMinimum", true, true), ("maximum", false, false), ("exclusiveMaximum", false, true) })
        {
            if (!schema.TryGetProperty(name, out var value)) continue;
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out decimal bound))
                throw Error(Child(pointer, name), $"{name} must be a number within ±7.9e28, not {Describe(value)},");
            if (integersOnly && bound != decimal.Truncate(bound))
                throw Error(Child(pointer, name), $"the number bound {value.GetRawText()} is not an integer; number bounds must be integers so that decimals stay exact (use a multiple of 1 or type integer)");
            if (lower && (lo is null || bound > lo || (bound == lo && open))) (lo, loOpen) = (bound, open);
            if (!lower && (hi is null || bound < hi || (bound == hi && open))) (hi, hiOpen) = (bound, open);
        }
        return (lo, loOpen, hi, hiOpen);
    }

    private static BigInteger Floor(decimal value) => new(decimal.Floor(value));
    private static BigInteger Ceiling(decimal value) => new(decimal.Ceiling(value));

    private static int? Count(JsonElement schema, string name, string pointer)
    {
        if (!schema.TryGetProperty(name, out var value)) return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int count) || count < 0)
            throw Error(Child(pointer, name), $"{name} must be a non-negative integer, not {Describe(value)},");
        return count;
    }

    /// <summary>
    /// Maps a value language (UTF-8 of the string's characters) to its JSON string content: the
    /// characters JSON must escape get their canonical escape. Those are all single ASCII bytes,
    /// which in UTF-8 only ever stand for themselves, so the mapping works byte range by byte range.
    /// </summary>
    private static ConstraintNode EscapeForJson(ConstraintNode node)
    {
        // The pattern's own tree: its nesting is bounded by the regex parser's group limit, this the backstop.
        if (!System.Runtime.CompilerServices.RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new ConstraintDepthException("the pattern nests too deeply for the stack of this thread");
        return node switch
        {
            ByteRangeNode b => EscapeRange(b),
            SequenceNode s => ConstraintNode.Sequence(s.Items.Select(EscapeForJson).ToArray()),
            ChoiceNode c => ConstraintNode.Choice(c.Items.Select(EscapeForJson).ToArray()),
            RepeatNode r => ConstraintNode.Repeat(EscapeForJson(r.Item), r.Min, r.Max, r.Origin),
            _ => node,
        };
    }

    private static ConstraintNode EscapeRange(ByteRangeNode range)
    {
        if (range.Lo >= 0x20 && !(range.Lo <= '"' && range.Hi >= '"') && !(range.Lo <= '\\' && range.Hi >= '\\')) return range;
        var branches = new List<ConstraintNode>();
        int start = -1;
        for (int b = range.Lo; b <= range.Hi + 1; b++)
        {
            bool plain = b <= range.Hi && JsonText.Escape(b) is null;
            if (plain && start < 0) start = b;
            if (!plain && start >= 0)
            {
                branches.Add(ConstraintNode.ByteRange((byte)start, (byte)(b - 1)));
                start = -1;
            }
            if (b <= range.Hi && !plain) branches.Add(ConstraintNode.Literal(JsonText.Escape(b)!));
        }
        return ConstraintNode.Choice(branches);
    }

    private static ConstraintNode BuildStringCharacter()
    {
        var raw = ConstraintNode.Chars(CodePointSet.Range(0x20, CodePointSet.MaxCodePoint).Except(CodePointSet.Of([('"', '"'), ('\\', '\\')])));
        var simple = ConstraintNode.Sequence(ConstraintNode.Literal("\\"), ConstraintNode.Chars(CodePointSet.Of(
            [('"', '"'), ('\\', '\\'), ('/', '/'), ('b', 'b'), ('f', 'f'), ('n', 'n'), ('r', 'r'), ('t', 't')])));
        var u = ConstraintNode.Literal("\\u");
        var d = ConstraintNode.Chars(CodePointSet.Of([('d', 'd'), ('D', 'D')]));
        // \uXXXX outside the surrogates, or a high-surrogate escape followed by a low-surrogate escape.
        var nonSurrogate = ConstraintNode.Choice(
            ConstraintNode.Sequence(u, ConstraintNode.Chars(CodePointSet.Of([('0', '9'), ('a', 'c'), ('A', 'C'), ('e', 'f'), ('E', 'F')])), Hex, Hex, Hex),
            ConstraintNode.Sequence(u, d, ConstraintNode.ByteRange((byte)'0', (byte)'7'), Hex, Hex));
        var pair = ConstraintNode.Sequence(
            u, d, ConstraintNode.Chars(CodePointSet.Of([('8', '9'), ('a', 'b'), ('A', 'B')])), Hex, Hex,
            u, d, ConstraintNode.Chars(CodePointSet.Of([('c', 'f'), ('C', 'F')])), Hex, Hex);
        return ConstraintNode.Choice(raw, simple, nonSurrogate, pair);
    }

    private static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    private static string Describe(JsonElement value)
    {
        string text = value.GetRawText();
        return text.Length <= 40 ? text : text[..37] + "...";
    }
}
