namespace MLNetGpt.Cli.Batch;

/// <summary>
/// What identifies a batch job in its manifest beyond its files: every option that changes results, under its
/// command-line name, as canonical text (see <see cref="JobManifest"/>). The decoding controls come from the
/// library's list, so the identity can never miss one.
/// </summary>
internal static class JobIdentity
{
    /// <summary>
    /// Every decoding control of the library's list under its command-line flag, as canonical JSON text (a switch as
    /// "given"), or null when not given: the list decides what identifies a job, so a new control can never be
    /// changed on a --resume unnoticed. Controls that only change speed (prefix caching, prompt lookup) are left
    /// out. The constraint is recorded by <see cref="AddConstraint"/>.
    /// </summary>
    internal static void AddDecodingControls(Dictionary<string, string?> options, GenerationOptions generation)
    {
        foreach (var control in GenerationControls.All)
        {
            // The constraint has its own options; speed-only controls are not part of what the job computes.
            if (control.Key == "constraint" || !control.ChangesResults) continue;
            string key = control.Flag ?? control.Key;
            options[key] = control.Get(generation) is not { } value ? null
                : control.SwitchValue is null ? control.Text(value)
                : Equals(value, control.SwitchValue) ? "given" : null;
        }
    }

    /// <summary>The constraint in the manifest, under the option that expresses it (--choices-file records its choices as --choices: the file's name is not the job).</summary>
    internal static void AddConstraint(Dictionary<string, string?> options, OutputConstraint? constraint, bool jsonColumns)
    {
        options["--choices"] = constraint?.Kind == OutputConstraintKind.Choices ? JobManifest.Canonical(constraint.ChoiceList) : null;
        options["--regex"] = constraint?.Kind == OutputConstraintKind.Regex ? constraint.Pattern : null;
        options["--json-schema"] = constraint?.Kind == OutputConstraintKind.JsonSchema ? constraint.Schema : null;
        options["--json-columns"] = jsonColumns ? "given" : null;
    }
}
