using Microsoft.Extensions.AI;
using MLNetGpt.Models;
using MLNetGpt.Models.Onnx;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Models;

/// <summary>
/// Model folders from a tarball or a git repository, with symbolic links in them: every file the library reads is
/// resolved to its real path and a link out of the folder is refused naming the file and its target (opening, the
/// tokenizer, chat templates, external data, quantizing, embedding); links inside the folder, a folder given as a link
/// and Hugging Face hub snapshots keep working.
/// </summary>
public sealed class ModelFilePolicyTests
{
    /// <summary>A file outside every model folder, standing for ~/.ssh/id_rsa.</summary>
    private static string Secret()
    {
        var path = Path.Combine(Fixtures.TempFolder("outside"), "id_rsa");
        File.WriteAllText(path, "-----BEGIN OPENSSH PRIVATE KEY----- not for a model");
        return path;
    }

    /// <summary>Replaces <paramref name="name"/> in <paramref name="folder"/> by a link to <paramref name="target"/>.</summary>
    private static void Link(string folder, string name, string target)
    {
        var path = Path.Combine(folder, name);
        if (File.Exists(path)) File.Delete(path);
        File.CreateSymbolicLink(path, target);
    }

    /// <summary>Moves a file out of the folder and leaves a link to it in its place.</summary>
    private static string MoveOutAndLink(string folder, string name)
    {
        var outside = Path.Combine(Fixtures.TempFolder("moved-out"), name);
        File.Move(Path.Combine(folder, name), outside);
        File.CreateSymbolicLink(Path.Combine(folder, name), outside);
        return outside;
    }

    private static string Refusal(Action open) => Assert.Throws<GptModelException>(open).Message;

    [LinuxTheory]
    [InlineData("config.json")]
    [InlineData("generation_config.json")]
    [InlineData("tokenizer_config.json")]
    [InlineData("model.onnx")]
    public void A_file_that_links_out_of_the_folder_is_refused_naming_the_file_and_its_target(string name)
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var outside = MoveOutAndLink(folder, name);
        var message = Refusal(() => GptModel.Open(folder));
        Assert.Equal($"'{Path.Combine(folder, name)}' is a link to '{outside}', outside the model folder '{folder}'; a model's files must be inside " +
            "its folder (or, in a Hugging Face hub snapshot, links into the cache's blobs). Copy the file into the folder if it is meant to be there.", message);
    }

    [LinuxFact]
    public void A_tokenizer_file_that_links_out_of_the_folder_is_refused_before_the_tokenizer_reads_it()
    {
        var folder = Fixtures.CopyOf("tiny-chatml");
        var outside = MoveOutAndLink(folder, "tokenizer.json");
        Assert.Contains($"is a link to '{outside}', outside the model folder", Refusal(() => GptModel.Open(folder)));
        Assert.Contains($"is a link to '{outside}'", Refusal(() => MLNetGpt.Tokenization.TokenizerFactory.Create(folder, new GptModelOptions())));
    }

    [LinuxFact]
    public void A_chat_template_that_links_to_a_secret_is_refused_and_never_rendered()
    {
        var folder = Fixtures.CopyOf("tiny-chatml");
        var secret = Secret();
        Link(folder, "chat_template.jinja", secret);
        Assert.Contains($"'{Path.Combine(folder, "chat_template.jinja")}' is a link to '{secret}'", Refusal(() => GptModel.Open(folder)));
        Directory.CreateDirectory(Path.Combine(folder, "additional_chat_templates"));
        File.Delete(Path.Combine(folder, "chat_template.jinja"));
        Link(folder, Path.Combine("additional_chat_templates", "leak.jinja"), secret);
        Assert.Contains($"is a link to '{secret}'", Refusal(() => GptModel.Open(folder)));
    }

    [LinuxFact]
    public void A_directory_link_on_the_way_out_of_the_folder_is_resolved_and_refused()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        var outsideFolder = Fixtures.TempFolder("outside-dir");
        File.Move(Path.Combine(folder, "config.json"), Path.Combine(outsideFolder, "config.json"));
        Directory.CreateSymbolicLink(Path.Combine(folder, "conf"), outsideFolder);
        // config.json -> conf/config.json, where conf itself leads out of the folder.
        File.CreateSymbolicLink(Path.Combine(folder, "config.json"), Path.Combine("conf", "config.json"));
        Assert.Contains($"is a link to '{Path.Combine(outsideFolder, "config.json")}'", Refusal(() => GptModel.Open(folder)));
    }

    [LinuxFact]
    public void A_link_loop_is_refused_naming_the_file_and_a_loop_no_file_uses_is_ignored()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        Directory.CreateSymbolicLink(Path.Combine(folder, "loop"), ".");
        using (var model = GptModel.Open(folder)) Assert.DoesNotContain("loop", string.Join(",", model.Info.Files));
        File.Delete(Path.Combine(folder, "generation_config.json"));
        File.CreateSymbolicLink(Path.Combine(folder, "generation_config.json"), "generation_config.json");
        Assert.Contains($"'{Path.Combine(folder, "generation_config.json")}' passes through more than 40 symbolic links", Refusal(() => GptModel.Open(folder)));
    }

    [LinuxFact]
    public void Links_that_stay_inside_the_folder_and_a_folder_given_as_a_link_open_and_generate_as_the_plain_folder()
    {
        var greedy = new GenerationOptions { MaxNewTokens = 6, DoSample = false };
        using var plain = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var expected = plain.Generate("In the beginning", greedy).TokenIds;

        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        Directory.CreateDirectory(Path.Combine(folder, "weights"));
        File.Move(Path.Combine(folder, "model.onnx"), Path.Combine(folder, "weights", "model.onnx"));
        File.CreateSymbolicLink(Path.Combine(folder, "model.onnx"), Path.Combine("weights", "model.onnx"));
        using (var linkedInside = GptModel.Open(folder)) Assert.Equal(expected, linkedInside.Generate("In the beginning", greedy).TokenIds);

        var alias = Path.Combine(Fixtures.TempFolder("alias"), "current");
        Directory.CreateSymbolicLink(alias, folder);
        using var throughAlias = GptModel.Open(alias);
        Assert.Equal(expected, throughAlias.Generate("In the beginning", greedy).TokenIds);
    }

    /// <summary>
    /// A Hugging Face hub cache entry as huggingface_hub writes it: blobs named by hash, and a snapshot whose files are
    /// relative links into them.
    /// </summary>
    private static string HubSnapshot(string fixture, Action<string>? prepare = null)
    {
        var source = Fixtures.CopyOf(fixture);
        prepare?.Invoke(source);
        var entry = Path.Combine(Fixtures.TempFolder("hub"), "models--test--" + fixture);
        var blobs = Directory.CreateDirectory(Path.Combine(entry, "blobs")).FullName;
        var snapshot = Directory.CreateDirectory(Path.Combine(entry, "snapshots", "0123456789abcdef")).FullName;
        foreach (var file in Directory.GetFiles(source))
        {
            var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(file))).ToLowerInvariant();
            if (!File.Exists(Path.Combine(blobs, hash))) File.Copy(file, Path.Combine(blobs, hash));
            File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(file)), Path.Combine("..", "..", "blobs", hash));
        }
        return snapshot;
    }

    [LinuxFact]
    public void A_hugging_face_hub_snapshot_whose_files_link_into_its_blobs_is_recognised_and_opens()
    {
        var greedy = new GenerationOptions { MaxNewTokens = 6, DoSample = false };
        using var plain = GptModel.Open(Fixtures.Folder("tiny-chatml"));
        var snapshot = HubSnapshot("tiny-chatml");
        Assert.True(ModelFiles.For(snapshot).IsHubSnapshot);
        using var hub = GptModel.Open(snapshot);
        Assert.Equal(plain.Generate("Hello", greedy).TokenIds, hub.Generate("Hello", greedy).TokenIds);
        Assert.Equal(plain.ChatTemplate!.Render([new ChatMessage(ChatRole.User, "Hi")]), hub.ChatTemplate!.Render([new ChatMessage(ChatRole.User, "Hi")]));
    }

    [LinuxFact]
    public void A_hub_snapshot_with_external_data_in_its_blobs_opens_and_a_link_out_of_the_cache_entry_is_still_refused()
    {
        var snapshot = HubSnapshot("tiny-gpt2-a", folder =>
            OnnxModelFile.Load(Path.Combine(Fixtures.Folder("tiny-gpt2-a"), "model.onnx")).Save(Path.Combine(folder, "model.onnx"), externalDataThreshold: 0));
        using (var hub = GptModel.Open(snapshot)) Assert.Contains("model.onnx.data", hub.Info.Files);

        var secret = Secret();
        File.CreateSymbolicLink(Path.Combine(snapshot, "tokenizer.model"), secret);
        Assert.Contains($"is a link to '{secret}'", Refusal(() => GptModel.Open(snapshot)));
    }

    [LinuxFact]
    public void External_data_that_links_out_of_the_folder_is_refused_when_opening_and_when_quantizing()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        OnnxModelFile.Load(Path.Combine(Fixtures.Folder("tiny-gpt2-a"), "model.onnx")).Save(Path.Combine(folder, "model.onnx"), externalDataThreshold: 0);
        var outside = MoveOutAndLink(folder, "model.onnx.data");
        Assert.Contains($"'{Path.Combine(folder, "model.onnx.data")}' is a link to '{outside}'", Refusal(() => GptModel.Open(folder)));
        var output = Path.Combine(Fixtures.TempFolder("quantized"), "out");
        Assert.Contains($"is a link to '{outside}'", Refusal(() => GptQuantizer.Quantize(folder, output, new QuantizationOptions { Bits = 8 })));
        Assert.False(Directory.Exists(output), "a refused quantization leaves no output folder");
    }

    [LinuxFact]
    public void A_generation_config_naming_a_graph_outside_the_folder_is_refused()
    {
        var folder = Fixtures.CopyOf("tiny-gqa-genai");
        var path = Path.Combine(folder, "genai_config.json");
        var text = File.ReadAllText(path);
        var name = System.Text.Json.JsonDocument.Parse(text).RootElement.GetProperty("model").GetProperty("decoder").GetProperty("filename").GetString()!;
        File.WriteAllText(path, text.Replace($"\"{name}\"", "\"../elsewhere/model.onnx\""));
        Assert.Equal($"{path}: 'model.decoder.filename' is '../elsewhere/model.onnx', outside the model folder '{folder}'; expected a file inside it.",
            Refusal(() => GptModel.Open(folder)));
    }

    [LinuxFact]
    public void Quantizing_copies_only_the_files_the_model_reads_never_a_links_target_and_measures_what_links_lead_to()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-b");
        var secret = Secret();
        File.CreateSymbolicLink(Path.Combine(folder, "notes.txt"), secret);       // not read by a model: left behind
        Directory.CreateSymbolicLink(Path.Combine(folder, "ssh"), Path.GetDirectoryName(secret)!);
        Directory.CreateDirectory(Path.Combine(folder, "weights"));
        File.Move(Path.Combine(folder, "model.onnx"), Path.Combine(folder, "weights", "model.onnx"));
        File.CreateSymbolicLink(Path.Combine(folder, "model.onnx"), Path.Combine("weights", "model.onnx"));
        var output = Path.Combine(Fixtures.TempFolder("quantized"), "out");

        var report = GptQuantizer.Quantize(folder, output, new QuantizationOptions { Bits = 8 });

        Assert.Equal(new FileInfo(Path.Combine(folder, "weights", "model.onnx")).Length, report.BytesBefore);
        Assert.Equal(["README.md", "config.json", "generation_config.json", "model.onnx", "tokenizer_config.json"], report.FilesWritten.Order(StringComparer.Ordinal));
        var written = Directory.GetFiles(output, "*", SearchOption.AllDirectories);
        Assert.DoesNotContain(written, f => File.ReadAllText(f).Contains("PRIVATE KEY"));
        Assert.All(written, f => Assert.Null(new FileInfo(f).LinkTarget));
    }

    [LinuxFact]
    public void A_model_card_that_links_to_a_secret_is_refused_by_quantize()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-b");
        var secret = Secret();
        Link(folder, "README.md", secret);
        var output = Path.Combine(Fixtures.TempFolder("quantized"), "out");
        Assert.Contains($"is a link to '{secret}'", Refusal(() => GptQuantizer.Quantize(folder, output, new QuantizationOptions { Bits = 8 })));
        Assert.False(Directory.Exists(output));
    }

    [LinuxFact]
    public void The_model_lists_every_file_it_reads_and_nothing_else()
    {
        var folder = Fixtures.CopyOf("tiny-chatml");
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "not read");
        using var model = GptModel.Open(folder);
        Assert.Equal(["config.json", "generation_config.json", "model.onnx", "tokenizer.json", "tokenizer_config.json"], model.Info.Files.Order(StringComparer.Ordinal));
    }

    [LinuxFact]
    public void Config_files_larger_than_the_read_cap_are_refused_before_they_are_read()
    {
        var folder = Fixtures.CopyOf("tiny-gpt2-a");
        using (var stream = File.OpenWrite(Path.Combine(folder, "generation_config.json"))) stream.SetLength(ModelFiles.MaxConfigurationBytes + 1);
        Assert.Equal($"{Path.Combine(folder, "generation_config.json")} is 67,108,865 bytes long; a configuration, tokenizer configuration or template file may hold at most 67,108,864.",
            Refusal(() => GptModel.Open(folder)));
    }
}
