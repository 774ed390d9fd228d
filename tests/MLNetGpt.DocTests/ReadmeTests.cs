using System.Text.RegularExpressions;
using Xunit;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace MLNetGpt.DocTests;

/// <summary>Every C# block of README.md compiles and runs, as a reader would paste it into a new console app.</summary>
public sealed partial class ReadmeTests
{
    private static string Root
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "MLNetGpt.sln"))) return dir.FullName;
            throw new DirectoryNotFoundException("MLNetGpt.sln was not found above " + AppContext.BaseDirectory);
        }
    }

    private static string Readme => Path.Combine(Root, "README.md");

    /// <summary>The readme of each package (nuget.org shows it on the package's page).</summary>
    private static IEnumerable<string> PackageReadmes() =>
        Directory.GetFiles(Path.Combine(Root, "src"), "PACKAGE.md", SearchOption.AllDirectories).Order(StringComparer.Ordinal);

    /// <summary>The guides in docs/.</summary>
    private static IEnumerable<string> Guides() =>
        Directory.GetFiles(Path.Combine(Root, "docs"), "*.md").Order(StringComparer.Ordinal);

    public static TheoryData<string, int> GuideBlocks()
    {
        var data = new TheoryData<string, int>();
        foreach (var file in Guides())
            foreach (var block in MarkdownCode.CSharpBlocks(file))
                data.Add(Path.GetRelativePath(Root, file), block.Line);
        return data;
    }

    public static TheoryData<int> ReadmeBlockLines() => new(MarkdownCode.CSharpBlocks(Readme).Select(b => b.Line));

    public static TheoryData<string, int> PackageReadmeBlocks()
    {
        var data = new TheoryData<string, int>();
        foreach (var file in PackageReadmes())
            foreach (var block in MarkdownCode.CSharpBlocks(file))
                data.Add(Path.GetRelativePath(Root, file), block.Line);
        return data;
    }

    private static void AssertRunsAndPrints(CodeBlock block)
    {
        var result = SnippetRunner.Run(block, TempFolder());
        Assert.True(result.Errors.Count == 0, $"{block} does not compile:\n" + string.Join("\n", result.Errors));
        Assert.True(result.Exception is null, $"{block} threw: {result.Exception}\nIts output:\n{result.Output}");
        Assert.False(string.IsNullOrWhiteSpace(result.Output), $"{block} printed nothing: a reader would not see it work.");
    }

    private static string TempFolder()
    {
        var path = Path.Combine(Path.GetTempPath(), "mlnetgpt-doctests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    private static CodeBlock WriteMarkdown(string text)
    {
        var path = Path.Combine(TempFolder(), "GUIDE.md");
        File.WriteAllText(path, text);
        return Assert.Single(MarkdownCode.CSharpBlocks(path));
    }

    [Theory]
    [MemberData(nameof(ReadmeBlockLines))]
    public void Every_csharp_block_of_the_README_compiles_and_runs_and_prints_its_result(int line)
    {
        AssertRunsAndPrints(MarkdownCode.CSharpBlocks(Readme).Single(b => b.Line == line));
    }

    [Theory]
    [MemberData(nameof(PackageReadmeBlocks))]
    public void Every_csharp_block_of_the_package_readmes_compiles_and_runs_and_prints_its_result(string file, int line)
    {
        AssertRunsAndPrints(MarkdownCode.CSharpBlocks(Path.Combine(Root, file)).Single(b => b.Line == line));
    }

    [Theory]
    [MemberData(nameof(GuideBlocks))]
    public void Every_csharp_block_of_the_guides_in_docs_compiles_and_runs_and_prints_its_result(string file, int line)
    {
        AssertRunsAndPrints(MarkdownCode.CSharpBlocks(Path.Combine(Root, file)).Single(b => b.Line == line));
    }

    [Fact]
    public void A_fragment_runs_inside_its_stated_wrapper_and_a_missing_wrapper_is_named()
    {
        var fragment = WriteMarkdown("Inside the default model:\n\n```csharp wrapper=default-model\nConsole.WriteLine(model.Info.VocabularySize);\n```\n");
        Assert.Equal("default-model", fragment.Wrapper);
        var ran = SnippetRunner.Run(fragment, TempFolder());
        Assert.Empty(ran.Errors);
        Assert.Equal("50257", ran.Output.Trim());
        var missing = WriteMarkdown("```csharp wrapper=nowhere\nConsole.WriteLine(1);\n```\n");
        Assert.Contains("the wrapper 'nowhere' does not exist", Assert.Single(SnippetRunner.Run(missing, TempFolder()).Errors));
    }

    [Fact]
    public void Each_library_package_has_a_readme_with_code_to_run()
    {
        var withCode = PackageReadmes().Where(f => MarkdownCode.CSharpBlocks(f).Count > 0)
            .Select(f => Path.GetFileName(Path.GetDirectoryName(f)!)).ToList();
        Assert.Equal(["MLNetGpt", "MLNetGpt.Core", "MLNetGpt.Cuda", "MLNetGpt.Models.Kjv"], withCode.Order(StringComparer.Ordinal));
    }

    [GeneratedRegex(@"^\s*```\s*(csharp|cs|c#)\b", RegexOptions.Multiline | RegexOptions.IgnoreCase)]
    private static partial Regex CSharpFence();

    [Fact]
    public void The_README_has_csharp_blocks_and_each_of_them_is_run()
    {
        int fences = CSharpFence().Matches(File.ReadAllText(Readme)).Count;
        Assert.True(fences >= 2, $"README.md has {fences} C# blocks; its 'In C#' section has two.");
        Assert.Equal(fences, MarkdownCode.CSharpBlocks(Readme).Count);
    }

    [Fact]
    public void A_block_without_its_using_fails_to_compile_naming_the_Markdown_line()
    {
        var block = WriteMarkdown("# Guide\n\nText.\n\n```csharp\nusing var gpt = GptModel.OpenDefault();\nConsole.WriteLine(gpt.Info);\n```\n");
        var result = SnippetRunner.Run(block, TempFolder());
        var error = Assert.Single(result.Errors);
        Assert.Contains("GUIDE.md(6,17)", error);
        // What a reader saw when the README's engine snippet lacked its using (CS0103).
        Assert.Contains("error CS0103: The name 'GptModel' does not exist in the current context", error);
    }

    [Fact]
    public void A_block_that_throws_is_reported_with_its_exception_and_output()
    {
        var block = WriteMarkdown("```cs\nConsole.WriteLine(\"before\");\nthrow new InvalidOperationException(\"the model folder is missing\");\n```\n");
        var result = SnippetRunner.Run(block, TempFolder());
        Assert.Empty(result.Errors);
        Assert.Equal("the model folder is missing", Assert.IsType<InvalidOperationException>(result.Exception).Message);
        Assert.Equal("before", result.Output.Trim());
    }

    [Fact]
    public void A_block_runs_in_the_given_folder_with_async_top_level_statements()
    {
        var folder = TempFolder();
        var block = WriteMarkdown("```c#\nawait File.WriteAllTextAsync(\"made.txt\", \"x\");\nConsole.Write(Directory.GetCurrentDirectory());\n```\n");
        var result = SnippetRunner.Run(block, folder);
        Assert.Null(result.Exception);
        Assert.True(File.Exists(Path.Combine(folder, "made.txt")));
        Assert.Equal(Path.GetFullPath(folder).TrimEnd('/'), result.Output.TrimEnd('/'));
    }

    [Fact]
    public void Blocks_in_other_languages_are_not_run_and_an_unclosed_block_is_refused_naming_its_line()
    {
        var path = Path.Combine(TempFolder(), "GUIDE.md");
        File.WriteAllText(path, "```\nplain\n```\n\n```text\nThe output\n```\n\n    dotnet test\n\n```bash\necho hi\n```\n");
        Assert.Empty(MarkdownCode.CSharpBlocks(path));
        File.AppendAllText(path, "\n```csharp\nConsole.WriteLine();\n");
        var error = Assert.Throws<FormatException>(() => MarkdownCode.CSharpBlocks(path));
        Assert.Contains("the code block opened at line 15 is never closed", error.Message);
    }
}
