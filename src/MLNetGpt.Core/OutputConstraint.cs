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
        return new OutputConstraint(OutputConstraintKind.Regex, null, pattern, null, RegexParser.Parse(pattern, "regex", cancellation), cancellation);
    }

    /// <summary>
    /// The text must be compact canonical JSON that is valid against <paramref name="schemaJson"/>.
    /// </summary>
    /// <remarks>
    /// <para>The output form: no whitespace outside strings; object properties in the schema's
    /// order, every required one present and each optional one present or absent; no other
    /// properties. Strings may use the JSON escapes <c>\" \\ \/ \b \f \n \r \t \uXXXX</c> (a
    /// surrogate escape only as a high-low pair); raw control characters never appear. Where a
    /// string's characters are constrained (<c>pattern</c>, <c>format</c>, <c>enum</c>,
    /// <c>const</c>) they are written canonically: <c>"</c> and <c>\</c> as <c>\"</c> and
    /// <c>\\</c>, controls as <c>\b \f \n \r \t</c> or <c>\u00xx</c>, every other character as
    /// itself.</para>
    /// <para>Supported keywords: <c>type</c> (a name or an array of names: object, array, string,
    /// integer, number, boolean, null); for objects <c>properties</c>, <c>required</c> (each must be
    /// declared in properties) and <c>additionalProperties</c>, which must be <c>false</c> or absent
    /// (absent is treated as false); for arrays <c>items</c> (a schema), <c>prefixItems</c> (with
    /// no further items unless <c>items</c> is given), <c>minItems</c>, <c>maxItems</c>; for
    /// strings <c>minLength</c>/<c>maxLength</c> (in code points), <c>pattern</c> (the subset of
    /// <see cref="Regex(string)"/>, searched as JSON Schema does: unanchored unless it begins with
    /// <c>^</c> or ends with <c>$</c>) and <c>format</c>: <c>date</c> (YYYY-MM-DD, years 0001-9999,
    /// real calendar days, leap years included), <c>time</c> (HH:MM:SS, optional fraction of 1-9 digits,
    /// <c>Z</c> or ±HH:MM), <c>date-time</c> (date <c>T</c> time), <c>uuid</c> (8-4-4-4-12 hex
    /// digits, either case), <c>email</c> (a dot-atom local part of letters, digits and
    /// <c>!#$%&amp;'*+/=?^_`{|}~-</c>, <c>@</c>, one or two labels of letters, digits and inner
    /// hyphens of at most 63 characters, each followed by a dot, and a top-level label of 2-63 letters), <c>ipv4</c> (four 0-255 parts, no leading zeros); a string takes
    /// one of pattern, format, or lengths. For <c>integer</c>: <c>minimum</c>, <c>maximum</c>,
    /// <c>exclusiveMinimum</c>, <c>exclusiveMaximum</c> (exact digit automata; no leading zeros,
    /// never <c>-0</c>). For <c>number</c>: without bounds any JSON number (fraction and exponent)
    /// except a negative zero integer part without fraction (<c>-0</c>, <c>-0e1</c>);
    /// with bounds, which must be integers, <c>-?int(.digits)?</c> with no exponent, exact at the
    /// bounds, never negative zero. <c>enum</c>/<c>const</c> of any JSON value (written compactly;
    /// other keywords beside them filter the values); <c>anyOf</c> (alone, with annotations);
    /// nesting to any depth; <c>false</c> as a schema allows nothing. Without <c>type</c>, object
    /// keywords imply an object and array keywords an array. Annotations (<c>$schema</c>,
    /// <c>$id</c>, <c>title</c>, <c>description</c>, <c>examples</c>, <c>default</c>,
    /// <c>$comment</c>) are ignored.</para>
    /// <para>Every other keyword (<c>$ref</c>, <c>oneOf</c>, <c>allOf</c>,
    /// <c>patternProperties</c>, <c>multipleOf</c>, ...) and the schema <c>true</c> are refused with
    /// an <see cref="ArgumentException"/> naming the keyword and its JSON pointer. So are a text
    /// longer than <see cref="MaxTextLength"/> characters, schemas nested more than 64 levels deep
    /// inside one another (a document more than 256 levels deep), and prefixItems of more than 256
    /// schemas.</para>
    /// </remarks>
    /// <param name="schemaJson">The schema document.</param>
    /// <exception cref="ArgumentNullException"><paramref name="schemaJson"/> is null.</exception>
    /// <exception cref="ArgumentException">The text is not JSON, or the schema uses an unsupported keyword or form.</exception>
    public static OutputConstraint JsonSchema(string schemaJson) => JsonSchema(schemaJson, CancellationToken.None);

    /// <summary>As <see cref="JsonSchema(string)"/>, stopping with an <see cref="OperationCanceledException"/> when <paramref name="cancellation"/> is cancelled.</summary>
    internal static OutputConstraint JsonSchema(string schemaJson, CancellationToken cancellation)
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
                JsonSchemaCompiler.Compile(document.RootElement, cancellation), cancellation);
        }
    }

    private static readonly Lazy<OutputConstraint> AnyJsonInstance =
        new(() => new OutputConstraint(OutputConstraintKind.JsonSchema, null, null, "{}", AnyJson.Build()), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Any compact JSON value whose containers nest at most <see cref="AnyJson.MaxDepth"/> deep: JSON with no
    /// schema (the chat client's <c>ChatResponseFormat.Json</c>). Its <see cref="Schema"/> is <c>{}</c>, the
    /// schema that allows every value; the public <see cref="JsonSchema(string)"/> refuses that schema, since its objects
    /// never take undeclared properties.
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
        var keys = root.EnumerateObject().Select(p => p.Name).ToList();
        if (keys.Count != 1)
            throw new FormatException($"{where}: an output constraint needs exactly one key, {expected}; found {(keys.Count == 0 ? "none" : string.Join(", ", keys))}.");
        var value = root.EnumerateObject().First().Value;
        switch (keys[0])
        {
            case "guided_choice" when value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(v => v.ValueKind == JsonValueKind.String):
                return Choices(value.EnumerateArray().Select(v => v.GetString()!));
            case "guided_regex" when value.ValueKind == JsonValueKind.String:
                return Regex(value.GetString()!);
            case "guided_json" when value.ValueKind == JsonValueKind.Object && !value.EnumerateObject().Any():
                return AnyJsonValue();
            case "guided_json" when value.ValueKind is JsonValueKind.Object or JsonValueKind.False:
                return JsonSchema(value.GetRawText());
            case "guided_choice" or "guided_regex" or "guided_json":
                throw new FormatException($"{where}: the key '{keys[0]}' holds {value.ValueKind}, which does not fit; expected {expected}.");
            default:
                throw new FormatException($"{where}: the key '{keys[0]}' is not an output constraint; expected {expected}.");
        }
    }

    /// <inheritdoc/>
    public bool Equals(OutputConstraint? other) =>
        other is not null && Kind == other.Kind && Pattern == other.Pattern && Schema == other.Schema
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
