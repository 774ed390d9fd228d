using System.CommandLine;
using Microsoft.ML.OnnxRuntime;
using MLNetGpt.Cli.Batch;

namespace MLNetGpt.Cli.Commands;

/// <summary><c>mlnetgpt info</c>: what a model folder holds and which execution providers exist.</summary>
internal static class InfoCommand
{
    public static Command Build()
    {
        var command = new Command("info", "Say whether a model folder will work, and describe it: layout, shapes, tokenizer, chat template, context length, execution providers.");
        var folder = new Argument<string?>("FOLDER") { Description = "The model folder, or 'default' for the built-in model (or give --model).", Arity = ArgumentArity.ZeroOrOne };
        var model = CommandLine.ModelOption();
        var device = CommandLine.DeviceOption();
        var variant = CommandLine.VariantOption();
        command.Add(folder);
        command.Add(model);
        command.Add(variant);
        command.Add(device);
        command.SetAction(p => Program.Guard(() =>
        {
            var target = CommandLine.ReadDevice(p, device);
            if (p.GetValue(folder) is not null && p.GetValue(model) is not null) throw new UsageException("give the model folder once: as FOLDER or with --model.");
            string path = CommandLine.ResolveModel(p.GetValue(folder) ?? p.GetValue(model), p.GetValue(folder) is null ? "--model" : "FOLDER");
            var notes = new List<string>();
            GptModel gpt;
            try
            {
                gpt = GptModel.Open(path, new GptModelOptions { GpuDeviceId = target.GpuDeviceId, Variant = p.GetValue(variant), Log = notes.Add });
            }
            catch (GptModelException e)
            {
                Console.Out.WriteLine($"{"works",-24}no: {e.Message}");
                foreach (var note in notes) Console.Out.WriteLine($"{"note",-24}{note}");
                Console.Error.WriteLine($"mlnetgpt: error: {e.Message}");
                return BatchJob.UsageError;
            }
            using var opened = gpt;
            var i = gpt.Info;
            var lines = new (string, string)[]
            {
                ("works", "yes: generate, score and classify" + (i.HasChatTemplate ? ", and chat (--chat)" : "; not chat: the folder has no chat template")),
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
