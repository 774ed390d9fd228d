using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>Every bad setting is refused by its setter, with a message naming the option and the value.</summary>
public sealed class FineTuneOptionsTests
{
    public static TheoryData<string, Action<FineTuneOptions>, string> BadValues => new()
    {
        { "LoraRank", o => o.LoraRank = 0, "LoraRank must be 1 or more, not 0." },
        { "LoraAlpha", o => o.LoraAlpha = 0, "LoraAlpha must be a finite number above 0, not 0." },
        { "LoraAlpha", o => o.LoraAlpha = double.NaN, "LoraAlpha must be a finite number above 0, not NaN." },
        { "MaxSteps", o => o.MaxSteps = 0, "MaxSteps must be 1 or more, not 0." },
        { "Epochs", o => o.Epochs = -1, "Epochs must be a finite number above 0, not -1." },
        { "Epochs", o => o.Epochs = double.PositiveInfinity, "Epochs must be a finite number above 0, not Infinity." },
        { "BatchSize", o => o.BatchSize = 0, "BatchSize must be 1 or more, not 0." },
        { "SequenceLength", o => o.SequenceLength = 1, "SequenceLength must be 2 or more, not 1." },
        { "GradientAccumulationSteps", o => o.GradientAccumulationSteps = -2, "GradientAccumulationSteps must be 1 or more, not -2." },
        { "LearningRate", o => o.LearningRate = 0, "LearningRate must be a finite number above 0, not 0." },
        { "LearningRate", o => o.LearningRate = -1e-4, "LearningRate must be a finite number above 0, not -0.0001." },
        { "WeightDecay", o => o.WeightDecay = -0.1, "WeightDecay must be a finite number of 0 or more, not -0.1." },
        { "AdamBeta1", o => o.AdamBeta1 = 1, "AdamBeta1 must be in [0, 1), not 1." },
        { "AdamBeta2", o => o.AdamBeta2 = -0.5, "AdamBeta2 must be in [0, 1), not -0.5." },
        { "AdamEpsilon", o => o.AdamEpsilon = 0, "AdamEpsilon must be a finite number above 0, not 0." },
        { "WarmupSteps", o => o.WarmupSteps = -1, "WarmupSteps must be 0 or more, not -1." },
        { "WarmupRatio", o => o.WarmupRatio = 1.5, "WarmupRatio must be in [0, 1], not 1.5." },
        { "ClipNorm", o => o.ClipNorm = 0, "ClipNorm must be a finite number above 0, or null for no clipping, not 0." },
        { "EvaluateEveryNSteps", o => o.EvaluateEveryNSteps = 0, "EvaluateEveryNSteps must be 1 or more, not 0." },
        { "EarlyStoppingPatience", o => o.EarlyStoppingPatience = 0, "EarlyStoppingPatience must be 1 or more, not 0." },
        { "CheckpointEveryNSteps", o => o.CheckpointEveryNSteps = 0, "CheckpointEveryNSteps must be 1 or more, not 0." },
        { "Threads", o => o.Threads = 0, "Threads must be 1 or more, not 0." },
        { "ExtendVocabularyLimit", o => o.ExtendVocabularyLimit = 0, "ExtendVocabularyLimit must be 1 or more, not 0." },
    };

    [Theory]
    [MemberData(nameof(BadValues))]
    public void A_value_out_of_range_is_refused_naming_the_option_and_the_value(string option, Action<FineTuneOptions> assign, string message)
    {
        var options = new FineTuneOptions();
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => assign(options));
        Assert.Equal(option, error.ParamName);
        Assert.StartsWith(message, error.Message);
    }

    [Theory]
    [InlineData(new string[0], "LoraTargets must name at least one projection (q, k, v, o, gate, up, down).")]
    [InlineData(new[] { "q", "query" }, "LoraTargets: 'query' is not a projection name; use q, k, v, o, gate, up or down.")]
    [InlineData(new[] { "Q" }, "LoraTargets: 'Q' is not a projection name; use q, k, v, o, gate, up or down.")]
    [InlineData(new[] { "v", "q", "v" }, "LoraTargets names 'v' twice.")]
    public void Bad_lora_targets_are_refused_by_name(string[] targets, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => new FineTuneOptions { LoraTargets = targets });
        Assert.Equal("LoraTargets", error.ParamName);
        Assert.StartsWith(message, error.Message);
    }

    [Fact]
    public void An_empty_checkpoint_folder_is_refused_and_null_turns_checkpoints_off()
    {
        var error = Assert.Throws<ArgumentException>(() => new FineTuneOptions { CheckpointFolder = "  " });
        Assert.StartsWith("CheckpointFolder must be a folder path or null, not '  '.", error.Message);
        Assert.Null(new FineTuneOptions { CheckpointFolder = null }.CheckpointFolder);
        Assert.Throws<ArgumentNullException>(() => new FineTuneOptions { LoraTargets = null! });
    }

    [Fact]
    public void The_defaults_are_the_documented_ones()
    {
        var o = new FineTuneOptions();
        Assert.Equal(FineTuneMethod.Full, o.Method);
        Assert.Equal((8, 16.0), (o.LoraRank, o.LoraAlpha));
        Assert.Equal(["q", "v"], o.LoraTargets);
        Assert.Equal((null, 1.0, 8, 128, 1), (o.MaxSteps, o.Epochs, o.BatchSize, o.SequenceLength, o.GradientAccumulationSteps));
        Assert.Equal((1e-4, 0.01, 0.9, 0.999, 1e-8), (o.LearningRate, o.WeightDecay, o.AdamBeta1, o.AdamBeta2, o.AdamEpsilon));
        Assert.Equal((null, 0.0, 1.0), (o.WarmupSteps, o.WarmupRatio, o.ClipNorm));
        Assert.Equal((null, null, null, 100, false), (o.EvaluateEveryNSteps, o.EarlyStoppingPatience, o.CheckpointFolder, o.CheckpointEveryNSteps, o.Resume));
        Assert.Equal((42, null, null, false, 1024), (o.Seed, o.Threads, o.Device, o.ExtendVocabulary, o.ExtendVocabularyLimit));
        Assert.Equal(["q", "k", "v", "o", "gate", "up", "down"], FineTuneOptions.LoraTargetNames);
    }

    [Fact]
    public void The_training_graph_and_its_request_default_to_the_same_lora_settings_as_the_options()
    {
        var o = new FineTuneOptions();
        var graph = new MLNetGpt.Training.TrainingGraphOptions();
        var request = new MLNetGpt.Training.TrainingGraphRequest { ModelFolder = "m", Method = FineTuneMethod.LoRA };
        Assert.Equal((o.LoraRank, o.LoraAlpha), (graph.LoraRank, (double)graph.LoraAlpha));
        Assert.Equal((o.LoraRank, o.LoraAlpha), (request.LoraRank, request.LoraAlpha));
        Assert.Equal(o.LoraTargets, graph.LoraTargets);
        Assert.Equal(o.LoraTargets, request.LoraTargets);
    }

    [Fact]
    public void A_clone_does_not_follow_later_changes()
    {
        var targets = new List<string> { "q", "k" };
        var options = new FineTuneOptions { LoraTargets = targets, LearningRate = 0.5 };
        var copy = options.Clone();
        targets.Add("v");
        options.LearningRate = 0.1;
        Assert.Equal(["q", "k"], copy.LoraTargets);
        Assert.Equal(["q", "k"], options.LoraTargets);
        Assert.Equal(0.5, copy.LearningRate);
    }
}
