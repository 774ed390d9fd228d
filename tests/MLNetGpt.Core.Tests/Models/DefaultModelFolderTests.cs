using System.Security.Cryptography;
using MLNetGpt.Models;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Models;

/// <summary>The default model as a data package: MLNetGpt.Models.Kjv's resources extracted once to a folder named by their hash.</summary>
public sealed class DefaultModelFolderTests
{
    private static string Extract(string root) => DefaultModel.Extract(root, DefaultModel.ResourceAssembly());

    private static Dictionary<string, string> Hashes(string folder) =>
        Directory.GetFiles(folder).ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [Fact]
    public void The_extracted_default_model_equals_the_repository_folder_file_for_file()
    {
        var folder = Extract(Fixtures.TempFolder("model-cache"));
        Assert.Equal(Hashes(Fixtures.DefaultModel).OrderBy(p => p.Key), Hashes(folder).OrderBy(p => p.Key));
        Assert.StartsWith(DefaultModel.FolderPrefix, Path.GetFileName(folder));
    }

    [Fact]
    public void A_second_use_reuses_the_extracted_folder_without_writing_it_again()
    {
        var root = Fixtures.TempFolder("model-cache");
        var first = Extract(root);
        var marker = Path.Combine(first, "left-by-the-test.txt");
        File.WriteAllText(marker, "kept");
        var second = Extract(root);
        Assert.Equal(first, second);
        Assert.True(File.Exists(marker), "the folder was extracted again instead of reused");
        Assert.Single(Directory.GetDirectories(root));
    }

    [Fact]
    public void A_damaged_copy_is_replaced_on_the_next_use()
    {
        var root = Fixtures.TempFolder("model-cache");
        var folder = Extract(root);
        var onnx = Path.Combine(folder, "model.onnx");
        using (var stream = File.OpenWrite(onnx)) stream.SetLength(1000);
        File.Delete(Path.Combine(folder, "config.json"));
        Assert.Equal(folder, Extract(root));
        Assert.Equal(Hashes(Fixtures.DefaultModel).OrderBy(p => p.Key), Hashes(folder).OrderBy(p => p.Key));
    }

    [Fact]
    public void Concurrent_first_uses_leave_one_complete_copy_and_no_staging_folders()
    {
        var root = Fixtures.TempFolder("model-cache");
        var folders = new string[4];
        Parallel.For(0, folders.Length, new ParallelOptions { MaxDegreeOfParallelism = folders.Length }, i => folders[i] = Extract(root));
        Assert.Single(folders.Distinct());
        Assert.Equal([folders[0]], Directory.GetDirectories(root));
        Assert.Equal(Hashes(Fixtures.DefaultModel).OrderBy(p => p.Key), Hashes(folders[0]).OrderBy(p => p.Key));
    }

    [Fact]
    public void The_default_model_opens_from_the_package_and_generates_what_the_repository_folder_generates()
    {
        var greedy = new GenerationOptions { MaxNewTokens = 12, DoSample = false };
        using var packaged = GptModel.OpenDefault();
        using var repository = GptModel.Open(Fixtures.DefaultModel);
        Assert.Equal(repository.Generate("And God said,", greedy).TokenIds, packaged.Generate("And God said,", greedy).TokenIds);
        Assert.StartsWith(DefaultModel.CacheRoot(), GptModel.DefaultModelFolder);
    }

    [Fact]
    public void The_cache_folder_is_the_one_MLNETGPT_CACHE_names()
    {
        var before = Environment.GetEnvironmentVariable(DefaultModel.CacheVariable);
        var root = Fixtures.TempFolder("model-cache-variable");
        try
        {
            Environment.SetEnvironmentVariable(DefaultModel.CacheVariable, root);
            Assert.Equal(root, DefaultModel.CacheRoot());
            Environment.SetEnvironmentVariable(DefaultModel.CacheVariable, null);
            Assert.EndsWith(Path.Combine("MLNetGpt", "models"), DefaultModel.CacheRoot());
        }
        finally
        {
            Environment.SetEnvironmentVariable(DefaultModel.CacheVariable, before);
        }
    }

    [Fact]
    public void An_app_without_the_model_package_is_told_which_package_to_add()
    {
        var error = Assert.Throws<GptModelException>(() => DefaultModel.Extract(Fixtures.TempFolder("model-cache"), null));
        Assert.Contains("MLNetGpt.Models.Kjv", error.Message);
        Assert.Contains("its assembly is not in this app", error.Message);
        Assert.Contains("dotnet add package MLNetGpt.Models.Kjv", error.Message);
    }

    [Fact]
    public void An_assembly_without_the_model_files_is_refused_naming_it_and_the_package()
    {
        var error = Assert.Throws<GptModelException>(() => DefaultModel.Extract(Fixtures.TempFolder("model-cache"), typeof(object).Assembly));
        Assert.Contains("the assembly 'System.Private.CoreLib' carries none", error.Message);
        Assert.Contains("MLNetGpt.Models.Kjv", error.Message);
    }

    [Fact]
    public void A_cache_folder_that_cannot_be_written_is_reported_naming_it_and_MLNETGPT_CACHE()
    {
        var file = Path.Combine(Fixtures.TempFolder("model-cache"), "a-file");
        File.WriteAllText(file, "not a folder");
        var error = Assert.Throws<GptModelException>(() => Extract(Path.Combine(file, "cache")));
        Assert.Contains(Path.Combine(file, "cache", DefaultModel.FolderPrefix), error.Message);
        Assert.Contains("Set the MLNETGPT_CACHE environment variable to a writable folder", error.Message);
        Assert.IsAssignableFrom<IOException>(error.InnerException);
    }

    [LinuxFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void A_copy_changed_in_place_is_written_again_with_a_warning_and_the_cache_root_is_private()
    {
        var root = Fixtures.TempFolder("model-cache");
        File.SetUnixFileMode(root, (UnixFileMode)Convert.ToInt32("777", 8));
        var folder = Extract(root);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(root));
        var onnx = Path.Combine(folder, "model.onnx");
        var bytes = File.ReadAllBytes(onnx);
        bytes[^64] ^= 0x01;                                   // same length: a length check alone would miss it
        File.WriteAllBytes(onnx, bytes);
        var warnings = new List<string>();
        Assert.Equal(folder, DefaultModel.Extract(root, DefaultModel.ResourceAssembly(), warnings.Add));
        Assert.Equal([$"The default model's copy at '{folder}' does not match the model's files (damaged or changed since it was written); writing it again."], warnings);
        Assert.Equal(Hashes(Fixtures.DefaultModel).OrderBy(p => p.Key), Hashes(folder).OrderBy(p => p.Key));
        Assert.DoesNotContain(Directory.GetDirectories(root), d => Path.GetFileName(d).EndsWith(".partial", StringComparison.Ordinal));
    }
}
