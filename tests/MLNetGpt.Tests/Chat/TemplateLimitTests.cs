using System.Text;
using MLNetGpt.Chat;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary>
/// Hostile templates against the render budget and the depth guards: each is refused with a clear error within its
/// budget (never a stack overflow, a hang or an unbounded allocation), on a thread-pool thread and on a 256 KB stack.
/// </summary>
public sealed class TemplateLimitTests
{
    private const int Million = 1_000_000;
    private static readonly IReadOnlyDictionary<string, object?> NoVariables = new Dictionary<string, object?>();

    /// <summary>No length limit, so that the nesting guards (not the length check) are what meets a huge template.</summary>
    private static readonly TemplateLimits AnyLength = TemplateLimits.Default with { MaxTemplateLength = long.MaxValue };

    private static string Repeat(string text, int times) => new StringBuilder(text.Length * times).Insert(0, text, times).ToString();

    private static TemplateException Refusal(string thread, Action action)
    {
        var error = SmallStacks.Run(thread, action);
        return Assert.IsType<TemplateException>(error);
    }

    private static TemplateException RenderRefusal(string template, TemplateLimits? limits = null) =>
        Assert.Throws<TemplateException>(() => JinjaTemplate.Parse(template, limits).Render(NoVariables, limits: limits));

    /// <summary>Bytes the calling thread allocated while <paramref name="action"/> ran.</summary>
    private static long AllocatedBy(Action action)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        action();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    public static TheoryData<string> Threads => SmallStacks.Threads;

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_million_nested_if_statements_are_refused_at_parse_time_naming_the_nesting_limit(string thread)
    {
        var source = Repeat("{% if true %}", Million) + "x" + Repeat("{% endif %}", Million);
        var e = Refusal(thread, () => JinjaTemplate.Parse(source, AnyLength));
        Assert.Equal(TemplateErrorKind.Recursion, e.Kind);
        Assert.Contains("maximum recursion depth exceeded", e.Message);
        Assert.Equal(1, e.Line);
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_million_nested_expressions_of_every_recursive_form_are_refused_at_parse_time(string thread)
    {
        foreach (var (open, close) in new[] { ("(", ")"), ("[", "]"), ("{'k': ", "}"), ("not ", ""), ("- ", ""), ("f(", ")"), ("x[", "]"), ("1 if x else ", "") })
        {
            var source = "{{ " + Repeat(open, Million) + "1" + Repeat(close, Million) + " }}";
            var e = Refusal(thread, () => JinjaTemplate.Parse(source, AnyLength));
            Assert.True(e.Kind == TemplateErrorKind.Recursion, $"{open}...{close}: {e.Message}");
        }
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_million_nested_assignment_targets_are_refused_at_parse_time(string thread)
    {
        var source = "{% for " + Repeat("(", Million) + "a" + Repeat(")", Million) + " in x %}{% endfor %}";
        var e = Refusal(thread, () => JinjaTemplate.Parse(source, AnyLength));
        Assert.Equal(TemplateErrorKind.Recursion, e.Kind);
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_million_link_chain_parses_flat_and_is_refused_when_evaluated_at_a_thousand_levels(string thread)
    {
        foreach (var link in new[] { ".a", "|string", " + 1", "[0]", "()" })
        {
            var source = "{{ x" + Repeat(link, Million) + " }}";
            var e = Refusal(thread, () => JinjaTemplate.Parse(source, AnyLength).Render(NoVariables));
            Assert.True(e.Kind == TemplateErrorKind.Recursion, $"{link}: {e.Message}");
            Assert.Contains("maximum recursion depth exceeded", e.Message);
        }
    }

    [Fact]
    public void A_template_longer_than_the_source_budget_is_refused_before_it_is_read()
    {
        var e = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse(new string('x', (int)TemplateLimits.Default.MaxTemplateLength + 1)));
        Assert.Equal(TemplateErrorKind.Limit, e.Kind);
        Assert.Equal(nameof(TemplateLimits.MaxTemplateLength), e.Limit);
        Assert.Contains("1,048,577 characters long, more than the 1,048,576 accepted", e.Message);
    }

    /// <summary>Values nested a million levels deep, built directly (a template needs a million steps to build one).</summary>
    private static PyList DeepList(int depth)
    {
        var list = new PyList();
        for (var i = 0; i < depth; i++) list = new PyList(new List<object?> { list });
        return list;
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void Values_a_million_levels_deep_are_refused_by_equality_order_repr_json_and_hashing(string thread)
    {
        var a = DeepList(Million);
        var b = DeepList(Million);
        var tuple = new PyTuple(new object?[] { 1L });
        for (var i = 0; i < Million; i++) tuple = new PyTuple(new object?[] { tuple });
        var operations = new (string Name, Action Run)[]
        {
            ("==", () => PyOps.Equal(a, b)),
            ("<", () => PyOps.Compare(a, b)),
            ("repr", () => PyFormat.Repr(a)),
            ("str", () => PyFormat.Str(a)),
            ("tojson", () => PyJson.Dumps(a, false, null, null, false)),
            ("format", () => PyStringFormat.Format("{}", Arguments.Of(a))),
            ("dict key", () => new PyDict().Set(tuple, 1L)),
        };
        foreach (var (name, run) in operations)
        {
            var e = Refusal(thread, run);
            Assert.True(e.Kind == TemplateErrorKind.Recursion, $"{name}: {e.Message}");
            Assert.Contains("maximum recursion depth exceeded", e.Message);
        }
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_list_built_a_hundred_thousand_levels_deep_in_a_template_is_refused_by_equality_and_by_the_string_filter(string thread)
    {
        const string build = "{% set ns = namespace(a=[], b=[]) %}{% for i in range(100000) %}{% set ns.a = [ns.a] %}{% set ns.b = [ns.b] %}{% endfor %}";
        foreach (var use in new[] { "{{ ns.a == ns.b }}", "{{ ns.a|string }}", "{{ ns.a|tojson }}", "{{ ns.a in [ns.b] }}" })
        {
            var e = Refusal(thread, () => JinjaTemplate.Parse(build + use).Render(NoVariables));
            Assert.True(e.Kind == TemplateErrorKind.Recursion, $"{use}: {e.Message}");
            Assert.Equal(1, e.Line);
        }
    }

    [Fact]
    public void Nested_loops_of_a_hundred_thousand_each_stop_at_the_step_budget_naming_it_and_the_line()
    {
        var e = RenderRefusal("{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}");
        Assert.Equal(TemplateErrorKind.Limit, e.Kind);
        Assert.Equal(nameof(TemplateLimits.MaxSteps), e.Limit);
        Assert.Contains("budget of 10,000,000 steps", e.Message);
        Assert.Equal(2, e.Line);
    }

    [Fact]
    public void A_smaller_step_budget_stops_the_same_template_sooner_and_a_larger_one_lets_a_long_render_finish()
    {
        const string template = "{% for i in range(10000) %}{{ i % 10 }}{% endfor %}";
        var small = TemplateLimits.Default with { MaxSteps = 10_000 };
        Assert.Equal(nameof(TemplateLimits.MaxSteps), RenderRefusal(template, small).Limit);
        var state = new RenderState(() => DateTime.Now);
        var text = JinjaTemplate.Parse(template).Render(NoVariables, state);
        Assert.Equal(10_000, text.Length);
        Assert.InRange(state.Steps, 10_000, TemplateLimits.Default.MaxSteps);
    }

    public static TheoryData<string, string> AmplifyingTemplates => new()
    {
        { "{{ ('a' * 1000) * 10000000 }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l * 2 %}{% endfor %}{{ ns.l|length }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ ''.ljust(2000000000) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ ''.rjust(2000000000, '*') }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ 'x'|center(2000000000) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ 'x'.center(2000000000) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ '7'.zfill(2000000000) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ '{:>2000000000}'.format(1) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ '{:>2000000000}'.format('a') }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ '{:.2000000000f}'.format(1.5) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ '%2000000000d' % 1 }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ '%.2000000000f' % 1.5 }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ 'x'|indent(2000000000, true) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ [1]|tojson(indent=2000000000) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ ('a' * 100000).replace('a', 'a' * 100000) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ ('a' * 100000)|replace('a', 'a' * 100000) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{{ ('a' * 10000000).replace('', 'bc') }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set s = 'a' * 10000000 %}{{ [s, s]|join('') }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set s = 'a' * 10000000 %}{{ ''.join([s, s]) }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set s = 'a' * 10000000 %}{{ s ~ s }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set s = 'a' * 10000000 %}{{ [s, s]|string }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set s = 'a' * 10000000 %}{{ [s, s]|tojson }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set s = '<' * 5000000 %}{{ s|escape|length }}", nameof(TemplateLimits.MaxValueLength) },
        { "{% set s = 'a' * 10000000 %}{% for i in range(100) %}{% set t = s|upper %}{% endfor %}", nameof(TemplateLimits.MaxAllocation) },
        { "{% set s = 'a' * 1000000 %}{% for i in range(100000) %}{{ s[5] }}{% endfor %}", nameof(TemplateLimits.MaxSteps) },
        { "{% set s = 'a' * 1000000 %}{% for i in range(100000) %}{% if 'b' in s %}{% endif %}{% endfor %}", nameof(TemplateLimits.MaxSteps) },
        { "{% set s = 'a' * 1000000 %}{% for i in range(100000) %}{% set n = s.count('b') %}{% endfor %}", nameof(TemplateLimits.MaxSteps) },
        { "{% set s = 'a' * 1000000 %}{% for i in range(100000) %}{% set d = {s: 1} %}{% endfor %}", nameof(TemplateLimits.MaxSteps) },
        { "{% for i in range(100) %}{{ 'a' * 1000000 }}{% endfor %}", nameof(TemplateLimits.MaxOutputLength) },
        { "{% macro m() %}{% for i in range(100) %}{{ 'a' * 1000000 }}{% endfor %}{% endmacro %}{% set x = m() %}", nameof(TemplateLimits.MaxValueLength) },
    };

    [Theory]
    [MemberData(nameof(AmplifyingTemplates))]
    public void An_amplifying_template_is_refused_by_its_budget_before_it_allocates_a_gigabyte(string template, string limit)
    {
        TemplateException? error = null;
        long allocated = AllocatedBy(() => error = RenderRefusal(template));
        Assert.Equal(TemplateErrorKind.Limit, error!.Kind);
        Assert.Equal(limit, error.Limit);
        Assert.True(allocated < 1L << 30, $"{template}: allocated {allocated:N0} bytes before the refusal");
    }

    [Fact]
    public void A_refused_value_names_its_size_and_the_budget()
    {
        var e = RenderRefusal("\n\n{{ ('a' * 1000) * 10000000 }}");
        Assert.Equal("the repeated string would be 10,000,000,000 characters long, more than the 16,777,216 one value may hold (line 3, column 17)", e.Message);
    }

    [Fact]
    public void Format_specs_nested_beyond_two_levels_and_widths_beyond_an_int_are_refused_as_python_refuses_them()
    {
        var nested = RenderRefusal("{{ '{:" + Repeat("{:", Million) + Repeat("}", Million) + "}'.format(1, 2, 3) }}", AnyLength);
        Assert.Equal("Max string recursion exceeded", nested.Description);
        Assert.Equal("Too many decimal digits in format string", RenderRefusal("{{ '{:99999999999}'.format(1) }}").Description);
        Assert.Equal("Too many decimal digits in format string", RenderRefusal("{{ '%99999999999d' % 1 }}").Description);
        Assert.Equal("      x", JinjaTemplate.Parse("{{ '{:>{}}'.format('x', 7) }}").Render(NoVariables));
    }

    [Fact]
    public void A_huge_float_precision_is_written_exactly_without_big_integer_work()
    {
        var text = JinjaTemplate.Parse("{{ '{:.5000f}'.format(0.1) }}").Render(NoVariables);
        // 0.1's exact binary value has 55 significant decimals; every place after those is zero.
        Assert.StartsWith("0.1000000000000000055511151231257827021181583404541015625000", text);
        Assert.Equal(5002, text.Length);
        Assert.Equal(text.Substring(0, 40), JinjaTemplate.Parse("{{ '%.5000f' % 0.1 }}").Render(NoVariables).Substring(0, 40));
    }

    [Fact]
    public void A_cancelled_token_stops_an_endless_render_with_operation_canceled()
    {
        using var cancellation = new CancellationTokenSource();
        cancellation.Cancel();
        var unlimited = TemplateLimits.Default with { MaxSteps = long.MaxValue };
        var template = JinjaTemplate.Parse("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
        Assert.Throws<OperationCanceledException>(() => template.Render(NoVariables, limits: unlimited, cancellationToken: cancellation.Token));
    }

    [Fact]
    public void Real_templates_parse_and_render_on_a_256_KB_stack()
    {
        var source = File.Exists(Path.Combine(ChatTemplateCorpus.TemplatesFolder, "qwen3.jinja"))
            ? File.ReadAllText(Path.Combine(ChatTemplateCorpus.TemplatesFolder, "qwen3.jinja"))
            : "{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' + m.content | trim + '<|im_end|>\n' }}{% endfor %}";
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = new List<object?> { new Dictionary<string, object?> { ["role"] = "user", ["content"] = "Hello" } },
            ["add_generation_prompt"] = true,
        };
        string? text = null;
        Assert.Null(SmallStacks.OnSmallStack(() => text = JinjaTemplate.Parse(source).Render(variables)));
        Assert.Contains("Hello", text);
    }

    [Fact]
    public void A_lone_surrogate_after_a_backslash_in_a_string_literal_is_kept_as_its_escape_as_python_does()
    {
        // The stress test's case 184: a high surrogate not followed by a low one crashed the literal's decoding.
        Assert.Equal("\\ud83dx", JinjaTemplate.Parse("{{ '\\\ud83dx' }}").Render(NoVariables));
    }

    [Fact]
    public void The_c_format_of_a_code_point_outside_unicode_is_an_overflow_error_as_in_python()
    {
        Assert.Equal("%c arg not in range(0x110000)", RenderRefusal("{{ '{:c}'.format(-1) }}").Description);
        Assert.Equal("%c arg not in range(0x110000)", RenderRefusal("{{ '%c' % 1114112 }}").Description);
        Assert.Equal("\U0001F600", JinjaTemplate.Parse("{{ '{:c}'.format(128512) }}").Render(NoVariables));
    }

    [Theory]
    [MemberData(nameof(Threads))]
    public void A_json_value_twenty_thousand_levels_deep_given_to_a_template_is_refused_naming_its_depth(string thread)
    {
        // Deep enough to overflow a 256 KB stack if converted recursively (JsonDocument itself parses deep input slowly,
        // so not a million here).
        const int Depth = 20_000;
        using var document = System.Text.Json.JsonDocument.Parse(new string('[', Depth) + new string(']', Depth),
            new System.Text.Json.JsonDocumentOptions { MaxDepth = Depth + 1 });
        var root = document.RootElement;
        var e = Assert.IsType<ArgumentException>(SmallStacks.Run(thread, () => JinjaValues.FromJson(root)));
        Assert.StartsWith("a JSON value nests deeper than 256 levels, more than a template is given", e.Message);
        var viaVariables = Assert.IsType<ArgumentException>(SmallStacks.Run(thread,
            () => JinjaTemplate.Parse("{{ x }}").Render(new Dictionary<string, object?> { ["x"] = root })));
        Assert.Contains("nests deeper than 256 levels", viaVariables.Message);
    }
}
