using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace MLNetGpt.DocTests;

/// <summary>What compiling and running one block gave: compiler errors, or its console output and any exception.</summary>
public sealed record SnippetResult(IReadOnlyList<string> Errors, string Output, Exception? Exception);

/// <summary>
/// Compiles a code block as the whole Program.cs of a new console app (top-level statements, the implicit
/// usings of <c>dotnet new console</c>, nothing else in scope) against the assemblies of this test app,
/// which references MLNetGpt as an app would, then runs it in a given working folder.
/// </summary>
public static class SnippetRunner
{
    // What <ImplicitUsings>enable</ImplicitUsings> gives a console app (Microsoft.NET.Sdk).
    private const string ImplicitUsings =
        "global using System; global using System.Collections.Generic; global using System.IO; global using System.Linq; " +
        "global using System.Net.Http; global using System.Threading; global using System.Threading.Tasks;";

    private static readonly Lazy<MetadataReference[]> s_references = new(() =>
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(path => (MetadataReference)MetadataReference.CreateFromFile(path))
            .ToArray());

    private static readonly object s_consoleGate = new();

    public static SnippetResult Run(CodeBlock block, string workingDirectory)
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        // The #line directive makes every diagnostic name the Markdown file and its line.
        string source = $"#line {block.Line} \"{block.File}\"\n{block.Code}\n#line default\n";
        if (block.Wrapper is { } name)
        {
            var wrapper = Path.Combine(AppContext.BaseDirectory, "Wrappers", name + ".cs.txt");
            if (!File.Exists(wrapper))
                return new SnippetResult([$"{block}: the wrapper '{name}' does not exist (expected tests/MLNetGpt.DocTests/Wrappers/{name}.cs.txt)"], "", null);
            var text = File.ReadAllText(wrapper);
            if (!text.Contains("/*CODE*/", StringComparison.Ordinal))
                return new SnippetResult([$"{block}: the wrapper '{name}' has no /*CODE*/ placeholder"], "", null);
            source = text.Replace("/*CODE*/", "\n" + source, StringComparison.Ordinal);
        }
        var program = CSharpSyntaxTree.ParseText(source, parse, path: block.File);
        var usings = CSharpSyntaxTree.ParseText(ImplicitUsings, parse, path: "ImplicitUsings.g.cs");
        var compilation = CSharpCompilation.Create($"Snippet{block.Line}_{Guid.NewGuid():N}", [usings, program], s_references.Value,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        var errors = emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()).ToList();
        if (!emitted.Success) return new SnippetResult(errors, "", null);

        image.Position = 0;
        var assembly = AssemblyLoadContext.Default.LoadFromStream(image);
        var entry = assembly.EntryPoint!;
        lock (s_consoleGate)
        {
            var output = new StringWriter();
            var (consoleOut, folder) = (Console.Out, Environment.CurrentDirectory);
            try
            {
                Console.SetOut(output);
                Environment.CurrentDirectory = workingDirectory;
                var result = entry.Invoke(null, entry.GetParameters().Length == 0 ? null : [Array.Empty<string>()]);
                if (result is Task task) task.GetAwaiter().GetResult();
                return new SnippetResult(errors, output.ToString(), null);
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                return new SnippetResult(errors, output.ToString(), e.InnerException);
            }
            catch (Exception e)
            {
                return new SnippetResult(errors, output.ToString(), e);
            }
            finally
            {
                Console.SetOut(consoleOut);
                Environment.CurrentDirectory = folder;
            }
        }
    }
}
