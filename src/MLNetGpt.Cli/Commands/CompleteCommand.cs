using System.CommandLine;
using MLNetGpt.Cli.Batch;

namespace MLNetGpt.Cli.Commands;

/// <summary><c>mlnetgpt complete "prompt"</c>: streams one completion to the terminal as it is generated.</summary>
internal static class CompleteCommand
{
    private static CancellationTokenSource? s_running;

    public static void Cancel() => s_running?.Cancel();

    public static Command Build()
    {
        var command = new Command("complete", "Stream a completion of one prompt to standard output, token by token.");
        var prompt = new Argument<string>("PROMPT") { Description = "The prompt text (\\n for a newline)." };
        var model = CommandLine.ModelOption();
        var device = CommandLine.DeviceOption();
        var variant = CommandLine.VariantOption();
        var draft = CommandLine.DraftModelOption();
        var flags = new CommandLine.GenerationFlags();
        command.Add(prompt);
        command.Add(model);
        command.Add(variant);
        command.Add(draft);
        command.Add(device);
        flags.AddTo(command);
        command.SetAction(p => Program.Guard(() =>
        {
            var options = flags.Read(p);
            var target = CommandLine.ReadDevice(p, device);
            string text = p.GetValue(prompt)!.Replace("\\n", "\n");
            if (text.Trim().Length == 0) throw new UsageException("the prompt is empty.");
            using var gpt = GptModel.Open(CommandLine.ResolveModel(p.GetValue(model)), new GptModelOptions
            {
                GpuDeviceId = target.GpuDeviceId,
                Variant = p.GetValue(variant),
                DraftModelFolder = CommandLine.ReadDraftModel(p, draft),
                Log = BatchJob.Warn,
            });
            using var cancellation = new CancellationTokenSource();
            s_running = cancellation;
            try
            {
                Console.Out.Write(text);
                var stream = gpt.GenerateStreamingAsync(text, options, cancellation.Token).GetAsyncEnumerator(cancellation.Token);
                try
                {
                    while (stream.MoveNextAsync().AsTask().GetAwaiter().GetResult())
                    {
                        Console.Out.Write(stream.Current);
                        Console.Out.Flush();
                    }
                }
                finally
                {
                    stream.DisposeAsync().AsTask().GetAwaiter().GetResult();
                }
                Console.Out.WriteLine();
                return BatchJob.Success;
            }
            finally
            {
                s_running = null;
            }
        }));
        return command;
    }
}
