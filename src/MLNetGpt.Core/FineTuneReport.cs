using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MLNetGpt;

/// <summary>
/// What a fine-tune did: its curves (the training loss of every step, the validation loss of every evaluation), the
/// held-out loss before and after, throughput, how much of the training text the model's vocabulary could not represent,
/// and where the tuned model was written. <see cref="ToJson"/> and <see cref="FromJson"/> keep it as a small JSON document.
/// </summary>
public sealed class FineTuneReport
{
    /// <summary>The value of the JSON document's <c>format</c> key.</summary>
    internal const string Format = "mlnetgpt-finetune-report";

    /// <summary>The JSON layout written by this version (readers refuse newer ones).</summary>
    internal const int FormatVersion = 1;

    internal FineTuneReport() { }

    /// <summary>Full fine-tuning or LoRA.</summary>
    public FineTuneMethod Method { get; internal init; }

    /// <summary>The model folder that was tuned (full path).</summary>
    public string ModelFolder { get; internal init; } = "";

    /// <summary>The folder the tuned model was written to (full path); open it with <see cref="GptModel.Open"/>.</summary>
    public string OutputFolder { get; internal init; } = "";

    /// <summary>Optimizer steps run, counting those before a resumption.</summary>
    public int StepsRun { get; internal init; }

    /// <summary>The steps the run planned (<see cref="FineTuneOptions.MaxSteps"/>, or those of the epochs).</summary>
    public int TotalSteps { get; internal init; }

    /// <summary>Passes over the training sequences done (fractional).</summary>
    public double Epochs { get; internal init; }

    /// <summary>Why the run ended.</summary>
    public FineTuneStopReason StopReason { get; internal init; }

    /// <summary>The training loss of every step, in order (nats per counted token).</summary>
    public IReadOnlyList<double> TrainLosses { get; internal init; } = [];

    /// <summary>Every evaluation of the validation set, in order; the first is at step 0 (before training). Empty without a validation set.</summary>
    public IReadOnlyList<FineTuneEvaluation> Evaluations { get; internal init; } = [];

    /// <summary>The validation loss of the model before training (nats per token); null without a validation set.</summary>
    public double? ValidationLossBefore => Evaluations.Count > 0 ? Evaluations[0].Loss : null;

    /// <summary>The validation loss of the written model (nats per token); null without a validation set.</summary>
    public double? ValidationLossAfter => Evaluations.Count > 0 ? Evaluations[^1].Loss : null;

    /// <summary>Training throughput: tokens fed to the model per second over the steps this process ran.</summary>
    public double TokensPerSecond { get; internal init; }

    /// <summary>Training sequences (of <see cref="FineTuneOptions.SequenceLength"/> tokens) made from the training rows.</summary>
    public int TrainingSequences { get; internal init; }

    /// <summary>Tokens of the training sequences whose loss counts (completion tokens only, for prompt/completion rows).</summary>
    public long TrainingTokens { get; internal init; }

    /// <summary>Tokens of the validation sequences whose loss counts (0 without a validation set).</summary>
    public long ValidationTokens { get; internal init; }

    /// <summary>
    /// The share of the training text's tokens that the model's inner vocabulary maps to its shared <c>unk</c> row, before
    /// any <see cref="FineTuneOptions.ExtendVocabulary"/>; null for a model without such a map.
    /// </summary>
    public double? UnkRate { get; internal init; }

    /// <summary>Tokens given rows of their own by <see cref="FineTuneOptions.ExtendVocabulary"/> (0 when it was off).</summary>
    public int AddedTokens { get; internal init; }

    /// <summary>Prompt/completion rows longer than the sequence length, which were cut (0 for plain texts).</summary>
    public int TruncatedRows { get; internal init; }

    /// <summary>The step the run resumed from, or null when it ran from the start.</summary>
    public int? ResumedFromStep { get; internal init; }

    /// <summary>The report as an indented JSON document (snake_case keys, numbers as JSON numbers).</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("format", Format);
            w.WriteNumber("version", FormatVersion);
            w.WriteString("method", MethodName(Method));
            w.WriteString("model_folder", ModelFolder);
            w.WriteString("output_folder", OutputFolder);
            w.WriteNumber("steps_run", StepsRun);
            w.WriteNumber("total_steps", TotalSteps);
            w.WriteNumber("epochs", Epochs);
            w.WriteString("stop_reason", StopReason == FineTuneStopReason.EarlyStopping ? "early_stopping" : "completed");
            w.WriteStartArray("train_losses");
            foreach (var loss in TrainLosses) w.WriteNumberValue(loss);
            w.WriteEndArray();
            w.WriteStartArray("evaluations");
            foreach (var e in Evaluations)
            {
                w.WriteStartObject();
                w.WriteNumber("step", e.Step);
                w.WriteNumber("loss", e.Loss);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("tokens_per_second", TokensPerSecond);
            w.WriteNumber("training_sequences", TrainingSequences);
            w.WriteNumber("training_tokens", TrainingTokens);
            w.WriteNumber("validation_tokens", ValidationTokens);
            if (UnkRate is double unk) w.WriteNumber("unk_rate", unk);
            else w.WriteNull("unk_rate");
            w.WriteNumber("added_tokens", AddedTokens);
            w.WriteNumber("truncated_rows", TruncatedRows);
            if (ResumedFromStep is int resumed) w.WriteNumber("resumed_from_step", resumed);
            else w.WriteNull("resumed_from_step");
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Reads a report written by <see cref="ToJson"/>.</summary>
    /// <exception cref="FormatException">The text is not such a report; the message names the key and what was expected.</exception>
    public static FineTuneReport FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new FormatException($"The fine-tune report is not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new FormatException($"The fine-tune report must be a JSON object, not {root.ValueKind}.");
            var reader = new Reader(root);
            if (reader.String("format") != Format) throw new FormatException($"The fine-tune report's 'format' must be \"{Format}\", not {reader.Raw("format")}.");
            int version = reader.Int("version");
            if (version < 1 || version > FormatVersion)
                throw new FormatException($"The fine-tune report's 'version' is {version}; this MLNetGpt reads version {FormatVersion} (the report may come from a newer MLNetGpt).");
            var report = new FineTuneReport
            {
                Method = reader.String("method") switch
                {
                    "full" => FineTuneMethod.Full,
                    "lora" => FineTuneMethod.LoRA,
                    _ => throw new FormatException($"The fine-tune report's 'method' must be \"full\" or \"lora\", not {reader.Raw("method")}."),
                },
                ModelFolder = reader.String("model_folder"),
                OutputFolder = reader.String("output_folder"),
                StepsRun = reader.Int("steps_run"),
                TotalSteps = reader.Int("total_steps"),
                Epochs = reader.Double("epochs"),
                StopReason = reader.String("stop_reason") switch
                {
                    "completed" => FineTuneStopReason.Completed,
                    "early_stopping" => FineTuneStopReason.EarlyStopping,
                    _ => throw new FormatException($"The fine-tune report's 'stop_reason' must be \"completed\" or \"early_stopping\", not {reader.Raw("stop_reason")}."),
                },
                TrainLosses = reader.Array("train_losses").Select((e, i) => Reader.Number(e, $"train_losses[{i}]")).ToArray(),
                Evaluations = reader.Array("evaluations").Select((e, i) =>
                {
                    if (e.ValueKind != JsonValueKind.Object) throw new FormatException($"The fine-tune report's 'evaluations[{i}]' must be an object with 'step' and 'loss'.");
                    var item = new Reader(e, $"evaluations[{i}].");
                    return new FineTuneEvaluation(item.Int("step"), item.Double("loss"));
                }).ToArray(),
                TokensPerSecond = reader.Double("tokens_per_second"),
                TrainingSequences = reader.Int("training_sequences"),
                TrainingTokens = reader.Long("training_tokens"),
                ValidationTokens = reader.Long("validation_tokens"),
                UnkRate = reader.NullableDouble("unk_rate"),
                AddedTokens = reader.Int("added_tokens"),
                TruncatedRows = reader.Int("truncated_rows"),
                ResumedFromStep = reader.NullableInt("resumed_from_step"),
            };
            return report;
        }
    }

    internal static string MethodName(FineTuneMethod method) => method == FineTuneMethod.LoRA ? "lora" : "full";

    /// <inheritdoc/>
    public override string ToString()
    {
        string validation = ValidationLossAfter is double after
            ? string.Create(CultureInfo.InvariantCulture, $", validation loss {ValidationLossBefore:F4} -> {after:F4}") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"{MethodName(Method)} fine-tune: {StepsRun}/{TotalSteps} steps ({StopReason}), final train loss {(TrainLosses.Count > 0 ? TrainLosses[^1] : double.NaN):F4}{validation}, {TokensPerSecond:F0} tokens/s");
    }

    /// <summary>Typed reads of one JSON object whose errors name the key.</summary>
    private sealed class Reader(JsonElement element, string prefix = "")
    {
        public string Raw(string key) => element.TryGetProperty(key, out var e) ? e.GetRawText() : "nothing";

        private JsonElement Required(string key) =>
            element.TryGetProperty(key, out var e) ? e : throw new FormatException($"The fine-tune report has no '{prefix}{key}'.");

        public string String(string key)
        {
            var e = Required(key);
            return e.ValueKind == JsonValueKind.String ? e.GetString()! : throw Wrong(key, "a string", e);
        }

        public int Int(string key)
        {
            var e = Required(key);
            return e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) && v >= 0 ? v : throw Wrong(key, "a whole number of 0 or more", e);
        }

        public long Long(string key)
        {
            var e = Required(key);
            return e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long v) && v >= 0 ? v : throw Wrong(key, "a whole number of 0 or more", e);
        }

        public double Double(string key) => Number(Required(key), prefix + key);

        public double? NullableDouble(string key) => element.TryGetProperty(key, out var e) && e.ValueKind != JsonValueKind.Null ? Number(e, prefix + key) : null;

        public int? NullableInt(string key) => element.TryGetProperty(key, out var e) && e.ValueKind != JsonValueKind.Null ? Int(key) : null;

        public JsonElement.ArrayEnumerator Array(string key)
        {
            var e = Required(key);
            return e.ValueKind == JsonValueKind.Array ? e.EnumerateArray() : throw Wrong(key, "a list", e);
        }

        public static double Number(JsonElement e, string name) =>
            e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double v) ? v : throw new FormatException($"The fine-tune report's '{name}' must be a number, not {e.GetRawText()}.");

        private FormatException Wrong(string key, string expected, JsonElement actual) =>
            new($"The fine-tune report's '{prefix}{key}' must be {expected}, not {actual.GetRawText()}.");
    }
}
