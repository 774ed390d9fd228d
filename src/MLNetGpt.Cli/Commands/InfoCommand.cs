using System.CommandLine;
using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Cli.Batch;

namespace MLNetGpt.Cli.Commands;

/// <summary><c>mlnetgpt info</c>: what a model folder holds and which execution providers exist.</summary>
internal static class InfoCommand
{
    public static Command Build()
    {
        var command = new Command("info", "Describe a model folder: layout, shapes, tokenizer, context length, execution providers.");
        var model = CommandLine.ModelOption();
        var device = CommandLine.DeviceOption();
        var variant = CommandLine.VariantOption();
        command.Add(model);
        command.Add(variant);
        command.Add(device);
        command.SetAction(p => Program.Guard(() =>
        {
            var target = CommandLine.ReadDevice(p, device);
            var notes = new List<string>();
            using var gpt = GptModel.Open(CommandLine.ResolveModel(p.GetValue(model)), new GptModelOptions { GpuDeviceId = target.GpuDeviceId, Variant = p.GetValue(variant), Log = notes.Add });
            var i = gpt.Info;
            var lines = new (string, string)[]
            {
                ("folder", i.Folder),
                ("layout", $"{i.Layout} ({string.Join(", ", i.ModelFiles)})"),
                ("variants", i.Variants.Count == 0 ? "none (one decoder)" : $"{string.Join(", ", i.Variants)}; opened: {i.Variant}"),
                ("layers", i.LayerCount.ToString()),
                ("heads", $"{i.AttentionHeadCount} attention, {i.KeyValueHeadCount} key/value, head size {i.HeadSize}"),
                ("vocabulary", i.VocabularySize.ToString()),
                ("context length", i.ContextLength.ToString()),
                ("position ids", i.HasPositionIds ? "input" : "computed by the model"),
                ("cache", i.CacheElementType),
                ("special tokens", $"bos {i.BosTokenId?.ToString() ?? "none"}, eos [{string.Join(", ", i.EosTokenIds)}], pad {i.PadTokenId}"),
                ("tokenizer", i.TokenizerSource),
                ("chat template", i.HasChatTemplate ? $"{string.Join(", ", i.ChatTemplateNames)} ({gpt.ChatTemplate?.Source ?? "no default"})" : "none"),
                ("defaults", i.Defaults.ToJson() is var json && json == "{}" ? "library defaults" : json),
                ("running on", i.ExecutionProvider),
                ("ONNX Runtime providers", string.Join(", ", OrtEnv.Instance().GetAvailableProviders()) + " (listed by the native library; CUDA also needs CUDA 13.x and cuDNN 9)"),
            };
            foreach (var (name, value) in lines) Console.Out.WriteLine($"{name,-24}{value}");
            foreach (var note in notes) Console.Out.WriteLine($"{"note",-24}{note}");
            return BatchJob.Success;
        }));
        return command;
    }
}
