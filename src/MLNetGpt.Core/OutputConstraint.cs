using System.Text.Json;
using MLNetGpt.Generation.Constraints;

namespace MLNetGpt;

/// <summary>
/// Structured output: a restriction of the generated text to a fixed set of strings, a regular
/// expression or a JSON schema. At every step only tokens that keep the text on a path to a
/// complete match may be chosen, and an end-of-sequence token only once the text is complete;
/// when the text is complete and nothing may follow, the sequence ends.
/// </summary>
/// <remarks>
/// <para>The constraint is compiled to a byte-level automaton when it is created, so an unsupported
/// feature is reported at once (an <see cref="ArgumentException"/> that names the feature and
/// where it is). Token masks are built per vocabulary, lazily, and cached; a multi-byte character
/// may be split across tokens.</para>
/// <para>Instances are immutable and thread-safe. Two constraints are equal when they have the same
/// <see cref="Kind"/> and content (choices in order, pattern text, or <see cref="Schema"/> text).</para>
/// </remarks>
public sealed class OutputConstraint : IEquatable<OutputConstraint>
{
    private readonly string[]? _choices;

    /// <summary>
    /// The longest pattern, schema text or choice list (all choices together) accepted, in characters. An automaton
    /// holds at most 100,000 states, one per byte of text it must match, so nothing useful is longer; the cap keeps a
    /// request from spending memory and time on a tree that would be refused anyway.
    /// </summary>
    public const int MaxTextLength = 1 << 20;

    private OutputConstraint(OutputConstraintKind kind, string[]? choices, string? pattern, string? schema, ConstraintNode node,
        CancellationToken cancellation = default)
    {
        Kind = kind;
        _choices = choices;
        Pattern = pattern;
        Schema = schema;
        Automaton = new ByteDfa(ByteNfa.Build(node, kind switch
        {
            OutputConstraintKind.Choices => "choices",
            OutputConstraintKind.Regex => "regex",
            _ => "JSON schema",
        }, cancellation));
        if (Automaton.MinBytesToAccept(Automaton.Start) == int.MaxValue)
            throw new ArgumentException(kind == OutputConstraintKind.Regex
                ? $"regex: the pattern '{pattern}' matches no string."
                : "JSON schema: no JSON value satisfies the schema at the root.");
    }

    /// <summary>What the constraint restricts the text to.</summary>
    public OutputConstraintKind Kind { get; }

    /// <summary>
    /// The allowed strings (in the given order) for <see cref="OutputConstraintKind.Choices"/>;
    /// otherwise <see langword="null"/>. (Named apart from the <see cref="Choices(IEnumerable{string})"/>
    /// factory, since C# cannot give a property and a method one name.)
    /// </summary>
    public IReadOnlyList<string>? ChoiceList => _choices;

    /// <summary>The pattern for <see cref="OutputConstraintKind.Regex"/>; otherwise <see langword="null"/>.</summary>
    public string? Pattern { get; }

    /// <summary>
    /// The schema for <see cref="OutputConstraintKind.JsonSchema"/> as compact JSON text (the given
    /// document without insignificant whitespace); otherwise <see langword="null"/>.
    /// </summary>
    public string? Schema { get; }

    /// <summary>The byte-level automaton of the allowed texts (UTF-8).</summary>
    internal ByteDfa Automaton { get; }

    /// <summary>
    /// The text must be exactly one of <paramref name="choices"/> (compared as UTF-8 bytes, no
    /// normalisation). A choice that is a prefix of another (<c>"no"</c>, <c>"none"</c>) lets the
    /// sequence end after it or go on.
    /// </summary>
    /// <remarks>
    /// In generation each choice is written with the tokenizer's own tokens for it (the tokens
    /// <c>Tokenizer.EncodeToIds(choice)</c> gives), never through odd splits, so under greedy decoding
    /// the output is the choice the model finds most likely token by token; choices that differ from
    /// their first token come out as the one of highest likelihood. For scoring every choice in full,
    /// use <c>GptModel.Classify</c> or the <c>ClassifyText</c> stage.
    /// </remarks>
    /// <param name="choices">At least one string; each non-empty; no duplicates.</param>
    /// <exception cref="ArgumentNullException"><paramref name="choices"/> or one of them is null.</exception>
    /// <exception cref="ArgumentException">The list is empty, a choice is empty or repeated (the message gives its index), or the choices hold more than <see cref="MaxTextLength"/> characters in all.</exception>
    public static OutputConstraint Choices(IEnumerable<string> choices)
    {
        ArgumentNullException.ThrowIfNull(choices);
        var list = choices.ToArray();
        if (list.Length == 0) throw new ArgumentException("choices: at least one choice is needed; the list is empty.", nameof(choices));
        long total = list.Sum(c => (long)(c?.Length ?? 0));
        if (total > MaxTextLength)
            throw new ArgumentException($"choices: the {list.Length:N0} choices hold {total:N0} characters in all, more than the {MaxTextLength:N0} accepted.", nameof(choices));
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < list.Length; i++)
        {
            if (list[i] is null) throw new ArgumentNullException(nameof(choices), $"choices: the choice at index {i} is null.");
            if (list[i].Length == 0) throw new ArgumentException($"choices: the choice at index {i} is empty; every choice needs at least one character.", nameof(choices));
            if (seen.TryGetValue(list[i], out int earlier))
                throw new ArgumentException($"choices: the choice at index {i} (\"{list[i]}\") repeats the one at index {earlier}.", nameof(choices));
            if (HasLoneSurrogate(list[i]))
                throw new ArgumentException($"choices: the choice at index {i} holds a lone surrogate, which UTF-8 text cannot hold.", nameof(choices));
            seen[list[i]] = i;
        }
        return new OutputConstraint(OutputConstraintKind.Choices, list, null, null, ConstraintNode.Choice(list.Select(ConstraintNode.Literal)));
    }

    /// <summary>
    /// The whole text must match <paramref name="pattern"/> (as if written <c>^(?:pattern)$</c>).
    /// </summary>
    /// <remarks>
    /// <para>The supported subset: literal characters; escapes <c>\n \t \r \f \v \0</c> (not followed
    /// by a digit), <c>\xHH</c>, <c>\uHHHH</c> (a surrogate pair written as two escapes is one
    /// character), and a backslash before any ASCII punctuation (<c>\\ \. \/ \- \* \(</c> ...);
    /// the classes <c>\d \w \s</c> and their negations <c>\D \W \S</c> with ASCII meanings
    /// (<c>[0-9]</c>, <c>[A-Za-z0-9_]</c>, space and <c>\t \n \v \f \r</c>); character classes
    /// <c>[...]</c> with ranges, negation <c>[^...]</c> and escapes (<c>\b</c> inside a class is
    /// backspace); <c>.</c>, which matches any Unicode scalar value except <c>\n</c> (one code
    /// point, where .NET's <c>.</c> matches one UTF-16 unit); alternation <c>|</c>; groups
    /// <c>( )</c>, <c>(?: )</c>, <c>(?&lt;name&gt; )</c> and <c>(?'name' )</c> (names are ignored);
    /// quantifiers <c>? * + {m} {m,} {m,n}</c>, each optionally lazy (<c>*?</c>: the set of full
    /// matches is the same); <c>^</c> at the very start and <c>$</c> at the very end (both
    /// redundant). A <c>{</c> that does not start a valid quantifier is a literal, as in .NET.
    /// Negated classes and <c>.</c> range over Unicode scalar values (never surrogates); matching is
    /// case-sensitive.</para>
    /// <para>Refused with an <see cref="ArgumentException"/> that names the feature and its position:
    /// backreferences (<c>\1</c>, <c>\k&lt;name&gt;</c>), lookarounds, word boundaries (<c>\b \B</c>),
    /// other anchors (<c>\A \z \Z \G</c>, and <c>^ $</c> elsewhere), Unicode categories
    /// (<c>\p{..} \P{..}</c>), inline flags (<c>(?i)</c>), atomic and conditional groups, possessive
    /// quantifiers (<c>a*+</c>), class subtraction, octal and unknown letter escapes. A pattern
    /// whose automaton would exceed 100,000 states is refused, naming the repetition that makes
    /// it large; so is a pattern that matches no string, one longer than <see cref="MaxTextLength"/>
    /// characters, and one whose groups nest more than 256 levels deep.</para>
    /// </remarks>
    /// <param name="pattern">The regular expression.</param>
    /// <exception cref="ArgumentNullException"><paramref name="pattern"/> is null.</exception>
    /// <exception cref="ArgumentException">The pattern is malformed or uses an unsupported feature.</exception>
    public static OutputConstraint Regex(string pattern) => Regex(pattern, CancellationToken.None);

    /// <summary>As <see cref="Regex(string)"/>, stopping with an <see cref="OperationCanceledException"/> when <paramref name="cancellation"/> is cancelled.</summary>
    internal static OutputConstraint Regex(string pattern, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        if (pattern.Length > MaxTextLength)
            throw new ArgumentException($"regex: the pattern is {pattern.Length:N0} characters long, more than the {MaxTextLength:N0} accepted.", nameof(pattern));
        return new OutputConstraint(OutputConstraintKind.Regex, null, pattern, null, LargeStack.Run(() => RegexParser.Parse(pattern, "regex", cancellation), "regex compile"), cancellation);
    }

    /// <summary>
    /// The text must be compact JSON (no whitespace outside strings) that is valid against <paramref name="schemaJson"/>,
    /// a JSON Schema of draft 2020-12.
    /// </summary>
    /// <remarks>
    /// <para>The output form: declared object properties in the schema's order, every required one present and each
    /// optional one present or absent, then (where the object is open) undeclared properties, written with canonical keys.
    /// Objects are open as the standard says: properties that the schema does not declare are allowed unless
    /// <c>additionalProperties</c> is <c>false</c>; <see cref="JsonSchema(string, bool)"/> closes them. Strings may use
    /// the JSON escapes where their characters are free and are written canonically where they are compared (patterns,
    /// formats, constants, keys). Integers may carry a zero fraction (<c>1.0</c>), as the standard counts them integers;
    /// constants match in any member order and number spelling.</para>
    /// <para>Supported: <c>type</c> (a name or an array), <c>enum</c>, <c>const</c>, <c>$ref</c> into the document
    /// (JSON pointers, <c>$defs</c>/<c>definitions</c>, <c>$id</c> base URIs and anchors; recursion written down to 4
    /// references deep), <c>allOf</c>, <c>anyOf</c>, <c>oneOf</c> (disjoint branches, or each branch with the others'
    /// complements where those are expressible), <c>not</c> and <c>if</c>/<c>then</c>/<c>else</c> where the complement
    /// is expressible, <c>dependentRequired</c>, <c>dependentSchemas</c>, <c>properties</c>, <c>required</c>,
    /// <c>additionalProperties</c>, <c>patternProperties</c> (up to 4 patterns per object), <c>propertyNames</c>,
    /// <c>minProperties</c>/<c>maxProperties</c> (objects without declared properties), <c>unevaluatedProperties</c>,
    /// <c>unevaluatedItems</c>, <c>items</c>, <c>prefixItems</c>, <c>contains</c> with <c>minContains</c>/<c>maxContains</c>
    /// (up to 16), <c>minItems</c>, <c>maxItems</c>, <c>uniqueItems</c> false, <c>minLength</c>, <c>maxLength</c>,
    /// <c>pattern</c> (the subset of <see cref="Regex(string)"/>, searched as JSON Schema does), <c>format</c> (enforced
    /// for date, time, date-time, uuid, email and ipv4; other formats are annotations), <c>minimum</c>, <c>maximum</c>,
    /// <c>exclusiveMinimum</c>, <c>exclusiveMaximum</c> (integral bounds for numbers), <c>multipleOf</c> (integers up to
    /// 1000). Values the schema leaves free (<c>true</c>, <c>{}</c>, an open object's extra values) nest at most 3
    /// containers deep. Annotations are ignored; <c>$schema</c> must name a standard draft's metaschema. The full table is
    /// in docs/structured-output.md.</para>
    /// <para>Everything else is refused with an <see cref="ArgumentException"/> that names the keyword and its JSON
    /// pointer: <c>$dynamicRef</c> into remote resources, remote references, a <c>$schema</c> other than the standard
    /// drafts' (2020-12, 2019-09, 07, 06, 04: the vocabularies of another would have to be fetched), <c>uniqueItems</c> true, fractional <c>multipleOf</c> and number
    /// bounds, complements that are not expressible, schemas that allow no value; so are a text longer than
    /// <see cref="MaxTextLength"/> characters, schemas nested more than 64 levels deep inside one another (a document
    /// more than 256 levels deep), prefixItems of more than 256 schemas, objects of more than 1,000 properties, more than
    /// 64 alternatives from one schema's applicators, more than 20,000 subschemas compiled in all, and automata of more
    /// than 100,000 states.</para>
    /// </remarks>
    /// <param name="schemaJson">The schema document.</param>
    /// <exception cref="ArgumentNullException"><paramref name="schemaJson"/> is null.</exception>
    /// <exception cref="ArgumentException">The text is not JSON, or the schema uses an unsupported keyword or form.</exception>
    public static OutputConstraint JsonSchema(string schemaJson) => JsonSchema(schemaJson, closeObjects: false, CancellationToken.None);

    /// <summary>
    /// As <see cref="JsonSchema(string)"/>; with <paramref name="closeObjects"/> true, objects take no property that their
    /// schema does not declare (in <c>properties</c> or <c>required</c>) unless <c>additionalProperties</c> (as a schema)
    /// or <c>patternProperties</c> allows it explicitly: what many callers mean by a schema, though JSON Schema itself
    /// leaves objects open. The default, false, follows the standard.
    /// </summary>
    /// <param name="schemaJson">The schema document.</param>
    /// <param name="closeObjects">Whether objects are closed where the schema leaves them open.</param>
    /// <exception cref="ArgumentNullException"><paramref name="schemaJson"/> is null.</exception>
    /// <exception cref="ArgumentException">The text is not JSON, or the schema uses an unsupported keyword or form.</exception>
    public static OutputConstraint JsonSchema(string schemaJson, bool closeObjects) => JsonSchema(schemaJson, closeObjects, CancellationToken.None);

    /// <summary>Whether objects take no undeclared properties where the schema leaves them open (<see cref="JsonSchema(string, bool)"/>).</summary>
    public bool ClosesObjects { get; private init; }

    /// <summary>As <see cref="JsonSchema(string)"/>, stopping with an <see cref="OperationCanceledException"/> when <paramref name="cancellation"/> is cancelled.</summary>
    internal static OutputConstraint JsonSchema(string schemaJson, CancellationToken cancellation) => JsonSchema(schemaJson, closeObjects: false, cancellation);

    /// <summary>As <see cref="JsonSchema(string, bool)"/>, stopping with an <see cref="OperationCanceledException"/> when <paramref name="cancellation"/> is cancelled.</summary>
    internal static OutputConstraint JsonSchema(string schemaJson, bool closeObjects, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(schemaJson);
        if (schemaJson.Length > MaxTextLength)
            throw new ArgumentException($"JSON schema: the text is {schemaJson.Length:N0} characters long, more than the {MaxTextLength:N0} accepted.", nameof(schemaJson));
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(schemaJson, JsonSchemaCompiler.DocumentOptions);
        }
        catch (JsonException e) when (e.Message.Contains("maximum configured depth", StringComparison.Ordinal))
        {
            throw new ArgumentException($"JSON schema: the document nests more than {JsonSchemaCompiler.DocumentOptions.MaxDepth} levels deep (at line {e.LineNumber + 1}).", nameof(schemaJson), e);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"JSON schema: the text is not JSON ({e.Message}).", nameof(schemaJson), e);
        }
        using (document)
        {
            return new OutputConstraint(OutputConstraintKind.JsonSchema, null, null, JsonText.Compact(document.RootElement),
                JsonSchemaCompiler.Compile(document.RootElement, closeObjects, cancellation), cancellation) { ClosesObjects = closeObjects };
        }
    }

    /// <summary>
    /// A tool call that the chat client requires: <paramref name="before"/>, compact JSON valid against
    /// <paramref name="callSchema"/>, <paramref name="after"/> (the template's tool-call format around the call object).
    /// Not persisted: it lives for one request.
    /// </summary>
    internal static OutputConstraint ToolCall(string callSchema, string before, string after, CancellationToken cancellation)
    {
        using var document = JsonDocument.Parse(callSchema, JsonSchemaCompiler.DocumentOptions);
        var node = ConstraintNode.Sequence(ConstraintNode.Literal(before), JsonSchemaCompiler.Compile(document.RootElement, closedObjects: false, cancellation), ConstraintNode.Literal(after));
        return new OutputConstraint(OutputConstraintKind.JsonSchema, null, null, JsonText.Compact(document.RootElement), node, cancellation);
    }

    private static readonly Lazy<OutputConstraint> AnyJsonInstance =
        new(() => new OutputConstraint(OutputConstraintKind.JsonSchema, null, null, "{}", AnyJson.Build()), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Any compact JSON value whose containers nest at most <see cref="AnyJson.MaxDepth"/> deep: JSON with no
    /// schema (the chat client's <c>ChatResponseFormat.Json</c>). Its <see cref="Schema"/> is <c>{}</c>, the
    /// schema that allows every value; <see cref="JsonSchema(string)"/> of <c>{}</c> allows any value too, but lets free
    /// values nest fewer levels deep (its automaton carries the rest of a schema beside them).
    /// </summary>
    internal static OutputConstraint AnyJsonValue() => AnyJsonInstance.Value;

    /// <summary>Whether <paramref name="text"/> is one of the texts the constraint allows.</summary>
    internal bool Accepts(string text) => Automaton.Matches(System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>The persisted form, with vLLM's names: <c>{"guided_choice":[...]}</c>, <c>{"guided_regex":"..."}</c> or <c>{"guided_json":{...}}</c>.</summary>
    internal string ToJson()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            switch (Kind)
            {
                case OutputConstraintKind.Choices:
                    writer.WriteStartArray("guided_choice");
                    foreach (var choice in _choices!) writer.WriteStringValue(choice);
                    writer.WriteEndArray();
                    break;
                case OutputConstraintKind.Regex:
                    writer.WriteString("guided_regex", Pattern);
                    break;
                default:
                    writer.WritePropertyName("guided_json");
                    writer.WriteRawValue(Schema!);
                    if (ClosesObjects) writer.WriteBoolean("close_objects", true);
                    break;
            }
            writer.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Reads <see cref="ToJson"/>'s form; <paramref name="where"/> names the source in errors.</summary>
    internal static OutputConstraint FromJson(string json, string where)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, JsonSchemaCompiler.DocumentOptions);
        }
        catch (JsonException e)
        {
            throw new FormatException($"{where}: the output constraint is not JSON ({e.Message}).", e);
        }
        using var owned = document;
        var root = document.RootElement;
        const string expected = "one of guided_choice (an array of strings), guided_regex (a string), guided_json (a schema object)";
        if (root.ValueKind != JsonValueKind.Object)
            throw new FormatException($"{where}: an output constraint must be a JSON object with {expected}; found {root.ValueKind}.");
        bool close = false;
        if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("close_objects", out var closeValue) && root.TryGetProperty("guided_json", out _))
        {
            if (closeValue.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                throw new FormatException($"{where}: close_objects must be true or false; found {closeValue.ValueKind}.");
            close = closeValue.ValueKind == JsonValueKind.True;
        }
        var keys = root.EnumerateObject().Select(p => p.Name).Where(n => n != "close_objects" || !root.TryGetProperty("guided_json", out _)).ToList();
        if (keys.Count != 1)
            throw new FormatException($"{where}: an output constraint needs exactly one key, {expected}; found {(keys.Count == 0 ? "none" : string.Join(", ", keys))}.");
        var value = root.GetProperty(keys[0]);
        switch (keys[0])
        {
            case "guided_choice" when value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.String):
                return Choices(value.EnumerateArray().Select(v => v.GetString()!));
            case "guided_regex" when value.ValueKind == JsonValueKind.String:
                return Regex(value.GetString()!);
            case "guided_json" when value.ValueKind == JsonValueKind.Object && !value.EnumerateObject().Any() && !close:
                return AnyJsonValue();
            case "guided_json" when value.ValueKind is JsonValueKind.Object or JsonValueKind.False:
                return JsonSchema(value.GetRawText(), close);
            case "guided_choice" or "guided_regex" or "guided_json":
                throw new FormatException($"{where}: the key '{keys[0]}' holds {value.ValueKind}, which does not fit; expected {expected}.");
            default:
                throw new FormatException($"{where}: the key '{keys[0]}' is not an output constraint; expected {expected}.");
        }
    }

    /// <inheritdoc/>
    public bool Equals(OutputConstraint? other) =>
        other is not null && Kind == other.Kind && Pattern == other.Pattern && Schema == other.Schema && ClosesObjects == other.ClosesObjects
        && (_choices is null ? other._choices is null : other._choices is not null && _choices.AsSpan().SequenceEqual(other._choices));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is OutputConstraint other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Kind);
        hash.Add(Pattern);
        hash.Add(Schema);
        hash.Add(ClosesObjects);
        if (_choices is not null) foreach (var c in _choices) hash.Add(c);
        return hash.ToHashCode();
    }

    /// <summary>The kind and content, as in the persisted form.</summary>
    public override string ToString() => ToJson();

    private static bool HasLoneSurrogate(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
            else if (char.IsSurrogate(text[i])) return true;
        }
        return false;
    }
}
