using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace MLNetGpt.Training;

/// <summary>
/// The trainer's checkpoint: one file, <c>checkpoint.bin</c> in the checkpoint folder, holding the job's identity, the
/// run's state, and every trainable tensor's values with its two AdamW moments, so a resumed run continues bit for bit.
/// <code>
/// "MLNGCKPT"                       8 bytes
/// format version                   int32, little-endian (1)
/// header length H                  int32
/// header                           H bytes of UTF-8 JSON: format, job (<see cref="TrainingJob"/>), state, tensor sizes
/// SHA-256 of the header            32 bytes
/// tensors                          per trainable tensor in order: values, first moments, second moments (float32 LE)
/// SHA-256 of the tensors           32 bytes
/// </code>
/// Writes go to a temporary file in the same folder that is flushed to disk and then renamed over the old checkpoint,
/// so a crash at any moment leaves either the previous checkpoint or the new one, never a mix.
/// </summary>
internal static class TrainingCheckpoint
{
    public const string FileName = "checkpoint.bin";
    private const int Version = 1;
    private const int MaxHeaderBytes = 256 << 20;
    private static readonly byte[] Magic = "MLNGCKPT"u8.ToArray();

    public static string PathIn(string folder) => Path.Combine(folder, FileName);

    public static bool Exists(string folder) => File.Exists(PathIn(folder));

    /// <summary>Writes the checkpoint of <paramref name="job"/> atomically.</summary>
    public static void Write(string folder, TrainingJob job, TrainerState state, IReadOnlyList<TrainableTensor> parameters, AdamW optimizer)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Checkpoints are written on little-endian machines only.");
        Directory.CreateDirectory(folder);
        foreach (var stale in Directory.EnumerateFiles(folder, FileName + ".*.tmp")) File.Delete(stale);   // left by a crash during a write
        string target = PathIn(folder);
        string temporary = Path.Combine(folder, $"{FileName}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                byte[] header = Header(job, state, parameters);
                file.Write(Magic);
                file.Write(BitConverter.GetBytes(Version));
                file.Write(BitConverter.GetBytes(header.Length));
                file.Write(header);
                file.Write(SHA256.HashData(header));
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                for (int t = 0; t < parameters.Count; t++)
                {
                    foreach (var values in new[] { parameters[t].Value, optimizer.FirstMoments[t], optimizer.SecondMoments[t] })
                    {
                        var bytes = MemoryMarshal.AsBytes(values.AsSpan());
                        hash.AppendData(bytes);
                        file.Write(bytes);
                    }
                }
                file.Write(hash.GetHashAndReset());
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, target, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    /// <summary>
    /// Reads the checkpoint in <paramref name="folder"/> into <paramref name="parameters"/>, <paramref name="optimizer"/>
    /// and a fresh state, after checking that it is intact and belongs to <paramref name="job"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a checkpoint, is damaged, has a newer format, or belongs to another job (the message says how).</exception>
    public static TrainerState Restore(string folder, TrainingJob job, IReadOnlyList<TrainableTensor> parameters, AdamW optimizer)
    {
        string path = PathIn(folder);
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var reader = new BinaryReader(file);
        var magic = reader.ReadBytes(Magic.Length);
        if (!magic.AsSpan().SequenceEqual(Magic)) throw Bad(path, "is not an MLNetGpt training checkpoint (it does not start with MLNGCKPT)");
        int version = ReadInt(reader, path);
        if (version != Version) throw Bad(path, $"has format version {version}; this MLNetGpt reads version {Version}");
        int headerLength = ReadInt(reader, path);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || headerLength > file.Length - file.Position)
            throw Bad(path, $"is damaged: its header length {headerLength} does not fit the file");
        byte[] header = reader.ReadBytes(headerLength);
        byte[] headerHash = reader.ReadBytes(32);
        if (headerHash.Length != 32 || !SHA256.HashData(header).AsSpan().SequenceEqual(headerHash))
            throw Bad(path, "is damaged: its header does not match its checksum");

        TrainingJob saved;
        TrainerState state;
        long[] sizes;
        try
        {
            using var document = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
            var root = document.RootElement;
            Exception Fail(string key) => Bad(path, $"is damaged: its header's '{key}' is missing or malformed");
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("job", out var jobElement)) throw Fail("job");
            saved = TrainingJob.Read(jobElement, Fail);
            if (job.DifferenceFrom(saved) is { } difference)
                throw new InvalidDataException($"The checkpoint '{path}' belongs to another job: {difference}. Resume with the same model, data and settings, or use another checkpoint folder.");
            if (!root.TryGetProperty("state", out var stateElement)) throw Fail("state");
            state = ReadState(stateElement, Fail);
            if (!root.TryGetProperty("tensor_lengths", out var lengths) || lengths.ValueKind != JsonValueKind.Array) throw Fail("tensor_lengths");
            sizes = lengths.EnumerateArray().Select(l => l.ValueKind == JsonValueKind.Number && l.TryGetInt64(out long n) && n >= 0 ? n : throw Fail("tensor_lengths")).ToArray();
        }
        catch (JsonException e)
        {
            throw Bad(path, $"is damaged: its header is not valid JSON ({e.Message})");
        }
        if (sizes.Length != parameters.Count) throw Bad(path, $"is damaged: it lists {sizes.Length} tensors for {parameters.Count} trainable tensors");
        for (int t = 0; t < parameters.Count; t++)
            if (sizes[t] != parameters[t].Value.Length)
                throw Bad(path, $"is damaged: tensor '{parameters[t].Name}' has {sizes[t]} values there and {parameters[t].Value.Length} here");
        long expected = sizes.Sum(s => s * 3 * sizeof(float)) + 32;
        if (file.Length - file.Position != expected)
            throw Bad(path, $"is damaged: it holds {file.Length - file.Position} bytes of tensors and checksum, {expected} expected (a cut-off write?)");

        // Read into copies first, so a damaged file leaves the live tensors as they were.
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var values = new float[parameters.Count][];
        var first = new float[parameters.Count][];
        var second = new float[parameters.Count][];
        for (int t = 0; t < parameters.Count; t++)
        {
            values[t] = ReadFloats(file, parameters[t].Value.Length, hash, path);
            first[t] = ReadFloats(file, parameters[t].Value.Length, hash, path);
            second[t] = ReadFloats(file, parameters[t].Value.Length, hash, path);
        }
        byte[] payloadHash = reader.ReadBytes(32);
        if (!hash.GetHashAndReset().AsSpan().SequenceEqual(payloadHash)) throw Bad(path, "is damaged: its tensors do not match their checksum");
        for (int t = 0; t < parameters.Count; t++)
        {
            values[t].CopyTo(parameters[t].Value, 0);
            first[t].CopyTo(optimizer.FirstMoments[t], 0);
            second[t].CopyTo(optimizer.SecondMoments[t], 0);
        }
        optimizer.Steps = state.Step;
        return state;
    }

    /// <summary>The step a checkpoint reached (for messages), or null when its header cannot be read.</summary>
    public static int? StepOf(string folder)
    {
        try
        {
            using var file = File.OpenRead(PathIn(folder));
            var reader = new BinaryReader(file);
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic) || reader.ReadInt32() != Version) return null;
            int length = reader.ReadInt32();
            if (length <= 0 || length > MaxHeaderBytes || length > file.Length - file.Position) return null;
            using var document = JsonDocument.Parse(reader.ReadBytes(length));
            return document.RootElement.GetProperty("state").GetProperty("step").GetInt32();
        }
        catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    private static byte[] Header(TrainingJob job, TrainerState state, IReadOnlyList<TrainableTensor> parameters)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", "mlnetgpt-finetune-checkpoint");
            w.WritePropertyName("job");
            job.Write(w);
            w.WriteStartObject("state");
            w.WriteNumber("step", state.Step);
            w.WriteNumber("consumed", state.Consumed);
            w.WriteBoolean("finished", state.Finished);
            w.WriteString("stop_reason", state.StopReason == FineTuneStopReason.EarlyStopping ? "early_stopping" : "completed");
            if (state.BestLoss is double best) w.WriteNumber("best_loss", best);
            else w.WriteNull("best_loss");
            w.WriteNumber("bad_evaluations", state.BadEvaluations);
            w.WriteStartArray("train_losses");
            foreach (var loss in state.TrainLosses) w.WriteNumberValue(loss);
            w.WriteEndArray();
            w.WriteStartArray("evaluations");
            foreach (var e in state.Evaluations)
            {
                w.WriteStartObject();
                w.WriteNumber("step", e.Step);
                w.WriteNumber("loss", e.Loss);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartArray("tensor_lengths");
            foreach (var p in parameters) w.WriteNumberValue(p.Value.Length);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static TrainerState ReadState(JsonElement e, Func<string, Exception> fail)
    {
        if (e.ValueKind != JsonValueKind.Object) throw fail("state");
        JsonElement Get(string key) => e.TryGetProperty(key, out var v) ? v : throw fail("state." + key);
        double Number(JsonElement v, string key) => v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) ? d : throw fail(key);
        int Whole(JsonElement v, string key) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int n) && n >= 0 ? n : throw fail(key);
        var state = new TrainerState
        {
            Step = Whole(Get("step"), "state.step"),
            Consumed = Get("consumed") is { ValueKind: JsonValueKind.Number } c && c.TryGetInt64(out long consumed) && consumed >= 0 ? consumed : throw fail("state.consumed"),
            Finished = Get("finished").ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw fail("state.finished") },
            StopReason = Get("stop_reason").ValueKind == JsonValueKind.String && Get("stop_reason").GetString() is "completed" or "early_stopping"
                ? Get("stop_reason").GetString() == "early_stopping" ? FineTuneStopReason.EarlyStopping : FineTuneStopReason.Completed
                : throw fail("state.stop_reason"),
            BestLoss = Get("best_loss").ValueKind == JsonValueKind.Null ? null : Number(Get("best_loss"), "state.best_loss"),
            BadEvaluations = Whole(Get("bad_evaluations"), "state.bad_evaluations"),
        };
        var losses = Get("train_losses");
        if (losses.ValueKind != JsonValueKind.Array) throw fail("state.train_losses");
        foreach (var loss in losses.EnumerateArray()) state.TrainLosses.Add(Number(loss, "state.train_losses"));
        var evaluations = Get("evaluations");
        if (evaluations.ValueKind != JsonValueKind.Array) throw fail("state.evaluations");
        foreach (var item in evaluations.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("step", out var step) || !item.TryGetProperty("loss", out var loss)) throw fail("state.evaluations");
            state.Evaluations.Add(new FineTuneEvaluation(Whole(step, "state.evaluations"), Number(loss, "state.evaluations")));
        }
        if (state.TrainLosses.Count != state.Step) throw fail("state.train_losses");
        return state;
    }

    private static float[] ReadFloats(Stream file, int count, IncrementalHash hash, string path)
    {
        var values = new float[count];
        var bytes = MemoryMarshal.AsBytes(values.AsSpan());
        int read = 0;
        while (read < bytes.Length)
        {
            int n = file.Read(bytes[read..]);
            if (n == 0) throw Bad(path, "is damaged: it ends inside its tensors");
            read += n;
        }
        hash.AppendData(bytes);
        return values;
    }

    private static int ReadInt(BinaryReader reader, string path)
    {
        try
        {
            return reader.ReadInt32();
        }
        catch (EndOfStreamException)
        {
            throw Bad(path, "is damaged: it ends inside its header");
        }
    }

    private static InvalidDataException Bad(string path, string what) => new($"The checkpoint '{path}' {what}.");
}
