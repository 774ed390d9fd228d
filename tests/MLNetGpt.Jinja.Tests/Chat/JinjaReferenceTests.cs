using MLNetGpt.Chat;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary>Each reference snippet renders, or fails, as Python Jinja2 did (text byte for byte; error class and message).</summary>
public sealed class JinjaReferenceTests
{
    public static IEnumerable<object[]> Snippets() => JinjaReference.Names().Select(name => new object[] { name });

    [Theory]
    [MemberData(nameof(Snippets))]
    public void A_reference_snippet_behaves_as_in_Python_Jinja2(string snippet)
    {
        var s = JinjaReference.Get(snippet);
        string? actual = null;
        TemplateException? failure = null;
        try
        {
            actual = JinjaTemplate.Parse(s.Template).Render(JinjaReference.Variables(s), () => new DateTime(2025, 7, 10, 12, 0, 0));
        }
        catch (TemplateException e)
        {
            failure = e;
        }

        if (s.Error is null)
        {
            Assert.True(failure is null, $"Jinja2 rendered {s.Expected}, the renderer raised {failure?.Kind}: {failure?.Message}");
            Assert.True(actual == s.Expected, ChatTemplateCorpus.Difference(s.Expected!, actual!));
            return;
        }
        Assert.True(failure is not null, $"Jinja2 raised {s.Error.Type}: {s.Error.Message}; the renderer rendered {actual}");
        Assert.Equal(JinjaReference.KindOf(s.Error.Type), failure!.Kind);
        Assert.NotNull(failure.Line);
        // Python's own SyntaxError (break outside a loop) counts lines of the generated module, not of the template.
        if (s.Error.Line is { } line && s.Error.Type != "SyntaxError") Assert.Equal(line, failure.Line);
        // Syntax messages are the renderer's own (they add a column, which Jinja2 does not give); the others are Python's.
        if (failure.Kind != TemplateErrorKind.Syntax) Assert.Equal(s.Error.Message, failure.Description);
    }

    [Fact]
    public void The_reference_file_holds_both_renderings_and_errors()
    {
        var all = JinjaReference.Names().Select(JinjaReference.Get).ToList();
        Assert.True(all.Count >= 250, $"only {all.Count} snippets");
        Assert.Contains(all, s => s.Error is not null);
        Assert.All(all, s => Assert.True(s.Expected is not null ^ s.Error is not null, $"{s.Name} has neither or both results: run tools/jinja_reference.py"));
    }
}
