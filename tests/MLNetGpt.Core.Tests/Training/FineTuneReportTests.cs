using Xunit;

namespace MLNetGpt.Tests.Training;

/// <summary>The report keeps itself as JSON and reads it back; a report it cannot read is refused by key.</summary>
public sealed class FineTuneReportTests
{
    internal static FineTuneReport Sample() => new()
    {
        Method = FineTuneMethod.LoRA,
        ModelFolder = "/models/a",
        OutputFolder = "/models/a-tuned",
        StepsRun = 3,
        TotalSteps = 5,
        Epochs = 1.5,
        StopReason = FineTuneStopReason.EarlyStopping,
        TrainLosses = [4.25, 3.1000000000000001, 1.0 / 3],
        Evaluations = [new(0, 5.5), new(2, 4.75), new(3, 4.8)],
        TokensPerSecond = 1234.5,
        TrainingSequences = 12,
        TrainingTokens = 1500,
        ValidationTokens = 300,
        UnkRate = 0.377,
        AddedTokens = 64,
        TruncatedRows = 2,
        ResumedFromStep = 2,
    };

    [Fact]
    public void A_report_round_trips_through_json_exactly()
    {
        var report = Sample();
        var back = FineTuneReport.FromJson(report.ToJson());
        Assert.Equal(report.ToJson(), back.ToJson());
        Assert.Equal(report.TrainLosses, back.TrainLosses);
        Assert.Equal(report.Evaluations, back.Evaluations);
        Assert.Equal((5.5, 4.8), (back.ValidationLossBefore, back.ValidationLossAfter));
        Assert.Equal((FineTuneMethod.LoRA, FineTuneStopReason.EarlyStopping, 2, 0.377), (back.Method, back.StopReason, back.ResumedFromStep, back.UnkRate));
        Assert.Contains("\"stop_reason\": \"early_stopping\"", report.ToJson());
    }

    [Fact]
    public void A_report_without_validation_or_vocabulary_map_keeps_its_nulls()
    {
        var report = new FineTuneReport { ModelFolder = "m", OutputFolder = "o", TrainLosses = [2.0], StepsRun = 1, TotalSteps = 1 };
        var back = FineTuneReport.FromJson(report.ToJson());
        Assert.Null(back.ValidationLossBefore);
        Assert.Null(back.UnkRate);
        Assert.Null(back.ResumedFromStep);
        Assert.Empty(back.Evaluations);
    }

    [Theory]
    [InlineData("\"version\": 1", "\"version\": 2", "The fine-tune report's 'version' is 2; this MLNetGpt reads version 1 (the report may come from a newer MLNetGpt).")]
    [InlineData("\"method\": \"lora\"", "\"method\": \"qlora\"", "The fine-tune report's 'method' must be \"full\" or \"lora\", not \"qlora\".")]
    [InlineData("\"steps_run\": 3", "\"steps_run\": -3", "The fine-tune report's 'steps_run' must be a whole number of 0 or more, not -3.")]
    [InlineData("\"step\": 2", "\"step\": \"two\"", "The fine-tune report's 'evaluations[1].step' must be a whole number of 0 or more, not \"two\".")]
    [InlineData("\"format\": \"mlnetgpt-finetune-report\"", "\"format\": \"other\"", "The fine-tune report's 'format' must be \"mlnetgpt-finetune-report\", not \"other\".")]
    [InlineData("\"tokens_per_second\": 1234.5,", "", "The fine-tune report has no 'tokens_per_second'.")]
    public void A_report_that_cannot_be_read_is_refused_naming_the_key(string find, string replace, string message)
    {
        string json = Sample().ToJson();
        Assert.Contains(find, json);
        var error = Assert.Throws<FormatException>(() => FineTuneReport.FromJson(json.Replace(find, replace)));
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void Text_that_is_not_json_is_refused_as_such()
    {
        Assert.StartsWith("The fine-tune report is not valid JSON:", Assert.Throws<FormatException>(() => FineTuneReport.FromJson("{ steps")).Message);
        Assert.Equal("The fine-tune report must be a JSON object, not Array.", Assert.Throws<FormatException>(() => FineTuneReport.FromJson("[1]")).Message);
    }
}
