using System.Text.RegularExpressions;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Architecture;

/// <summary>The rooms of src/MLNetGpt keep to their jobs (see the layout in README.md).</summary>
public sealed partial class LayeringTests
{
    // Rooms below Transforms: they know ONNX Runtime, tokenizers and files, never ML.NET's pipeline API.
    private static readonly string[] InternalRooms = ["Generation", "Models", "Tokenization", "Chat", "Quantization", "Training"];

    [GeneratedRegex(@"^\s*using\s+(static\s+)?Microsoft\.ML(\.(Data|Runtime|Transforms|Trainers|Model))?\s*;", RegexOptions.Multiline)]
    private static partial Regex MlNetUsing();

    [Fact]
    public void No_room_below_Transforms_uses_the_ML_NET_pipeline_API()
    {
        var offenders = new List<string>();
        string src = Path.Combine(SharedData.RepositoryRoot, "src", "MLNetGpt");
        foreach (var room in InternalRooms)
        {
            string folder = Path.Combine(src, room);
            if (!Directory.Exists(folder)) continue;
            foreach (var file in Directory.GetFiles(folder, "*.cs", SearchOption.AllDirectories))
            {
                var text = File.ReadAllText(file);
                if (MlNetUsing().IsMatch(text) || text.Contains("Microsoft.ML.Data.", StringComparison.Ordinal) || text.Contains("IDataView", StringComparison.Ordinal))
                    offenders.Add(Path.GetRelativePath(src, file));
            }
        }
        Assert.True(offenders.Count == 0, "These files below Transforms reference ML.NET: " + string.Join(", ", offenders));
    }

    [Fact]
    public void Types_of_the_internal_rooms_are_not_public()
    {
        var exposed = typeof(GptModel).Assembly.GetTypes()
            .Where(t => t.IsPublic && t.Namespace is { } ns && InternalRooms.Any(room => ns == "MLNetGpt." + room || ns.StartsWith("MLNetGpt." + room + ".", StringComparison.Ordinal)))
            .Select(t => t.FullName)
            .ToList();
        Assert.True(exposed.Count == 0, "Public types in internal rooms: " + string.Join(", ", exposed));
    }

    [Fact]
    public void Public_types_live_in_the_root_namespace_or_the_ML_NET_catalog()
    {
        var misplaced = typeof(GptModel).Assembly.GetExportedTypes()
            .Where(t => t.Namespace is not ("MLNetGpt" or "Microsoft.ML"))
            .Select(t => t.FullName)
            .ToList();
        Assert.True(misplaced.Count == 0, "Public types outside MLNetGpt/Microsoft.ML: " + string.Join(", ", misplaced));
    }
}
