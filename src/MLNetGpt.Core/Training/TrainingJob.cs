using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace MLNetGpt.Training;

/// <summary>
/// What makes two runs the same job, so a checkpoint is only ever resumed by the run it belongs to: the model files, the
/// training and validation sequences, every setting that changes the result, and the trainable tensors' names and shapes.
/// Threads, device, checkpoint interval and progress reporting are not part of it (they change nothing but speed; the
/// same threads and device give the same bits).
/// </summary>
internal sealed class TrainingJob
{
    /// <summary>The model folder (for messages; the fingerprint decides).</summary>
    public required string ModelFolder { get; init; }

    /// <summary>SHA-256 over the model folder's files (names and contents).</summary>
    public required string ModelFingerprint { get; init; }

    /// <summary>SHA-256 over the training and validation sequences.</summary>
    public required string DataFingerprint { get; init; }

    public required int TrainingSequences { get; init; }

    public required int ValidationSequences { get; init; }

    /// <summary>The settings that change the result, by Hugging Face-style snake_case name, as invariant text.</summary>
    public required IReadOnlyList<KeyValuePair<string, string>> Settings { get; init; }

    /// <summary>The trainable tensors, in the graph's order.</summary>
    public required IReadOnlyList<(string Name, int[] Shape)> Parameters { get; init; }

    /// <summary>The settings of <paramref name="options"/> that change a run's result, with the resolved step counts and added tokens.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> SettingsOf(FineTuneOptions options, int totalSteps, int warmupSteps, IReadOnlyList<int> addedTokens)
    {
        var settings = new List<KeyValuePair<string, string>>();
        void Add(string key, object? value) => settings.Add(new(key, value switch
        {
            null => "none",
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString()!,
        }));
        Add("method", FineTuneReport.MethodName(options.Method));
        if (options.Method == FineTuneMethod.LoRA)
        {
            Add("lora_rank", options.LoraRank);
            Add("lora_alpha", options.LoraAlpha);
            Add("lora_targets", string.Join(",", options.LoraTargets));
        }
        Add("total_steps", totalSteps);
        Add("batch_size", options.BatchSize);
        Add("sequence_length", options.SequenceLength);
        Add("gradient_accumulation_steps", options.GradientAccumulationSteps);
        Add("learning_rate", options.LearningRate);
        Add("weight_decay", options.WeightDecay);
        Add("adam_beta1", options.AdamBeta1);
        Add("adam_beta2", options.AdamBeta2);
        Add("adam_epsilon", options.AdamEpsilon);
        Add("warmup_steps", warmupSteps);
        Add("clip_norm", options.ClipNorm);
        Add("evaluate_every_n_steps", options.EvaluateEveryNSteps);
        Add("early_stopping_patience", options.EarlyStoppingPatience);
        Add("seed", options.Seed);
        Add("added_tokens", addedTokens.Count == 0 ? "none" : string.Join(",", addedTokens.Select(i => i.ToString(CultureInfo.InvariantCulture))));
        return settings;
    }

    /// <summary>SHA-256 over every file of <paramref name="folder"/> (relative names and contents, in ordinal order).</summary>
    public static string FingerprintFolder(string folder)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 16];
        foreach (var path in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
                     .Select(p => (Full: p, Relative: Path.GetRelativePath(folder, p).Replace('\\', '/')))
                     .OrderBy(p => p.Relative, StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes(path.Relative + "\n"));
            using var file = File.OpenRead(path.Full);
            hash.AppendData(BitConverter.GetBytes(file.Length));
            int read;
            while ((read = file.Read(buffer, 0, buffer.Length)) > 0) hash.AppendData(buffer, 0, read);
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>SHA-256 over the sequences' inputs and targets, the training set first.</summary>
    public static string FingerprintData(IReadOnlyList<TrainingSequence> training, IReadOnlyList<TrainingSequence>? validation)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(IReadOnlyList<TrainingSequence> set, string label)
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"{label}:{set.Count}\n"));
            foreach (var s in set)
            {
                hash.AppendData(MemoryMarshal.AsBytes(s.Inputs.AsSpan()));
                hash.AppendData(MemoryMarshal.AsBytes(s.Targets.AsSpan()));
            }
        }
        Add(training, "training");
        if (validation is not null) Add(validation, "validation");
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>How <paramref name="saved"/> (a checkpoint's job) differs from this run, in words; null when it is the same job.</summary>
    public string? DifferenceFrom(TrainingJob saved)
    {
        if (saved.ModelFingerprint != ModelFingerprint)
            return $"it was made from other model files (the folder '{saved.ModelFolder}' then; '{ModelFolder}' now, whose files differ)";
        var savedSettings = saved.Settings.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var settings = Settings.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        foreach (var (key, value) in Settings)
        {
            if (!savedSettings.TryGetValue(key, out var before)) return $"it has no '{key}' setting (this run's is {value})";
            if (before != value) return $"its {key} is {before}, this run's is {value}";
        }
        foreach (var key in savedSettings.Keys)
            if (!settings.ContainsKey(key)) return $"it has a '{key}' setting ({savedSettings[key]}) that this run does not";
        if (saved.DataFingerprint != DataFingerprint)
            return $"it was made from other data ({saved.TrainingSequences} training and {saved.ValidationSequences} validation sequences then, " +
                $"{TrainingSequences} and {ValidationSequences} now{(saved.TrainingSequences == TrainingSequences && saved.ValidationSequences == ValidationSequences ? ", with other tokens" : "")})";
        if (saved.Parameters.Count != Parameters.Count)
            return $"it holds {saved.Parameters.Count} trainable tensors, this run has {Parameters.Count}";
        for (int i = 0; i < Parameters.Count; i++)
        {
            var (name, shape) = Parameters[i];
            var (savedName, savedShape) = saved.Parameters[i];
            if (name != savedName || !shape.SequenceEqual(savedShape))
                return $"its trainable tensor {i} is '{savedName}' [{string.Join(", ", savedShape)}], this run's is '{name}' [{string.Join(", ", shape)}]";
        }
        return null;
    }

    public void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("model_folder", ModelFolder);
        w.WriteString("model_sha256", ModelFingerprint);
        w.WriteString("data_sha256", DataFingerprint);
        w.WriteNumber("training_sequences", TrainingSequences);
        w.WriteNumber("validation_sequences", ValidationSequences);
        w.WriteStartObject("settings");
        foreach (var (key, value) in Settings) w.WriteString(key, value);
        w.WriteEndObject();
        w.WriteStartArray("parameters");
        foreach (var (name, shape) in Parameters)
        {
            w.WriteStartObject();
            w.WriteString("name", name);
            w.WriteStartArray("shape");
            foreach (int d in shape) w.WriteNumberValue(d);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>Reads what <see cref="Write"/> wrote; <paramref name="fail"/> makes the error for a key.</summary>
    public static TrainingJob Read(JsonElement e, Func<string, Exception> fail)
    {
        if (e.ValueKind != JsonValueKind.Object) throw fail("job");
        string Text(string key) => e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : throw fail("job." + key);
        int Count(string key) => e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n >= 0 ? n : throw fail("job." + key);
        if (!e.TryGetProperty("settings", out var settings) || settings.ValueKind != JsonValueKind.Object) throw fail("job.settings");
        if (!e.TryGetProperty("parameters", out var parameters) || parameters.ValueKind != JsonValueKind.Array) throw fail("job.parameters");
        return new TrainingJob
        {
            ModelFolder = Text("model_folder"),
            ModelFingerprint = Text("model_sha256"),
            DataFingerprint = Text("data_sha256"),
            TrainingSequences = Count("training_sequences"),
            ValidationSequences = Count("validation_sequences"),
            Settings = settings.EnumerateObject()
                .Select(p => new KeyValuePair<string, string>(p.Name, p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : throw fail("job.settings." + p.Name)))
                .ToList(),
            Parameters = parameters.EnumerateArray().Select((p, i) =>
            {
                if (p.ValueKind != JsonValueKind.Object || !p.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
                    || !p.TryGetProperty("shape", out var shape) || shape.ValueKind != JsonValueKind.Array)
                    throw fail($"job.parameters[{i}]");
                return (name.GetString()!, shape.EnumerateArray()
                    .Select(d => d.ValueKind == JsonValueKind.Number && d.TryGetInt32(out int n) && n >= 0 ? n : throw fail($"job.parameters[{i}].shape")).ToArray());
            }).ToList(),
        };
    }
}
