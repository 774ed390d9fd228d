using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;

namespace MLNetGpt.Generation.Constraints;

/// <summary>
/// Compiles a JSON Schema (draft 2020-12) straight into a <see cref="ConstraintNode"/> for compact JSON text. Applicators
/// (<c>$ref</c>, <c>allOf</c>, <c>anyOf</c>, <c>oneOf</c>, <c>not</c>, <c>if</c>, <c>dependentRequired</c>,
/// <c>dependentSchemas</c>) are expanded into a bounded union of conjunctions whose keywords are merged per JSON type;
/// every keyword or form that cannot be enforced is refused, named with its JSON pointer.
/// </summary>
internal sealed class JsonSchemaCompiler
{
    public const string Supported = "supported: type, enum, const, $ref, $dynamicRef, $defs, definitions, allOf, anyOf, oneOf, not, if, then, else, "
        + "properties, required, additionalProperties, patternProperties, propertyNames, minProperties, maxProperties, dependentRequired, "
        + "dependentSchemas, unevaluatedProperties, unevaluatedItems, items, prefixItems, contains, minContains, maxContains, minItems, maxItems, uniqueItems: false, minLength, maxLength, "
        + "pattern, format, minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf (integral, up to 1000); annotations ignored";

    private static readonly HashSet<string> Annotations = new(StringComparer.Ordinal)
    {
        "$schema", "$id", "title", "description", "examples", "default", "$comment", "$anchor", "$dynamicAnchor", "$vocabulary",
        "deprecated", "readOnly", "writeOnly", "contentMediaType", "contentEncoding", "contentSchema", "$defs", "definitions",
    };

    private static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "type", "enum", "const", "properties", "required", "additionalProperties", "patternProperties", "propertyNames",
        "minProperties", "maxProperties", "items", "prefixItems", "contains", "minContains", "maxContains", "minItems", "maxItems",
        "uniqueItems", "multipleOf", "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "$ref", "$dynamicRef", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
        "unevaluatedProperties", "unevaluatedItems",
    };

    /// <summary>The standard metaschemas ($schema, scheme and empty fragment aside): their vocabularies are the ones compiled here.</summary>
    private static readonly string[] KnownDialects =
    [
        "json-schema.org/draft/2020-12/schema", "json-schema.org/draft/2019-09/schema", "json-schema.org/draft-07/schema",
        "json-schema.org/draft-06/schema", "json-schema.org/draft-04/schema",
    ];

    private static string Dialect(JsonElement value) => value.ValueKind != JsonValueKind.String ? Describe(value)
        : value.GetString()!.Length <= 200 ? $"'{value.GetString()}'" : $"'{value.GetString()![..200]}...'";

    private static bool IsKnownDialect(JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.String) return false;
        string uri = value.GetString()!;
        uri = uri.EndsWith('#') ? uri[..^1] : uri;
        foreach (string scheme in new[] { "https://", "http://" })
            if (uri.StartsWith(scheme, StringComparison.Ordinal) && System.Array.IndexOf(KnownDialects, uri[scheme.Length..]) >= 0) return true;
        return false;
    }

    private static readonly string[] TypeNames = ["object", "array", "string", "integer", "number", "boolean", "null"];

    /// <summary>The value types: "integer" is a number restricted to integral values.</summary>
    private static readonly string[] ValueTypes = ["object", "array", "string", "number", "boolean", "null"];

    private static readonly ConstraintNode Quote = ConstraintNode.Literal("\"");
    private static readonly ConstraintNode Comma = ConstraintNode.Literal(",");
    private static readonly ConstraintNode Hex = ConstraintNode.Chars(CodePointSet.Of([('0', '9'), ('a', 'f'), ('A', 'F')]));

    /// <summary>One character of a JSON string as written: raw (not '"', '\' or a control character) or escaped.</summary>
    private static readonly ConstraintNode StringCharacter = BuildStringCharacter();

    /// <summary>Any JSON string's content: the free text around a pattern's match.</summary>
    private static readonly ConstraintNode AnyStringContent = ConstraintNode.Repeat(StringCharacter, 0, -1, "a string");

    /// <summary>A JSON string written canonically (one spelling per value): where strings are compared with names or constants.</summary>
    private static readonly ConstraintNode CanonicalString = ConstraintNode.Sequence(Quote, ConstraintNode.Repeat(BuildCanonicalCharacter(), 0, -1, "a string"), Quote);

    private static readonly Lazy<SmallDfa> CanonicalStringDfa = new(() => SmallDfa.Of(CanonicalString, "JSON schema: a string"));

    /// <summary>A number written canonically: no exponent, no trailing fraction zeros, no negative zero.</summary>
    private const string CanonicalNumberPattern = @"(0|-?[1-9][0-9]*)(\.[0-9]*[1-9])?|-0\.[0-9]*[1-9]";

    /// <summary>
    /// A number that is not an integer, written canonically with at most 15 significant digits (9 before the point, 6 after),
    /// so that validators that read numbers as doubles see a fraction too (848191070455464006.1 is integral as a double).
    /// </summary>
    private const string FractionalNumberPattern = @"-?(0|[1-9][0-9]{0,8})\.[0-9]{0,5}[1-9]";

    /// <summary>Schemas nested deeper than this inside one another are refused (System.Text.Json's own default depth).</summary>
    public const int MaxSchemaDepth = 64;

    /// <summary>prefixItems longer than this are refused: each item nests the ones after it one level deeper.</summary>
    public const int MaxPrefixItems = 256;

    /// <summary>
    /// Objects with more properties than this are refused: each member carries the members after it, so the tree
    /// grows with the square of the count (and the automaton too, for optional members) before its size is known.
    /// </summary>
    public const int MaxProperties = 1_000;

    /// <summary>
    /// How many <c>$ref</c>s one path may follow: a recursive type is written down to this depth and no deeper
    /// (a regular language cannot nest without bound); a value that would need one more level is not generated.
    /// </summary>
    public const int MaxRefDepth = 4;

    /// <summary>The alternatives that anyOf, oneOf, if/then/else, not and the dependent* keywords may expand one schema into.</summary>
    public const int MaxBranches = 64;

    /// <summary>The subschemas compiled in all (through $ref a small document can name a large tree): more are refused.</summary>
    public const int MaxWork = 20_000;

    /// <summary>How deep a value nests where the schema leaves it free (true, {}, an open object's extra property).</summary>
    public const int AnyValueDepth = 3;

    /// <summary>Patterns of patternProperties in one object: the key space is split into every combination of them.</summary>
    public const int MaxPatterns = 4;

    /// <summary>An integer without a bound is written within ± this (9 digits: every output reads into an int).</summary>
    public const int MaxUnboundedInteger = 999_999_999;

    /// <summary>multipleOf is supported for integers up to this: the automaton tracks the remainder.</summary>
    public const int MaxDivisor = 1_000;

    /// <summary>maxContains above this is refused: the count is written out.</summary>
    public const int MaxContains = 16;

    /// <summary>How a schema document is read: deep enough for <see cref="MaxSchemaDepth"/> schemas and the values inside them.</summary>
    public static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 4 * MaxSchemaDepth };

    private readonly CancellationToken _cancellation;
    private readonly JsonElement _root;
    private readonly bool _closed;
    private readonly Dictionary<string, (JsonElement Schema, string Pointer)> _resources = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (JsonElement Schema, string Pointer)> _anchors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Uri> _bases = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (JsonElement Schema, string Pointer)> _dynamicAnchors = new(StringComparer.Ordinal);
    private readonly Dictionary<int, ConstraintNode> _anyValues = [];
    private int _depth;
    private int _work;

    /// <summary>How many schemas being expanded (in place, on this level) carry unevaluatedProperties/Items.</summary>
    private int _unevaluatedScopes;

    private JsonSchemaCompiler(JsonElement root, bool closedObjects, CancellationToken cancellation)
    {
        _root = root;
        _closed = closedObjects;
        _cancellation = cancellation;
        _resources[Key(DefaultBase)] = (root, "");
        Index(root, "", DefaultBase, 0);
    }

    public static ConstraintNode Compile(JsonElement schema, CancellationToken cancellation = default) => Compile(schema, closedObjects: false, cancellation);

    /// <summary>Compiles <paramref name="schema"/>; <paramref name="closedObjects"/>: objects take no property the branch does not declare unless additionalProperties or patternProperties allows it.</summary>
    public static ConstraintNode Compile(JsonElement schema, bool closedObjects, CancellationToken cancellation = default)
    {
        // On a stack of known size the limits (MaxSchemaDepth, the document depth) decide, whatever stack the caller runs on.
        return LargeStack.Run(() =>
        {
            try
            {
                return new JsonSchemaCompiler(schema, closedObjects, cancellation).CompileAll([(schema, "", 0)]);
            }
            catch (ConstraintDepthException e)
            {
                throw new ArgumentException($"JSON schema: {e.Message}.");
            }
        }, "JSON schema compile");
    }

    /// <summary>The base URI of a document without an absolute $id: references resolve against it as if it were the document's own.</summary>
    private static readonly Uri DefaultBase = new("urn:mlnetgpt:schema");

    private static string Key(Uri uri)
    {
        string text = uri.OriginalString.Length > 0 && uri.IsAbsoluteUri ? uri.AbsoluteUri : uri.ToString();
        int hash = text.IndexOf('#');
        return hash < 0 ? text : text[..hash];
    }

    private static Uri? Combine(Uri baseUri, string reference)
    {
        try
        {
            if (reference.StartsWith('#')) return new Uri(Key(baseUri) + reference);
            if (Uri.TryCreate(reference, UriKind.Absolute, out var absolute)) return absolute;
            return baseUri.Scheme is "urn" ? null : new Uri(baseUri, reference);
        }
        catch (UriFormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// Indexes the document's schema resources ($id), anchors ($anchor, and $dynamicAnchor as a plain anchor) and the base
    /// URI at every schema, walking no deeper than the document itself may nest; values of const, enum, default and
    /// examples are data, not schemas.
    /// </summary>
    private void Index(JsonElement element, string pointer, Uri baseUri, int depth)
    {
        if (depth > DocumentOptions.MaxDepth) return;
        EnsureStack();
        if (element.ValueKind == JsonValueKind.Object)
        {
            if (element.TryGetProperty("$id", out var id) && id.ValueKind == JsonValueKind.String && Combine(baseUri, id.GetString()!) is { } resolved)
            {
                baseUri = resolved;
                _resources.TryAdd(Key(baseUri), (element, pointer));
            }
            _bases[pointer] = baseUri;
            foreach (string anchorKeyword in new[] { "$anchor", "$dynamicAnchor" })
                if (element.TryGetProperty(anchorKeyword, out var anchor) && anchor.ValueKind == JsonValueKind.String)
                {
                    _anchors.TryAdd(Key(baseUri) + "#" + anchor.GetString(), (element, pointer));
                    if (anchorKeyword == "$dynamicAnchor") _dynamicAnchors.TryAdd(Key(baseUri) + "#" + anchor.GetString(), (element, pointer));
                }
            foreach (var p in element.EnumerateObject())
                if (p.Name is not ("const" or "enum" or "default" or "examples")) Index(p.Value, Child(pointer, p.Name), baseUri, depth + 1);
        }
        else if (element.ValueKind == JsonValueKind.Array)
        {
            int i = 0;
            foreach (var item in element.EnumerateArray()) Index(item, pointer + "/" + (i++).ToString(CultureInfo.InvariantCulture), baseUri, depth + 1);
        }
    }

    private Uri BaseAt(string pointer)
    {
        while (true)
        {
            if (_bases.TryGetValue(pointer, out var found)) return found;
            int slash = pointer.LastIndexOf('/');
            if (slash < 0) return _bases.GetValueOrDefault("", DefaultBase);
            pointer = pointer[..slash];
        }
    }

    private static string Where(string pointer) => pointer.Length == 0 ? "the root" : pointer;

    private static ArgumentException Error(string pointer, string problem) => new($"JSON schema: {problem} at {Where(pointer)}.");

    private static string Child(string pointer, string token) => pointer + "/" + token.Replace("~", "~0").Replace("/", "~1");

    private static string Child(string pointer, string token, int index) => Child(pointer, token) + "/" + index.ToString(CultureInfo.InvariantCulture);

    /// <summary>One conjunct: a schema whose own keywords apply (its applicators were expanded beside it), or a synthetic restriction.</summary>
    /// <remarks><see cref="Quiet"/>: the part came through not (or a failed if), whose annotations JSON Schema drops: it evaluates no member for unevaluated*.</remarks>
    /// <remarks><see cref="Scope"/>: the schema resources entered on the way to this part, outermost first ($dynamicRef's dynamic scope).</remarks>
    private sealed record Part(JsonElement Schema, string Pointer, int RefDepth, bool Synthetic = false, bool Quiet = false)
    {
        public string[] Scope { get; init; } = [];
    }

    private static Part Synth(string json, string pointer, int refDepth) =>
        new(JsonSerializer.Deserialize<JsonElement>(json), pointer, refDepth, Synthetic: true);

    /// <summary>The dynamic scope while expanding: resources entered, outermost first.</summary>
    private readonly List<string> _scope = [];

    private static readonly List<List<Part>> Everything = [[]];

    private static readonly JsonElement StringType = JsonSerializer.Deserialize<JsonElement>("{\"type\":\"string\"}");

    /// <summary>The compile recursion is bounded by <see cref="MaxSchemaDepth"/> and the document's depth; this is the backstop for small stacks.</summary>
    private static void EnsureStack()
    {
        if (!System.Runtime.CompilerServices.RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new ConstraintDepthException("the schema nests too deeply for the stack of this thread");
    }

    private void Enter(string pointer)
    {
        EnsureStack();
        _cancellation.ThrowIfCancellationRequested();
        if (_depth > MaxSchemaDepth)
            throw Error(pointer, $"schemas nest more than {MaxSchemaDepth} levels deep inside one another");
        if (++_work > MaxWork)
            throw Error(pointer, $"the schema expands to more than {MaxWork:N0} subschemas (through $ref)");
        _depth++;
    }

    // ---------------------------------------------------------------- expansion into a union of conjunctions

    private List<List<Part>> Expand(JsonElement schema, string pointer, int refDepth)
    {
        if (schema.ValueKind == JsonValueKind.False) return [];
        if (schema.ValueKind == JsonValueKind.True) return Everything;
        if (schema.ValueKind != JsonValueKind.Object)
            throw Error(pointer, $"a schema must be an object or a boolean, not {Kind(schema)},");
        Enter(pointer);
        try
        {
            foreach (var property in schema.EnumerateObject())
            {
                if (Annotations.Contains(property.Name)) continue;
                if (!Keywords.Contains(property.Name))
                    throw new ArgumentException($"JSON schema: keyword '{property.Name}' at {Where(pointer)} is not supported ({Supported}).");
            }
            if (schema.TryGetProperty("$schema", out var dialect) && !IsKnownDialect(dialect))
                throw new ArgumentException($"JSON schema: $schema {Dialect(dialect)} at {Where(pointer)} names a metaschema other than the standard drafts' "
                    + $"({string.Join(", ", KnownDialects)}): its vocabularies are unknown, and nothing is fetched.");
            if (schema.TryGetProperty("uniqueItems", out var unique) && unique.ValueKind == JsonValueKind.True)
                throw new ArgumentException($"JSON schema: keyword 'uniqueItems' (true) at {Where(pointer)} is not supported: distinct items are not a regular language ({Supported}).");

            // Entering another schema resource (by $id, or by a reference into one) extends the dynamic scope.
            bool entered = false;
            string resource = Key(BaseAt(pointer));
            if (_scope.Count == 0 || _scope[^1] != resource)
            {
                _scope.Add(resource);
                entered = true;
            }
            try
            {
                return ExpandInScope(schema, pointer, refDepth);
            }
            finally
            {
                if (entered) _scope.RemoveAt(_scope.Count - 1);
            }
        }
        finally
        {
            _depth--;
        }
    }

    private List<List<Part>> ExpandInScope(JsonElement schema, string pointer, int refDepth)
    {
        // unevaluated* reads the annotations of every subschema applied in place, anyOf's matching branches all together.
        bool unevaluated = schema.TryGetProperty("unevaluatedProperties", out _) || schema.TryGetProperty("unevaluatedItems", out _);
        if (unevaluated) _unevaluatedScopes++;
        try
        {
            var result = new List<List<Part>> { new() { new Part(schema, pointer, refDepth) { Scope = [.. _scope] } } };
            if (schema.TryGetProperty("$ref", out var reference))
            {
                if (refDepth >= MaxRefDepth) return [];
                var (target, targetPointer) = Resolve(reference, Child(pointer, "$ref"));
                result = Cross(result, Expand(target, targetPointer, refDepth + 1), Child(pointer, "$ref"));
            }
            if (schema.TryGetProperty("$dynamicRef", out var dynamicReference))
            {
                if (refDepth >= MaxRefDepth) return [];
                var (target, targetPointer) = ResolveDynamic(dynamicReference, Child(pointer, "$dynamicRef"));
                result = Cross(result, Expand(target, targetPointer, refDepth + 1), Child(pointer, "$dynamicRef"));
            }
            if (schema.TryGetProperty("allOf", out var allOf))
            {
                int i = 0;
                foreach (var sub in SchemaArray(allOf, Child(pointer, "allOf"), "allOf"))
                    result = Cross(result, Expand(sub, Child(pointer, "allOf", i++), refDepth), Child(pointer, "allOf"));
            }
            if (schema.TryGetProperty("anyOf", out var anyOf))
            {
                string at = Child(pointer, "anyOf");
                var branches = SchemaArray(anyOf, at, "anyOf").Select((s, i) => Expand(s, Child(pointer, "anyOf", i), refDepth)).ToList();
                result = Cross(result, _unevaluatedScopes > 0 ? Matching(branches, result.Count, at) : Union(branches, at), at);
            }
            if (schema.TryGetProperty("oneOf", out var oneOf))
            {
                var branches = SchemaArray(oneOf, Child(pointer, "oneOf"), "oneOf").Select((s, i) => Expand(s, Child(pointer, "oneOf", i), refDepth)).ToList();
                string at = Child(pointer, "oneOf");
                if (Overlap(branches) is { } overlap)
                {
                    // Branches that may overlap: each branch together with the complement of every other one.
                    var elements = oneOf.EnumerateArray().ToList();
                    for (int i = 0; i < branches.Count; i++)
                        for (int j = 0; j < branches.Count; j++)
                        {
                            if (i == j) continue;
                            try
                            {
                                branches[i] = Cross(branches[i], Negate(elements[j], Child(at, j.ToString(CultureInfo.InvariantCulture)), refDepth), at);
                            }
                            catch (ArgumentException e)
                            {
                                throw Error(at, $"oneOf whose branches {overlap.I} and {overlap.J} may both match one value needs each branch's complement, "
                                    + $"and branch {j}'s is not expressible ({e.Message.Replace("JSON schema: ", "", StringComparison.Ordinal).TrimEnd('.')})");
                            }
                        }
                }
                result = Cross(result, Union(branches, at), at);
            }
            if (schema.TryGetProperty("not", out var not))
                result = Cross(result, Negate(not, Child(pointer, "not"), refDepth), Child(pointer, "not"));
            if (schema.TryGetProperty("if", out var condition))
            {
                var then = schema.TryGetProperty("then", out var t) ? Expand(t, Child(pointer, "then"), refDepth) : Everything;
                var otherwise = schema.TryGetProperty("else", out var e) ? Expand(e, Child(pointer, "else"), refDepth) : Everything;
                var yes = Cross(Expand(condition, Child(pointer, "if"), refDepth), then, Child(pointer, "if"));
                var no = Cross(Negate(condition, Child(pointer, "if"), refDepth), otherwise, Child(pointer, "if"));
                result = Cross(result, Union([yes, no], Child(pointer, "if")), Child(pointer, "if"));
            }
            if (schema.TryGetProperty("dependentRequired", out var dependentRequired))
            {
                string at = Child(pointer, "dependentRequired");
                if (dependentRequired.ValueKind != JsonValueKind.Object) throw Error(at, $"dependentRequired must be an object, not {Describe(dependentRequired)},");
                foreach (var p in dependentRequired.EnumerateObject())
                {
                    if (p.Value.ValueKind != JsonValueKind.Array || p.Value.EnumerateArray().Any(n => n.ValueKind != JsonValueKind.String))
                        throw Error(Child(at, p.Name), $"dependentRequired values must be arrays of names, not {Describe(p.Value)},");
                    string names = JsonSerializer.Serialize(p.Value.EnumerateArray().Select(n => n.GetString()).Append(p.Name));
                    result = Cross(result, [[Absent(p.Name, at, refDepth)], [Synth($"{{\"required\":{names}}}", at, refDepth)]], at);
                }
            }
            if (schema.TryGetProperty("dependentSchemas", out var dependentSchemas))
            {
                string at = Child(pointer, "dependentSchemas");
                if (dependentSchemas.ValueKind != JsonValueKind.Object) throw Error(at, $"dependentSchemas must be an object, not {Describe(dependentSchemas)},");
                foreach (var p in dependentSchemas.EnumerateObject())
                {
                    var present = Cross([[Synth($"{{\"required\":[{JsonSerializer.Serialize(p.Name)}]}}", at, refDepth)]], Expand(p.Value, Child(at, p.Name), refDepth), at);
                    result = Cross(result, Union([[[Absent(p.Name, at, refDepth)]], present], at), at);
                }
            }
            if (unevaluated)
            {
                _unevaluatedScopes--;
                unevaluated = false;
            }
            if (schema.TryGetProperty("unevaluatedProperties", out var unevaluatedProperties))
                result = result.Select(conj => Unevaluated(conj, unevaluatedProperties, Child(pointer, "unevaluatedProperties"), refDepth, items: false)).ToList();
            if (schema.TryGetProperty("unevaluatedItems", out var unevaluatedItems))
                result = result.Select(conj => Unevaluated(conj, unevaluatedItems, Child(pointer, "unevaluatedItems"), refDepth, items: true)).ToList();
            return result;
        }
        finally
        {
            if (unevaluated) _unevaluatedScopes--;
        }
    }

    /// <summary>
    /// anyOf where unevaluatedProperties/Items reads its annotations: a value that matches several branches has the members
    /// of all of them evaluated, so every non-empty set of branches is an alternative of its own (their conjunction), as far
    /// as <see cref="MaxBranches"/> allows; past that, one branch at a time (fewer values, never more).
    /// </summary>
    private static List<List<Part>> Matching(List<List<List<Part>>> branches, int outer, string pointer)
    {
        if (branches.Count > 6) return Union(branches, pointer);
        // A branch that allows everything adds no constraint to a set: only the set of it alone is kept.
        bool Redundant(int set) => System.Numerics.BitOperations.PopCount((uint)set) > 1
            && Enumerable.Range(0, branches.Count).Any(i => (set >> i & 1) == 1 && ReferenceEquals(branches[i], Everything));
        long total = 0;
        for (int set = 1; set < 1 << branches.Count; set++)
        {
            if (Redundant(set)) continue;
            long product = 1;
            for (int i = 0; i < branches.Count; i++)
                if ((set >> i & 1) == 1) product *= ReferenceEquals(branches[i], Everything) ? 1 : branches[i].Count;
            total += product;
        }
        if (total * Math.Max(1, outer) > MaxBranches) return Union(branches, pointer);
        var result = new List<List<Part>>();
        for (int set = 1; set < 1 << branches.Count; set++)
        {
            if (Redundant(set)) continue;
            var conjunction = Everything;
            for (int i = 0; i < branches.Count; i++)
                if ((set >> i & 1) == 1) conjunction = Cross(conjunction, branches[i], pointer);
            if (ReferenceEquals(conjunction, Everything)) result.Add([]);
            else result.AddRange(conjunction);
        }
        return result;
    }

    /// <summary>
    /// unevaluatedProperties/Items over one conjunction of the schema's own subtree: what its parts' properties,
    /// patternProperties and prefixItems leave is given the schema, as additionalProperties/items would; a part whose
    /// additionalProperties/items already reads every member leaves nothing. (Where anyOf had several branches match,
    /// JSON Schema would count the members of all of them: taking one branch at a time allows fewer values, never more.)
    /// </summary>
    private static List<Part> Unevaluated(List<Part> all, JsonElement schema, string pointer, int refDepth, bool items)
    {
        var conj = all.Where(p => !p.Quiet).ToList();
        if (items)
        {
            if (All(conj, "items").Any()) return all;
            int length = All(conj, "prefixItems").Select(p => p.Value.ValueKind == JsonValueKind.Array ? p.Value.GetArrayLength() : 0).DefaultIfEmpty(0).Max();
            // Items that contains matched are evaluated too: the rest may match contains or the unevaluatedItems schema.
            var contained = All(conj, "contains").Select(c => c.Value.GetRawText()).ToList();
            string rest = contained.Count == 0 ? schema.GetRawText() : $"{{\"anyOf\":[{string.Join(",", contained)},{schema.GetRawText()}]}}";
            string prefix = length == 0 ? "" : $"\"prefixItems\":[{string.Join(",", Enumerable.Repeat("true", length))}],";
            return [.. all, Synth($"{{{prefix}\"items\":{rest}}}", pointer, refDepth) with { Pointer = pointer[..pointer.LastIndexOf('/')] }];
        }
        if (All(conj, "additionalProperties").Any()) return all;
        var names = All(conj, "properties").Where(p => p.Value.ValueKind == JsonValueKind.Object).SelectMany(p => p.Value.EnumerateObject().Select(x => x.Name)).Distinct().ToList();
        var patterns = All(conj, "patternProperties").Where(p => p.Value.ValueKind == JsonValueKind.Object).SelectMany(p => p.Value.EnumerateObject().Select(x => x.Name)).Distinct().ToList();
        string json = $"{{\"properties\":{{{string.Join(",", names.Select(n => JsonSerializer.Serialize(n) + ":true"))}}},"
            + $"\"patternProperties\":{{{string.Join(",", patterns.Select(n => JsonSerializer.Serialize(n) + ":true"))}}},\"additionalProperties\":{schema.GetRawText()}}}";
        return [.. all, Synth(json, pointer, refDepth)];
    }

    private static Part Absent(string name, string pointer, int refDepth) => Synth($"{{\"properties\":{{{JsonSerializer.Serialize(name)}:false}}}}", pointer, refDepth);

    private static IEnumerable<JsonElement> SchemaArray(JsonElement value, string pointer, string keyword)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
            throw Error(pointer, $"{keyword} must be a non-empty array of schemas, not {Describe(value)},");
        return value.EnumerateArray();
    }

    private static List<List<Part>> Cross(List<List<Part>> a, List<List<Part>> b, string pointer)
    {
        if (ReferenceEquals(b, Everything)) return a;
        if (ReferenceEquals(a, Everything)) return b;
        if ((long)a.Count * b.Count > MaxBranches)
            throw Error(pointer, $"the schema expands to more than {MaxBranches} alternatives (anyOf, oneOf, if, not, dependent*: {a.Count} times {b.Count})");
        var result = new List<List<Part>>(a.Count * b.Count);
        foreach (var x in a)
            foreach (var y in b)
                result.Add([.. x, .. y]);
        return result;
    }

    private static List<List<Part>> Union(IEnumerable<List<List<Part>>> branches, string pointer)
    {
        var result = new List<List<Part>>();
        foreach (var branch in branches)
        {
            if (branch.Any(b => b.Count == 0)) return Everything;
            result = Sum(result, branch, pointer);
        }
        return result;
    }

    private static List<List<Part>> Sum(List<List<Part>> a, List<List<Part>> b, string pointer)
    {
        if (a.Count + b.Count > MaxBranches)
            throw Error(pointer, $"the schema expands to more than {MaxBranches} alternatives (anyOf, oneOf, if, not, dependent*)");
        return [.. a, .. b];
    }

    /// <summary>
    /// A reference into this document: resolved against the base URI where it stands ($id), to a schema resource of the
    /// document ($id), a JSON pointer inside one (with ~0 ~1 and %-escapes) or an anchor. Nothing outside the document is fetched.
    /// </summary>
    private (JsonElement Target, string Pointer) Resolve(JsonElement reference, string pointer)
    {
        if (reference.ValueKind != JsonValueKind.String) throw Error(pointer, $"$ref must be a string, not {Describe(reference)},");
        string text = reference.GetString()!;
        var full = Combine(BaseAt(pointer[..Math.Max(0, pointer.LastIndexOf('/'))]), text)
            ?? throw Error(pointer, $"$ref '{text}' is not a URI reference that resolves here");
        string document = Key(full);
        string fragment = Uri.UnescapeDataString(full.Fragment.TrimStart('#'));
        if (!_resources.TryGetValue(document, out var resource))
            throw Error(pointer, $"$ref '{text}' points outside this document ({document}); remote references are not fetched");
        if (fragment.Length == 0) return resource;
        if (!fragment.StartsWith('/'))
            return _anchors.TryGetValue(document + "#" + fragment, out var anchored) ? anchored
                : throw Error(pointer, $"$ref '{text}' names an anchor that this document does not define");
        var target = resource.Schema;
        string resolved = resource.Pointer;
        foreach (string raw in fragment[1..].Split('/'))
        {
            string token = raw.Replace("~1", "/").Replace("~0", "~");
            if (target.ValueKind == JsonValueKind.Object && target.TryGetProperty(token, out var next)) target = next;
            else if (target.ValueKind == JsonValueKind.Array && int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out int index) && index < target.GetArrayLength())
                target = target[index];
            else throw Error(pointer, $"$ref '{text}' points at nothing in the document");
            resolved = Child(resolved, token);
        }
        return (target, resolved);
    }

    /// <summary>
    /// $dynamicRef: resolved as $ref; where that lands on a $dynamicAnchor of the fragment's name, the outermost resource of
    /// the dynamic scope (the resources entered on the way here) that has a $dynamicAnchor of that name is taken instead.
    /// </summary>
    private (JsonElement Target, string Pointer) ResolveDynamic(JsonElement reference, string pointer)
    {
        var initial = Resolve(reference, pointer);
        string text = reference.GetString()!;
        int hash = text.IndexOf('#');
        string name = hash < 0 ? "" : Uri.UnescapeDataString(text[(hash + 1)..]);
        if (name.Length == 0 || name.StartsWith('/')) return initial;
        if (!(initial.Target.ValueKind == JsonValueKind.Object && initial.Target.TryGetProperty("$dynamicAnchor", out var anchor)
              && anchor.ValueKind == JsonValueKind.String && anchor.GetString() == name)) return initial;
        foreach (string resource in _scope)
            if (_dynamicAnchors.TryGetValue(resource + "#" + name, out var found)) return found;
        return initial;
    }

    /// <summary>Two branches of oneOf that may both match one value (null when all have disjoint types or distinct constants).</summary>
    private static (int I, int J)? Overlap(List<List<List<Part>>> branches)
    {
        var types = branches.Select(b => b.Aggregate(new HashSet<string>(), (set, conj) => { set.UnionWith(TypeSet(conj)); return set; })).ToList();
        var values = branches.Select(b => b.All(conj => Candidates(conj) is not null) ? b.SelectMany(conj => Candidates(conj)!).ToList() : null).ToList();
        for (int i = 0; i < branches.Count; i++)
            for (int j = i + 1; j < branches.Count; j++)
            {
                if (!types[i].Overlaps(types[j])) continue;
                if (values[i] is { } vi && values[j] is { } vj && !vi.Any(x => vj.Any(y => JsonEquals(x, y)))) continue;
                return (i, j);
            }
        return null;
    }

    /// <summary>The complement of a schema as a union of conjunctions, for the forms whose complement stays expressible.</summary>
    private List<List<Part>> Negate(JsonElement schema, string pointer, int refDepth)
    {
        if (schema.ValueKind == JsonValueKind.False) return Everything;
        if (schema.ValueKind == JsonValueKind.True) return [];
        if (schema.ValueKind != JsonValueKind.Object) throw Error(pointer, $"a schema must be an object or a boolean, not {Kind(schema)},");
        Enter(pointer);
        try
        {
            var result = new List<List<Part>>();
            foreach (var p in schema.EnumerateObject())
            {
                if (Annotations.Contains(p.Name)) continue;
                string at = Child(pointer, p.Name);
                List<List<Part>> negated;
                switch (p.Name)
                {
                    case "type":
                        negated = [[Synth($"{{\"type\":{JsonSerializer.Serialize(ValueTypes.Except(TypesOf(p.Value, at)).ToArray())}}}", at, refDepth)]];
                        if (TypesOf(p.Value, at).Contains("integer") && !TypesOf(p.Value, at).Contains("number"))
                        {
                            // Not an integer: another type, or a number with a fractional part.
                            negated = [[Synth($"{{\"type\":{JsonSerializer.Serialize(ValueTypes.Where(t => t != "number").Except(TypesOf(p.Value, at)).ToArray())}}}", at, refDepth)],
                                [Synth("{\"type\":\"number\",\"!fractional\":true}", at, refDepth)]];
                        }
                        break;
                    case "const":
                        negated = [[Synth($"{{\"!notValues\":[{p.Value.GetRawText()}]}}", at, refDepth)]];
                        break;
                    case "enum":
                        if (p.Value.ValueKind != JsonValueKind.Array) throw Error(at, $"enum must be an array, not {Describe(p.Value)},");
                        negated = [[Synth($"{{\"!notValues\":{p.Value.GetRawText()}}}", at, refDepth)]];
                        break;
                    case "required":
                        if (p.Value.ValueKind != JsonValueKind.Array) throw Error(at, $"required must be an array of names, not {Describe(p.Value)},");
                        // Values other than objects satisfy required, so its complement holds objects only.
                        negated = p.Value.EnumerateArray().Select(n => new List<Part> { Absent(n.GetString() ?? "", at, refDepth), Synth("{\"type\":\"object\"}", at, refDepth) }).ToList();
                        break;
                    case "minimum" or "exclusiveMinimum" or "maximum" or "exclusiveMaximum":
                    {
                        string opposite = p.Name switch { "minimum" => "exclusiveMaximum", "exclusiveMinimum" => "maximum", "maximum" => "exclusiveMinimum", _ => "minimum" };
                        // Values other than numbers satisfy a bound, so its complement holds numbers only.
                        negated = [[Synth($"{{\"type\":\"number\",\"{opposite}\":{p.Value.GetRawText()}}}", at, refDepth)]];
                        break;
                    }
                    case "minLength" or "maxLength" or "minItems" or "maxItems" or "minProperties" or "maxProperties":
                    {
                        if (!TryCount(p.Value, out int n)) throw Error(at, $"{p.Name} must be a non-negative integer, not {Describe(p.Value)},");
                        string type = p.Name.EndsWith("Length", StringComparison.Ordinal) ? "string" : p.Name.EndsWith("Items", StringComparison.Ordinal) ? "array" : "object";
                        string opposite = p.Name.StartsWith("min", StringComparison.Ordinal) ? "max" + p.Name[3..] : "min" + p.Name[3..];
                        int bound = opposite.StartsWith("max", StringComparison.Ordinal) ? n - 1 : n + 1;
                        // Values of other types satisfy a count, so its complement holds that type only.
                        negated = [];
                        if (bound >= 0) negated.Add([Synth($"{{\"type\":\"{type}\",\"{opposite}\":{bound}}}", at, refDepth)]);
                        break;
                    }
                    case "anyOf":
                    {
                        negated = Everything;
                        int i = 0;
                        foreach (var sub in SchemaArray(p.Value, at, "anyOf")) negated = Cross(negated, Negate(sub, Child(at, (i++).ToString(CultureInfo.InvariantCulture)), refDepth), at);
                        break;
                    }
                    case "allOf":
                        negated = Union(SchemaArray(p.Value, at, "allOf").Select((s, i) => Negate(s, Child(at, i.ToString(CultureInfo.InvariantCulture)), refDepth)).ToList(), at);
                        break;
                    case "not":
                        negated = Expand(p.Value, at, refDepth);
                        break;
                    case "$ref":
                    {
                        if (refDepth >= MaxRefDepth) throw Error(at, $"not of a $ref chain deeper than {MaxRefDepth} is not supported");
                        var (target, targetPointer) = Resolve(p.Value, at);
                        negated = Negate(target, targetPointer, refDepth + 1);
                        break;
                    }
                    case "properties" when p.Value.ValueKind == JsonValueKind.Object:
                        negated = p.Value.EnumerateObject().Select(x => new List<Part> { Synth(
                            $"{{\"type\":\"object\",\"required\":[{JsonSerializer.Serialize(x.Name)}],\"properties\":{{{JsonSerializer.Serialize(x.Name)}:{{\"not\":{x.Value.GetRawText()}}}}}}}", at, refDepth) }).ToList();
                        break;
                    case "items" when !schema.TryGetProperty("prefixItems", out _) && p.Value.ValueKind is JsonValueKind.Object or JsonValueKind.True or JsonValueKind.False:
                        negated = [[Synth($"{{\"type\":\"array\",\"contains\":{{\"not\":{p.Value.GetRawText()}}}}}", at, refDepth)]];
                        break;
                    case "prefixItems" when p.Value.ValueKind == JsonValueKind.Array:
                        negated = p.Value.EnumerateArray().Select((x, i) => new List<Part> { Synth(
                            $"{{\"type\":\"array\",\"minItems\":{i + 1},\"prefixItems\":[{string.Concat(Enumerable.Repeat("true,", i))}{{\"not\":{x.GetRawText()}}}]}}", at, refDepth) }).ToList();
                        break;
                    case "contains" when !schema.TryGetProperty("minContains", out _) && !schema.TryGetProperty("maxContains", out _):
                        negated = [[Synth($"{{\"type\":\"array\",\"items\":{{\"not\":{p.Value.GetRawText()}}}}}", at, refDepth)]];
                        break;
                    case "pattern" when p.Value.ValueKind == JsonValueKind.String:
                        negated = [[Synth($"{{\"type\":\"string\",\"!notPattern\":{p.Value.GetRawText()}}}", at, refDepth)]];
                        break;
                    case "dependentRequired" when p.Value.ValueKind == JsonValueKind.Object:
                        negated = p.Value.EnumerateObject().Where(x => x.Value.ValueKind == JsonValueKind.Array).SelectMany(x => x.Value.EnumerateArray().Select(b => new List<Part>
                            { Synth($"{{\"type\":\"object\",\"required\":[{JsonSerializer.Serialize(x.Name)}]}}", at, refDepth), Absent(b.GetString() ?? "", at, refDepth) })).ToList();
                        break;
                    case "format" or "uniqueItems" when p.Value.ValueKind != JsonValueKind.True:
                        continue;
                    default:
                        throw new ArgumentException($"JSON schema: keyword '{p.Name}' inside not (or if) at {Where(at)} is not supported: its complement is not expressible "
                            + "(inside not: type, const, enum, required, properties, items without prefixItems, prefixItems, contains without min/maxContains, pattern, "
                            + "dependentRequired, minimum, maximum, exclusiveMinimum, exclusiveMaximum, the min/max counts, anyOf, allOf, not, $ref).");
                }
                negated = ReferenceEquals(negated, Everything) ? negated : negated.Select(conj => conj.Select(part => part with { Quiet = true }).ToList()).ToList();
                result = ReferenceEquals(negated, Everything) ? Everything : ReferenceEquals(result, Everything) ? result : Sum(result, negated, pointer);
                if (ReferenceEquals(result, Everything)) return Everything;
            }
            return result;
        }
        finally
        {
            _depth--;
        }
    }

    // ---------------------------------------------------------------- compiling a conjunction

    /// <summary>The values allowed by all of the schemas (each with its pointer and the $ref depth of its path).</summary>
    private ConstraintNode CompileAll(IReadOnlyList<(JsonElement Schema, string Pointer, int RefDepth)> schemas)
    {
        // One level of nesting (a property's, an item's value): Expand counts from here, so the depth limit sees every level.
        // A value's members are not its parent's: unevaluated* of an enclosing schema does not read them.
        _depth++;
        int unevaluatedScopes = _unevaluatedScopes;
        _unevaluatedScopes = 0;
        try
        {
            var dnf = Everything;
            foreach (var (schema, pointer, refDepth) in schemas)
                dnf = Cross(dnf, Expand(schema, pointer, refDepth), pointer);
            var nodes = new ConstraintNode[dnf.Count];
            for (int i = 0; i < nodes.Length; i++) nodes[i] = Conjunction(dnf[i]);
            return ConstraintNode.Choice(nodes);
        }
        finally
        {
            _depth--;
            _unevaluatedScopes = unevaluatedScopes;
        }
    }

    private static IEnumerable<(JsonElement Value, Part Part)> All(List<Part> parts, string keyword)
    {
        foreach (var part in parts)
            if (part.Schema.ValueKind == JsonValueKind.Object && part.Schema.TryGetProperty(keyword, out var value)) yield return (value, part);
    }

    private static HashSet<string> TypesOf(JsonElement type, string pointer)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        if (type.ValueKind == JsonValueKind.String) names.Add(type.GetString()!);
        else if (type.ValueKind == JsonValueKind.Array && type.GetArrayLength() > 0)
            foreach (var item in type.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String) throw Error(pointer, $"a type name must be a string, not {Describe(item)},");
                names.Add(item.GetString()!);
            }
        else throw Error(pointer, $"type must be a type name or a non-empty array of them, not {Describe(type)},");
        foreach (var name in names)
            if (System.Array.IndexOf(TypeNames, name) < 0)
                throw Error(pointer, $"the type '{name}' is unknown (expected one of {string.Join(", ", TypeNames)})");
        return names;
    }

    /// <summary>The types a conjunction allows: value types plus "integer" standing for integral numbers only.</summary>
    private static HashSet<string> TypeSet(List<Part> parts)
    {
        var set = new HashSet<string>(ValueTypes, StringComparer.Ordinal);
        bool integral = false;
        foreach (var (value, part) in All(parts, "type"))
        {
            var names = TypesOf(value, Child(part.Pointer, "type"));
            if (names.Contains("integer") && !names.Contains("number"))
            {
                names.Add("number");
                if (set.Contains("number")) integral = true;
            }
            set.IntersectWith(names);
        }
        if (Candidates(parts) is { } values)
        {
            var kinds = values.Select(ValueType).ToHashSet();
            set.IntersectWith(kinds);
        }
        if (integral && set.Contains("number")) set.Add("integer");
        return set;
    }

    private static string ValueType(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => "null",
    };

    /// <summary>The values const and enum allow across the conjunction (compared as JSON values), or null when none restricts them.</summary>
    private static List<JsonElement>? Candidates(List<Part> parts)
    {
        List<JsonElement>? values = null;
        foreach (var part in parts)
        {
            if (part.Schema.ValueKind != JsonValueKind.Object) continue;
            if (part.Schema.TryGetProperty("enum", out var e))
            {
                if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() == 0)
                    throw Error(Child(part.Pointer, "enum"), $"enum must be a non-empty array, not {Describe(e)},");
                var list = e.EnumerateArray().ToList();
                values = values is null ? list : values.Where(v => list.Any(w => JsonEquals(v, w))).ToList();
            }
            if (part.Schema.TryGetProperty("const", out var c))
                values = values is null ? [c] : values.Where(v => JsonEquals(v, c)).ToList();
        }
        return values;
    }

    private static List<JsonElement> Excluded(List<Part> parts) =>
        All(parts, "!notValues").SelectMany(v => v.Value.EnumerateArray()).ToList();

    private ConstraintNode Conjunction(List<Part> parts)
    {
        // Children are compiled in the dynamic scope of the part that reached furthest.
        var saved = _scope.ToArray();
        _scope.Clear();
        _scope.AddRange(parts.Select(p => p.Scope).DefaultIfEmpty([]).MaxBy(s => s.Length)!);
        try
        {
            return ConjunctionInScope(parts);
        }
        finally
        {
            _scope.Clear();
            _scope.AddRange(saved);
        }
    }

    private ConstraintNode ConjunctionInScope(List<Part> parts)
    {
        _cancellation.ThrowIfCancellationRequested();
        var types = TypeSet(parts);
        var excluded = Excluded(parts);
        if (Candidates(parts) is { } candidates) return Constants(parts, types, excluded, candidates);
        var branches = new List<ConstraintNode>();
        foreach (var type in ValueTypes)
        {
            if (!types.Contains(type)) continue;
            branches.Add(type switch
            {
                "object" => Object(parts),
                "array" => Array(parts),
                "string" => String(parts, excluded),
                "number" => Number(parts, types.Contains("integer"), excluded),
                "boolean" => ConstraintNode.Choice(new[] { "true", "false" }.Where(b => !excluded.Any(x => ValueType(x) == "boolean" && x.GetRawText() == b)).Select(ConstraintNode.Literal)),
                _ => excluded.Any(x => x.ValueKind == JsonValueKind.Null) ? ConstraintNode.Nothing : ConstraintNode.Literal("null"),
            });
        }
        if (excluded.Any(x => x.ValueKind is JsonValueKind.Object or JsonValueKind.Array) && (types.Contains("object") || types.Contains("array")))
            throw Error(parts.First(p => p.Synthetic).Pointer, "not/else of an object or array constant is not supported");
        return ConstraintNode.Choice(branches);
    }

    /// <summary>A conjunction with const/enum: the constants that the other keywords allow, in each of their spellings.</summary>
    private ConstraintNode Constants(List<Part> parts, HashSet<string> types, List<JsonElement> excluded, List<JsonElement> candidates)
    {
        {
            candidates = candidates.Where(v => !excluded.Any(x => JsonEquals(v, x))).ToList();
            if (candidates.Count == 0) return ConstraintNode.Nothing;
            var without = parts.Select(p => p.Synthetic || p.Schema.ValueKind != JsonValueKind.Object || !(p.Schema.TryGetProperty("enum", out _) || p.Schema.TryGetProperty("const", out _)) ? p
                : p with { Schema = JsonSerializer.Deserialize<JsonElement>("{" + string.Join(",", p.Schema.EnumerateObject().Where(x => x.Name is not "enum" and not "const").Select(x => JsonSerializer.Serialize(x.Name) + ":" + x.Value.GetRawText())) + "}") }).ToList();
            ByteDfa? filter = null;
            var kept = new List<JsonElement>();
            foreach (var value in candidates)
            {
                if (!types.Contains(ValueType(value)) || (types.Contains("integer") && !IsIntegral(value) && ValueType(value) == "number")) continue;
                filter ??= new ByteDfa(ByteNfa.Build(Conjunction(without), "JSON schema", _cancellation));
                if (filter.Matches(Encoding.UTF8.GetBytes(JsonText.Canonical(value)))) kept.Add(value);
            }
            return ConstraintNode.Choice(kept.Select(v => Spellings(v, 0)));
        }
    }

    /// <summary>The spellings of a constant: numbers in their shortest decimal form, objects' members in any order (up to 4 members).</summary>
    private ConstraintNode Spellings(JsonElement value, int depth)
    {
        EnsureStack();
        if (++_work > MaxWork) throw Error("", $"the schema expands to more than {MaxWork:N0} subschemas (constants)");
        switch (value.ValueKind)
        {
            case JsonValueKind.Number:
                // One spelling per number, the shortest decimal (2.0 is written 2), so that integral constants read into integer types.
                return ConstraintNode.Literal(JsonText.ShortestNumber(value) ?? value.GetRawText());
            case JsonValueKind.Array:
            {
                var items = value.EnumerateArray().Select(v => Spellings(v, depth + 1)).ToList();
                var inner = new List<ConstraintNode>();
                for (int i = 0; i < items.Count; i++)
                {
                    if (i > 0) inner.Add(Comma);
                    inner.Add(items[i]);
                }
                return ConstraintNode.Sequence([ConstraintNode.Literal("["), .. inner, ConstraintNode.Literal("]")]);
            }
            case JsonValueKind.Object:
            {
                var members = value.EnumerateObject().Select(p => ConstraintNode.Sequence(ConstraintNode.Literal("\"" + JsonText.EscapeString(p.Name) + "\":"), Spellings(p.Value, depth + 1))).ToList();
                var orders = members.Count <= 4 ? Permutations(members.Count) : [Enumerable.Range(0, members.Count).ToArray()];
                return ConstraintNode.Choice(orders.Select(order =>
                {
                    var inner = new List<ConstraintNode> { ConstraintNode.Literal("{") };
                    for (int i = 0; i < order.Length; i++)
                    {
                        if (i > 0) inner.Add(Comma);
                        inner.Add(members[order[i]]);
                    }
                    inner.Add(ConstraintNode.Literal("}"));
                    return ConstraintNode.Sequence(inner.ToArray());
                }));
            }
            default:
                return ConstraintNode.Literal(JsonText.Canonical(value));
        }
    }

    private static List<int[]> Permutations(int n)
    {
        var result = new List<int[]>();
        void Go(int[] current, bool[] used, int k)
        {
            if (k == n)
            {
                result.Add((int[])current.Clone());
                return;
            }
            for (int i = 0; i < n; i++)
            {
                if (used[i]) continue;
                used[i] = true;
                current[k] = i;
                Go(current, used, k + 1);
                used[i] = false;
            }
        }
        Go(new int[n], new bool[n], 0);
        return result;
    }

    private static bool IsIntegral(JsonElement value) =>
        decimal.TryParse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out decimal d) ? d == decimal.Truncate(d)
        : double.TryParse(value.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && Math.Floor(x) == x;

    /// <summary>JSON equality: numbers by value, objects regardless of member order.</summary>
    internal static bool JsonEquals(JsonElement a, JsonElement b)
    {
        EnsureStack();
        if (ValueType(a) != ValueType(b)) return false;
        switch (a.ValueKind)
        {
            case JsonValueKind.Number:
                if (decimal.TryParse(a.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out decimal x)
                    && decimal.TryParse(b.GetRawText(), NumberStyles.Float, CultureInfo.InvariantCulture, out decimal y)) return x == y;
                return a.GetRawText() == b.GetRawText();
            case JsonValueKind.String:
                return a.GetString() == b.GetString();
            case JsonValueKind.Array:
                return a.GetArrayLength() == b.GetArrayLength() && a.EnumerateArray().Zip(b.EnumerateArray()).All(p => JsonEquals(p.First, p.Second));
            case JsonValueKind.Object:
            {
                var left = a.EnumerateObject().ToList();
                var right = b.EnumerateObject().ToList();
                return left.Count == right.Count && left.All(p => right.Any(q => q.Name == p.Name && JsonEquals(p.Value, q.Value)));
            }
            default:
                return a.ValueKind == b.ValueKind;
        }
    }

    /// <summary>Any value nesting at most <paramref name="depth"/> containers deep.</summary>
    private ConstraintNode AnyValue(int depth)
    {
        if (_anyValues.TryGetValue(depth, out var known)) return known;
        var scalar = ConstraintNode.Choice(ConstraintNode.Sequence(Quote, AnyStringContent, Quote), Number([], false, []),
            ConstraintNode.Literal("true"), ConstraintNode.Literal("false"), ConstraintNode.Literal("null"));
        ConstraintNode value = scalar;
        if (depth > 0)
        {
            var inner = AnyValue(depth - 1);
            var member = ConstraintNode.Sequence(ConstraintNode.Sequence(Quote, AnyStringContent, Quote), ConstraintNode.Literal(":"), inner);
            value = ConstraintNode.Choice(scalar, Container("{", member, "}", 0, null, "an object"), Container("[", inner, "]", 0, null, "an array"));
        }
        return _anyValues[depth] = value;
    }

    /// <summary>open item (, item){min-1,max-1} close.</summary>
    private static ConstraintNode Container(string open, ConstraintNode item, string close, int min, int? max, string origin)
    {
        if (max == 0) return ConstraintNode.Literal(open + close);
        if (max is null && min <= 1)
            return ConstraintNode.Sequence(ConstraintNode.Literal(open), ConstraintNode.Separated(item, Comma, allowEmpty: min == 0), ConstraintNode.Literal(close));
        var content = ConstraintNode.Sequence(item, ConstraintNode.Repeat(ConstraintNode.Sequence(Comma, item), Math.Max(0, min - 1), max is { } m ? m - 1 : -1, origin));
        if (min == 0) content = ConstraintNode.Optional(content);
        return ConstraintNode.Sequence(ConstraintNode.Literal(open), content, ConstraintNode.Literal(close));
    }

    /// <summary>Where the keyword stands (the first part that has it), for errors and size origins.</summary>
    private static string At(List<Part> parts, string keyword) =>
        Where(All(parts, keyword).Select(p => p.Part.Pointer).FirstOrDefault() ?? parts.FirstOrDefault()?.Pointer ?? "");

    private static int? Count(List<Part> parts, string name, bool takeMax)
    {
        int? result = null;
        foreach (var (value, part) in All(parts, name))
        {
            if (!TryCount(value, out int count))
                throw Error(Child(part.Pointer, name), $"{name} must be a non-negative integer, not {Describe(value)},");
            result = result is null ? count : takeMax ? Math.Max(result.Value, count) : Math.Min(result.Value, count);
        }
        return result;
    }

    /// <summary>A count written as any integral JSON number (2 or 2.0) within int's range.</summary>
    private static bool TryCount(JsonElement value, out int count)
    {
        count = 0;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out decimal d) || d != decimal.Truncate(d) || d < 0 || d > int.MaxValue) return false;
        count = (int)d;
        return true;
    }

    private ConstraintNode Values(IEnumerable<(JsonElement Schema, string Pointer, int RefDepth)> schemas, int refDepth)
    {
        var list = schemas.ToList();
        if (list.Count == 0 || list.All(s => s.Schema.ValueKind == JsonValueKind.True)) return AnyValue(AnyValueDepth);
        return CompileAll(list);
    }

    // ---------------------------------------------------------------- objects

    private ConstraintNode Object(List<Part> parts)
    {
        int refDepth = parts.Count == 0 ? 0 : parts.Max(p => p.RefDepth);
        var declared = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (value, part) in All(parts, "properties"))
        {
            if (value.ValueKind != JsonValueKind.Object) throw Error(Child(part.Pointer, "properties"), $"properties must be an object, not {Describe(value)},");
            foreach (var p in value.EnumerateObject())
            {
                if (seen.Count == MaxProperties && !seen.Contains(p.Name))
                    throw Error(Child(part.Pointer, "properties"), $"an object with more than {MaxProperties:N0} properties is not supported");
                if (seen.Add(p.Name)) declared.Add(p.Name);
            }
        }
        var required = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (value, part) in All(parts, "required"))
        {
            if (value.ValueKind != JsonValueKind.Array) throw Error(Child(part.Pointer, "required"), $"required must be an array of names, not {Describe(value)},");
            foreach (var name in value.EnumerateArray())
            {
                if (name.ValueKind != JsonValueKind.String) throw Error(Child(part.Pointer, "required"), $"a required name must be a string, not {Describe(name)},");
                required.Add(name.GetString()!);
                if (seen.Add(name.GetString()!)) declared.Add(name.GetString()!);
            }
        }

        // Patterns of every part, compiled once: (part, pattern text, its schema, the quoted keys it matches).
        var patterns = new List<(Part Part, string Pointer, JsonElement Schema, SmallDfa Keys, int Text)>();
        var texts = new List<(string Text, SmallDfa Keys, string Pointer)>();
        foreach (var (value, part) in All(parts, "patternProperties"))
        {
            string at = Child(part.Pointer, "patternProperties");
            if (value.ValueKind != JsonValueKind.Object) throw Error(at, $"patternProperties must be an object, not {Describe(value)},");
            foreach (var p in value.EnumerateObject())
            {
                int text = texts.FindIndex(t => t.Text == p.Name);
                if (text < 0)
                {
                    if (texts.Count == MaxPatterns) throw Error(at, $"more than {MaxPatterns} patterns of patternProperties in one object are not supported");
                    var keys = SmallDfa.Combine(SmallDfa.Of(PatternString(p.Name, Child(at, p.Name)), $"JSON schema: patternProperties at {Child(at, p.Name)}", _cancellation),
                        CanonicalStringDfa.Value, keep: true, $"JSON schema: patternProperties at {Child(at, p.Name)}");
                    texts.Add((p.Name, keys, Child(at, p.Name)));
                    text = texts.Count - 1;
                }
                patterns.Add((part, Child(at, p.Name), p.Value, texts[text].Keys, text));
            }
        }
        var additional = All(parts, "additionalProperties").ToList();
        var names = new List<SmallDfa>();
        foreach (var (value, part) in All(parts, "propertyNames"))
            names.Add(SmallDfa.Combine(SmallDfa.Of(CompileAll([(value, Child(part.Pointer, "propertyNames"), part.RefDepth), (StringType, Child(part.Pointer, "propertyNames"), part.RefDepth)]), $"JSON schema: propertyNames at {Child(part.Pointer, "propertyNames")}", _cancellation),
                CanonicalStringDfa.Value, keep: true, $"JSON schema: propertyNames at {Child(part.Pointer, "propertyNames")}"));

        // A declared name's value: each part's own schema for it, else its matching patterns, else its additionalProperties.
        var members = new List<(ConstraintNode Node, bool Required)>();
        foreach (string name in declared)
        {
            byte[] quoted = Encoding.UTF8.GetBytes("\"" + JsonText.EscapeString(name) + "\"");
            bool allowed = names.All(n => Matches(n, quoted));
            var schemas = new List<(JsonElement, string, int)>();
            foreach (var part in parts)
            {
                if (part.Schema.ValueKind != JsonValueKind.Object) continue;
                if (part.Schema.TryGetProperty("properties", out var props) && props.ValueKind == JsonValueKind.Object && props.TryGetProperty(name, out var own))
                {
                    schemas.Add((own, Child(Child(part.Pointer, "properties"), name), part.RefDepth));
                }
                var matching = patterns.Where(p => ReferenceEquals(p.Part, part) && Matches(p.Keys, quoted)).ToList();
                if (matching.Count > 0) schemas.AddRange(matching.Select(m => (m.Schema, m.Pointer, part.RefDepth)));
                else if (part.Schema.TryGetProperty("properties", out var declaredHere) && declaredHere.ValueKind == JsonValueKind.Object && declaredHere.TryGetProperty(name, out _)) { }
                else if (part.Schema.TryGetProperty("additionalProperties", out var extra)) schemas.Add((extra, Child(part.Pointer, "additionalProperties"), part.RefDepth));
            }
            var node = allowed ? Values(schemas, refDepth) : ConstraintNode.Nothing;
            if (ReferenceEquals(node, ConstraintNode.Nothing))
            {
                if (required.Contains(name)) return ConstraintNode.Nothing;
                continue;
            }
            members.Add((ConstraintNode.Sequence(ConstraintNode.Literal("\"" + JsonText.EscapeString(name) + "\":"), node), required.Contains(name)));
        }

        // Undeclared keys, split by the patterns they match: each region's keys and the schemas their values meet.
        var extras = new List<ConstraintNode>();
        var declaredKeys = declared.Count == 0 ? null
            : SmallDfa.Of(ConstraintNode.Choice(declared.Select(n => ConstraintNode.Literal("\"" + JsonText.EscapeString(n) + "\""))), "JSON schema: properties", _cancellation);
        for (int region = 0; region < 1 << texts.Count; region++)
        {
            if (region == 0 && _closed && !additional.Any(a => a.Value.ValueKind != JsonValueKind.False)) continue;
            var keys = CanonicalStringDfa.Value;
            if (declaredKeys is not null) keys = SmallDfa.Combine(keys, declaredKeys, keep: false, "JSON schema: properties");
            for (int i = 0; i < texts.Count; i++)
                keys = SmallDfa.Combine(keys, texts[i].Keys, keep: (region >> i & 1) == 1, $"JSON schema: patternProperties at {texts[i].Pointer}");
            foreach (var n in names) keys = SmallDfa.Combine(keys, n, keep: true, "JSON schema: propertyNames");
            if (keys.IsEmpty) continue;
            var schemas = new List<(JsonElement, string, int)>();
            bool forbidden = false;
            foreach (var part in parts)
            {
                var mine = Enumerable.Range(0, patterns.Count).Where(i => (region >> patterns[i].Text & 1) == 1 && ReferenceEquals(patterns[i].Part, part)).ToList();
                if (mine.Count > 0) schemas.AddRange(mine.Select(i => (patterns[i].Schema, patterns[i].Pointer, part.RefDepth)));
                else if (part.Schema.ValueKind == JsonValueKind.Object && part.Schema.TryGetProperty("additionalProperties", out var extra))
                {
                    if (extra.ValueKind == JsonValueKind.False) forbidden = true;
                    schemas.Add((extra, Child(part.Pointer, "additionalProperties"), part.RefDepth));
                }
            }
            if (forbidden) continue;
            var value = Values(schemas, refDepth);
            if (!ReferenceEquals(value, ConstraintNode.Nothing)) extras.Add(ConstraintNode.Sequence(keys.ToNode(), ConstraintNode.Literal(":"), value));
        }
        var extra1 = ConstraintNode.Choice(extras);

        int? minProperties = Count(parts, "minProperties", takeMax: true), maxProperties = Count(parts, "maxProperties", takeMax: false);
        if (minProperties is not null || maxProperties is not null)
        {
            if (members.Count > 0)
                throw Error(parts.First(p => p.Schema.TryGetProperty("minProperties", out _) || p.Schema.TryGetProperty("maxProperties", out _)).Pointer,
                    "minProperties/maxProperties together with declared or required properties is not supported");
            int min = minProperties ?? 0;
            if (maxProperties < min) return ConstraintNode.Nothing;
            if (ReferenceEquals(extra1, ConstraintNode.Nothing)) return min == 0 ? ConstraintNode.Literal("{}") : ConstraintNode.Nothing;
            return Container("{", extra1, "}", min, maxProperties, $"minProperties/maxProperties at {At(parts, maxProperties is null ? "minProperties" : "maxProperties")}");
        }

        var content = new MembersNode(members.Select(m => m.Node).ToArray(), members.Select(m => m.Required).ToArray(), extra1);
        return ConstraintNode.Sequence(ConstraintNode.Literal("{"), content, ConstraintNode.Literal("}"));
    }

    private static bool Matches(SmallDfa dfa, byte[] text)
    {
        if (dfa.IsEmpty) return false;
        int state = 0;
        foreach (byte b in text)
        {
            state = dfa.Step(state, b);
            if (state < 0) return false;
        }
        return dfa.Accepting[state];
    }

    // ---------------------------------------------------------------- arrays

    private ConstraintNode Array(List<Part> parts)
    {
        int refDepth = parts.Count == 0 ? 0 : parts.Max(p => p.RefDepth);
        var prefixes = new List<(Part Part, List<JsonElement> Items)>();
        foreach (var (value, part) in All(parts, "prefixItems"))
        {
            string at = Child(part.Pointer, "prefixItems");
            if (value.ValueKind != JsonValueKind.Array) throw Error(at, $"prefixItems must be an array of schemas, not {Describe(value)},");
            if (value.GetArrayLength() > MaxPrefixItems) throw Error(at, $"prefixItems with {value.GetArrayLength():N0} schemas is not supported (at most {MaxPrefixItems})");
            prefixes.Add((part, value.EnumerateArray().ToList()));
        }
        foreach (var (value, part) in All(parts, "items"))
            if (value.ValueKind == JsonValueKind.Array) throw Error(Child(part.Pointer, "items"), "items as an array (draft-07 tuples) is not supported; use prefixItems");
        int prefixLength = prefixes.Count == 0 ? 0 : prefixes.Max(p => p.Items.Count);

        List<(JsonElement, string, int)> SchemasAt(int index)
        {
            var list = new List<(JsonElement, string, int)>();
            foreach (var part in parts)
            {
                if (part.Schema.ValueKind != JsonValueKind.Object) continue;
                var prefix = prefixes.FirstOrDefault(p => ReferenceEquals(p.Part, part));
                if (prefix.Items is not null && index < prefix.Items.Count)
                    list.Add((prefix.Items[index], Child(part.Pointer, "prefixItems", index), part.RefDepth));
                else if (part.Schema.TryGetProperty("items", out var items)) list.Add((items, Child(part.Pointer, "items"), part.RefDepth));
            }
            return list;
        }

        var cache = new Dictionary<int, ConstraintNode>();
        ConstraintNode Element(int index)
        {
            int key = Math.Min(index, prefixLength);
            if (!cache.TryGetValue(key, out var node)) cache[key] = node = Values(SchemasAt(key), refDepth);
            return node;
        }

        int min = Count(parts, "minItems", takeMax: true) ?? 0;
        int? max = Count(parts, "maxItems", takeMax: false);
        if (max < min) return ConstraintNode.Nothing;
        // No element may be written past the first that allows nothing.
        for (int i = 0; i <= prefixLength; i++)
            if (ReferenceEquals(Element(i), ConstraintNode.Nothing))
            {
                if (i < min) return ConstraintNode.Nothing;
                max = max is null ? i : Math.Min(max.Value, i);
                break;
            }

        var contains = All(parts, "contains").ToList();
        if (contains.Count > 0) return Contains(parts, contains, prefixLength, min, max, Element(prefixLength), refDepth);

        string origin = max is null ? $"minItems {min} at {At(parts, "minItems")}" : $"maxItems {max} at {At(parts, "maxItems")}";
        if (prefixLength == 0) return Container("[", Element(0), "]", min, max, origin);
        ConstraintNode Rest(int j)
        {
            if (max is { } m && j >= m) return ConstraintNode.Empty;
            if (j >= prefixLength)
                return ConstraintNode.Repeat(ConstraintNode.Sequence(Comma, Element(j)), Math.Max(0, min - j), max is { } mm ? mm - j : -1, origin);
            var next = ConstraintNode.Sequence(Comma, Element(j), Rest(j + 1));
            return j >= min ? ConstraintNode.Optional(next) : next;
        }

        ConstraintNode content = max == 0 ? ConstraintNode.Empty : ConstraintNode.Sequence(Element(0), Rest(1));
        if (min == 0 && max != 0) content = ConstraintNode.Optional(content);
        return ConstraintNode.Sequence(ConstraintNode.Literal("["), content, ConstraintNode.Literal("]"));
    }

    /// <summary>
    /// contains with minContains m and maxContains M: the items that match contains are counted. Without M an item that is
    /// not counted may match too; with M the uncounted items must not match, which needs contains' complement.
    /// </summary>
    private ConstraintNode Contains(List<Part> parts, List<(JsonElement Value, Part Part)> contains, int prefixLength, int minItems, int? maxItems, ConstraintNode item, int refDepth)
    {
        var part = contains[0].Part;
        string at = Child(part.Pointer, "contains");
        if (contains.Count > 1) throw Error(at, "contains in more than one schema of one allOf/$ref combination is not supported");
        if (prefixLength > 0) throw Error(at, "contains together with prefixItems is not supported");
        if (minItems > 0 || maxItems is not null) throw Error(at, "contains together with minItems/maxItems is not supported");
        int minContains = Count([part], "minContains", takeMax: true) ?? 1;
        int? maxContains = Count([part], "maxContains", takeMax: false);
        if (maxContains < minContains) return ConstraintNode.Nothing;
        if (maxContains > MaxContains) throw Error(Child(part.Pointer, "maxContains"), $"maxContains above {MaxContains} is not supported");
        if (minContains > MaxContains) throw Error(Child(part.Pointer, "minContains"), $"minContains above {MaxContains} is not supported");
        var itemSchemas = All(parts, "items").Select(i => (i.Value, Child(i.Part.Pointer, "items"), i.Part.RefDepth)).ToList();
        var counted = Values([.. itemSchemas, (contains[0].Value, at, part.RefDepth)], refDepth);
        ConstraintNode free;
        if (maxContains is null) free = item;
        else
        {
            var dnf = Negate(contains[0].Value, at, part.RefDepth);
            foreach (var s in itemSchemas) dnf = Cross(dnf, Expand(s.Value, s.Item2, s.RefDepth), at);
            free = ConstraintNode.Choice(dnf.Select(Conjunction));
        }
        // Lists of exactly j counted items, j from minContains to maxContains (or at least minContains).
        ConstraintNode FreeRun(bool leading) => ReferenceEquals(free, ConstraintNode.Nothing) ? ConstraintNode.Empty
            : leading ? ConstraintNode.Repeat(ConstraintNode.Sequence(free, Comma), 0, -1, "contains") : ConstraintNode.Repeat(ConstraintNode.Sequence(Comma, free), 0, -1, "contains");
        var options = new List<ConstraintNode>();
        int top = maxContains ?? minContains;
        for (int j = minContains; j <= top; j++)
        {
            if (j == 0)
            {
                options.Add(ReferenceEquals(free, ConstraintNode.Nothing) ? ConstraintNode.Empty
                    : ConstraintNode.Optional(ConstraintNode.Sequence(free, FreeRun(false))));
                continue;
            }
            var items = new List<ConstraintNode> { FreeRun(true), counted };
            for (int k = 1; k < j; k++) items.AddRange([Comma, FreeRun(true), counted]);
            items.Add(FreeRun(false));
            options.Add(ConstraintNode.Sequence(items.ToArray()));
        }
        return ConstraintNode.Sequence(ConstraintNode.Literal("["), ConstraintNode.Choice(options), ConstraintNode.Literal("]"));
    }

    // ---------------------------------------------------------------- strings

    /// <summary>A quoted string matching a pattern the way JSON Schema searches: free text around the match unless anchored.</summary>
    private ConstraintNode PatternString(string pattern, string pointer)
    {
        var value = RegexParser.Parse(pattern, $"JSON schema: pattern at {Where(pointer)}", _cancellation, out bool anchoredStart, out bool anchoredEnd);
        return ConstraintNode.Sequence(Quote, anchoredStart ? ConstraintNode.Empty : AnyStringContent, EscapeForJson(value),
            anchoredEnd ? ConstraintNode.Empty : AnyStringContent, Quote);
    }

    private ConstraintNode String(List<Part> parts, List<JsonElement> excluded)
    {
        int? minLength = Count(parts, "minLength", takeMax: true);
        int? maxLength = Count(parts, "maxLength", takeMax: false);
        int min = minLength ?? 0;
        if (maxLength < min) return ConstraintNode.Nothing;
        var languages = new List<(ConstraintNode Node, string What)>();
        foreach (var (value, part) in All(parts, "pattern"))
        {
            string at = Child(part.Pointer, "pattern");
            if (value.ValueKind != JsonValueKind.String) throw Error(at, $"pattern must be a string, not {Describe(value)},");
            languages.Add((PatternString(value.GetString()!, at), $"JSON schema: pattern at {at}"));
        }
        foreach (var (value, part) in All(parts, "format"))
        {
            string at = Child(part.Pointer, "format");
            if (value.ValueKind != JsonValueKind.String) throw Error(at, $"format must be a string, not {Describe(value)},");
            // Formats without a grammar here are annotations, as draft 2020-12 makes every format by default.
            if (JsonStringFormats.For(value.GetString()!) is { } language) languages.Add((ConstraintNode.Sequence(Quote, language, Quote), $"JSON schema: format at {at}"));
        }
        var unwanted = new List<(ConstraintNode Node, string What)>();
        foreach (var (value, part) in All(parts, "!notPattern"))
            unwanted.Add((PatternString(value.GetString()!, Child(part.Pointer, "pattern")), $"JSON schema: not pattern at {Where(part.Pointer)}"));
        var strings = excluded.Where(x => x.ValueKind == JsonValueKind.String).ToList();
        if (minLength is not null || maxLength is not null || languages.Count == 0)
        {
            string origin = maxLength is null ? $"minLength {min} at {At(parts, "minLength")}" : $"maxLength {maxLength} at {At(parts, "maxLength")}";
            languages.Add((ConstraintNode.Sequence(Quote, ConstraintNode.Repeat(StringCharacter, min, maxLength ?? -1, origin), Quote), "JSON schema: " + origin));
        }
        if (languages.Count == 1 && strings.Count == 0 && unwanted.Count == 0) return languages[0].Node;
        var dfa = CanonicalStringDfa.Value;
        foreach (var (node, what) in languages) dfa = SmallDfa.Combine(dfa, SmallDfa.Of(node, what, _cancellation), keep: true, what);
        foreach (var (node, what) in unwanted) dfa = SmallDfa.Combine(dfa, SmallDfa.Of(node, what, _cancellation), keep: false, what);
        if (strings.Count > 0)
            dfa = SmallDfa.Combine(dfa, SmallDfa.Of(ConstraintNode.Choice(strings.Select(s => ConstraintNode.Literal(JsonText.Canonical(s)))), "JSON schema: not", _cancellation), keep: false, "JSON schema: not");
        return dfa.ToNode();
    }

    // ---------------------------------------------------------------- numbers

    private ConstraintNode Number(List<Part> parts, bool integral, List<JsonElement> excluded)
    {
        long divisor = 1;
        foreach (var (value, part) in All(parts, "multipleOf"))
        {
            string at = Child(part.Pointer, "multipleOf");
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out decimal m) || m <= 0)
                throw Error(at, $"multipleOf must be a number above 0, not {Describe(value)},");
            if (m != decimal.Truncate(m) || m > MaxDivisor)
                throw Error(at, $"multipleOf {value.GetRawText()} is not supported (only integers from 1 to {MaxDivisor})");
            divisor = divisor / (long)BigInteger.GreatestCommonDivisor(divisor, (long)m) * (long)m;
            if (divisor > MaxDivisor) throw Error(at, $"multipleOf: the combined divisor {divisor} is above {MaxDivisor}");
        }
        if (divisor > 1) integral = true;
        bool fractional = All(parts, "!fractional").Any();
        if (fractional && integral) return ConstraintNode.Nothing;
        var (lo, loOpen, hi, hiOpen) = Bounds(parts, integersOnly: !integral);
        var numbers = excluded.Where(x => x.ValueKind == JsonValueKind.Number).ToList();
        ConstraintNode node;
        if (integral)
        {
            // Without a bound an integer is written with at most 9 digits, so that every output reads into an int.
            BigInteger first = lo is { } l ? (loOpen ? Floor(l) + 1 : Ceiling(l)) : -MaxUnboundedInteger;
            BigInteger last = hi is { } h ? (hiOpen ? Ceiling(h) - 1 : Floor(h)) : MaxUnboundedInteger;
            if (first > last) return ConstraintNode.Nothing;
            node = DecimalRanges.Integers(first, last);
            if (divisor > 1)
                node = SmallDfa.Combine(SmallDfa.Of(node, "JSON schema: multipleOf", _cancellation), SmallDfa.Divisible((int)divisor), keep: true, "JSON schema: multipleOf").ToNode();
            // Integers are written as digits only (1, never 1.0), so that every output reads into an integer type.
            if (numbers.Count == 0) return node;
        }
        else if (lo is null && hi is null)
        {
            // An exponent of at most two digits: every output reads into a double (1e999 would not).
            var exponent = ConstraintNode.Sequence(ConstraintNode.Chars(CodePointSet.Of([('e', 'e'), ('E', 'E')])),
                ConstraintNode.Optional(ConstraintNode.Chars(CodePointSet.Of([('+', '+'), ('-', '-')]))),
                ConstraintNode.Repeat(ConstraintNode.ByteRange((byte)'0', (byte)'9'), 1, 2, "an exponent"));
            node = ConstraintNode.Sequence(DecimalRanges.Decimals(null, false, null, false), ConstraintNode.Optional(exponent));
        }
        else
        {
            node = DecimalRanges.Decimals(lo is { } l ? new BigInteger(l) : null, loOpen, hi is { } h ? new BigInteger(h) : null, hiOpen);
        }
        if (numbers.Count == 0 && !fractional) return node;
        // Excluding values needs one spelling per value: canonical decimals only; a number that is not an integer is written
        // with a fraction that ends in a digit other than 0, and no exponent.
        var dfa = SmallDfa.Combine(SmallDfa.Of(node, "JSON schema: not", _cancellation),
            SmallDfa.Of(RegexParser.Parse(fractional ? FractionalNumberPattern : CanonicalNumberPattern, "number"), "JSON schema: not", _cancellation), keep: true, "JSON schema: not");
        var literals = numbers.Select(JsonText.ShortestNumber).Where(t => t is not null).Select(t => ConstraintNode.Literal(t!)).ToList();
        if (literals.Count > 0) dfa = SmallDfa.Combine(dfa, SmallDfa.Of(ConstraintNode.Choice(literals), "JSON schema: not", _cancellation), keep: false, "JSON schema: not");
        return dfa.ToNode();
    }

    /// <summary>The tightest lower and upper bounds of minimum/exclusiveMinimum and maximum/exclusiveMaximum across the parts.</summary>
    private static (decimal? Lo, bool LoOpen, decimal? Hi, bool HiOpen) Bounds(List<Part> parts, bool integersOnly)
    {
        decimal? lo = null, hi = null;
        bool loOpen = false, hiOpen = false;
        foreach (var part in parts)
            foreach (var (name, lower, open) in new[] { ("minimum", true, false), ("exclusiveMinimum", true, true), ("maximum", false, false), ("exclusiveMaximum", false, true) })
            {
                if (part.Schema.ValueKind != JsonValueKind.Object || !part.Schema.TryGetProperty(name, out var value)) continue;
                string at = Child(part.Pointer, name);
                if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out decimal bound))
                    throw Error(at, $"{name} must be a number within ±7.9e28, not {Describe(value)},");
                if (integersOnly && bound != decimal.Truncate(bound))
                    throw Error(at, $"the number bound {value.GetRawText()} is not an integer; number bounds must be integers so that decimals stay exact (use a multiple of 1 or type integer)");
                if (lower && (lo is null || bound > lo || (bound == lo && open))) (lo, loOpen) = (bound, open);
                if (!lower && (hi is null || bound < hi || (bound == hi && open))) (hi, hiOpen) = (bound, open);
            }
        return (lo, loOpen, hi, hiOpen);
    }

    private static BigInteger Floor(decimal value) => new(decimal.Floor(value));
    private static BigInteger Ceiling(decimal value) => new(decimal.Ceiling(value));

    private static ConstraintNode BuildCanonicalCharacter()
    {
        var raw = ConstraintNode.Chars(CodePointSet.Range(0x20, CodePointSet.MaxCodePoint).Except(CodePointSet.Of([('"', '"'), ('\\', '\\')])));
        var escapes = new List<ConstraintNode> { raw, ConstraintNode.Literal("\\\""), ConstraintNode.Literal("\\\\") };
        for (int c = 0; c < 0x20; c++) escapes.Add(ConstraintNode.Literal(JsonText.Escape(c)!));
        return ConstraintNode.Choice(escapes);
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

    /// <summary>The value's JSON type with its article, for messages ("an object", "a number", "null").</summary>
    private static string Kind(JsonElement value) => ValueType(value) switch
    {
        "null" => "null",
        "object" or "array" => "an " + ValueType(value),
        var type => "a " + type,
    };

    private static string Describe(JsonElement value)
    {
        string text = value.GetRawText();
        return text.Length <= 40 ? text : text[..37] + "...";
    }
}
