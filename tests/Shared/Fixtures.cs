using System.Text.Json;

namespace MLNetGpt.Tests.Infrastructure;

/// <summary>Paths of the committed test fixtures and the default model.</summary>
public static class Fixtures
{
    /// <summary>tests/Fixtures in the repository, which every test project shares.</summary>
    public static readonly string Root = Path.Combine(SharedData.RepositoryRoot, "tests", "Fixtures");

    /// <summary>The random-weight GPT-2 fixtures made by tools/make_fixtures.py.</summary>
    public static readonly string[] Gpt2Names = ["tiny-gpt2-a", "tiny-gpt2-b"];

    /// <summary>Every fixture folder with the fixture whose golden.json applies to it (layout variants share weights).</summary>
    public static readonly (string Folder, string Golden)[] WithGolden =
    [
        ("tiny-gpt2-a", "tiny-gpt2-a"),
        ("tiny-gpt2-b", "tiny-gpt2-b"),
        ("tiny-gpt2-a-pair", "tiny-gpt2-a"),
        ("tiny-gpt2-a-merged", "tiny-gpt2-a"),
        ("tiny-gqa-genai", "tiny-gqa-genai"),
        ("tiny-llama-builder", "tiny-llama-builder"),
        ("tiny-onnx-community", "tiny-onnx-community"),
    ];

    public static string Folder(string name) => Path.Combine(Root, name);

    public static Golden Golden(string name, string file = "golden.json") => Infrastructure.Golden.Load(Path.Combine(Folder(name), file));

    /// <summary>The embedded default model, found by walking up from the test binaries to the repository.</summary>
    public static string DefaultModel
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "models", "mlnetgpt-kjv");
                if (File.Exists(Path.Combine(candidate, "model.onnx"))) return candidate;
            }
            throw new DirectoryNotFoundException("models/mlnetgpt-kjv was not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>A fresh empty folder under the test output directory.</summary>
    public static string TempFolder(string label)
    {
        var path = Path.Combine(Path.GetTempPath(), "mlnetgpt-tests", $"{label}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Copies a fixture folder so a test can damage it.</summary>
    public static string CopyOf(string name)
    {
        var target = TempFolder(name);
        foreach (var file in Directory.GetFiles(Folder(name)))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        return target;
    }
}

/// <summary>The torch-computed reference data of one fixture (see tools/make_fixtures.py).</summary>
public sealed class Golden
{
    public required int[] ProbeIds { get; init; }
    public required GoldenPrompt[] Prompts { get; init; }
    public required GoldenFigures[] Prefill { get; init; }
    public required GoldenBatch PaddedBatch { get; init; }
    public required GoldenBatch DecodeStep { get; init; }
    public required GoldenGreedy[] Greedy { get; init; }

    public static Golden Load(string path)
    {
        var options = new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
        return JsonSerializer.Deserialize<Golden>(File.ReadAllText(path), options)!;
    }
}

public sealed record GoldenPrompt(string Text, int[] Ids);

public sealed record GoldenFigures(float[][] Probe, float[] Logsumexp, int[] Argmax, float[]? TokenLogProbs = null);

public sealed record GoldenBatch(long[][] InputIds, long[][] AttentionMask, long[][] PositionIds, GoldenFigures[] Rows);

public sealed record GoldenGreedy(int[] PromptIds, int[] Generated, double MinMargin);
