using MLNetGpt.Chat;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Chat;

/// <summary>Every case of the shared chat-template corpus renders exactly as Python Jinja2 rendered it.</summary>
public sealed class ChatTemplateCorpusTests
{
    public static IEnumerable<object[]> Cases() => ChatTemplateCorpus.CaseNames().Select(name => new object[] { name });

    [SharedDataTheory(ChatTemplateCorpus.Folder)]
    [MemberData(nameof(Cases))]
    public void A_corpus_case_renders_byte_for_byte_as_Python_Jinja2(string caseName)
    {
        var corpusCase = ChatTemplateCorpus.Load(caseName);
        var template = JinjaTemplate.Parse(corpusCase.Template);
        var actual = template.Render(corpusCase.Variables, () => ChatTemplateCorpus.Now);
        Assert.True(actual == corpusCase.Expected,
            $"{caseName} ({corpusCase.TemplateName}): " + ChatTemplateCorpus.Difference(corpusCase.Expected, actual));
    }

    [SharedDataFact(ChatTemplateCorpus.Folder)]
    public void The_corpus_holds_the_219_cases_of_its_readme()
    {
        // Guards the theory above against silently shrinking (a moved folder, a filter that matches nothing).
        Assert.Equal(219, ChatTemplateCorpus.CaseNames().Count());
    }

    [SharedDataFact(ChatTemplateCorpus.Folder)]
    public void Each_corpus_template_parses_once_and_renders_its_cases_on_parallel_threads_as_alone()
    {
        var cases = ChatTemplateCorpus.CaseNames().Select(ChatTemplateCorpus.Load).ToList();
        var templates = cases.Select(c => c.TemplateName).Distinct()
            .ToDictionary(name => name, name => JinjaTemplate.Parse(cases.First(c => c.TemplateName == name).Template));
        var work = Enumerable.Range(0, 4).SelectMany(_ => cases).ToList();
        var results = new string[work.Count];
        Parallel.For(0, work.Count, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
            results[i] = templates[work[i].TemplateName].Render(work[i].Variables, () => ChatTemplateCorpus.Now));
        for (var i = 0; i < work.Count; i++)
            Assert.True(results[i] == work[i].Expected, $"{work[i].Name} differs when rendered concurrently: " + ChatTemplateCorpus.Difference(work[i].Expected, results[i]));
    }
}
