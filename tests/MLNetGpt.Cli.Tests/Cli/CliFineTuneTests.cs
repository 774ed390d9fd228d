using System.Text;
using MLNetGpt.Cli.Commands;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Tests.Training;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Cli;

/// <summary>
/// <c>mlnetgpt finetune</c>: in-process with the bigram graph for runs that train, and as a process for everything
/// refused before a graph is needed (a process cannot be given a test graph).
/// </summary>
public sealed class CliFineTuneTests
{
    private static readonly string Model = FineTuneKit.Model;

    private static string Csv(string folder, string name, string header, IEnumerable<string> rows)
    {
        var text = new StringBuilder(header).Append('\n');
        foreach (var row in rows) text.Append(row).Append('\n');
        string path = Path.Combine(folder, name);
        File.WriteAllText(path, text.ToString());
        return path;
    }

    private static string Quote(string cell) => "\"" + cell.Replace("\"", "\"\"") + "\"";

    private static (string Train, string Validation) Files(string folder) =>
        (Csv(folder, "train.csv", "id,text", FineTuneKit.Texts.Select((t, i) => $"{i},{Quote(t)}")),
         Csv(folder, "valid.csv", "id,text", FineTuneKit.Held.Select((t, i) => $"{i},{Quote(t)}")));

    private static readonly string[] Small = ["--steps", "4", "--batch-size", "2", "--sequence-length", "16", "--learning-rate", "0.05", "--gradient-accumulation", "2", "--checkpoint-every", "2"];

    private static (int Code, string Stdout, string Stderr) Run(Func<TrainingGraphRequest, ITrainingGraph> graphs, CancellationToken token, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code;
        using (TrainingGraphs.Use(graphs))
            code = FineTuneCommand.Invoke(args, output, error, token);
        return (code, output.ToString(), error.ToString());
    }

    private static (int Code, string Stdout, string Stderr) Run(params string[] args) => Run(FineTuneKit.Bigram(), default, args);

    [Fact]
    public void A_finetune_writes_the_tuned_folder_prints_what_it_did_and_removes_its_checkpoint()
    {
        string folder = Fixtures.TempFolder("cli-finetune");
        var (train, validation) = Files(folder);
        string output = Path.Combine(folder, "tuned");

        var (code, stdout, stderr) = Run([train, "-o", output, "--model", Model, "--validation", validation, "--evaluate-every", "2", .. Small]);

        Assert.True(code == 0, stderr);
        Assert.Contains($"fine-tuned                  {Path.GetFullPath(Model)} -> {output}", stdout);
        Assert.Contains("method                      full", stdout);
        Assert.Contains("steps                       4 of 4 (completed)", stdout);
        Assert.Contains("validation loss             ", stdout);
        Assert.Contains("unknown tokens              ", stdout);
        Assert.Contains($"report                      {Path.Combine(output, "finetune_report.json")}", stdout);
        var report = FineTuneReport.FromJson(File.ReadAllText(Path.Combine(output, "finetune_report.json")));
        Assert.Equal([0, 2, 4], report.Evaluations.Select(e => e.Step));
        Assert.False(Directory.Exists(output + ".checkpoint"));
        // Redirected, the progress is plain lines: here the evaluated steps and the last one.
        Assert.Contains("finetune: step 4/4 (100.0%), loss ", stderr);
        Assert.Contains(", validation ", stderr);
        Assert.DoesNotContain("error", stderr);
    }

    [Fact]
    public void Quiet_prints_no_progress_and_prompt_completion_columns_train_on_the_completions()
    {
        string folder = Fixtures.TempFolder("cli-sft");
        string train = Csv(folder, "pairs.csv", "question,answer", ["\"Is it good?\", yes", "\"Is it bad?\", no", $"{Quote(string.Join(" ", Enumerable.Repeat("long question", 20)))}, no"]);
        string output = Path.Combine(folder, "tuned");
        var (code, stdout, stderr) = Run(train, "-o", output, "--model", Model, "--prompt-column", "question", "--completion-column", "answer", "--method", "lora",
            "--lora-rank", "4", "--lora-targets", "q,k,v", "--quiet", "--steps", "2", "--batch-size", "2", "--sequence-length", "16");
        Assert.True(code == 0, stderr);
        Assert.Equal("", stderr);
        Assert.Contains("method                      lora, rank 4, alpha 16, on q,k,v (merged)", stdout);
        Assert.Contains("training data               3 sequences of 16 tokens, 6 tokens with loss, 1 rows cut", stdout);
    }

    [Fact]
    public void Interrupted_it_exits_130_naming_the_checkpoint_and_resume_ends_with_the_weights_of_an_uninterrupted_run()
    {
        string folder = Fixtures.TempFolder("cli-resume");
        var (train, validation) = Files(folder);
        string straight = Path.Combine(folder, "straight");
        Assert.Equal(0, Run([train, "-o", straight, "--model", Model, "--validation", validation, .. Small]).Code);

        string output = Path.Combine(folder, "tuned");
        using var cancellation = new CancellationTokenSource();
        var cut = Run(request =>
        {
            var graph = (BigramGraph)FineTuneKit.Bigram()(request);
            graph.BeforeForwardBackward = call => { if (call == 4) cancellation.Cancel(); };
            return graph;
        }, cancellation.Token, [train, "-o", output, "--model", Model, "--validation", validation, .. Small]);
        Assert.Equal(130, cut.Code);
        Assert.Contains($"mlnetgpt: interrupted; the checkpoint of the last completed step is in '{output}.checkpoint': run the same command with --resume to continue.", cut.Stderr);
        Assert.False(Directory.Exists(output));

        var again = Run([train, "-o", output, "--model", Model, "--validation", validation, .. Small]);
        Assert.Equal(1, again.Code);
        Assert.Equal($"mlnetgpt: error: the checkpoint folder '{output}.checkpoint' is not empty (an interrupted fine-tune?): add --resume to continue it, or delete it to start over.",
            again.Stderr.Trim());

        var resumed = Run([train, "-o", output, "--model", Model, "--validation", validation, "--resume", .. Small]);
        Assert.True(resumed.Code == 0, resumed.Stderr);
        Assert.Contains("steps                       4 of 4 (completed), ", resumed.Stdout);
        Assert.Contains(", resumed from step 2", resumed.Stdout);
        Assert.Contains("mlnetgpt: resumed from the checkpoint of step 2 of 4", resumed.Stderr);
        var expected = BigramGraph.ReadWeights(straight);
        var actual = BigramGraph.ReadWeights(output);
        foreach (var (name, values) in expected) Assert.Equal(values, actual[name]);
    }

    [Fact]
    public void After_a_crash_resume_continues_from_the_last_periodic_checkpoint_with_the_same_final_weights()
    {
        // A crash (kill -9) writes nothing more: only the checkpoints of steps 2, 4, ... exist.
        string folder = Fixtures.TempFolder("cli-crash");
        var (train, _) = Files(folder);
        string[] flags = ["--steps", "5", "--batch-size", "2", "--sequence-length", "16", "--learning-rate", "0.05", "--checkpoint-every", "2", "--seed", "3"];
        string straight = Path.Combine(folder, "straight");
        Assert.Equal(0, Run([train, "-o", straight, "--model", Model, .. flags]).Code);

        string output = Path.Combine(folder, "tuned");
        var crashed = Run(request =>
        {
            var graph = (BigramGraph)FineTuneKit.Bigram()(request);
            graph.BeforeForwardBackward = call => { if (call == 4) throw new IOException("the machine went away"); };
            return graph;
        }, default, [train, "-o", output, "--model", Model, .. flags]);
        Assert.Equal(1, crashed.Code);
        Assert.EndsWith("\nmlnetgpt: error: the machine went away", crashed.Stderr.Trim());

        var resumed = Run([train, "-o", output, "--model", Model, "--resume", .. flags]);
        Assert.True(resumed.Code == 0, resumed.Stderr);
        Assert.Contains(", resumed from step 2", resumed.Stdout);
        var expected = BigramGraph.ReadWeights(straight);
        var actual = BigramGraph.ReadWeights(output);
        foreach (var (name, values) in expected) Assert.Equal(values, actual[name]);
    }

    [Fact]
    public void Resuming_with_a_setting_that_changes_the_result_is_refused_naming_it()
    {
        string folder = Fixtures.TempFolder("cli-other-job");
        var (train, _) = Files(folder);
        string output = Path.Combine(folder, "tuned");
        using var cancellation = new CancellationTokenSource();
        Assert.Equal(130, Run(request =>
        {
            var graph = (BigramGraph)FineTuneKit.Bigram()(request);
            graph.BeforeForwardBackward = call => { if (call == 3) cancellation.Cancel(); };
            return graph;
        }, cancellation.Token, [train, "-o", output, "--model", Model, .. Small]).Code);

        var other = Run([train, "-o", output, "--model", Model, "--resume", .. Small.Select(a => a == "0.05" ? "0.06" : a)]);
        Assert.Equal(1, other.Code);
        Assert.StartsWith($"mlnetgpt: error: The checkpoint '{output}.checkpoint/checkpoint.bin' belongs to another job: its learning_rate is 0.05, this run's is 0.06.", other.Stderr);
    }

    private static string SingleError((int ExitCode, string Stdout, string Stderr) run)
    {
        Assert.True(run.ExitCode == 1, $"exit {run.ExitCode}: {run.Stderr}");
        var lines = run.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Empty(run.Stdout);
        return lines[0].TrimEnd('\r');
    }

    [Theory]
    [InlineData("--text-column", "body", "mlnetgpt: error: --text-column 'body' is not a column of the training file '{train}' (columns: id, text).")]
    [InlineData("--lora-rank", "0", "mlnetgpt: error: --lora-rank: LoraRank must be 1 or more, not 0.")]
    [InlineData("--learning-rate", "-1", "mlnetgpt: error: --learning-rate: LearningRate must be a finite number above 0, not -1.")]
    [InlineData("--lora-targets", "q,query", "mlnetgpt: error: --lora-targets: LoraTargets: 'query' is not a projection name; use q, k, v, o, gate, up or down.")]
    [InlineData("--sequence-length", "1", "mlnetgpt: error: --sequence-length: SequenceLength must be 2 or more, not 1.")]
    [InlineData("--epochs", "0", "mlnetgpt: error: --epochs: Epochs must be a finite number above 0, not 0.")]
    [InlineData("--steps", "many", "mlnetgpt: error: --steps takes a whole number, not 'many'.")]
    [InlineData("--method", "sgd", "mlnetgpt: error: --method: Argument 'sgd' not recognized. Must be one of:")]
    [InlineData("--prompt-column", "text", "mlnetgpt: error: --prompt-column needs --completion-column (the column the loss is counted on).")]
    [InlineData("--early-stopping", "2", "mlnetgpt: error: --early-stopping needs --validation (a held-out file to evaluate).")]
    [InlineData("--resume", null, "mlnetgpt: error: --resume: there is no interrupted fine-tune to continue ('{output}.checkpoint' does not exist).")]
    [InlineData("--sequence-length", "512", "mlnetgpt: error: SequenceLength 512 is longer than the context of the model '{model}' (128 positions).")]
    public void A_bad_flag_exits_1_with_one_line_naming_it_before_anything_is_trained(string flag, string? value, string message)
    {
        string folder = Fixtures.TempFolder("cli-finetune-bad");
        var (train, _) = Files(folder);
        string output = Path.Combine(folder, "tuned");
        string[] args = value is null ? ["finetune", train, "-o", output, "--model", Model, flag] : ["finetune", train, "-o", output, "--model", Model, flag, value];
        string line = SingleError(CliProcess.Run(args));
        string expected = message.Replace("{train}", train).Replace("{output}", output).Replace("{model}", Path.GetFullPath(Model));
        Assert.True(line.StartsWith(expected, StringComparison.Ordinal), line);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void Input_problems_name_the_file_the_line_and_the_column()
    {
        string folder = Fixtures.TempFolder("cli-finetune-input");
        string output = Path.Combine(folder, "tuned");
        string wide = Csv(folder, "wide.csv", "id,text", ["1,hello", "2,a,b"]);
        Assert.Equal($"mlnetgpt: error: {wide}: line 3: the row has 3 fields, but the header has 2 (a cell that holds a comma must be quoted).",
            SingleError(CliProcess.Run("finetune", wide, "-o", output, "--model", Model)));

        string noText = Csv(folder, "notext.csv", "id,body", ["1,hello"]);
        Assert.Equal($"mlnetgpt: error: the training file '{noText}' has no 'text' column; name the text with --text-column (columns: id, body).",
            SingleError(CliProcess.Run("finetune", noText, "-o", output, "--model", Model)));

        string empty = Csv(folder, "empty.csv", "id,text", []);
        Assert.Equal($"mlnetgpt: error: the training file '{empty}' has no rows after its header.",
            SingleError(CliProcess.Run("finetune", empty, "-o", output, "--model", Model)));

        string validation = Csv(folder, "valid.csv", "id,body", ["1,x"]);
        Assert.Equal($"mlnetgpt: error: --validation '{validation}' has no 'text' column; name the text with --text-column (columns: id, body).",
            SingleError(CliProcess.Run("finetune", Csv(folder, "ok.csv", "id,text", ["1,hi"]), "-o", output, "--model", Model, "--validation", validation)));

        Assert.Equal("mlnetgpt: error: give --text-column, or --prompt-column with --completion-column, not both.",
            SingleError(CliProcess.Run("finetune", wide, "-o", output, "--model", Model, "--text-column", "text", "--prompt-column", "id", "--completion-column", "text")));

        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "keep.txt"), "mine");
        string fine = Csv(folder, "fine.csv", "text", ["hello there"]);
        Assert.Equal($"mlnetgpt: error: The output folder '{output}' is not empty; choose a new or empty folder.",
            SingleError(CliProcess.Run("finetune", fine, "-o", output, "--model", Model)));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(output, "keep.txt")));
    }

    [Fact]
    public void Help_lists_the_flags_with_their_defaults_what_is_written_and_the_exit_codes()
    {
        var (code, stdout, _) = CliProcess.Run("finetune", "--help");
        Assert.Equal(0, code);
        foreach (var text in new[]
        {
            "--text-column", "--prompt-column", "--completion-column", "--validation", "--method", "--lora-rank", "Default: 8.", "--steps", "--epochs",
            "--batch-size", "--sequence-length", "Default: 128.", "--learning-rate", "Default: 0.0001.", "--extend-vocabulary", "--seed", "Default: 42.",
            "--threads", "--device", "--resume", "OUT_FOLDER.checkpoint/", "Exit codes: 0 success", "130 interrupted",
        })
            Assert.Contains(text, stdout);
    }
}
