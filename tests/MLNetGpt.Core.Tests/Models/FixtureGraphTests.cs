using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetGpt.Tests.Infrastructure;
using Xunit;

namespace MLNetGpt.Tests.Models;

/// <summary>
/// The Llama fixtures' graphs run by ONNX Runtime directly, without the engine, against torch's
/// goldens (tools/make_llama_fixtures.py): this proves the fixtures themselves, so a failing engine
/// test on them points at the engine.
/// </summary>
public sealed class FixtureGraphTests
{
    public static TheoryData<string, string, string> Graphs() => new()
    {
        { "tiny-llama-builder", "model.onnx", "golden.json" },
        { "tiny-onnx-community", "onnx/model.onnx", "golden.json" },
        { "tiny-onnx-community", "onnx/model_q4.onnx", "golden-q4.json" },
    };

    [Theory]
    [MemberData(nameof(Graphs))]
    public void Each_unpadded_prompt_from_an_empty_cache_gives_torchs_logits_at_every_position(string fixture, string file, string goldenFile)
    {
        using var graph = new RawDecoder(fixture, file);
        var golden = Golden.Load(Path.Combine(Fixtures.Folder(fixture), goldenFile));
        for (int p = 0; p < golden.Prompts.Length; p++)
        {
            var ids = golden.Prompts[p].Ids.Select(i => (long)i).ToArray();
            using var step = graph.Run(ids, 1, Ones(ids.Length), Range(0, ids.Length));
            for (int position = 0; position < ids.Length; position++)
                AssertFigures(step, 0, position, golden.Prefill[p], position, golden.ProbeIds, $"{file} prompt {p} position {position}");
        }
    }

    [Theory]
    [MemberData(nameof(Graphs))]
    public void A_decode_step_through_the_cache_gives_the_logits_torch_computes_for_the_whole_prompt(string fixture, string file, string goldenFile)
    {
        using var graph = new RawDecoder(fixture, file);
        var golden = Golden.Load(Path.Combine(Fixtures.Folder(fixture), goldenFile));
        for (int p = 0; p < golden.Prompts.Length; p++)
        {
            var ids = golden.Prompts[p].Ids.Select(i => (long)i).ToArray();
            if (ids.Length < 2) continue;
            int n = ids.Length;
            using var prefill = graph.Run(ids[..^1], 1, Ones(n - 1), Range(0, n - 1));
            using var step = graph.Run([ids[^1]], 1, Ones(n), [n - 1], prefill.Presents);
            Assert.Equal(n, step.Presents[0].GetTensorTypeAndShape().Shape[2]);
            AssertFigures(step, 0, 0, golden.Prefill[p], n - 1, golden.ProbeIds, $"{file} prompt {p} decode step");
        }
    }

    [Theory]
    [MemberData(nameof(Graphs))]
    public void The_goldens_padded_batch_and_decode_step_match_on_the_padding_side_the_golden_names(string fixture, string file, string goldenFile)
    {
        using var graph = new RawDecoder(fixture, file);
        string path = Path.Combine(Fixtures.Folder(fixture), goldenFile);
        var golden = Golden.Load(path);
        Assert.Equal(fixture == "tiny-llama-builder" ? "right" : "left", PaddingSide(path));
        var batch = golden.PaddedBatch;
        int rows = batch.InputIds.Length, width = batch.InputIds[0].Length;
        using var prefill = graph.Run(batch.InputIds.SelectMany(r => r).ToArray(), rows, batch.AttentionMask.SelectMany(r => r).ToArray(),
            batch.PositionIds.SelectMany(r => r).ToArray());
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < width; c++)
                if (batch.AttentionMask[r][c] == 1)
                    AssertFigures(prefill, r, c, batch.Rows[r], c, golden.ProbeIds, $"{file} padded row {r} column {c}");
        var decode = golden.DecodeStep;
        using var step = graph.Run(decode.InputIds.SelectMany(r => r).ToArray(), rows, decode.AttentionMask.SelectMany(r => r).ToArray(),
            decode.PositionIds.SelectMany(r => r).ToArray(), prefill.Presents);
        for (int r = 0; r < rows; r++)
            AssertFigures(step, r, 0, decode.Rows[r], 0, golden.ProbeIds, $"{file} decode step row {r}");
    }

    [Fact]
    public void Left_padding_moves_the_builder_graphs_rotary_positions_so_padded_rows_no_longer_match_torch()
    {
        // GroupQueryAttention numbers prompt tokens 0..S-1 in every row and masks only causally, so a
        // left-padded row sees its pads and starts late: the reason the builder golden is right-padded.
        using var graph = new RawDecoder("tiny-llama-builder", "model.onnx");
        var golden = Fixtures.Golden("tiny-llama-builder");
        int longest = golden.Prompts.Max(p => p.Ids.Length);
        int shortPrompt = Array.FindIndex(golden.Prompts, p => p.Ids.Length < longest);
        var ids = golden.Prompts[shortPrompt].Ids.Select(i => (long)i).ToArray();
        int pad = longest - ids.Length;
        long[] leftPadded = [.. Enumerable.Repeat(2L, pad), .. ids];
        long[] mask = [.. Enumerable.Repeat(0L, pad), .. Ones(ids.Length)];
        using var step = graph.Run(leftPadded, 1, mask, [.. Enumerable.Repeat(0L, pad), .. Range(0, ids.Length)]);
        var values = step.Logits(0, longest - 1);
        double expected = golden.Prefill[shortPrompt].Logsumexp[ids.Length - 1];
        Assert.True(Math.Abs(LogSumExp(values) - expected) > 1e-2,
            $"left padding gave logsumexp {LogSumExp(values)}, torch's for the unpadded prompt is {expected}");
    }

    [Fact]
    public void The_builder_graph_runs_with_past_and_present_bound_to_one_context_length_buffer()
    {
        // genai_config.json's past_present_share_buffer: each layer's past and present are one
        // [batch, kv heads, context_length, head size] buffer that GroupQueryAttention updates in place.
        using var graph = new RawDecoder("tiny-llama-builder", "model.onnx");
        var golden = Fixtures.Golden("tiny-llama-builder");
        int contextLength = graph.ContextLength;
        var prompt = golden.Prompts.MaxBy(p => p.Ids.Length)!;
        int p = Array.IndexOf(golden.Prompts, prompt), n = prompt.Ids.Length;
        var ids = prompt.Ids.Select(i => (long)i).ToArray();
        var buffers = Enumerable.Range(0, graph.CacheNames.Count)
            .Select(_ => OrtValue.CreateTensorValueFromMemory(new float[graph.KeyValueHeads * contextLength * graph.HeadSize],
                [1, graph.KeyValueHeads, contextLength, graph.HeadSize]))
            .ToArray();
        try
        {
            var prefill = graph.RunShared(ids[..^1], Ones(n - 1), buffers);
            for (int position = 0; position < n - 1; position++)
                AssertLogits(prefill, position, golden.Prefill[p], position, golden.ProbeIds, $"shared-buffer prefill position {position}");
            var decode = graph.RunShared([ids[^1]], Ones(n), buffers);
            AssertLogits(decode, 0, golden.Prefill[p], n - 1, golden.ProbeIds, "shared-buffer decode step");
        }
        finally
        {
            foreach (var buffer in buffers) buffer.Dispose();
        }
    }

    [Fact]
    public void The_builder_graph_has_the_builders_inputs_and_outputs_and_no_position_ids()
    {
        using var graph = new RawDecoder("tiny-llama-builder", "model.onnx");
        var session = graph.Session;
        Assert.Equal(["input_ids", "attention_mask", .. graph.CacheNames.Select(n => n.Past)], session.InputNames);
        Assert.Equal(["logits", .. graph.CacheNames.Select(n => n.Present)], session.OutputNames);
        Assert.Equal(TensorElementType.Int64, session.InputMetadata["attention_mask"].ElementDataType);
        Assert.Equal(["batch_size", "", "past_sequence_length", "kv_cache_dim"], session.InputMetadata["past_key_values.0.key"].SymbolicDimensions);
        Assert.Equal(["batch_size", "", "total_sequence_length", "kv_cache_dim"], session.OutputMetadata["present.0.key"].SymbolicDimensions);
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.Folder("tiny-llama-builder"), "genai_config.json")));
        Assert.True(config.RootElement.GetProperty("search").GetProperty("past_present_share_buffer").GetBoolean());
    }

    [Fact]
    public void The_onnx_community_graphs_have_optimums_inputs_and_outputs()
    {
        foreach (var file in new[] { "onnx/model.onnx", "onnx/model_q4.onnx" })
        {
            using var graph = new RawDecoder("tiny-onnx-community", file);
            var session = graph.Session;
            Assert.Equal(["input_ids", "attention_mask", "position_ids", .. graph.CacheNames.Select(n => n.Past)], session.InputNames);
            Assert.Equal(["logits", .. graph.CacheNames.Select(n => n.Present)], session.OutputNames);
            Assert.Equal(["batch_size", "past_sequence_length + sequence_length"], session.InputMetadata["attention_mask"].SymbolicDimensions);
            Assert.Equal([-1, 2, -1, 16], session.InputMetadata["past_key_values.1.value"].Dimensions);
        }
    }

    private static long[] Ones(int count) => Enumerable.Repeat(1L, count).ToArray();

    private static long[] Range(int start, int count) => Enumerable.Range(start, count).Select(i => (long)i).ToArray();

    private static string? PaddingSide(string goldenPath)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(goldenPath));
        return document.RootElement.GetProperty("padding_side").GetString();
    }

    private static void AssertFigures(RawDecoder.Step step, int row, int position, GoldenFigures golden, int goldenPosition, int[] probeIds, string where) =>
        AssertValues(step.Logits(row, position), golden, goldenPosition, probeIds, where);

    private static void AssertLogits(float[][] logits, int position, GoldenFigures golden, int goldenPosition, int[] probeIds, string where) =>
        AssertValues(logits[position], golden, goldenPosition, probeIds, where);

    private static void AssertValues(float[] values, GoldenFigures golden, int goldenPosition, int[] probeIds, string where)
    {
        for (int k = 0; k < probeIds.Length; k++)
            Tolerance.Close(golden.Probe[goldenPosition][k], values[probeIds[k]], $"{where} logit[{probeIds[k]}]");
        Tolerance.Close(golden.Logsumexp[goldenPosition], LogSumExp(values), $"{where} logsumexp");
        Assert.Equal(golden.Argmax[goldenPosition], Array.IndexOf(values, values.Max()));
    }

    private static double LogSumExp(float[] values)
    {
        double max = values.Max(), sum = 0;
        foreach (float v in values) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }

    /// <summary>One fixture graph in a plain ONNX Runtime session, fed the way its layout expects.</summary>
    private sealed class RawDecoder : IDisposable
    {
        public RawDecoder(string fixture, string file)
        {
            string folder = Fixtures.Folder(fixture);
            using var options = new SessionOptions { IntraOpNumThreads = 1 };
            Session = new InferenceSession(Path.Combine(folder, file), options);
            // Shapes come from the layout's own configuration file, as an engine would read them.
            if (File.Exists(Path.Combine(folder, "genai_config.json")))
            {
                using var genai = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "genai_config.json")));
                var model = genai.RootElement.GetProperty("model");
                var decoder = model.GetProperty("decoder");
                (Layers, KeyValueHeads, HeadSize, ContextLength) = (decoder.GetProperty("num_hidden_layers").GetInt32(),
                    decoder.GetProperty("num_key_value_heads").GetInt32(), decoder.GetProperty("head_size").GetInt32(), model.GetProperty("context_length").GetInt32());
            }
            else
            {
                using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "config.json")));
                var root = config.RootElement;
                (Layers, KeyValueHeads, HeadSize, ContextLength) = (root.GetProperty("num_hidden_layers").GetInt32(),
                    root.GetProperty("num_key_value_heads").GetInt32(), root.GetProperty("head_dim").GetInt32(), root.GetProperty("max_position_embeddings").GetInt32());
            }
            CacheNames = Enumerable.Range(0, Layers)
                .SelectMany(i => new[] { ($"past_key_values.{i}.key", $"present.{i}.key"), ($"past_key_values.{i}.value", $"present.{i}.value") })
                .ToList();
            HasPositionIds = Session.InputNames.Contains("position_ids");
        }

        public InferenceSession Session { get; }
        public int Layers { get; }
        public int KeyValueHeads { get; }
        public int HeadSize { get; }
        public int ContextLength { get; }
        public bool HasPositionIds { get; }
        public List<(string Past, string Present)> CacheNames { get; }

        /// <summary>One run from <paramref name="past"/> (an earlier step's presents) or, when null, an empty cache.</summary>
        public Step Run(long[] ids, int batch, long[] mask, long[] positions, OrtValue[]? past = null)
        {
            int sequence = ids.Length / batch;
            var names = new List<string> { "input_ids", "attention_mask" };
            var values = new List<OrtValue>
            {
                OrtValue.CreateTensorValueFromMemory(ids, [batch, sequence]),
                OrtValue.CreateTensorValueFromMemory(mask, [batch, mask.Length / batch]),
            };
            if (HasPositionIds)
            {
                names.Add("position_ids");
                values.Add(OrtValue.CreateTensorValueFromMemory(positions, [batch, sequence]));
            }
            // Empty [batch, kv heads, 0, head size] pasts: one graph serves prefill and decode.
            var owned = new List<OrtValue>(values);
            var pasts = past ?? CacheNames.Select(_ => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [batch, KeyValueHeads, 0, HeadSize])).ToArray();
            if (past is null) owned.AddRange(pasts);
            names.AddRange(CacheNames.Select(n => n.Past));
            values.AddRange(pasts);
            using var runOptions = new RunOptions();
            try
            {
                return new Step(Session.Run(runOptions, names, values, Session.OutputNames));
            }
            finally
            {
                foreach (var value in owned) value.Dispose();
            }
        }

        /// <summary>One run with each layer's past and present bound to the same buffer; returns logits per position of row 0.</summary>
        public float[][] RunShared(long[] ids, long[] mask, OrtValue[] buffers)
        {
            using var binding = Session.CreateIoBinding();
            using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [1, ids.Length]);
            using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [1, mask.Length]);
            binding.BindInput("input_ids", idsValue);
            binding.BindInput("attention_mask", maskValue);
            for (int i = 0; i < CacheNames.Count; i++)
            {
                binding.BindInput(CacheNames[i].Past, buffers[i]);
                binding.BindOutput(CacheNames[i].Present, buffers[i]);
            }
            binding.BindOutputToDevice("logits", OrtMemoryInfo.DefaultInstance);
            using var runOptions = new RunOptions();
            Session.RunWithBinding(runOptions, binding);
            using var outputs = binding.GetOutputValues();
            // Bound outputs come back in binding order, not graph order.
            var logits = outputs.ElementAt(Array.IndexOf(binding.GetOutputNames(), "logits"));
            var shape = logits.GetTensorTypeAndShape().Shape;
            var data = logits.GetTensorDataAsSpan<float>().ToArray();
            int vocabulary = (int)shape[2];
            return Enumerable.Range(0, (int)shape[1]).Select(s => data.AsSpan(s * vocabulary, vocabulary).ToArray()).ToArray();
        }

        public void Dispose() => Session.Dispose();

        public sealed class Step : IDisposable
        {
            private readonly IDisposableReadOnlyCollection<OrtValue> _outputs;

            public Step(IDisposableReadOnlyCollection<OrtValue> outputs)
            {
                _outputs = outputs;
                Presents = outputs.Skip(1).ToArray();
            }

            /// <summary>The presents, in cache order, owned by this step.</summary>
            public OrtValue[] Presents { get; }

            public float[] Logits(int row, int position)
            {
                var logits = _outputs.First();
                var shape = logits.GetTensorTypeAndShape().Shape;
                int sequence = (int)shape[1], vocabulary = (int)shape[2];
                return logits.GetTensorDataAsSpan<float>().Slice((row * sequence + position) * vocabulary, vocabulary).ToArray();
            }

            public void Dispose() => _outputs.Dispose();
        }
    }
}
