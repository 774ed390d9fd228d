using MLNetGpt.Models.Onnx.Protos;
using static MLNetGpt.Training.OnnxGraphBuilder;
using DataType = MLNetGpt.Models.Onnx.Protos.TensorProto.Types.DataType;

namespace MLNetGpt.Training;

/// <summary>A LoRA pair on (a slice of the outputs of) one projection: x·W + Scale·(x·A)·B, A [in, rank], B [rank, width].</summary>
internal sealed record LoraFactor(int Layer, string Role, LinearWeight Base, int OutOffset, int Width, int Rank, float Scale, string AName, string BName);

/// <summary>What <see cref="TrainingGraphEmitter"/> writes.</summary>
internal sealed class EmitterSettings
{
    public required DecoderLayout Layout { get; init; }

    /// <summary>Emit the backward pass and gradient outputs (false: the forward pass and loss only).</summary>
    public required bool Backward { get; init; }

    /// <summary>Names of the source weights that learn (full fine-tuning); the others are frozen.</summary>
    public required IReadOnlySet<string> TrainableWeights { get; init; }

    public IReadOnlyList<LoraFactor> Lora { get; init; } = [];

    /// <summary>Embedding rows appended to the token table (a graph input [rows, width]), trainable.</summary>
    public int ExtensionRows { get; init; }

    /// <summary>Whether the graph adds the <see cref="TrainingGraphEmitter.OutputOffset"/> input to the inner logits.</summary>
    public bool HasOutputOffset { get; init; }
}

/// <summary>
/// Writes the training graph of a <see cref="DecoderLayout"/>: the forward pass over tokens flattened to
/// [batch·sequence, width], a next-token cross-entropy (Gemm over the counted rows only, LogSoftmax,
/// GatherElements: ops with CUDA kernels), and a backward pass derived by hand op by op. Each forward op
/// records how to send gradients back to its inputs; the records run in reverse, summing the gradients of
/// values read twice (the residual stream, a tied embedding). Inputs that need no gradient (frozen weights, and
/// everything below the lowest trainable tensor) get no gradient nodes.
/// </summary>
internal sealed class TrainingGraphEmitter
{
    public const string InputIds = "input_ids";
    public const string PositionIds = "position_ids";
    public const string AttentionBias = "attention_bias";
    public const string RopeCos = "rope_cos";
    public const string RopeSin = "rope_sin";
    public const string LossRows = "loss_rows";
    public const string LossTargets = "loss_targets";
    public const string OutputOffset = "output_offset";
    public const string TokenLoss = "token_nll";
    public const string ExtensionWeight = "vocabulary_extension.weight";
    public const string ExtensionBias = "vocabulary_extension.bias";
    public const string ExtensionHead = "vocabulary_extension.lm_head";

    public static string GradientName(string tensor) => "grad:" + tensor;

    private sealed class Var(string name, bool needsGrad)
    {
        public string Name { get; } = name;
        public bool NeedsGrad { get; } = needsGrad;
        public List<string> Grads { get; } = [];
    }

    private readonly EmitterSettings _s;
    private readonly DecoderLayout _layout;
    private readonly OnnxGraphBuilder _g = new("mlnetgpt_training");
    private readonly List<Action> _backward = [];
    private readonly Dictionary<string, Var> _weights = new(StringComparer.Ordinal);
    private readonly List<Var> _trainable = [];
    private readonly Dictionary<(int, string), LoraFactor> _lora;
    private string _idsShape = "";

    private TrainingGraphEmitter(EmitterSettings settings)
    {
        _s = settings;
        _layout = settings.Layout;
        _lora = settings.Lora.ToDictionary(f => (f.Layer, f.Role));
    }

    public static ModelProto Emit(EmitterSettings settings) => new TrainingGraphEmitter(settings).Build();

    // ---- tape ----

    private void AddGrad(Var v, string? gradient)
    {
        if (v.NeedsGrad && gradient is not null) v.Grads.Add(gradient);
    }

    private string? Grad(Var v) => v.Grads.Count switch
    {
        0 => null,
        1 => v.Grads[0],
        _ => _g.Node("Sum", "sum", v.Grads),
    };

    private Var Weight(StoredWeight w) => WeightInput(w.Name, w.Shape, _s.TrainableWeights.Contains(w.Name));

    private Var WeightInput(string name, int[] shape, bool trainable)
    {
        if (_weights.TryGetValue(name, out var existing)) return existing;
        _g.Input(name, DataType.Float, shape.Cast<object>().ToArray());
        var v = new Var(name, trainable && _s.Backward);
        _weights[name] = v;
        if (v.NeedsGrad) _trainable.Add(v);
        return v;
    }

    // ---- small helpers ----

    private string Op(string op, string hint, params string[] inputs) => _g.Node(op, hint, inputs);

    private string Gemm(string a, string b, string? c = null, bool transA = false, bool transB = false, float alpha = 1f)
    {
        var attributes = new List<AttributeProto>();
        if (transA) attributes.Add(Int("transA", 1));
        if (transB) attributes.Add(Int("transB", 1));
        if (alpha != 1f) attributes.Add(Float("alpha", alpha));
        return _g.Node("Gemm", "gemm", c is null ? [a, b] : [a, b, c], attributes.ToArray());
    }

    private string SumRows(string x) => _g.Node("ReduceSum", "sum_rows", [x, _g.Int64s(0)], Int("keepdims", 0));

    private string MeanLast(string x) => _g.Node("ReduceMean", "mean", [x], Ints("axes", -1), Int("keepdims", 1));

    private string Transpose(string x, params long[] perm) => _g.Node("Transpose", "transpose", [x], Ints("perm", perm));

    private string Reshape(string x, string shape) => Op("Reshape", "reshape", x, shape);

    // ---- ops with their backward ----

    private Var Linear(Var x, LinearWeight lw)
    {
        var w = Weight(lw.Weight);
        var bias = lw.Bias is null ? null : Weight(lw.Bias);
        string y = Gemm(x.Name, w.Name, bias?.Name, transB: lw.OutByIn);
        var result = new Var(y, x.NeedsGrad || w.NeedsGrad || bias is { NeedsGrad: true });
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy) return;
            if (bias is { NeedsGrad: true }) AddGrad(bias, SumRows(dy));
            if (w.NeedsGrad) AddGrad(w, lw.OutByIn ? Gemm(dy, x.Name, transA: true) : Gemm(x.Name, dy, transA: true));
            if (x.NeedsGrad) AddGrad(x, lw.OutByIn ? Gemm(dy, w.Name) : Gemm(dy, w.Name, transB: true));
        });
        return result;
    }

    private Var WithLora(Var x, Var y, int layer, string role)
    {
        if (!_lora.TryGetValue((layer, role), out var f)) return y;
        var a = WeightInput(f.AName, [f.Base.In, f.Rank], trainable: true);
        var b = WeightInput(f.BName, [f.Rank, f.Width], trainable: true);
        string t = Gemm(x.Name, a.Name);
        string u = Gemm(t, b.Name, alpha: f.Scale);
        var delta = new Var(u, a.NeedsGrad || b.NeedsGrad || x.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(delta) is not { } du) return;
            AddGrad(b, Gemm(t, du, transA: true, alpha: f.Scale));
            string dt = Gemm(du, b.Name, transB: true, alpha: f.Scale);
            AddGrad(a, Gemm(x.Name, dt, transA: true));
            if (x.NeedsGrad) AddGrad(x, Gemm(dt, a.Name, transB: true));
        });
        return Add(y, delta);
    }

    private Var Add(Var a, Var b)
    {
        var result = new Var(Op("Add", "add", a.Name, b.Name), a.NeedsGrad || b.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy) return;
            AddGrad(a, dy);
            AddGrad(b, dy);
        });
        return result;
    }

    private Var[] Split(Var x, int[] widths)
    {
        var outputs = _g.NodeN("Split", "split", [x.Name, _g.Int64s(widths.Select(w => (long)w).ToArray())], widths.Length, Int("axis", 1));
        var parts = outputs.Select(o => new Var(o, x.NeedsGrad)).ToArray();
        _backward.Add(() =>
        {
            if (!x.NeedsGrad) return;
            var grads = parts.Select(Grad).ToArray();
            if (grads.All(g => g is null)) return;
            var pieces = new string[parts.Length];
            for (int i = 0; i < parts.Length; i++)
                pieces[i] = grads[i] ?? _g.Node("ConstantOfShape", "zeros", [Op("Shape", "shape", parts[i].Name)]);
            AddGrad(x, _g.Node("Concat", "concat", pieces, Int("axis", 1)));
        });
        return parts;
    }

    private Var LayerNorm(Var x, NormWeights weights)
    {
        var gamma = Weight(weights.Scale);
        var beta = Weight(weights.Bias!);
        var outputs = _g.NodeWithOutputs("LayerNormalization", "ln", [x.Name, gamma.Name, beta.Name],
            [_g.Fresh("ln"), _g.Fresh("ln_mean"), _g.Fresh("ln_invstd")], Int("axis", -1), Float("epsilon", _layout.NormEpsilon), Int("stash_type", 1));
        var result = new Var(outputs[0], x.NeedsGrad || gamma.NeedsGrad || beta.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy) return;
            string xhat = Op("Mul", "xhat", Op("Sub", "centered", x.Name, outputs[1]), outputs[2]);
            if (beta.NeedsGrad) AddGrad(beta, SumRows(dy));
            if (gamma.NeedsGrad) AddGrad(gamma, SumRows(Op("Mul", "dy_xhat", dy, xhat)));
            if (!x.NeedsGrad) return;
            string g = Op("Mul", "dxhat", dy, gamma.Name);
            string m1 = MeanLast(g);
            string m2 = MeanLast(Op("Mul", "dxhat_xhat", g, xhat));
            string inner = Op("Sub", "ln_d", Op("Sub", "ln_d", g, m1), Op("Mul", "ln_d", xhat, m2));
            AddGrad(x, Op("Mul", "ln_dx", inner, outputs[2]));
        });
        return result;
    }

    private Var RmsNorm(Var x, NormWeights weights)
    {
        var w = Weight(weights.Scale);
        string meanSquare = MeanLast(Op("Mul", "sq", x.Name, x.Name));
        string inv = Op("Reciprocal", "rms_inv", Op("Sqrt", "rms", Op("Add", "rms_eps", meanSquare, _g.Scalar(_layout.NormEpsilon))));
        string xhat = Op("Mul", "xhat", x.Name, inv);
        var result = new Var(Op("Mul", "rmsnorm", xhat, w.Name), x.NeedsGrad || w.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy) return;
            if (w.NeedsGrad) AddGrad(w, SumRows(Op("Mul", "dy_xhat", dy, xhat)));
            if (!x.NeedsGrad) return;
            string g = Op("Mul", "dxhat", dy, w.Name);
            string m = MeanLast(Op("Mul", "dxhat_xhat", g, xhat));
            AddGrad(x, Op("Mul", "rms_dx", Op("Sub", "rms_d", g, Op("Mul", "rms_d", xhat, m)), inv));
        });
        return result;
    }

    private const float GeluKappa = 0.044715f;
    private static readonly float GeluBeta = (float)Math.Sqrt(2.0 / Math.PI);

    private Var GeluTanh(Var x)
    {
        // 0.5·x·(1 + tanh(u)) with u = β·(x + κx³) is x·σ(2u): 6 passes over the MLP's activations instead of 9, and
        // a backward of 7 instead of 10 (ONNX Runtime runs each elementwise op as its own pass over memory).
        string x2 = Op("Mul", "x2", x.Name, x.Name);
        string twiceU = Op("Mul", "gelu_2u", x.Name, Op("Add", "gelu_2u", Op("Mul", "gelu_2u", _g.Scalar(2f * GeluBeta * GeluKappa), x2), _g.Scalar(2f * GeluBeta)));
        string s = Op("Sigmoid", "gelu_sigmoid", twiceU);
        string y = Op("Mul", "gelu", x.Name, s);
        var result = new Var(y, x.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy || !x.NeedsGrad) return;
            // d/dx x·σ(v) = σ + x·σ·(1 − σ)·dv/dx, dv/dx = 2β(1 + 3κx²); x·σ·(1 − σ) = y − y·σ.
            string slope = Op("Add", "gelu_dv", Op("Mul", "gelu_dv", _g.Scalar(6f * GeluBeta * GeluKappa), x2), _g.Scalar(2f * GeluBeta));
            string curvature = Op("Mul", "gelu_d", Op("Sub", "gelu_d", y, Op("Mul", "gelu_d", y, s)), slope);
            AddGrad(x, Op("Mul", "gelu_dx", dy, Op("Add", "gelu_d", curvature, s)));
        });
        return result;
    }

    private Var SwiGlu(Var gate, Var up)
    {
        string s = Op("Sigmoid", "sigmoid", gate.Name);
        string activated = Op("Mul", "silu", gate.Name, s);
        var result = new Var(Op("Mul", "swiglu", activated, up.Name), gate.NeedsGrad || up.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy) return;
            if (up.NeedsGrad) AddGrad(up, Op("Mul", "d_up", dy, activated));
            if (!gate.NeedsGrad) return;
            // d silu(g)/dg = s·(1 + g·(1 - s))
            string slope = Op("Mul", "silu_d", s, Op("Add", "silu_d", _g.Scalar(1f), Op("Mul", "silu_d", gate.Name, Op("Sub", "silu_d", _g.Scalar(1f), s))));
            AddGrad(gate, Op("Mul", "d_gate", Op("Mul", "d_gate", dy, up.Name), slope));
        });
        return result;
    }

    /// <summary>Rotates [batch, heads, seq, head_size] by the position tables (rotate-half layout).</summary>
    private Var Rope(Var x)
    {
        int half = _layout.HeadSize / 2;
        string halves = _g.Int64s(half, half);
        var parts = _g.NodeN("Split", "rope_split", [x.Name, halves], 2, Int("axis", -1));
        string y1 = Op("Sub", "rope_y1", Op("Mul", "rope", parts[0], RopeCos), Op("Mul", "rope", parts[1], RopeSin));
        string y2 = Op("Add", "rope_y2", Op("Mul", "rope", parts[1], RopeCos), Op("Mul", "rope", parts[0], RopeSin));
        var result = new Var(_g.Node("Concat", "rope", [y1, y2], Int("axis", -1)), x.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy || !x.NeedsGrad) return;
            var d = _g.NodeN("Split", "rope_dsplit", [dy, halves], 2, Int("axis", -1));
            string dx1 = Op("Add", "rope_dx1", Op("Mul", "rope_d", d[0], RopeCos), Op("Mul", "rope_d", d[1], RopeSin));
            string dx2 = Op("Sub", "rope_dx2", Op("Mul", "rope_d", d[1], RopeCos), Op("Mul", "rope_d", d[0], RopeSin));
            AddGrad(x, _g.Node("Concat", "rope_dx", [dx1, dx2], Int("axis", -1)));
        });
        return result;
    }

    /// <summary>[tokens, heads·head_size] → [batch, heads, seq, head_size] and back, as differentiable reshapes.</summary>
    private Var ToHeads(Var x, int heads)
    {
        string shape = _g.Node("Concat", "heads_shape", [_idsShape, _g.Int64s(heads, _layout.HeadSize)], Int("axis", 0));
        var result = new Var(Transpose(Reshape(x.Name, shape), 0, 2, 1, 3), x.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy || !x.NeedsGrad) return;
            AddGrad(x, Reshape(Transpose(dy, 0, 2, 1, 3), _g.Int64s(-1, heads * _layout.HeadSize)));
        });
        return result;
    }

    private Var FromHeads(Var x, int heads)
    {
        var result = new Var(Reshape(Transpose(x.Name, 0, 2, 1, 3), _g.Int64s(-1, heads * _layout.HeadSize)), x.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy || !x.NeedsGrad) return;
            string shape = _g.Node("Concat", "heads_shape", [_idsShape, _g.Int64s(heads, _layout.HeadSize)], Int("axis", 0));
            AddGrad(x, Transpose(Reshape(dy, shape), 0, 2, 1, 3));
        });
        return result;
    }

    /// <summary>Repeats each key/value head for its group of query heads ([b, kv, s, d] → [b, heads, s, d]).</summary>
    private Var RepeatHeads(Var x)
    {
        int groups = _layout.Heads / _layout.KeyValueHeads;
        if (groups == 1) return x;
        string expanded = Op("Expand", "kv_expand", Op("Unsqueeze", "kv_unsq", x.Name, _g.Int64s(2)), _g.Int64s(1, 1, groups, 1, 1));
        var result = new Var(Reshape(expanded, _g.Int64s(0, _layout.Heads, -1, _layout.HeadSize)), x.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy || !x.NeedsGrad) return;
            string grouped = Reshape(dy, _g.Int64s(0, _layout.KeyValueHeads, groups, -1, _layout.HeadSize));
            AddGrad(x, _g.Node("ReduceSum", "kv_sum", [grouped, _g.Int64s(2)], Int("keepdims", 0)));
        });
        return result;
    }

    /// <summary>Causal softmax attention of [b, heads, s, d] queries, keys and values.</summary>
    private Var Attention(Var q, Var k, Var v)
    {
        string scale = _g.Scalar((float)(1.0 / Math.Sqrt(_layout.HeadSize)));
        string scores = Op("Mul", "scores", Op("MatMul", "qk", q.Name, Transpose(k.Name, 0, 1, 3, 2)), scale);
        string p = _g.Node("Softmax", "attn", [Op("Add", "masked", scores, AttentionBias)], Int("axis", -1));
        var result = new Var(Op("MatMul", "attn_out", p, v.Name), q.NeedsGrad || k.NeedsGrad || v.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy) return;
            if (v.NeedsGrad) AddGrad(v, Op("MatMul", "dv", Transpose(p, 0, 1, 3, 2), dy));
            if (!q.NeedsGrad && !k.NeedsGrad) return;
            string dp = Op("MatMul", "dp", dy, Transpose(v.Name, 0, 1, 3, 2));
            string rowDot = _g.Node("ReduceSum", "dp_p", [Op("Mul", "dp_p", dp, p), _g.Int64s(-1)], Int("keepdims", 1));
            string ds = Op("Mul", "ds", Op("Mul", "ds", p, Op("Sub", "ds", dp, rowDot)), scale);
            if (q.NeedsGrad) AddGrad(q, Op("MatMul", "dq", ds, k.Name));
            if (k.NeedsGrad) AddGrad(k, Op("MatMul", "dk", Transpose(ds, 0, 1, 3, 2), q.Name));
        });
        return result;
    }

    /// <summary>Rows of a table gathered by <paramref name="ids"/>; the gradient scatter-adds into the table's gradient.</summary>
    private Var Embed(Var table, string ids, int rows)
    {
        var result = new Var(Op("Gather", "embed", table.Name, ids), table.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy || !table.NeedsGrad) return;
            // Scatter into the gradient the output layer already left (a tied table), else into zeros.
            string data;
            if (table.Grads.Count > 0)
            {
                data = Grad(table)!;
                table.Grads.Clear();
            }
            else
            {
                data = _g.Node("ConstantOfShape", "zeros", [_g.Int64s(rows, _layout.Hidden)]);
            }
            string indices = Op("Unsqueeze", "ids_col", ids, _g.Int64s(-1));
            table.Grads.Add(_g.Node("ScatterND", "embed_grad", [data, indices, dy], String("reduction", "add")));
        });
        return result;
    }

    /// <summary>Rows of <paramref name="head"/> then <paramref name="extension"/>: the token table with appended rows.</summary>
    private Var ConcatRows(Var head, Var extension, int headRows, int extensionRows)
    {
        var result = new Var(_g.Node("Concat", "table", [head.Name, extension.Name], Int("axis", 0)), head.NeedsGrad || extension.NeedsGrad);
        _backward.Add(() =>
        {
            if (Grad(result) is not { } dy) return;
            if (head.NeedsGrad) AddGrad(head, _g.Node("Slice", "table_head", [dy, _g.Int64s(0), _g.Int64s(headRows), _g.Int64s(0)]));
            if (extension.NeedsGrad) AddGrad(extension, _g.Node("Slice", "table_ext", [dy, _g.Int64s(headRows), _g.Int64s(headRows + extensionRows), _g.Int64s(0)]));
        });
        return result;
    }

    // ---- the model ----

    private ModelProto Build()
    {
        var l = _layout;
        _g.Input(InputIds, DataType.Int64, "batch", "sequence");
        _g.Input(AttentionBias, DataType.Float, "sequence", "sequence");
        _g.Input(LossRows, DataType.Int64, "counted");
        _g.Input(LossTargets, DataType.Int64, "counted", 1);
        _idsShape = Op("Shape", "ids_shape", InputIds);
        string ids = Reshape(InputIds, _g.Int64s(-1));
        int rows = l.InnerVocabulary + _s.ExtensionRows;

        var table = Weight(l.TokenEmbedding);
        Var fullTable = table;
        if (_s.ExtensionRows > 0)
        {
            var extension = WeightInput(ExtensionWeight, [_s.ExtensionRows, l.Hidden], trainable: true);
            fullTable = ConcatRows(table, extension, l.InnerVocabulary, _s.ExtensionRows);
        }
        var x = Embed(fullTable, ids, rows);
        if (l.Family == DecoderFamily.Gpt2)
        {
            _g.Input(PositionIds, DataType.Int64, "tokens");
            var positions = Weight(l.PositionEmbedding!);
            x = Add(x, Embed(positions, PositionIds, l.MaxPositions));
        }
        else
        {
            _g.Input(RopeCos, DataType.Float, "sequence", l.HeadSize / 2);
            _g.Input(RopeSin, DataType.Float, "sequence", l.HeadSize / 2);
        }

        for (int i = 0; i < l.Layers; i++)
        {
            var b = l.Blocks[i];
            var h = Norm(x, b.AttentionNorm);
            Var q, k, v;
            if (b.QueryKeyValue is { } qkv)
            {
                int kvWidth = l.KeyValueHeads * l.HeadSize;
                var parts = Split(Linear(h, qkv), [l.Heads * l.HeadSize, kvWidth, kvWidth]);
                (q, k, v) = (parts[0], parts[1], parts[2]);
            }
            else
            {
                (q, k, v) = (Linear(h, b.Query!), Linear(h, b.Key!), Linear(h, b.Value!));
            }
            q = WithLora(h, q, i, "q");
            k = WithLora(h, k, i, "k");
            v = WithLora(h, v, i, "v");
            var q4 = ToHeads(q, l.Heads);
            var k4 = ToHeads(k, l.KeyValueHeads);
            var v4 = ToHeads(v, l.KeyValueHeads);
            if (l.Family == DecoderFamily.Llama)
            {
                q4 = Rope(q4);
                k4 = Rope(k4);
            }
            var attended = FromHeads(Attention(q4, RepeatHeads(k4), RepeatHeads(v4)), l.Heads);
            x = Add(x, WithLora(attended, Linear(attended, b.Output), i, "o"));

            var h2 = Norm(x, b.MlpNorm);
            Var hidden;
            if (l.Family == DecoderFamily.Gpt2)
            {
                hidden = GeluTanh(WithLora(h2, Linear(h2, b.Up), i, "up"));
            }
            else
            {
                var gate = WithLora(h2, Linear(h2, b.Gate!), i, "gate");
                var up = WithLora(h2, Linear(h2, b.Up), i, "up");
                hidden = SwiGlu(gate, up);
            }
            x = Add(x, WithLora(hidden, Linear(hidden, b.Down), i, "down"));
        }
        var final = Norm(x, l.FinalNorm);
        Loss(final, fullTable, rows);

        if (_s.Backward)
        {
            for (int i = _backward.Count - 1; i >= 0; i--) _backward[i]();
            foreach (var w in _trainable)
            {
                string gradient = Grad(w) ?? _g.Node("ConstantOfShape", "zeros", [Op("Shape", "shape", w.Name)]);
                _g.RenameOutput(gradient, GradientName(w.Name));
                _g.Output(GradientName(w.Name), DataType.Float, InputDims(w.Name));
            }
        }
        _g.RemoveUnused();
        return _g.ToModel();
    }

    private object[] InputDims(string name) =>
        _g.Graph.Input.First(i => i.Name == name).Type.TensorType.Shape.Dim.Select(d => (object)d.DimValue).ToArray();

    private Var Norm(Var x, NormWeights weights) => _layout.Family == DecoderFamily.Gpt2 ? LayerNorm(x, weights) : RmsNorm(x, weights);

    /// <summary>Next-token cross-entropy over the counted rows: −log_softmax(h·Wᵀ + offset)[target].</summary>
    private void Loss(Var hidden, Var table, int rows)
    {
        var l = _layout;
        string counted = Op("Gather", "counted", hidden.Name, LossRows);
        Var headWeight;
        LinearWeight? head = l.LmHead;
        string logits;
        if (head is null)
        {
            headWeight = table;
            logits = Gemm(counted, table.Name, transB: true);
        }
        else
        {
            headWeight = Weight(head.Weight);
            if (_s.ExtensionRows > 0)
            {
                var extension = WeightInput(ExtensionHead, [_s.ExtensionRows, l.Hidden], trainable: true);
                headWeight = ConcatRows(headWeight, extension, l.InnerVocabulary, _s.ExtensionRows);
            }
            logits = Gemm(counted, headWeight.Name, head.Bias is null ? null : Weight(head.Bias).Name, transB: head.OutByIn);
        }
        Var? offsetBias = null;
        if (_s.HasOutputOffset)
        {
            _g.Input(OutputOffset, DataType.Float, l.InnerVocabulary);
            string offset = OutputOffset;
            if (_s.ExtensionRows > 0)
            {
                offsetBias = WeightInput(ExtensionBias, [_s.ExtensionRows], trainable: true);
                offset = _g.Node("Concat", "offset", [OutputOffset, offsetBias.Name], Int("axis", 0));
            }
            logits = Op("Add", "logits", logits, offset);
        }
        string logp = _g.Node("LogSoftmax", "logp", [logits], Int("axis", 1));
        string picked = _g.Node("GatherElements", "picked", [logp, LossTargets], Int("axis", 1));
        _g.NodeWithOutputs("Neg", "nll", [picked], [_g.Reserve(TokenLoss)]);
        _g.Output(TokenLoss, DataType.Float, "counted", 1);
        if (!_s.Backward) return;

        bool headTrains = headWeight.NeedsGrad || (head?.Bias is { } hb && Weight(hb).NeedsGrad);
        if (!headTrains && !hidden.NeedsGrad && offsetBias is null) return;
        _backward.Add(() =>
        {
            // d(sum of losses)/d logits = softmax - one_hot(target). Softmax of the logits rather than Exp of the
            // log-probabilities: ONNX Runtime's Softmax is vectorised, its Exp over [tokens, vocabulary] 5x slower.
            string probabilities = _g.Node("Softmax", "probs", [logits], Int("axis", 1));
            string update = Op("Sub", "p_target_minus_1", Op("Exp", "p_target", picked), _g.Scalar(1f));
            string dz = _g.Node("ScatterElements", "dlogits", [probabilities, LossTargets, update], Int("axis", 1));
            if (offsetBias is not null)
                AddGrad(offsetBias, _g.Node("Slice", "dbias_ext", [SumRows(dz), _g.Int64s(l.InnerVocabulary), _g.Int64s(rows), _g.Int64s(0)]));
            if (head?.Bias is { } headBias && Weight(headBias) is { NeedsGrad: true } biasVar) AddGrad(biasVar, SumRows(dz));
            bool outByIn = head?.OutByIn ?? true;
            if (headWeight.NeedsGrad) AddGrad(headWeight, outByIn ? Gemm(dz, counted, transA: true) : Gemm(counted, dz, transA: true));
            if (!hidden.NeedsGrad) return;
            string dSelected = outByIn ? Gemm(dz, headWeight.Name) : Gemm(dz, headWeight.Name, transB: true);
            string zeros = _g.Node("ConstantOfShape", "zeros", [Op("Shape", "shape", hidden.Name)]);
            string indices = Op("Unsqueeze", "rows_col", LossRows, _g.Int64s(-1));
            AddGrad(hidden, _g.Node("ScatterND", "dhidden", [zeros, indices, dSelected]));
        });
    }
}
