using System.Text.Json;
using MLNetGpt.Chat;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary>The renderer's API: variables in, errors out with positions, the clock, the sandbox's copies, threads.</summary>
public sealed class JinjaTemplateTests
{
    private static readonly IReadOnlyDictionary<string, object?> NoVariables = new Dictionary<string, object?>();

    private static string Render(string template, IReadOnlyDictionary<string, object?>? variables = null) =>
        JinjaTemplate.Parse(template).Render(variables ?? NoVariables);

    private static TemplateException Failure(string template, IReadOnlyDictionary<string, object?>? variables = null) =>
        Assert.Throws<TemplateException>(() => Render(template, variables));

    [Fact]
    public void Raise_exception_throws_a_template_exception_whose_message_is_the_templates_text()
    {
        var e = Failure("{% for m in messages %}\n  {% if m.role == 'tool' %}{{ raise_exception('Tool messages are not supported: ' ~ m.role) }}{% endif %}\n{% endfor %}",
            new Dictionary<string, object?> { ["messages"] = new List<object?> { new Dictionary<string, object?> { ["role"] = "tool" } } });
        Assert.Equal(TemplateErrorKind.Raised, e.Kind);
        Assert.Equal("Tool messages are not supported: tool", e.Message);
        Assert.Equal(2, e.Line);
        Assert.Equal(31, e.Column);
    }

    [Fact]
    public void An_unknown_end_tag_is_reported_with_its_line_column_and_the_tags_that_were_expected()
    {
        var e = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("{{ 'a' }}\n  {% if x %}{{ y }}{% endiff %}"));
        Assert.Equal(TemplateErrorKind.Syntax, e.Kind);
        Assert.Equal(2, e.Line);
        Assert.Equal(23, e.Column);
        Assert.Equal("Encountered unknown tag 'endiff'. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. " +
                     "The innermost block that needs to be closed is 'if'. (line 2, column 23)", e.Message);
    }

    [Fact]
    public void A_wrong_token_is_reported_naming_the_expected_and_the_actual_token()
    {
        var e = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("{% for x y %}{% endfor %}"));
        Assert.Equal("expected token 'in', got 'y'", e.Description);
        Assert.Equal((1, 10), (e.Line, e.Column));
    }

    [Fact]
    public void A_template_that_ends_inside_a_tag_says_what_it_expected()
    {
        var e = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("text\n{{ messages[0]"));
        Assert.Equal("unexpected end of template, expected 'end of print statement'.", e.Description);
        Assert.Equal(2, e.Line);
    }

    [Fact]
    public void An_unknown_filter_is_refused_at_parse_time_naming_it_and_its_position()
    {
        var e = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("\n{{ content | markdown }}"));
        Assert.Equal("No filter named 'markdown'. (line 2, column 14)", e.Message);
    }

    [Fact]
    public void A_known_Jinja2_filter_this_renderer_leaves_out_says_so()
    {
        var e = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse("{{ url | urlize }}"));
        Assert.Equal("The Jinja2 filter 'urlize' is not supported by this renderer.", e.Description);
    }

    [Theory]
    [InlineData("{% include 'other.jinja' %}", "include")]
    [InlineData("{% extends 'base.jinja' %}", "extends")]
    [InlineData("{% autoescape true %}x{% endautoescape %}", "autoescape")]
    public void Tags_that_need_a_loader_or_autoescaping_are_refused_naming_the_tag(string template, string tag)
    {
        var e = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse(template));
        Assert.Equal(TemplateErrorKind.Syntax, e.Kind);
        Assert.StartsWith($"The '{tag}' tag is not supported", e.Description);
        Assert.Equal((1, 4), (e.Line, e.Column));
    }

    [Fact]
    public void A_runtime_error_names_the_line_and_column_of_the_innermost_failing_expression()
    {
        var e = Failure("{{ 'ok' }}\n   {{ 'x' ~ message.content.text }}");
        Assert.Equal(TemplateErrorKind.Undefined, e.Kind);
        Assert.Equal("'message' is undefined (line 2, column 13)", e.Message);
    }

    [Fact]
    public void The_message_of_a_runtime_error_ends_with_its_position()
    {
        var e = Failure("{% set n = 1 %}{{ n ~ (n + 'a') }}");
        Assert.Equal("unsupported operand type(s) for +: 'int' and 'str' (line 1, column 26)", e.Message);
        Assert.Equal("unsupported operand type(s) for +: 'int' and 'str'", e.Description);
    }

    [Fact]
    public void Strftime_now_formats_the_injected_clock()
    {
        var template = JinjaTemplate.Parse("{{ strftime_now('%A %d %B %Y %H:%M') }}");
        Assert.Equal("Monday 03 February 2031 07:05", template.Render(NoVariables, () => new DateTime(2031, 2, 3, 7, 5, 0)));
        Assert.Equal("Friday 01 March 2030 23:59", template.Render(NoVariables, () => new DateTime(2030, 3, 1, 23, 59, 0)));
    }

    [Fact]
    public void A_left_out_variable_is_undefined_and_a_null_one_is_none()
    {
        var template = JinjaTemplate.Parse("{{ bos_token is defined }} {{ tools is none }} [{{ bos_token }}] [{{ tools }}]");
        Assert.Equal("False True [] [None]", template.Render(new Dictionary<string, object?> { ["tools"] = null }));
    }

    [Fact]
    public void Dotnet_numbers_strings_lists_and_dictionaries_become_their_Python_counterparts()
    {
        var variables = new Dictionary<string, object?>
        {
            ["i"] = 3,
            ["l"] = 4L,
            ["f"] = 0.5f,
            ["d"] = 0.1,
            ["m"] = 2.5m,
            ["b"] = true,
            ["words"] = new[] { "a", "b" },
            ["numbers"] = new[] { 1, 2 },
            ["map"] = new Dictionary<string, object?> { ["z"] = 1, ["a"] = null },
            ["legacy"] = new System.Collections.Hashtable { [7] = "seven" },
        };
        var text = Render("{{ i + l }} {{ f }} {{ d }} {{ m }} {{ b }} {{ words }} {{ numbers|sum }} {{ map }} {{ legacy[7] }} {{ i is integer }} {{ d is float }}", variables);
        Assert.Equal("7 0.5 0.1 2.5 True ['a', 'b'] 3 {'z': 1, 'a': None} seven True True", text);
    }

    [Fact]
    public void A_value_outside_the_value_model_is_refused_naming_where_it_was_and_its_type()
    {
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = new List<object?> { new Dictionary<string, object?> { ["when"] = new DateTime(2025, 1, 1) } },
        };
        var e = Assert.Throws<ArgumentException>(() => Render("{{ messages }}", variables));
        Assert.StartsWith("variables['messages'][0]['when']: a value of type System.DateTime cannot be passed to a template; " +
                          "expected a string, bool, integer, double, null, list or dictionary", e.Message);
    }

    [Fact]
    public void A_list_that_contains_itself_is_refused_instead_of_recursing_forever()
    {
        var list = new List<object?>();
        list.Add(list);
        var e = Assert.Throws<ArgumentException>(() => Render("{{ x }}", new Dictionary<string, object?> { ["x"] = list }));
        Assert.Contains("nest deeper than 256 levels", e.Message);
    }

    [Fact]
    public void Json_numbers_keep_Pythons_int_and_float_distinction_and_objects_keep_their_order()
    {
        using var json = JsonDocument.Parse("""{"b": 1, "a": 1.0, "e": 1e2, "neg": -0, "s": "x", "n": null, "t": [true, false], "b": 2}""");
        var value = JinjaValues.FromJson(json.RootElement);
        var text = Render("{{ v }} {{ v.b is integer }} {{ v.a is float }}", new Dictionary<string, object?> { ["v"] = value });
        // A repeated key keeps its first place and its last value, as Python's json.loads does.
        Assert.Equal("{'b': 2, 'a': 1.0, 'e': 100.0, 'neg': 0, 's': 'x', 'n': None, 't': [True, False]} True True", text);
    }

    [Fact]
    public void A_json_integer_beyond_64_bits_becomes_the_nearest_double_where_Python_would_keep_it_exact()
    {
        using var json = JsonDocument.Parse("123456789012345678901234");
        Assert.Equal("1.2345678901234569e+23", Render("{{ v }}", new Dictionary<string, object?> { ["v"] = JinjaValues.FromJson(json.RootElement) }));
    }

    [Fact]
    public void A_json_element_can_be_passed_directly_as_a_variable()
    {
        using var json = JsonDocument.Parse("""[{"role": "user", "content": "Hi"}]""");
        Assert.Equal("user: Hi", Render("{% for m in messages %}{{ m.role }}: {{ m.content }}{% endfor %}",
            new Dictionary<string, object?> { ["messages"] = json.RootElement }));
    }

    [Fact]
    public void A_list_popped_inside_the_sandbox_leaves_the_callers_list_untouched()
    {
        var items = new List<object?> { 1, 2, 3 };
        Assert.Equal("3 [1, 2]", Render("{{ items.pop() }} {{ items }}", new Dictionary<string, object?> { ["items"] = items }));
        Assert.Equal(3, items.Count);
    }

    [Fact]
    public void Mutating_methods_are_refused_with_a_security_error_naming_the_attribute_and_type()
    {
        var e = Failure("{% set tools = [] %}{% for m in messages %}{{ tools.append(m) }}{% endfor %}",
            new Dictionary<string, object?> { ["messages"] = new[] { "a" } });
        Assert.Equal(TemplateErrorKind.Security, e.Kind);
        Assert.Equal("access to attribute 'append' of 'list' object is unsafe.", e.Description);
    }

    [Fact]
    public void Python_internals_stay_out_of_reach()
    {
        var e = Failure("{{ messages.__class__.__mro__[1].__subclasses__() }}", new Dictionary<string, object?> { ["messages"] = new List<object?>() });
        Assert.Equal(TemplateErrorKind.Security, e.Kind);
        // The first refused step is the one reported: later steps act on what the sandbox returned for it.
        Assert.Equal("access to attribute '__class__' of 'list' object is unsafe.", e.Description);
    }

    [Fact]
    public void Endless_macro_recursion_fails_with_a_recursion_error_instead_of_overflowing_the_stack()
    {
        var e = Failure("{% macro loop_forever(n) %}{{ loop_forever(n + 1) }}{% endmacro %}{{ loop_forever(0) }}");
        Assert.Equal(TemplateErrorKind.Recursion, e.Kind);
        Assert.Contains("maximum recursion depth exceeded", e.Description);
        Assert.Equal(1, e.Line);
    }

    [Fact]
    public void Deeply_nested_parentheses_fail_to_parse_with_a_recursion_error_instead_of_overflowing_the_stack()
    {
        var source = "{{ " + new string('(', 100_000) + "1" + new string(')', 100_000) + " }}";
        var e = Assert.Throws<TemplateException>(() => JinjaTemplate.Parse(source));
        Assert.Equal(TemplateErrorKind.Recursion, e.Kind);
    }

    [Fact]
    public void One_parsed_template_renders_different_variables_on_many_threads_as_it_does_alone()
    {
        var template = JinjaTemplate.Parse(
            "{%- set ns = namespace(total=0) %}{% set odd = numbers|select('odd') %}" +
            "{%- for n in numbers %}{% set ns.total = ns.total + n %}{{ loop.index }}:{{ n }} {% endfor %}" +
            "= {{ ns.total }} odd {{ odd|list }} again {{ odd|list }}");
        string Expected(int k)
        {
            var numbers = Enumerable.Range(k, k % 7 + 1).ToList();
            var items = string.Concat(numbers.Select((n, i) => $"{i + 1}:{n} "));
            return $"{items}= {numbers.Sum()} odd [{string.Join(", ", numbers.Where(n => n % 2 == 1))}] again []";
        }
        var results = new string[400];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, k =>
            results[k] = template.Render(new Dictionary<string, object?> { ["numbers"] = Enumerable.Range(k, k % 7 + 1).Cast<object?>().ToList() }));
        for (var k = 0; k < results.Length; k++) Assert.Equal(Expected(k), results[k]);
    }

    [Fact]
    public void Parse_refuses_a_null_source_and_render_refuses_null_variables()
    {
        Assert.Throws<ArgumentNullException>(() => JinjaTemplate.Parse(null!));
        Assert.Throws<ArgumentNullException>(() => JinjaTemplate.Parse("x").Render(null!));
    }
}
