using System.Text;
using System.Text.RegularExpressions;

namespace MLNetGpt.Tests.Stress;

/// <summary>
/// Random damage to a real chat template, the way a careless edit or an attacker would do it: tags deleted, duplicated
/// or swapped, regions wrapped in deeply nested blocks or in long loops, huge literals and amplifying expressions
/// inserted, the text cut short or sprinkled with delimiters. Seeded: the same seed gives the same template.
/// </summary>
internal static partial class TemplateMutator
{
    [GeneratedRegex(@"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", RegexOptions.Singleline)]
    private static partial Regex Tag();

    private static readonly string[] Amplifiers =
    [
        "{{ ('a' * 1000) * 10000000 }}",
        "{{ ''.ljust(2000000000) }}",
        "{{ 'x'|center(2000000000) }}",
        "{{ '{:>2000000000}'.format(1) }}",
        "{{ ('a' * 100000).replace('a', 'a' * 100000) }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l == ns.l }}{{ ns.l|string }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
        "{{ messages|tojson(indent=1000000) }}",
        "{{ '%.1000000f' % 1.5 }}",
        "{{ (messages * 100000)|length }}",
        "{{ messages|map('tojson')|join('') * 100000 }}",
        "{% for m in messages * 100000 %}{{ m.content * 1000 }}{% endfor %}",
    ];

    private static readonly string[] Openers =
    [
        "{% if true %}", "{% for _i in range(3) %}", "{% with _w = 1 %}", "{% filter upper %}", "{% set _b %}", "{% generation %}",
    ];

    private static readonly string[] Closers =
    [
        "{% endif %}", "{% endfor %}", "{% endwith %}", "{% endfilter %}", "{% endset %}", "{% endgeneration %}",
    ];

    private const string Noise = "{}%#'\"()[]|~.,:-+*/\\\n \t\u00e9\U0001F600\0";

    // How often each kind of damage is done (the first kinds keep the template parseable; the last ones rarely do).
    private static readonly int[] Weights = [10, 10, 22, 8, 5, 3, 15, 20, 3, 4];

    public static string Mutate(string source, Random random)
    {
        int count = random.Next(10) switch { < 6 => 1, < 9 => 2, _ => 3 };
        for (int i = 0; i < count; i++) source = MutateOnce(source, random);
        return source;
    }

    private static string MutateOnce(string source, Random random)
    {
        var tags = Tag().Matches(source).ToList();
        int At() => random.Next(source.Length + 1);
        Match? AnyTag() => tags.Count == 0 ? null : tags[random.Next(tags.Count)];
        int pick = random.Next(Weights.Sum()), kind = 0;
        while (pick >= Weights[kind]) pick -= Weights[kind++];
        switch (kind)
        {
            case 0 when AnyTag() is { } tag:
                return source.Remove(tag.Index, tag.Length);
            case 1 when AnyTag() is { } tag:
                return source.Insert(At(), tag.Value);
            case 2 when tags.Count >= 2:
            {
                int depth = random.Next(2) == 0 ? random.Next(1, 20) : random.Next(90, 140);
                int block = random.Next(Openers.Length);
                // Between tags, so that the nest wraps whole statements and the template stays parseable.
                int from = tags[random.Next(tags.Count)].Index, to = tags[random.Next(tags.Count)].Index;
                if (from > to) (from, to) = (to, from);
                var open = new StringBuilder();
                var close = new StringBuilder();
                for (int d = 0; d < depth; d++)
                {
                    open.Append(Openers[block]);
                    close.Append(Closers[block]);
                }
                return source[..from] + open + source[from..to] + close + source[to..];
            }
            case 3 when AnyTag() is { } before:
            {
                string literal = random.Next(3) switch
                {
                    0 => "{{ '" + new string('x', random.Next(1, 200_000)) + "' }}",
                    1 => new string('y', random.Next(1, 200_000)),
                    _ => "{% set _big = '" + new string('z', random.Next(1, 50_000)) + "' * " + random.Next(1, 100_000) + " %}{{ _big|length }}",
                };
                return source.Insert(before.Index, literal);
            }
            case 4 when tags.Count >= 2:
            {
                var a = tags[random.Next(tags.Count)];
                var b = tags[random.Next(tags.Count)];
                if (a.Index > b.Index) (a, b) = (b, a);
                if (a.Index + a.Length > b.Index) return source;
                return source[..a.Index] + b.Value + source[(a.Index + a.Length)..b.Index] + a.Value + source[(b.Index + b.Length)..];
            }
            case 5:
            {
                int from = At();
                return source.Remove(from, Math.Min(random.Next(1, 30), source.Length - from));
            }
            case 6 when tags.Count >= 2:
            {
                int from = tags[random.Next(tags.Count)].Index, to = tags[random.Next(tags.Count)].Index;
                if (from > to) (from, to) = (to, from);
                string loop = $"{{% for _l in range({random.Next(1, 100_001)}) %}}";
                return source[..from] + loop + source[from..to] + "{% endfor %}" + source[to..];
            }
            case 7 when AnyTag() is { } before:
                return source.Insert(before.Index, Amplifiers[random.Next(Amplifiers.Length)]);
            case 8:
                return source[..At()];
            default:
            {
                var noise = new StringBuilder();
                for (int n = random.Next(1, 12); n > 0; n--) noise.Append(Noise[random.Next(Noise.Length)]);
                return source.Insert(At(), noise.ToString());
            }
        }
    }
}
