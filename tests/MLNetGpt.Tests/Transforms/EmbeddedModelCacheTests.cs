using System.IO.Compression;
using System.Text;
using Microsoft.ML;
using MLNetGpt.Models;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Transforms;

/// <summary>
/// Pipelines saved with <see cref="ModelStorage.Embed"/>: only the files the model reads travel, never what a link
/// points at; loading extracts them to a private per-user cache, verified against the zip's content hash before use,
/// through a staging folder that no failure leaves behind; a zip whose metadata was tampered with is refused in words.
/// </summary>
public sealed class EmbeddedModelCacheTests
{
    private static GenerateTextOptions Options(string folder) => new()
    {
        OutputColumnName = "Completion",
        InputColumnName = "Prompt",
        ModelFolder = folder,
        BatchSize = 2,
        FinishReasonColumnName = "Finish",
        Storage = ModelStorage.Embed,
        Generation = new GenerationOptions { MaxNewTokens = 6, DoSample = false },
    };

    /// <summary>A copy of a fixture with a note that makes its content (and so its cache folder) its own.</summary>
    private static string UniqueModel(string fixture = "tiny-gpt2-b")
    {
        var folder = Fixtures.CopyOf(fixture);
        var config = Path.Combine(folder, "generation_config.json");
        File.WriteAllText(config, File.ReadAllText(config).TrimEnd().TrimEnd('}') + $", \"_unique\": \"{Guid.NewGuid():N}\"}}");
        return folder;
    }

    private static (string Zip, List<string> Before) SaveEmbedded(string folder)
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(GenerateTextPipelineTests.Rows(2));
        var model = ml.Transforms.Text.GenerateText(Options(folder)).Fit(data);
        var before = Completions(ml, model, data);
        var zip = Path.Combine(Fixtures.TempFolder("embedded"), "pipeline.zip");
        ml.Model.Save(model, data.Schema, zip);
        model.Dispose();
        return (zip, before);
    }

    private static List<string> Completions(MLContext ml, ITransformer model, IDataView data) =>
        ml.Data.CreateEnumerable<GenerateTextPipelineTests.CompletionRow>(model.Transform(data), reuseRowObject: false).Select(r => r.Completion).ToList();

    /// <summary>Loads in a fresh context with its own cache root; returns the model and the warnings logged.</summary>
    private static (ITransformer Model, List<string> Warnings) Load(string zip, string root)
    {
        PrivateCache.RootOverride.Value = root;
        var ml = new MLContext();
        var warnings = new List<string>();
        ml.Log += (_, e) =>
        {
            if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.Message);
        };
        return (ml.Model.Load(zip, out _), warnings);
    }

    private static string Errors(Exception e)
    {
        var all = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException) all.Add(x.Message);
        return string.Join(" | ", all);
    }

    private static string[] CachedFolders(string root) => Directory.Exists(root) ? Directory.GetDirectories(root) : [];

    /// <summary>The extracted copy of the model stage's files (the tokenizer stages keep theirs in a folder of their own).</summary>
    private static string ModelCopy(string root) => Assert.Single(CachedFolders(root), f => File.Exists(Path.Combine(f, "model.onnx")));

    /// <summary>No staging folder left and no copy of the model stage's files (the stage whose data was damaged).</summary>
    private static void AssertNothingLeftOfTheFailedCopy(string root)
    {
        Assert.DoesNotContain(Directory.GetFileSystemEntries(root), e => Path.GetFileName(e).StartsWith(".staging-", StringComparison.Ordinal));
        Assert.DoesNotContain(CachedFolders(root), f => File.Exists(Path.Combine(f, "model.onnx")));
    }

    [LinuxFact]
    public void An_embedded_model_travels_as_the_files_it_reads_only_and_never_a_links_target()
    {
        var folder = UniqueModel();
        var secret = Path.Combine(Fixtures.TempFolder("outside"), "id_rsa");
        File.WriteAllText(secret, "-----BEGIN OPENSSH PRIVATE KEY-----");
        File.CreateSymbolicLink(Path.Combine(folder, "id_rsa"), secret);
        Directory.CreateSymbolicLink(Path.Combine(folder, "loop"), ".");        // the loop that truncated zips: never walked now
        var (zip, before) = SaveEmbedded(folder);
        var root = Fixtures.TempFolder("cache");
        var (loaded, _) = Load(zip, root);
        IReadOnlyList<string> used;
        using (var model = GptModel.Open(folder)) used = model.Info.Files;
        string Listing(string copy) => string.Join(",", Directory.GetFiles(copy, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(copy, f)).Order(StringComparer.Ordinal));
        // The model stage carries exactly the files the model reads (README.md and golden.json stay behind), the
        // tokenizer stages their configuration files; nothing a link points at travels.
        Assert.Equal(string.Join(",", used.Order(StringComparer.Ordinal)), Listing(ModelCopy(root)));
        Assert.Equal(["config.json,generation_config.json,tokenizer_config.json"], CachedFolders(root).Where(f => f != ModelCopy(root)).Select(Listing));
        Assert.DoesNotContain(Directory.GetFiles(root, "*", SearchOption.AllDirectories), f => File.ReadAllText(f).Contains("PRIVATE KEY"));
        var data = new MLContext().Data.LoadFromEnumerable(GenerateTextPipelineTests.Rows(2));
        Assert.Equal(before, Completions(new MLContext(), loaded, data));
    }

    [LinuxFact]
    public void A_used_file_that_links_out_of_the_folder_is_refused_when_the_stage_is_made_so_no_zip_is_ever_started()
    {
        var folder = UniqueModel("tiny-chatml");
        var outside = Path.Combine(Fixtures.TempFolder("outside"), "tokenizer_config.json");
        File.Move(Path.Combine(folder, "tokenizer_config.json"), outside);
        File.CreateSymbolicLink(Path.Combine(folder, "tokenizer_config.json"), outside);
        var ml = new MLContext();
        var e = Assert.ThrowsAny<Exception>(() => ml.Transforms.Text.TokenizeText(new TokenizeTextOptions
        {
            OutputColumnName = "Ids", InputColumnName = "Text", ModelFolder = folder, Storage = ModelStorage.Embed,
        }));
        Assert.Contains($"is a link to '{outside}', outside the model folder", Errors(e));
    }

    [LinuxFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void The_cache_is_private_to_the_user_and_a_second_load_reuses_the_verified_copy()
    {
        var (zip, _) = SaveEmbedded(UniqueModel());
        var root = Path.Combine(Fixtures.TempFolder("cache"), "MLNetGpt", "models");
        Load(zip, root);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(root));
        var folders = CachedFolders(root);
        var stamps = folders.Select(Directory.GetLastWriteTimeUtc).ToList();
        var (_, warnings) = Load(zip, root);
        Assert.Equal(folders, CachedFolders(root));
        Assert.Equal(stamps, folders.Select(Directory.GetLastWriteTimeUtc));
        Assert.Empty(warnings);
    }

    [LinuxFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void A_shared_cache_root_is_made_private_before_anything_is_extracted_into_it()
    {
        var (zip, _) = SaveEmbedded(UniqueModel());
        var root = Fixtures.TempFolder("shared-cache");
        File.SetUnixFileMode(root, (UnixFileMode)Convert.ToInt32("777", 8));
        Load(zip, root);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(root));
    }

    [LinuxFact]
    public void A_tampered_copy_in_the_cache_is_extracted_again_with_a_warning_before_it_is_used()
    {
        var (zip, before) = SaveEmbedded(UniqueModel());
        var root = Fixtures.TempFolder("cache");
        Load(zip, root);
        var folder = ModelCopy(root);
        var onnx = Path.Combine(folder, "model.onnx");
        var original = File.ReadAllBytes(onnx);
        var tampered = (byte[])original.Clone();
        tampered[^100] ^= 0x55;                                 // same length: a length check alone would not see it
        File.WriteAllBytes(onnx, tampered);
        File.WriteAllText(Path.Combine(folder, "chat_template.jinja"), "{{ 'planted' }}");

        var (loaded, warnings) = Load(zip, root);
        Assert.Contains(warnings, w => w.Contains($"The extracted copy of the embedded model at '{folder}' does not match the saved pipeline") && w.Contains("extracting it again"));
        Assert.Equal(original, File.ReadAllBytes(onnx));
        Assert.False(File.Exists(Path.Combine(folder, "chat_template.jinja")));
        var data = new MLContext().Data.LoadFromEnumerable(GenerateTextPipelineTests.Rows(2));
        Assert.Equal(before, Completions(new MLContext(), loaded, data));
    }

    /// <summary>Rewrites the stage's model entry (Model.key) with <paramref name="edit"/>, which returns whether it changed it.</summary>
    private static void EditModelKey(string zip, Func<byte[], bool> edit) =>
        Assert.True(SavedPipelineZip.EditModelKeys(zip, edit) > 0, "no Model.key entry held the bytes to edit");

    /// <summary>The embedded-file list starts with its count and the first path ("config.json", sorted first).</summary>
    private static int ListStart(byte[] bytes, int count) =>
        bytes.AsSpan().IndexOf([.. BitConverter.GetBytes(count), (byte)"config.json".Length, .. Encoding.UTF8.GetBytes("config.json")]);

    [LinuxFact]
    public void A_zip_whose_file_count_was_patched_is_refused_in_words_without_allocating_for_it_or_leaving_staging_folders()
    {
        var (zip, _) = SaveEmbedded(UniqueModel());
        EditModelKey(zip, bytes =>
        {
            int at = ListStart(bytes, 4);
            if (at < 0) return false;
            BitConverter.GetBytes(int.MaxValue).CopyTo(bytes, at);
            return true;
        });
        var root = Fixtures.TempFolder("cache");
        var e = Assert.ThrowsAny<Exception>(() => Load(zip, root));
        Assert.Contains("says its embedded model (of '", Errors(e));
        Assert.Contains("has 2147483647 files; expected 0 to 100,000 (is the zip damaged?)", Errors(e));
        Assert.IsNotType<OutOfMemoryException>(e.InnerException?.InnerException ?? e.InnerException ?? e);
        AssertNothingLeftOfTheFailedCopy(root);
    }

    [LinuxFact]
    public void A_zip_entry_whose_path_leaves_the_folder_is_refused_naming_it()
    {
        var (zip, _) = SaveEmbedded(UniqueModel());
        EditModelKey(zip, bytes =>
        {
            int at = ListStart(bytes, 4);
            if (at < 0) return false;
            Encoding.UTF8.GetBytes("../x/abcdef").CopyTo(bytes, at + 5);
            return true;
        });
        var root = Fixtures.TempFolder("cache");
        Assert.Contains("holds an embedded file with an invalid path '../x/abcdef' (entry 0); expected a path inside the model folder",
            Errors(Assert.ThrowsAny<Exception>(() => Load(zip, root))));
        AssertNothingLeftOfTheFailedCopy(root);
    }

    [LinuxFact]
    public void An_embedded_file_shorter_than_its_entry_says_is_refused_and_its_staging_folder_removed()
    {
        var (zip, _) = SaveEmbedded(UniqueModel());
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Update))
        {
            // The model stage's files in order: config.json, generation_config.json, model.onnx, tokenizer_config.json.
            var entry = archive.Entries.Single(e => e.Name == "ModelFile2" && e.Length > 100_000);
            byte[] bytes;
            using (var stream = entry.Open())
            using (var buffer = new MemoryStream())
            {
                stream.CopyTo(buffer);
                bytes = buffer.ToArray();
            }
            string name = entry.FullName;
            entry.Delete();
            using var replaced = archive.CreateEntry(name).Open();
            replaced.Write(bytes.AsSpan(0, bytes.Length - 1000));
        }
        var root = Fixtures.TempFolder("cache");
        var message = Errors(Assert.ThrowsAny<Exception>(() => Load(zip, root)));
        Assert.Contains("The saved pipeline's embedded file 'model.onnx' holds", message);
        Assert.Contains("but its entry says", message);
        AssertNothingLeftOfTheFailedCopy(root);
    }

    [LinuxFact]
    public void An_extraction_that_fails_while_writing_leaves_no_staging_folder_and_says_where_it_wrote()
    {
        var (zip, _) = SaveEmbedded(UniqueModel());
        var first = Fixtures.TempFolder("cache");
        Load(zip, first);
        var name = Path.GetFileName(ModelCopy(first));
        var root = Fixtures.TempFolder("cache");
        File.WriteAllText(Path.Combine(root, name), "a file where the model's folder must go");
        var message = Errors(Assert.ThrowsAny<Exception>(() => Load(zip, root)));
        Assert.Contains($"The saved pipeline's embedded model could not be extracted to '{Path.Combine(root, name)}'", message);
        Assert.Contains("Set the MLNETGPT_CACHE environment variable to a writable folder", message);
        AssertNothingLeftOfTheFailedCopy(root);
    }
}
