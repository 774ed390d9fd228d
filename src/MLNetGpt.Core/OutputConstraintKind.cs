namespace MLNetGpt;

/// <summary>What an <see cref="OutputConstraint"/> restricts the generated text to.</summary>
public enum OutputConstraintKind
{
    /// <summary>Exactly one of a fixed list of strings (<see cref="OutputConstraint.Choices(IEnumerable{string})"/>).</summary>
    Choices,

    /// <summary>A full match of a regular expression (<see cref="OutputConstraint.Regex(string)"/>).</summary>
    Regex,

    /// <summary>Compact JSON valid against a schema (<see cref="OutputConstraint.JsonSchema(string)"/>).</summary>
    JsonSchema,
}
