using System.Diagnostics;
using System.Globalization;
using MLNetGpt.Chat;
using MLNetGpt.Tests.Chat;

namespace MLNetGpt.Tests.Stress;

/// <summary>
/// The test assembly's entry point, used only as a child process by <see cref="StressTests"/>:
/// <c>dotnet MLNetGpt.Tests.dll stress templates|regexes|schemas SEED COUNT</c>. Each case runs on a thread with a
/// 256 KB stack; a stack overflow or an allocation past the heap limit the parent sets kills this process, which the
/// parent sees as a failed exit code instead of a dead test host. Prints one summary line; exits 1 when any case ended
/// in anything but a result or a refusal of the expected kind.
/// </summary>
public static class StressProgram
{
    /// <summary>The render budget of the stress: the defaults, with fewer steps so that ten thousand cases take minutes.</summary>
    internal static readonly TemplateLimits Limits = TemplateLimits.Default with { MaxSteps = 200_000 };

    public static int Main(string[] args)
    {
        if (args.Length != 4 || args[0] != "stress") return 0;   // the test host never calls this with arguments
        string kind = args[1];
        int seed = int.Parse(args[2], CultureInfo.InvariantCulture);
        int count = int.Parse(args[3], CultureInfo.InvariantCulture);
        int result = 2;
        var thread = new Thread(() => result = Run(kind, seed, count), 256 * 1024);
        thread.Start();
        thread.Join();
        return result;
    }

    private static int Run(string kind, int seed, int count)
    {
        Func<Random, string> make;
        Func<string, Random, string?> attempt;   // null: accepted; otherwise the refusal's kind
        switch (kind)
        {
            case "templates":
            {
                var cases = ChatTemplateCorpus.CaseNames().Select(ChatTemplateCorpus.Load).ToList();
                if (cases.Count == 0) throw new InvalidOperationException("the chat-template corpus is not there");
                var chosen = new Dictionary<string, ChatTemplateCorpus.Case>();
                make = random =>
                {
                    var c = cases[random.Next(cases.Count)];
                    string mutated = TemplateMutator.Mutate(c.Template, random);
                    chosen[mutated] = c;
                    return mutated;
                };
                attempt = (source, _) =>
                {
                    var c = chosen[source];
                    chosen.Remove(source);
                    try
                    {
                        JinjaTemplate.Parse(source, Limits).Render(c.Variables, () => ChatTemplateCorpus.Now, Limits);
                        return null;
                    }
                    catch (TemplateException e)
                    {
                        return e.Kind == TemplateErrorKind.Limit ? "limit " + e.Limit : e.Kind.ToString();
                    }
                };
                break;
            }
            case "regexes":
                make = RandomConstraints.Regex;
                attempt = (pattern, _) => Refusal(() => OutputConstraint.Regex(pattern));
                break;
            case "schemas":
                make = RandomConstraints.Schema;
                attempt = (schema, _) => Refusal(() => OutputConstraint.JsonSchema(schema));
                break;
            default:
                Console.Error.WriteLine($"unknown stress kind '{kind}'");
                return 2;
        }

        var outcomes = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var failures = new List<string>();
        long slowest = 0;
        int slowestCase = -1;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
        {
            var random = new Random(seed * 1_000_003 + i);
            string input = make(random);
            if (Environment.GetEnvironmentVariable("MLNETGPT_STRESS_TRACE") == "2") Console.Error.WriteLine($"case {i}: {input}");
            var one = Stopwatch.StartNew();
            string outcome;
            try
            {
                outcome = attempt(input, random) is { } refusal ? "refused: " + refusal : "accepted";
            }
            catch (Exception e)
            {
                outcome = "FAILED " + e.GetType().Name;
                failures.Add($"case {i} (seed {seed * 1_000_003 + i}): {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
            if (one.ElapsedMilliseconds > 2_000 && Environment.GetEnvironmentVariable("MLNETGPT_STRESS_TRACE") == "1")
                Console.Error.WriteLine($"case {i}: {one.ElapsedMilliseconds} ms, {outcome}, input {input.Length} chars: {input[..Math.Min(200, input.Length)]}");
            if (one.ElapsedMilliseconds > slowest)
            {
                slowest = one.ElapsedMilliseconds;
                slowestCase = i;
            }
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
        }
        Console.WriteLine($"{kind}: {count} cases in {clock.Elapsed.TotalSeconds:F1} s; slowest {slowest} ms (case {slowestCase}); " +
            $"peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20)} MB; " +
            string.Join(", ", outcomes.Select(o => $"{o.Key} {o.Value}")));
        foreach (var failure in failures.Take(20)) Console.WriteLine(failure);
        return failures.Count == 0 ? 0 : 1;
    }

    /// <summary>Null when the constraint compiles; "ArgumentException" when it is refused as documented; anything else escapes.</summary>
    private static string? Refusal(Action compile)
    {
        try
        {
            compile();
            return null;
        }
        catch (ArgumentException)
        {
            return "ArgumentException";
        }
    }
}
