using MLNetGpt.Models;
using Microsoft.ML.Tokenizers;
using MLNetGpt.Tests.Infrastructure;
using MLNetGpt.Training;
using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>A whole fine-tune through <see cref="GptFineTuner"/>: data, checks, the graph request, the written folder.</summary>
public sealed class FineTunerTests
{
    private static readonly string Model = FineTuneKit.Model;
    private static readonly string[] Texts = FineTuneKit.Texts;
    private static readonly string[] Held = FineTuneKit.Held;

    private static Func<TrainingGraphRequest, ITrainingGraph> Bigram(List<TrainingGraphRequest>? requests = null, List<BigramGraph>? graphs = null, int maxSequenceLength = 128) =>
        FineTuneKit.Bigram(requests, graphs, maxSequenceLength);

    private static FineTuneOptions Small(Action<FineTuneOptions>? change = null) => FineTuneKit.Small(change);

    private static string Output(string label) => Path.Combine(Fixtures.TempFolder(label), "tuned");

    [Fact]
    public void A_fine_tune_writes_a_complete_model_folder_with_the_trained_weights_a_card_section_and_the_report()
    {
        var graphs = new List<BigramGraph>();
        string output = Output("finetune");
        FineTuneReport report;
        using (TrainingGraphs.Use(Bigram(graphs: graphs)))
            report = GptFineTuner.FineTune(Model, output, Texts, Held, Small(o => o.EvaluateEveryNSteps = 2));

        var graph = Assert.Single(graphs);
        Assert.True(graph.Disposed);
        Assert.Equal(Path.GetFullPath(output), report.OutputFolder);
        Assert.Equal(Path.GetFullPath(Model), report.ModelFolder);
        var weights = BigramGraph.ReadWeights(output);
        foreach (var p in graph.Parameters) Assert.Equal(p.Value, weights[p.Name]);
        Assert.True(File.Exists(Path.Combine(output, "model.onnx")));
        Assert.False(Directory.Exists(output + ".writing"));

        using (var tuned = GptModel.Open(output)) Assert.Equal(Path.GetFullPath(output), tuned.Info.Folder);
        string card = File.ReadAllText(Path.Combine(output, "README.md"));
        Assert.StartsWith(File.ReadAllText(Path.Combine(Model, "README.md")).TrimEnd(), card);
        Assert.Contains("## Fine-tuning", card);
        Assert.Contains("| Steps | 3 of 3 (completed)", card);
        Assert.Contains("| Optimizer | AdamW, learning rate 0.05, weight decay 0.01", card);
        Assert.Equal(report.ToJson(), FineTuneReport.FromJson(File.ReadAllText(Path.Combine(output, FineTuner.ReportFile))).ToJson());

        Assert.Equal((3, 3, FineTuneStopReason.Completed), (report.StepsRun, report.TotalSteps, report.StopReason));
        Assert.Equal([0, 2, 3], report.Evaluations.Select(e => e.Step));
        Assert.Equal(3, report.TrainLosses.Count);
        Assert.Null(report.ResumedFromStep);
        Assert.Equal(0, report.AddedTokens);
        Assert.Equal(0, report.TruncatedRows);
    }

    [Fact]
    public void The_texts_are_tokenized_with_the_folder_tokenizer_and_packed_eos_joined()
    {
        var graphs = new List<BigramGraph>();
        FineTuneReport report;
        using (TrainingGraphs.Use(Bigram(graphs: graphs)))
            report = GptFineTuner.FineTune(Model, Output("packing"), Texts, options: Small(o => o.MaxSteps = 1));

        var tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
        var stream = new List<long>();
        foreach (var text in Texts.Where(t => t.Length > 0))
        {
            if (stream.Count == 0) stream.Add(50256);
            stream.AddRange(tokenizer.EncodeToIds(text).Select(i => (long)i));
            stream.Add(50256);
        }
        Assert.Equal((stream.Count - 1 + 15) / 16, report.TrainingSequences);
        Assert.Equal(stream.Count - 1, report.TrainingTokens);
        var fed = graphs[0].Batches[0];
        Assert.Equal(32, fed.Length);
        // Both sequences of the first micro-batch are pieces of the stream, at multiples of 16.
        for (int row = 0; row < 2; row++)
        {
            var piece = fed.Skip(row * 16).Take(16).ToArray();
            Assert.Contains(Enumerable.Range(0, report.TrainingSequences), k => stream.Skip(k * 16).Take(16).Concat(Enumerable.Repeat(50256L, 16)).Take(16).SequenceEqual(piece));
        }
        // tiny-gpt2-a keeps 799 of GPT-2's ids: the rest of the text is unk.
        var map = VocabularyMap.Read(Path.Combine(Model, "model.onnx"))!;
        var documents = Texts.Select(t => tokenizer.EncodeToIds(t).ToArray()).ToList();
        Assert.Equal(map.UnkRate(documents), report.UnkRate);
    }

    [Fact]
    public void The_graph_request_carries_the_method_its_lora_settings_threads_device_and_seed()
    {
        var requests = new List<TrainingGraphRequest>();
        using (TrainingGraphs.Use(Bigram(requests)))
            GptFineTuner.FineTune(Model, Output("request"), Texts, options: Small(o =>
            {
                o.Method = FineTuneMethod.LoRA;
                o.LoraRank = 4;
                o.LoraAlpha = 8;
                o.LoraTargets = ["q", "k", "down"];
                o.Threads = 1;
                o.Device = GptDevice.Cuda(0, fallbackToCpu: true);
                o.Seed = 5;
            }));
        var request = Assert.Single(requests);
        Assert.Equal(Path.GetFullPath(Model), request.ModelFolder);
        Assert.Equal((FineTuneMethod.LoRA, 4, 8.0, 1, 5), (request.Method, request.LoraRank, request.LoraAlpha, request.Threads, request.Seed));
        Assert.Equal(["q", "k", "down"], request.LoraTargets);
        Assert.Equal(GptDevice.Cuda(0), request.Device);
        Assert.Empty(request.AddedTokenIds);
    }

    [Fact]
    public void Vocabulary_extension_hands_the_graph_the_most_frequent_unk_tokens_of_the_training_text()
    {
        var requests = new List<TrainingGraphRequest>();
        string[] texts = [.. Texts, .. Texts, "Copyright holders and contributors provide the software."];
        FineTuneReport report;
        using (TrainingGraphs.Use(Bigram(requests)))
            report = GptFineTuner.FineTune(Model, Output("extend"), texts, options: Small(o => { o.ExtendVocabulary = true; o.ExtendVocabularyLimit = 5; }));

        var tokenizer = TiktokenTokenizer.CreateForModel("gpt2");
        var map = VocabularyMap.Read(Path.Combine(Model, "model.onnx"))!;
        var documents = texts.Select(t => tokenizer.EncodeToIds(t).ToArray()).ToList();
        var expected = map.ChooseExtension(documents, 5);
        Assert.Equal(5, expected.Length);
        Assert.Equal(expected, Assert.Single(requests).AddedTokenIds);
        Assert.All(expected, id => Assert.False(map.IsKept(id)));
        Assert.Equal(5, report.AddedTokens);
        Assert.Contains("| Vocabulary |", File.ReadAllText(Path.Combine(report.OutputFolder, "README.md")));
    }

    [Fact]
    public void Prompt_completion_pairs_count_loss_on_the_completion_and_report_cut_rows()
    {
        (string, string)[] pairs =
        [
            ("Review: a fine film\nSentiment:", " positive"),
            ("Review: dull and long\nSentiment:", " negative"),
            (string.Join(" ", Enumerable.Repeat("very long prompt", 20)), " negative"),
        ];
        var graphs = new List<BigramGraph>();
        FineTuneReport report;
        using (TrainingGraphs.Use(Bigram(graphs: graphs)))
            report = GptFineTuner.FineTune(Model, Output("sft"), pairs, pairs[..2], Small(o => o.MaxSteps = 2));
        Assert.Equal(3, report.TrainingSequences);
        Assert.Equal(3 * 2, report.TrainingTokens);      // " positive"/" negative" are one token each, plus the EOS
        Assert.Equal(2 * 2, report.ValidationTokens);
        Assert.Equal(1, report.TruncatedRows);
    }

    [Fact]
    public void A_killed_fine_tune_resumed_from_its_checkpoint_writes_the_weights_of_an_uninterrupted_one()
    {
        var options = Small(o => { o.MaxSteps = 6; o.GradientAccumulationSteps = 2; o.CheckpointEveryNSteps = 2; o.WarmupSteps = 1; });
        string straight = Output("straight");
        using (TrainingGraphs.Use(Bigram()))
            GptFineTuner.FineTune(Model, straight, Texts, Held, Small(o => { o.MaxSteps = 6; o.GradientAccumulationSteps = 2; o.WarmupSteps = 1; }));

        string checkpoints = Fixtures.TempFolder("finetune-ckpt");
        string output = Output("resumed");
        options.CheckpointFolder = checkpoints;
        using var cancellation = new CancellationTokenSource();
        var cancelling = Bigram();
        using (TrainingGraphs.Use(request =>
        {
            var graph = (BigramGraph)cancelling(request);
            graph.BeforeForwardBackward = call => { if (call == 7) cancellation.Cancel(); };
            return graph;
        }))
            Assert.ThrowsAny<OperationCanceledException>(() => GptFineTuner.FineTune(Model, output, Texts, Held, options, cancellationToken: cancellation.Token));
        Assert.False(Directory.Exists(output));

        options.Resume = true;
        FineTuneReport report;
        using (TrainingGraphs.Use(Bigram()))
            report = GptFineTuner.FineTune(Model, output, Texts, Held, options);
        Assert.Equal(3, report.ResumedFromStep);
        var expected = BigramGraph.ReadWeights(straight);
        var actual = BigramGraph.ReadWeights(output);
        foreach (var (name, values) in expected) Assert.Equal(values, actual[name]);
        Assert.Equal(FineTuneReport.FromJson(File.ReadAllText(Path.Combine(straight, FineTuner.ReportFile))).TrainLosses, report.TrainLosses);
    }

    [Fact]
    public void A_failure_while_writing_leaves_no_output_folder_and_no_staging_folder()
    {
        string output = Output("broken-write");
        using (TrainingGraphs.Use(_ => new FailingWriteGraph()))
        {
            var error = Assert.Throws<IOException>(() => GptFineTuner.FineTune(Model, output, Texts, options: Small()));
            Assert.Equal("disk full", error.Message);
        }
        Assert.False(Directory.Exists(output));
        Assert.False(Directory.Exists(output + ".writing"));
    }

    public static TheoryData<string, Func<string, string, FineTuneOptions, Exception>, string> Refusals => new()
    {
        {
            "output not empty", (output, _, options) =>
            {
                Directory.CreateDirectory(output);
                File.WriteAllText(Path.Combine(output, "x.txt"), "x");
                return Assert.Throws<IOException>(() => GptFineTuner.FineTune(Model, output, Texts, options: options));
            },
            "The output folder '{output}' is not empty; choose a new or empty folder."
        },
        {
            "output inside the model", (_, _, options) => Assert.Throws<IOException>(() => GptFineTuner.FineTune(Model, Path.Combine(Model, "tuned"), Texts, options: options)),
            "The output folder '{model}/tuned' and the model folder '{model}' overlap; write the tuned model to a folder outside the model folder."
        },
        {
            "checkpoints inside the model", (output, _, options) =>
            {
                options.CheckpointFolder = Path.Combine(Model, "ckpt");
                return Assert.Throws<IOException>(() => GptFineTuner.FineTune(Model, output, Texts, options: options));
            },
            "The checkpoint folder '{model}/ckpt' is inside the model folder '{model}'; a checkpoint there would change the model it belongs to."
        },
        {
            "checkpoints inside the output", (output, _, options) =>
            {
                options.CheckpointFolder = Path.Combine(output, "ckpt");
                return Assert.Throws<IOException>(() => GptFineTuner.FineTune(Model, output, Texts, options: options));
            },
            "The checkpoint folder '{output}/ckpt' and the output folder '{output}' overlap; keep checkpoints outside the tuned model's folder."
        },
        {
            "resume without checkpoints", (output, _, options) =>
            {
                options.Resume = true;
                return Assert.Throws<ArgumentException>(() => GptFineTuner.FineTune(Model, output, Texts, options: options));
            },
            "Resume is set, but no CheckpointFolder is given to resume from."
        },
        {
            "early stopping without validation", (output, _, options) =>
            {
                options.EarlyStoppingPatience = 2;
                options.EvaluateEveryNSteps = 1;
                return Assert.Throws<ArgumentException>(() => GptFineTuner.FineTune(Model, output, Texts, options: options));
            },
            "EarlyStoppingPatience is 2, but there is no validation set to evaluate."
        },
        {
            "early stopping without evaluations", (output, _, options) =>
            {
                options.EarlyStoppingPatience = 2;
                return Assert.Throws<ArgumentException>(() => GptFineTuner.FineTune(Model, output, Texts, Held, options));
            },
            "EarlyStoppingPatience is 2, but EvaluateEveryNSteps is not set: early stopping compares evaluations made during training."
        },
        {
            "sequence longer than the model", (output, _, options) =>
            {
                options.SequenceLength = 129;
                return Assert.Throws<ArgumentOutOfRangeException>(() => GptFineTuner.FineTune(Model, output, Texts, options: options));
            },
            "SequenceLength 129 is longer than the context of the model '{model}' (128 positions)."
        },
        {
            "no text", (output, _, options) => Assert.Throws<ArgumentException>(() => GptFineTuner.FineTune(Model, output, ["", ""], options: options)),
            "The training data holds no text to learn from (2 rows, all empty)."
        },
        {
            "empty validation", (output, _, options) => Assert.Throws<ArgumentException>(() => GptFineTuner.FineTune(Model, output, Texts, [""], options)),
            "The validation data holds no text to evaluate (1 rows, all empty)."
        },
        {
            "a null text", (output, _, options) => Assert.Throws<ArgumentException>(() => GptFineTuner.FineTune(Model, output, ["a", null!], options: options)),
            "Row 1 of texts is null."
        },
        {
            "missing model", (output, missing, options) => Assert.Throws<GptModelException>(() => GptFineTuner.FineTune(missing, output, Texts, options: options)),
            "The model folder '{missing}' does not exist."
        },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void A_plan_that_cannot_work_is_refused_before_training_with_a_message_naming_the_setting(string what, Func<string, string, FineTuneOptions, Exception> act, string message)
    {
        string output = Output("refused");
        string missing = Path.Combine(Fixtures.TempFolder("missing"), "nothing");
        int graphs = 0;
        Exception error;
        using (TrainingGraphs.Use(request => { graphs++; return Bigram()(request); }))
            error = act(output, missing, Small());
        string expected = message.Replace("{output}", Path.GetFullPath(output)).Replace("{model}", Path.GetFullPath(Model)).Replace("{missing}", missing);
        Assert.True(error.Message.StartsWith(expected, StringComparison.Ordinal), $"{what}: {error.Message}");
        Assert.Equal(0, graphs);
    }

    [Fact]
    public void A_graph_shorter_than_the_sequence_length_is_refused_naming_both()
    {
        using var _ = TrainingGraphs.Use(Bigram(maxSequenceLength: 8));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => GptFineTuner.FineTune(Model, Output("short-graph"), Texts, options: Small()));
        Assert.StartsWith($"SequenceLength 16 is longer than the training graph of '{Path.GetFullPath(Model)}' allows (8 positions).", error.Message);
    }

    [Fact]
    public void Validation_rows_in_another_form_than_the_training_rows_are_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => FineTuner.Run(Model, Output("forms"), FineTuneData.FromTexts(Texts, "texts"),
            FineTuneData.FromPairs([("a", "b")], "validation"), Small(), null, default));
        Assert.StartsWith("The training rows are plain texts, but the validation rows are prompt/completion pairs; give the validation set in the same form.", error.Message);
    }

    private sealed class FailingWriteGraph : ITrainingGraph
    {
        private readonly BigramGraph _inner = new(50257, 2);

        public IReadOnlyList<TrainableTensor> Parameters => _inner.Parameters;
        public int VocabularySize => _inner.VocabularySize;
        public int MaxSequenceLength => 128;
        public (double LossSum, int Tokens) ForwardBackward(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence) => _inner.ForwardBackward(inputIds, targets, batch, sequence);
        public (double LossSum, int Tokens) Evaluate(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> targets, int batch, int sequence) => _inner.Evaluate(inputIds, targets, batch, sequence);

        public void WriteModelFolder(string outputFolder)
        {
            Directory.CreateDirectory(outputFolder);
            File.WriteAllText(Path.Combine(outputFolder, "model.onnx"), "half");
            throw new IOException("disk full");
        }

        public void Dispose() { }
    }
}
