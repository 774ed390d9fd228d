using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Transforms;

/// <summary>ClassifyText as an ML.NET stage: key-typed predictions that MulticlassClassification.Evaluate and MapKeyToValue take as they are.</summary>
public sealed class ClassifyTextTests
{
    private static readonly string[] Names = ["LORD", "God", "Israel", "Moses", "David", "Jesus"];

    public sealed class Row
    {
        public string Text { get; set; } = "";
        public string Name { get; set; } = "";
    }

    public sealed class KeyRow
    {
        public string Name { get; set; } = "";
    }

    public sealed class ScoreOnly
    {
        public float[] Score { get; set; } = [];
    }

    public sealed class Predicted
    {
        public string Text { get; set; } = "";
        public string PredictedName { get; set; } = "";
        public float[] Score { get; set; } = [];
    }

    private static Row[] Rows() => File.ReadLines(Path.Combine(Fixtures.Root, "kjv-next-name.tsv"))
        .Where(l => !l.StartsWith('#')).Select(l => l.Split('\t')).Select(p => new Row { Text = p[0], Name = p[1] }).ToArray();

    private static ClassifyTextOptions Options(string folder) => new()
    {
        OutputColumnName = "PredictedLabel", InputColumnName = "Text", ModelFolder = folder, Labels = Names.Select(n => " " + n).ToArray(), BatchSize = 8,
    };

    [Fact]
    public void The_default_model_names_the_next_name_of_held_out_verses_far_above_chance_and_Evaluate_reads_the_stage_as_it_is()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(Rows());
        // The label column as a key over the same values, in the same order as the stage's labels.
        var keys = ml.Data.LoadFromEnumerable(Names.Select(n => new KeyRow { Name = n }));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", "Name", keyData: keys)
            .Append(ml.Transforms.Text.ClassifyText(Options(Fixtures.DefaultModel)));
        using var model = pipeline.Fit(data);
        var scored = model.Transform(data);
        var metrics = ml.MulticlassClassification.Evaluate(scored, "Label", "Score", "PredictedLabel");
        // Six classes: chance is 1/6.
        Assert.True(metrics.MacroAccuracy > 0.5, $"macro accuracy {metrics.MacroAccuracy:F3}, micro {metrics.MicroAccuracy:F3}");
        Assert.Equal(6, metrics.ConfusionMatrix.NumberOfClasses);
    }

    [Fact]
    public void With_its_label_column_named_the_stage_follows_the_column_s_key_order_and_Evaluate_counts_what_a_reader_counts()
    {
        var ml = new MLContext(seed: 1);
        var rows = Rows();
        var data = ml.Data.LoadFromEnumerable(rows);
        // MapValueToKey orders keys as the values first occur; the stage is given its labels in another order.
        string[] labels = Names.Reverse().Select(n => " " + n).ToArray();
        var toKey = ml.Transforms.Conversion.MapValueToKey("Label", "Name");
        var keyed = toKey.Fit(data).Transform(data);
        VBuffer<ReadOnlyMemory<char>> keyValues = default;
        keyed.Schema["Label"].GetKeyValues(ref keyValues);
        Assert.NotEqual(labels.Select(l => l.Trim()), keyValues.DenseValues().Select(v => v.ToString()).ToArray());

        var options = Options(Fixtures.DefaultModel);
        options.Labels = labels;
        options.LabelColumnName = "Label";
        using var model = toKey.Append(ml.Transforms.Text.ClassifyText(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel")).Fit(data);
        var scored = model.Transform(data);
        var metrics = ml.MulticlassClassification.Evaluate(scored, "Label", "Score", "PredictedLabel");
        var predicted = ml.Data.CreateEnumerable<Predicted>(scored, reuseRowObject: false).Select(p => p.PredictedName.Trim()).ToArray();
        double byHand = predicted.Zip(rows, (p, r) => p == r.Name ? 1.0 : 0.0).Average();
        Assert.Equal(byHand, metrics.MicroAccuracy, 6);
        Assert.True(byHand > 0.5, $"accuracy {byHand:F3}");

        // The same pipeline without LabelColumnName compares keys of two different orders: Evaluate's figure is wrong.
        var unalignedOptions = Options(Fixtures.DefaultModel);
        unalignedOptions.Labels = labels;
        using var unaligned = toKey.Append(ml.Transforms.Text.ClassifyText(unalignedOptions)).Fit(data);
        var wrong = ml.MulticlassClassification.Evaluate(unaligned.Transform(data), "Label", "Score", "PredictedLabel");
        Assert.NotEqual(byHand, wrong.MicroAccuracy, 3);
    }

    [Fact]
    public void A_label_column_whose_keys_are_not_the_labels_is_refused_naming_both()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(Rows().Take(4));
        var options = Options(Fixtures.Folder("tiny-gpt2-a"));
        options.Labels = [" LORD", " God"];
        options.LabelColumnName = "Label";
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", "Name").Append(ml.Transforms.Text.ClassifyText(options));
        var e = Assert.Throws<ArgumentException>(() => pipeline.Fit(data));
        Assert.StartsWith("ClassifyText: the key values of 'Label' (LabelColumnName) are ", e.Message);
        Assert.Contains("but the labels are ' LORD', ' God': each key value must name exactly one label", e.Message);
        options.LabelColumnName = "Text";
        var notKey = Assert.Throws<ArgumentException>(() => ml.Transforms.Text.ClassifyText(options).Fit(data));
        Assert.StartsWith("ClassifyText: the label column 'Text' (LabelColumnName) must be a key column", notKey.Message);
    }

    [Fact]
    public void Labels_the_model_cannot_tell_apart_and_tied_rows_are_warned_about_in_the_MLContext_log()
    {
        var ml = new MLContext();
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.RawMessage); };
        var data = ml.Data.LoadFromEnumerable(Rows().Take(5));
        var options = Options(Fixtures.DefaultModel);
        options.Labels = [" GPL", " Apache", " Mozilla"];
        using var model = ml.Transforms.Text.ClassifyText(options).Fit(data);
        _ = ml.Data.CreateEnumerable<ScoreOnly>(model.Transform(data), reuseRowObject: false).ToList();
        Assert.Contains(warnings, w => w.StartsWith("ClassifyText: the labels ' GPL', ' Apache', ' Mozilla' are the same to this model", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.StartsWith("ClassifyText: 5 of 5 rows had two or more labels tied for the best score", StringComparison.Ordinal));
    }

    [Fact]
    public void MapKeyToValue_turns_the_prediction_back_into_the_label_and_the_scores_sum_to_one()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(Rows().Take(10));
        using var model = ml.Transforms.Text.ClassifyText(Options(Fixtures.Folder("tiny-gpt2-a")))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel")).Fit(data);
        var rows = ml.Data.CreateEnumerable<Predicted>(model.Transform(data), reuseRowObject: false).ToList();
        using var gpt = GptModel.Open(Fixtures.Folder("tiny-gpt2-a"));
        var reference = gpt.Classify(rows.Select(r => r.Text), Names.Select(n => " " + n).ToArray());
        for (int i = 0; i < rows.Count; i++)
        {
            Assert.Equal(reference[i].Label, rows[i].PredictedName);
            Assert.Equal(1.0, rows[i].Score.Sum(), 4);
        }
    }

    [Fact]
    public void The_stage_saves_and_loads_with_its_labels_and_template()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(Rows().Take(6));
        var options = Options(Fixtures.Folder("tiny-gpt2-b"));
        options.Template = "Verse: {input}";
        options.LengthNormalized = true;
        using var model = ml.Transforms.Text.ClassifyText(options).Fit(data);
        var zip = Path.Combine(Fixtures.TempFolder("classify"), "model.zip");
        ml.Model.Save(model, data.Schema, zip);
        var loaded = (ClassifyTextTransformer)ml.Model.Load(zip, out _);
        Assert.Equal(options.Labels, loaded.Labels);
        Assert.Equal("Verse: {input}", loaded.Template);
        Assert.True(loaded.LengthNormalized);
        float[] Scores(ITransformer t) => ml.Data.CreateEnumerable<ScoreOnly>(t.Transform(data), false).SelectMany(r => r.Score).ToArray();
        Assert.Equal(Scores(model), Scores(loaded));
        loaded.Dispose();
    }

    [Fact]
    public void A_template_without_the_input_placeholder_and_a_single_label_are_refused()
    {
        var ml = new MLContext();
        var options = Options(Fixtures.Folder("tiny-gpt2-a"));
        options.Template = "Verse:";
        Assert.Contains("no {input} placeholder", Assert.Throws<ArgumentException>(() => ml.Transforms.Text.ClassifyText(options)).Message);
        options.Template = "{input}";
        options.Labels = [" one"];
        Assert.Contains("at least two labels", Assert.Throws<ArgumentException>(() => ml.Transforms.Text.ClassifyText(options)).Message);
    }

    [Fact]
    public void The_output_schema_carries_the_labels_as_key_values_and_slot_names()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(Rows().Take(2));
        // The chain checks the estimator's output shape (with the key and its annotations) on Fit.
        using var model = ml.Transforms.Text.ClassifyText(Options(Fixtures.Folder("tiny-gpt2-a")))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel")).Fit(data);
        var schema = model.GetOutputSchema(data.Schema);
        VBuffer<ReadOnlyMemory<char>> keyValues = default, slotNames = default;
        schema["PredictedLabel"].GetKeyValues(ref keyValues);
        schema["Score"].GetSlotNames(ref slotNames);
        Assert.Equal(Names.Select(n => " " + n), keyValues.DenseValues().Select(v => v.ToString()));
        Assert.Equal(Names.Select(n => " " + n), slotNames.DenseValues().Select(v => v.ToString()));
    }
}
