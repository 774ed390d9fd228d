using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MLNetGpt.Generation.Constraints;
using MLNetGpt.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace MLNetGpt.Tests.Generation.Constraints;

/// <summary>
/// The JSON Schema organisation's conformance suite (JSON-Schema-Test-Suite, draft 2020-12 without optional/), third-party
/// data under ../shared. Every schema is either compiled or refused with a message that names a keyword and a JSON pointer;
/// for a compiled schema every instance is fed to the automaton and must be accepted exactly when the suite says it is valid
/// (with the documented exceptions counted, never hidden: see <see cref="Run"/>).
/// </summary>
/// <remarks>
/// What is fed: the instance written the way the generator writes JSON: no whitespace, members in any order (the instance's
/// own first: see <see cref="Spellings"/>; an instance counts as accepted when one of its spellings is, and an invalid one
/// must have none accepted), strings with the minimal escapes (<c>JsonText.Canonical</c>), and numbers in their shortest decimal spelling where
/// decimal holds them (<c>1.0</c> as <c>1</c>, <c>-2.0</c> as <c>-2</c>, <c>1e2</c> as <c>100</c>), as the generator writes
/// integers and constants; JSON Schema compares numbers by value, so no instance changes validity by it.
/// </remarks>
public sealed class JsonSchemaSuiteTests(ITestOutputHelper output)
{
    private const string Folder = "json-schema-test-suite/draft2020-12";

    /// <summary>The figures of one run, by suite file (one file per keyword).</summary>
    internal sealed class Figures
    {
        public int Schemas, Accepted, Valid, ValidAccepted, Invalid, InvalidAccepted;
        public readonly List<string> Refusals = [];
        public readonly List<string> Misses = [];
    }

    private static readonly Regex Pointer = new(@" at (the root|/[^ ]*)[.:]?", RegexOptions.CultureInvariant);

    internal static SortedDictionary<string, Figures> Run(string folder)
    {
        var byFile = new SortedDictionary<string, Figures>(StringComparer.Ordinal);
        foreach (string path in Directory.GetFiles(folder, "*.json").Order(StringComparer.Ordinal))
        {
            var figures = byFile[Path.GetFileNameWithoutExtension(path)] = new Figures();
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            foreach (var group in document.RootElement.EnumerateArray())
            {
                figures.Schemas++;
                string description = group.GetProperty("description").GetString()!;
                OutputConstraint? constraint = null;
                try
                {
                    constraint = OutputConstraint.JsonSchema(group.GetProperty("schema").GetRawText());
                    figures.Accepted++;
                }
                catch (ArgumentException e)
                {
                    figures.Refusals.Add($"{description}: {e.Message}");
                }
                foreach (var test in group.GetProperty("tests").EnumerateArray())
                {
                    bool valid = test.GetProperty("valid").GetBoolean();
                    if (valid) figures.Valid++;
                    else figures.Invalid++;
                    if (constraint is null) continue;
                    var spellings = Spellings(test.GetProperty("data"));
                    string text = spellings[0];
                    bool accepted = spellings.Any(constraint.Accepts);
                    if (accepted && valid) figures.ValidAccepted++;
                    if (accepted && !valid) figures.InvalidAccepted++;
                    if (accepted != valid)
                        figures.Misses.Add($"{description} / {test.GetProperty("description").GetString()}: {text} is {(valid ? "valid" : "invalid")} but {(accepted ? "accepted" : "rejected")}");
                }
            }
        }
        return byFile;
    }

    /// <summary>The generator's spelling of a value (see the remarks).</summary>
    internal static string Spelled(JsonElement value) => JsonText.Canonical(value, shortestNumbers: true);

    /// <summary>Objects with more members than this are spelled in their own order only.</summary>
    private const int MaxReordered = 5;

    /// <summary>Spellings tried per instance, at most.</summary>
    private const int MaxSpellings = 512;

    /// <summary>
    /// The generator's spellings of a value: the instance's own member order first, then every other order of each
    /// object's members (JSON objects are unordered; the generator writes declared members in the schema's order, which
    /// for allOf and dependentRequired is not always the instance's), up to <see cref="MaxSpellings"/>.
    /// </summary>
    internal static List<string> Spellings(JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Array:
            {
                var result = new List<string> { "" };
                foreach (var item in value.EnumerateArray())
                    result = Product(result, Spellings(item), (a, b) => a.Length == 0 ? b : a + "," + b);
                return result.Select(r => "[" + r + "]").ToList();
            }
            case JsonValueKind.Object:
            {
                var members = value.EnumerateObject().Select(m => Spellings(m.Value).Select(v => "\"" + JsonText.EscapeString(m.Name) + "\":" + v).ToList()).ToList();
                var orders = members.Count <= MaxReordered ? Orders(members.Count) : [Enumerable.Range(0, members.Count).ToArray()];
                var all = new List<string>();
                foreach (var order in orders)
                {
                    var result = new List<string> { "" };
                    foreach (int i in order) result = Product(result, members[i], (a, b) => a.Length == 0 ? b : a + "," + b);
                    all.AddRange(result.Select(r => "{" + r + "}"));
                    if (all.Count >= MaxSpellings) break;
                }
                return all.Take(MaxSpellings).ToList();
            }
            default:
                return [Spelled(value)];
        }
    }

    private static List<string> Product(List<string> left, List<string> right, Func<string, string, string> join)
    {
        var result = new List<string>();
        foreach (string a in left)
            foreach (string b in right)
            {
                result.Add(join(a, b));
                if (result.Count == MaxSpellings) return result;
            }
        return result;
    }

    /// <summary>Every order of n items, the identity first.</summary>
    private static List<int[]> Orders(int n)
    {
        var result = new List<int[]>();
        void Place(List<int> prefix)
        {
            if (prefix.Count == n)
            {
                result.Add([.. prefix]);
                return;
            }
            for (int i = 0; i < n; i++)
                if (!prefix.Contains(i))
                {
                    prefix.Add(i);
                    Place(prefix);
                    prefix.RemoveAt(prefix.Count - 1);
                }
        }
        Place([]);
        return result;
    }

    /// <summary>The per-keyword table (markdown) that docs/structured-output.md quotes.</summary>
    internal static string Table(SortedDictionary<string, Figures> byFile)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| suite file | schemas | accepted | valid instances accepted | invalid instances accepted |");
        sb.AppendLine("|---|---:|---:|---:|---:|");
        var total = new Figures();
        foreach (var (file, f) in byFile)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {file} | {f.Schemas} | {f.Accepted} | {f.ValidAccepted}/{ValidOfAccepted(f)} | {f.InvalidAccepted} |");
            total.Schemas += f.Schemas;
            total.Accepted += f.Accepted;
            total.ValidAccepted += f.ValidAccepted;
            total.InvalidAccepted += f.InvalidAccepted;
            total.Valid += ValidOfAccepted(f);
        }
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"| **all** | {total.Schemas} | {total.Accepted} ({100.0 * total.Accepted / total.Schemas:F1}%) | {total.ValidAccepted}/{total.Valid} ({100.0 * total.ValidAccepted / Math.Max(1, total.Valid):F1}%) | {total.InvalidAccepted} |");
        return sb.ToString();
    }

    /// <summary>Valid instances of accepted schemas: accepted plus the valid ones rejected (the misses that say "valid").</summary>
    private static int ValidOfAccepted(Figures f) => f.ValidAccepted + f.Misses.Count(m => m.Contains(" is valid but rejected", StringComparison.Ordinal));

    [SharedDataFact(Folder)]
    public void Every_schema_of_the_suite_is_compiled_or_refused_by_keyword_and_pointer_and_no_invalid_instance_is_accepted()
    {
        var byFile = Run(SharedData.PathOf(Folder));
        string table = Table(byFile);
        output.WriteLine(table);
        foreach (var (file, f) in byFile)
        {
            foreach (string refusal in f.Refusals) output.WriteLine($"refused {file}: {refusal}");
            foreach (string miss in f.Misses) output.WriteLine($"miss {file}: {miss}");
        }
        if (Environment.GetEnvironmentVariable("MLNETGPT_SUITE_TABLE") is { Length: > 0 } target) File.WriteAllText(target, table);

        foreach (var (file, f) in byFile)
            foreach (string refusal in f.Refusals)
                Assert.True(Pointer.IsMatch(refusal) && refusal.Contains("JSON schema: ", StringComparison.Ordinal), $"{file}: the refusal names no JSON pointer: {refusal}");

        int schemas = byFile.Values.Sum(f => f.Schemas), accepted = byFile.Values.Sum(f => f.Accepted);
        int valid = byFile.Values.Sum(ValidOfAccepted), validAccepted = byFile.Values.Sum(f => f.ValidAccepted);
        Assert.Equal(0, byFile.Values.Sum(f => f.InvalidAccepted));
        Assert.True(accepted >= MinimumAccepted, $"{accepted} of {schemas} schemas accepted, expected at least {MinimumAccepted}");
        Assert.True(validAccepted >= valid * MinimumValidShare, $"{validAccepted} of {valid} valid instances accepted, expected at least {MinimumValidShare:P0}");
    }

    /// <summary>Schemas compiled in the last measured run (a floor: coverage may only grow).</summary>
    private const int MinimumAccepted = 329;

    private const double MinimumValidShare = 0.99;
}
