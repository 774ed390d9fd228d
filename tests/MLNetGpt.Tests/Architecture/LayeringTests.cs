using System.Reflection;
using System.Xml.Linq;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Architecture;

/// <summary>
/// The three assemblies keep their layers (docs/design.md): MLNetGpt.Jinja is a leaf, MLNetGpt.Core (the engine)
/// knows no ML.NET, and only MLNetGpt (the stages) does. The compiler enforces it through the project references;
/// these tests guard the references themselves and the public surface.
/// </summary>
public sealed class LayeringTests
{
    private static readonly Assembly Jinja = typeof(MLNetGpt.Chat.JinjaTemplate).Assembly;
    private static readonly Assembly Core = typeof(GptModel).Assembly;
    private static readonly Assembly Stages = typeof(Microsoft.ML.MLNetGptCatalog).Assembly;

    // ML.NET's own assemblies (ONNX Runtime and Tokenizers share the Microsoft.ML prefix but are not ML.NET's pipeline).
    private static readonly string[] MlNetAssemblies = ["Microsoft.ML", "Microsoft.ML.Core", "Microsoft.ML.Data", "Microsoft.ML.DataView", "Microsoft.ML.OnnxTransformer", "Microsoft.ML.CpuMath", "Microsoft.ML.Transforms"];

    private static string Project(string name) => Path.Combine(SharedData.RepositoryRoot, "src", name, name + ".csproj");

    private static List<string> Items(string project, string item) =>
        XDocument.Load(project).Descendants(item).Select(e => (string)e.Attribute("Include")!).ToList();

    [Fact]
    public void The_assemblies_keep_their_names_so_saved_pipelines_load()
    {
        Assert.Equal("MLNetGpt", Stages.GetName().Name);
        Assert.Equal("MLNetGpt.Core", Core.GetName().Name);
        Assert.Equal("MLNetGpt.Jinja", Jinja.GetName().Name);
    }

    [Fact]
    public void The_template_engine_is_a_leaf_with_no_package_or_project_reference()
    {
        Assert.Empty(Items(Project("MLNetGpt.Jinja"), "PackageReference"));
        Assert.Empty(Items(Project("MLNetGpt.Jinja"), "ProjectReference"));
        var others = Jinja.GetReferencedAssemblies().Select(a => a.Name!)
            .Where(n => !(n.StartsWith("System", StringComparison.Ordinal) || n is "netstandard" or "mscorlib")).ToList();
        Assert.True(others.Count == 0, "MLNetGpt.Jinja references: " + string.Join(", ", others));
    }

    [Fact]
    public void The_engine_references_no_ML_NET_package_or_assembly()
    {
        var packages = Items(Project("MLNetGpt.Core"), "PackageReference");
        Assert.DoesNotContain(packages, p => p is "Microsoft.ML" or "Microsoft.ML.OnnxTransformer");
        Assert.Equal(["..\\MLNetGpt.Jinja\\MLNetGpt.Jinja.csproj", "..\\MLNetGpt.Models.Kjv\\MLNetGpt.Models.Kjv.csproj"],
            Items(Project("MLNetGpt.Core"), "ProjectReference").Order(StringComparer.Ordinal));
        var mlnet = Core.GetReferencedAssemblies().Select(a => a.Name!).Where(MlNetAssemblies.Contains).ToList();
        Assert.True(mlnet.Count == 0, "MLNetGpt.Core references ML.NET: " + string.Join(", ", mlnet));
    }

    [Fact]
    public void The_stages_reach_the_engine_through_its_project_only()
    {
        Assert.Equal(["..\\MLNetGpt.Core\\MLNetGpt.Core.csproj"], Items(Project("MLNetGpt"), "ProjectReference"));
        Assert.DoesNotContain(Stages.GetReferencedAssemblies(), a => a.Name == "MLNetGpt.Jinja");
    }

    [Fact]
    public void Types_of_the_internal_rooms_are_not_public()
    {
        string[] rooms = ["Generation", "Models", "Tokenization", "Chat", "Quantization", "Training", "Transforms"];
        var exposed = new[] { Jinja, Core, Stages }.SelectMany(a => a.GetTypes())
            .Where(t => t.IsPublic && t.Namespace is { } ns && rooms.Any(room => ns == "MLNetGpt." + room || ns.StartsWith("MLNetGpt." + room + ".", StringComparison.Ordinal)))
            .Select(t => t.FullName)
            .ToList();
        Assert.True(exposed.Count == 0, "Public types in internal rooms: " + string.Join(", ", exposed));
    }

    [Fact]
    public void Public_types_live_in_the_root_namespace_or_the_ML_NET_catalog()
    {
        var misplaced = new[] { Core, Stages }.SelectMany(a => a.GetExportedTypes())
            .Where(t => t.Namespace is not ("MLNetGpt" or "Microsoft.ML"))
            .Select(t => t.FullName)
            .ToList();
        Assert.True(misplaced.Count == 0, "Public types outside MLNetGpt/Microsoft.ML: " + string.Join(", ", misplaced));
    }

    [Fact]
    public void Only_the_stages_assembly_extends_ML_NET_s_catalog()
    {
        Assert.DoesNotContain(Core.GetExportedTypes(), t => t.Namespace == "Microsoft.ML");
        Assert.Contains(Stages.GetExportedTypes(), t => t == typeof(Microsoft.ML.MLNetGptCatalog));
    }

    [Fact]
    public void Every_file_and_project_the_benchmarks_link_exists()
    {
        // bench/ has its own solution (the tests never restore its packages), so a moved file would break it unseen.
        var missing = new List<string>();
        foreach (var project in Directory.GetFiles(Path.Combine(SharedData.RepositoryRoot, "bench"), "*.csproj", SearchOption.AllDirectories))
        {
            var folder = Path.GetDirectoryName(project)!;
            foreach (var item in new[] { "Compile", "ProjectReference", "None", "Content" }.SelectMany(kind => Items(project, kind)))
            {
                if (item.Contains('*') || !item.StartsWith("..", StringComparison.Ordinal)) continue;
                var path = Path.GetFullPath(Path.Combine(folder, item.Replace('\\', Path.DirectorySeparatorChar)));
                if (!File.Exists(path) && !Directory.Exists(path)) missing.Add($"{Path.GetRelativePath(SharedData.RepositoryRoot, project)}: {item}");
            }
        }
        Assert.True(missing.Count == 0, "Linked from bench/ but not there: " + string.Join("; ", missing));
    }
}
