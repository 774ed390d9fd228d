namespace MLNetGpt.DocTests;

/// <summary>
/// A fenced code block of a Markdown file: where its code starts (1-based line) and the code. A fragment names the
/// program it runs inside in its info string (<c>```csharp wrapper=NAME</c>, the program in
/// <c>tests/MLNetGpt.DocTests/Wrappers/NAME.cs.txt</c>, which the document states in words beside the block).
/// </summary>
public sealed record CodeBlock(string File, int Line, string Code, string? Wrapper = null)
{
    public override string ToString() => $"{Path.GetFileName(File)} line {Line}";
}

/// <summary>Finds the C# blocks of a Markdown file: fences whose info string starts with csharp, cs or c#.</summary>
public static class MarkdownCode
{
    private static readonly string[] CSharpNames = ["csharp", "cs", "c#"];

    public static IReadOnlyList<CodeBlock> CSharpBlocks(string path)
    {
        var lines = File.ReadAllLines(path);
        var blocks = new List<CodeBlock>();
        for (int i = 0; i < lines.Length; i++)
        {
            var fence = lines[i].TrimStart();
            if (!fence.StartsWith("```", StringComparison.Ordinal)) continue;
            var info = fence[3..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var language = info.Length > 0 ? info[0] : "";
            string? wrapper = info.Skip(1).FirstOrDefault(a => a.StartsWith("wrapper=", StringComparison.Ordinal))?["wrapper=".Length..];
            int end = i + 1;
            while (end < lines.Length && !lines[end].TrimStart().StartsWith("```", StringComparison.Ordinal)) end++;
            if (end == lines.Length)
                throw new FormatException($"{path}: the code block opened at line {i + 1} is never closed.");
            if (CSharpNames.Contains(language, StringComparer.OrdinalIgnoreCase))
                blocks.Add(new CodeBlock(path, i + 2, string.Join('\n', lines[(i + 1)..end]), wrapper));
            i = end;
        }
        return blocks;
    }
}
