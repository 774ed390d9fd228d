using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using MLNetGpt.Cli.Batch;

namespace MLNetGpt.Cli.Commands;

/// <summary><c>mlnetgpt quantize IN OUT --bits 4|8</c>: writes a copy of a model folder with 4- or 8-bit MatMul weights.</summary>
internal static partial class QuantizeCommand
{
    public static Command Build()
    {
        var command = new Command("quantize", "Write a copy of a model folder whose MatMul weights are quantized to 4 or 8 bits (ONNX Runtime MatMulNBits).");
        var input = new Argument<string>("IN") { Description = "The model folder to quantize, or 'default' for the built-in model." };
        var output = new Argument<string>("OUT") { Description = "The folder to write (new or empty)." };
        var bits = new Option<int>("--bits") { Description = "Bits per weight: 4 or 8.", Required = true };
        var blockSize = new Option<int?>("--block-size") { Description = "Weights per block, a power of two >= 16 (default 32)." };
        var symmetric = new Option<bool>("--symmetric") { Description = "Symmetric blocks without zero points (default: a zero point per block)." };
        var accuracyLevel = new Option<int?>("--accuracy-level") { Description = "MatMulNBits accuracy_level 0-4 (default 4: int8 activations, the fastest on CPUs)." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No progress output." };
        var verbose = new Option<bool>("--verbose") { Description = "Also list every MatMul as it is rewritten or left as it was, with the reason." };
        command.Add(input);
        command.Add(output);
        command.Add(bits);
        command.Add(blockSize);
        command.Add(symmetric);
        command.Add(accuracyLevel);
        command.Add(quiet);
        command.Add(verbose);
        command.SetAction(p => Program.Guard(() =>
        {
            var options = new QuantizationOptions { Symmetric = p.GetValue(symmetric) };
            Set(() => options.Bits = p.GetValue(bits), bits);
            if (p.GetValue(blockSize) is int size) Set(() => options.BlockSize = size, blockSize);
            if (p.GetValue(accuracyLevel) is int level) Set(() => options.AccuracyLevel = level, accuracyLevel);
            string from = CommandLine.ResolveModel(p.GetValue(input), "IN"), to = p.GetValue(output)!;

            using var cancellation = new CancellationTokenSource();
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => cancellation.Cancel());
            using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => cancellation.Cancel());
            bool all = p.GetValue(verbose);
            // Per-MatMul lines are detail: shown with --verbose; the summary below counts them.
            var progress = p.GetValue(quiet) ? null : new LineProgress(line =>
            {
                if (all || !PerMatMul().IsMatch(line)) Console.Error.WriteLine($"mlnetgpt: {line}");
            });
            var report = GptQuantizer.Quantize(from, to, options, progress, cancellation.Token);

            double ratio = report.BytesBefore == 0 ? 0 : 100.0 * report.BytesAfter / report.BytesBefore;
            var lines = new (string, string)[]
            {
                ("quantized", $"{Path.GetFullPath(from)} -> {Path.GetFullPath(to)}"),
                ("settings", Invariant($"{report.Bits} bits, block size {report.BlockSize}, {(report.Symmetric ? "symmetric" : "asymmetric")}, accuracy level {report.AccuracyLevel}")),
                ("model files", string.Join(", ", report.QuantizedFiles)),
                ("MatMuls rewritten", Invariant($"{report.MatMulsRewritten}")),
                ("MatMuls left as they were", report.Skipped.Count == 0 ? "0" : Invariant($"{report.Skipped.Count}: ") + string.Join("; ",
                    report.Skipped.GroupBy(k => Generic(k.Reason)).Select(g => Invariant($"{g.Count()} because {g.Key}")))),
                ("size", Invariant($"{report.BytesBefore:N0} -> {report.BytesAfter:N0} bytes ({ratio:F0}%)")),
                ("files written", Invariant($"{report.FilesWritten.Count}")),
            };
            foreach (var (name, value) in lines) Console.Out.WriteLine($"{name,-28}{value}");
            return BatchJob.Success;
        }));
        return command;
    }

    private static void Set(Action assign, Option option)
    {
        try
        {
            assign();
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new UsageException($"{option.Name}: {e.Message.Split(" (Parameter", 2)[0].Split(Environment.NewLine)[0]}");
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    [System.Text.RegularExpressions.GeneratedRegex(@"^[^:]+: (quantized .+ \(\d+ of \d+ MatMuls so far\)|left .+ as it was: .+)$")]
    private static partial System.Text.RegularExpressions.Regex PerMatMul();

    // "B is computed by Concat '/blocks.0/Concat_3', not a constant weight" -> "B is computed by Concat, not a constant weight"
    private static string Generic(string reason) => System.Text.RegularExpressions.Regex.Replace(reason, @" '[^']*'", "");

    /// <summary>Writes each report at once, in order (<see cref="Progress{T}"/> would post them to the thread pool).</summary>
    private sealed class LineProgress(Action<string> write) : IProgress<string>
    {
        public void Report(string value) => write(value);
    }
}
