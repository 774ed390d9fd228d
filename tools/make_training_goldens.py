#!/usr/bin/env python3
"""Torch goldens for the training graph (src/MLNetGpt/Training): the loss, per-tensor gradient summaries and a
five-step AdamW trajectory for tiny GPT-2 and Llama fixtures and the default model, Full and LoRA.

    /usr/bin/python3 tools/make_training_goldens.py tests/Fixtures

Needs Debian's python3-torch (1.13) and python3-onnx. It also writes the fixture tiny-gpt2-hf: a GPT-2 with
Hugging Face's GPT2LMHeadModel weight names and Conv1D orientation ([in, out], x @ W + b, exported as Gemm), an
untied lm_head and the 419-id tokenizer of tiny-chatml.

Weights are read from each fixture's ONNX file with onnx's numpy_helper (float16 rounded exactly, MatMulNBits
dequantized here from the packed bytes), loaded into the model kit's torch modules (tools/gptkit.py: GPT, HfLlama)
and checked against the fixture's own logits before any golden is written.

Definitions (the training graph's contract):
  loss      the SUM over counted targets (target != -100) of -log p(target | prefix), where p is the
            inference graph's own softmax over its output ids (for the remapped vocabulary: the 50,257-way
            softmax of the remapped logits, so an unk target costs the shared row's probability / its count)
  gradients of that sum, in the layout the C# graph keeps each tensor: as the ONNX file stores it (torch Linear
            [out, in] where the file holds it so, [in, out] for Conv1D and constant-folded MatMul weights,
            [N, K] rows for MatMulNBits; a fused q|k|v weight as the rows/columns of q, k, v), named by the
            file's initializer (LoRA: <weight>[.q|.k|.v].lora_A [in, r] and .lora_B [r, width])
  LoRA      y = x W + (alpha / r) (x A) B on the chosen projections (a slice of a fused q|k|v)
  summary   sum, sum of |x|, L2 norm, and 12 sampled (flat index, value) pairs of the row-major tensor
  trajectory torch.optim.AdamW (lr, betas, eps; weight_decay on tensors of 2+ dimensions, 0 on vectors) on the
            MEAN loss over counted targets, 5 steps on the same batch: the loss before each step and the summary
            of every trained tensor after the last; LoRA starts from the stored A and B = 0 (PEFT's start)
"""
import json
import math
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gptkit  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

SAMPLES = 12
ADAMW = dict(lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
STEPS = 5
# The learning rate of the trajectories (a list so the default model's cases can lower it): at 1e-3 the pretrained
# default model memorises the one batch within five steps (mean loss 1.87 -> 0.14), a regime where float32 rounding
# differences of the gradients grow from step to step; 1e-4 is a fine-tuning rate for it.
LEARNING_RATE = [ADAMW["lr"]]


# ---- reading ONNX weights ----

def onnx_arrays(path):
    model = onnx.load(path)
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}, model


def dequantize_nbits(packed, scales, k, n, bits, block):
    """MatMulNBits' weight as rows [N, K]: (code - 2^(bits-1)) * scale, codes low nibble first (symmetric, no zero points)."""
    blocks = (k + block - 1) // block
    packed = packed.reshape(n, blocks, block * bits // 8)
    if bits == 4:
        codes = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(n, blocks, block)
    else:
        codes = packed
    w = (codes.astype(np.float32) - (1 << (bits - 1))) * scales.reshape(n, blocks, 1).astype(np.float32)
    return w.reshape(n, blocks * block)[:, :k]


def nbits_weights(model, arrays):
    """{packed initializer name: dequantized [N, K]} for every MatMulNBits of the graph."""
    result = {}
    for node in model.graph.node:
        if node.op_type != "MatMulNBits":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if len(node.input) > 3 and node.input[3]:
            raise RuntimeError("zero points are not expected in these fixtures")
        result[node.input[1]] = dequantize_nbits(arrays[node.input[1]], arrays[node.input[2]], attrs["K"], attrs["N"],
                                                 attrs.get("bits", 4), attrs["block_size"])
    return result


def t(a):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32)))


# ---- a Hugging Face-named GPT-2 (Conv1D weights [in, out]) ----

class Conv1D(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        shape = x.shape[:-1] + (self.weight.shape[1],)
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(shape)


class HfBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.head_dim = c.n_head, c.head_dim
        self.ln_1 = nn.LayerNorm(c.n_embd)
        self.attn = nn.Module()
        self.attn.c_attn = Conv1D(c.n_embd, 3 * c.n_embd)
        self.attn.c_proj = Conv1D(c.n_embd, c.n_embd)
        self.ln_2 = nn.LayerNorm(c.n_embd)
        self.mlp = nn.Module()
        self.mlp.c_fc = Conv1D(c.n_embd, 4 * c.n_embd)
        self.mlp.c_proj = Conv1D(4 * c.n_embd, c.n_embd)

    def forward(self, x, allowed, past_k, past_v, lora=None):
        B, S, C = x.shape
        h = self.ln_1(x)
        qkv = self.attn.c_attn(h)
        if lora is not None:
            qkv = lora("qkv", h, qkv)
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, S, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, S, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(B, S, self.n_head, self.head_dim).transpose(1, 2)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        scores = torch.where(allowed, scores, torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype))
        y = torch.matmul(F.softmax(scores, dim=-1), v).transpose(1, 2).reshape(B, S, C)
        o = self.attn.c_proj(y)
        if lora is not None:
            o = lora("o", y, o)
        x = x + o
        h2 = self.ln_2(x)
        u = self.mlp.c_fc(h2)
        if lora is not None:
            u = lora("up", h2, u)
        g = F.gelu(u, approximate="tanh")
        d = self.mlp.c_proj(g)
        if lora is not None:
            d = lora("down", g, d)
        return x + d, k, v


class HfGpt2(nn.Module):
    """GPT2LMHeadModel's arithmetic and parameter names, untied lm_head, the kit's export signature."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.transformer.wpe = nn.Embedding(c.n_positions, c.n_embd)
        self.transformer.h = nn.ModuleList([HfBlock(c) for _ in range(c.n_layer)])
        self.transformer.ln_f = nn.LayerNorm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lora = None

    def forward(self, input_ids, attention_mask, position_ids, *past):
        B, S = input_ids.shape
        total = attention_mask.shape[1]
        key_index = torch.arange(total)
        query_index = torch.arange(S) + (total - S)
        causal = key_index.unsqueeze(0) <= query_index.unsqueeze(1)
        allowed = causal.unsqueeze(0).unsqueeze(0) & (attention_mask == 1).unsqueeze(1).unsqueeze(2)
        x = self.transformer.wte(input_ids) + self.transformer.wpe(position_ids)
        presents = []
        for i, block in enumerate(self.transformer.h):
            pk, pv = (past[2 * i], past[2 * i + 1]) if past else (None, None)
            hook = None if self.lora is None else (lambda role, inp, out, i=i: self.lora(i, role, inp, out))
            x, k, v = block(x, allowed, pk, pv, hook)
            presents += [k, v]
        return (self.lm_head(self.transformer.ln_f(x)), *presents)


def make_hf_fixture(fixtures):
    """tiny-gpt2-hf: random weights (seed 5), 2 layers, 2 heads, width 32, 64 positions, tiny-chatml's tokenizer."""
    folder = os.path.join(fixtures, "tiny-gpt2-hf")
    source = os.path.join(fixtures, "tiny-chatml")
    with open(os.path.join(source, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    c = gptkit.GPTConfig(2, 2, 32, 64, kept_ids=None, vocab_size=vocab, bos_token_id=416, eos_token_id=418)
    model = HfGpt2(c)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
            else:
                base = 1.0 if "ln_" in name and name.endswith("weight") else 0.0
                p.copy_(base + torch.randn(p.shape, generator=generator) * 0.1)
    os.makedirs(folder, exist_ok=True)
    gptkit.export_onnx(model, os.path.join(folder, "model.onnx"))
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "_name_or_path": "tiny-gpt2-hf",
              "n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 64, "n_ctx": 64, "vocab_size": vocab,
              "bos_token_id": 416, "eos_token_id": 418, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "tie_word_embeddings": False, "use_cache": True, "torch_dtype": "float32"}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(os.path.join(source, name), os.path.join(folder, name))
    with open(os.path.join(folder, "README.md"), "w") as f:
        f.write("# tiny-gpt2-hf\n\nA random-weight GPT-2 (seed 5: 2 layers, 2 heads, width 32, 64 positions) with Hugging Face's "
                "GPT2LMHeadModel parameter names and Conv1D orientation (weights [in, out], exported as Gemm), an untied "
                "lm_head, and the 419-id tokenizer of tiny-chatml; made by tools/make_training_goldens.py for the training "
                "graph's layout recognition and torch goldens (golden-training.json). It produces no meaningful text.\n")
    return folder


# ---- LoRA in torch ----

class Lora:
    """Adapters keyed by (layer, role); role is q, k, v, o, up, down, gate. A fused q|k|v output gets each
    adapted slice added in place of a cat of split parts."""

    def __init__(self, scale):
        self.scale = scale
        self.pairs = {}       # (layer, role) -> (A, B)
        self.qkv_widths = None

    def delta(self, layer, role, x):
        a, b = self.pairs[(layer, role)]
        return torch.matmul(torch.matmul(x, a), b) * self.scale

    def __call__(self, layer, role, x, y):
        if role == "qkv":
            parts = list(y.split(self.qkv_widths, dim=-1))
            for i, r in enumerate(("q", "k", "v")):
                if (layer, r) in self.pairs:
                    parts[i] = parts[i] + self.delta(layer, r, x)
            return torch.cat(parts, dim=-1)
        return y + self.delta(layer, role, x) if (layer, role) in self.pairs else y


def patch_kit_gpt(model):
    """Routes the kit GPT's blocks through an optional LoRA hook (model.lora)."""
    def block_forward(self, x, allowed, past_k, past_v, layer=None):
        lora = model.lora
        B, S, C = x.shape
        h = self.ln_1(x)
        qkv = self.c_attn(h)
        if lora is not None:
            qkv = lora(layer, "qkv", h, qkv)
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, S, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, S, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(B, S, self.n_head, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        scores = torch.where(allowed, scores, torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype))
        y = torch.matmul(F.softmax(scores, dim=-1), v).transpose(1, 2).reshape(B, S, C)
        o = self.c_proj(y)
        if lora is not None:
            o = lora(layer, "o", y, o)
        x = x + o
        h2 = self.ln_2(x)
        u = self.c_fc(h2)
        if lora is not None:
            u = lora(layer, "up", h2, u)
        g = F.gelu(u, approximate="tanh")
        d = self.mlp_proj(g)
        if lora is not None:
            d = lora(layer, "down", g, d)
        return x + d, k, v
    for i, block in enumerate(model.blocks):
        block.forward = (lambda x, allowed, pk, pv, self=block, i=i: block_forward(self, x, allowed, pk, pv, i))
    model.lora = None


def patch_hf_llama(model):
    def block_forward(self, x, allowed, cos, sin, past_k, past_v, layer):
        lora = model.lora
        c, (B, S, _) = self.c, x.shape

        def proj(role, module, inp):
            out = module(inp)
            return lora(layer, role, inp, out) if lora is not None else out
        h = self.input_layernorm(x)
        q = proj("q", self.q_proj, h).view(B, S, c.num_attention_heads, c.head_dim).transpose(1, 2)
        k = proj("k", self.k_proj, h).view(B, S, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        v = proj("v", self.v_proj, h).view(B, S, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        q = q * cos + gptkit.rotate_half(q) * sin
        k = k * cos + gptkit.rotate_half(k) * sin
        T, groups = k.shape[2], c.num_attention_heads // c.num_key_value_heads
        k_all = k.unsqueeze(2).expand(B, c.num_key_value_heads, groups, T, c.head_dim).reshape(B, c.num_attention_heads, T, c.head_dim)
        v_all = v.unsqueeze(2).expand(B, c.num_key_value_heads, groups, T, c.head_dim).reshape(B, c.num_attention_heads, T, c.head_dim)
        scores = torch.matmul(q, k_all.transpose(-1, -2)) * (1.0 / math.sqrt(c.head_dim))
        scores = torch.where(allowed, scores, torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype))
        y = torch.matmul(F.softmax(scores, dim=-1), v_all).transpose(1, 2).reshape(B, S, c.num_attention_heads * c.head_dim)
        x = x + proj("o", self.o_proj, y)
        h = self.post_attention_layernorm(x)
        m = F.silu(proj("gate", self.gate_proj, h)) * proj("up", self.up_proj, h)
        return x + proj("down", self.down_proj, m), k, v
    for i, layer in enumerate(model.layers):
        layer.forward = (lambda x, allowed, cos, sin, pk, pv, self=layer, i=i: block_forward(self, x, allowed, cos, sin, pk, pv, i))
    model.lora = None


# ---- cases ----

def interface_log_probs(model, ids):
    B, S = ids.shape
    mask = torch.ones(B, S, dtype=torch.int64)
    positions = torch.arange(S).unsqueeze(0).expand(B, S).contiguous()
    logits = model(ids, mask, positions)[0]
    # In float64: a remapped vocabulary repeats the unk logit ~42,000 times, and a float32 sum of that many equal
    # terms is off by ~1e-5 relative (the training graph adds log(count) to the shared row instead).
    return torch.log_softmax(logits.double(), dim=-1)


def loss_sum(model, ids, targets):
    log_probs = interface_log_probs(model, ids)
    counted = targets != -100
    picked = log_probs[counted].gather(1, targets[counted].unsqueeze(1)).squeeze(1)
    return -picked.sum().float(), int(counted.sum())


def short(array):
    """float32 values as the shortest decimals that read back to the same float32."""
    return [float(str(v)) for v in np.asarray(array, dtype=np.float32).reshape(-1)]


def summary(array, rng, exclude=None, typical=False):
    """Figures of a tensor; `exclude` ([start, end) flat ranges) leaves out elements whose gradient is zero in exact
    arithmetic, so that Adam turns rounding noise into full-size steps there (a fused q|k|v bias's key part)."""
    flat = np.asarray(array, dtype=np.float64).reshape(-1)
    keep = np.ones(flat.size, dtype=bool)
    for start, end in exclude or []:
        keep[start:end] = False
    values = flat[keep]
    if typical:
        # Samples of weights after Adam steps come from elements of typical size: an element near zero is one whose
        # steps cancelled, where Adam's m / sqrt(v) magnifies float32 rounding differences of its gradients.
        keep &= np.abs(flat) >= 0.5 * np.sqrt((values ** 2).mean())
    kept = np.nonzero(keep)[0]
    index = sorted(rng.choice(kept, size=min(SAMPLES, kept.size), replace=False).tolist())
    return {"sum": float(values.sum()), "abs_sum": float(np.abs(values).sum()), "norm": float(np.sqrt((values ** 2).sum())),
            "samples": [[int(i), float(flat[i])] for i in index]}


class Tensor:
    """One C#-side tensor: how to read its value and gradient from torch in the C# layout."""

    def __init__(self, name, parts, transpose=False, rows=None, exclude=None):
        self.name, self.parts, self.transpose, self.rows = name, parts, transpose, rows   # parts: torch tensors (leaves)
        self.exclude = exclude

    def layout(self, arrays):
        x = torch.cat(arrays, dim=0) if len(arrays) > 1 else arrays[0]
        if self.rows is not None:
            x = x[self.rows[0]:self.rows[1]]
        return (x.t() if self.transpose else x).detach().numpy().copy()

    def value(self):
        return self.layout([p.data for p in self.parts])

    def grad(self):
        return self.layout([p.grad if p.grad is not None else torch.zeros_like(p) for p in self.parts])

    @property
    def decay(self):
        return self.value().ndim >= 2


def run_case(name, model, tensors, ids, targets, rng, lora=None, trajectory_start=None, extra=None):
    """Loss, gradients of the sum, then 5 AdamW steps on the mean loss from trajectory_start (a callback resetting values)."""
    leaves = {id(p): p for tensor in tensors for p in tensor.parts}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in leaves.values():
        p.requires_grad_(True)
        p.grad = None
    loss, count = loss_sum(model, ids, targets)
    loss.backward()
    case = {"name": name, "loss_sum": float(loss), "tokens": count,
            "gradients": {tensor.name: summary(tensor.grad(), rng) for tensor in tensors}}
    if lora is not None:
        case["lora_values"] = {tensor.name: short(tensor.value()) for tensor in tensors}
    if extra:
        case.update(extra)

    trajectory_start()
    if lora is not None:
        case["trajectory_lora_a"] = {tensor.name: short(tensor.value()) for tensor in tensors if tensor.name.endswith("lora_A")}
    params = list(leaves.values())
    decay = [p for p in params if p.dim() >= 2]
    plain = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": ADAMW["weight_decay"]}, {"params": plain, "weight_decay": 0.0}],
                                  lr=LEARNING_RATE[0], betas=ADAMW["betas"], eps=ADAMW["eps"])
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        total, n = loss_sum(model, ids, targets)
        mean = total / n
        losses.append(float(mean))
        mean.backward()
        optimizer.step()
    case["trajectory"] = {"losses": losses, "final": {tensor.name: summary(tensor.value(), rng, tensor.exclude, typical=True) for tensor in tensors},
                          "excluded": {tensor.name: tensor.exclude for tensor in tensors if tensor.exclude}}
    return case


def batch(rng, pool, rows, length, ignore=3):
    ids = rng.choice(pool, size=(rows, length + 1))
    inputs = torch.tensor(ids[:, :-1], dtype=torch.int64)
    targets = torch.tensor(ids[:, 1:], dtype=torch.int64)
    flat = targets.view(-1)
    for i in rng.choice(flat.numel(), size=ignore, replace=False):
        flat[int(i)] = -100
    return inputs, targets


def lora_pairs(rng, model_lora, specs, rank, random_b):
    """specs: [(layer, role, in, width, C# base name)] -> Tensor list (A then B per spec)."""
    tensors = []
    for layer, role, n_in, width, base in specs:
        a = nn.Parameter(torch.from_numpy(rng.uniform(-1 / math.sqrt(n_in), 1 / math.sqrt(n_in), size=(n_in, rank)).astype(np.float32)))
        b = nn.Parameter(torch.from_numpy((rng.standard_normal((rank, width)) * 0.1).astype(np.float32)) if random_b else torch.zeros(rank, width))
        model_lora.pairs[(layer, role)] = (a, b)
        tensors += [Tensor(base + ".lora_A", [a]), Tensor(base + ".lora_B", [b])]
    return tensors


def lora_case(name, model, specs, rank, alpha, ids, targets, rng, qkv_widths=None):
    lora = Lora(alpha / rank)
    lora.qkv_widths = qkv_widths
    model.lora = lora
    tensors = lora_pairs(rng, lora, specs, rank, random_b=True)

    def restart():
        for spec, (tensor_a, tensor_b) in zip(specs, zip(tensors[0::2], tensors[1::2])):
            n_in = spec[2]
            with torch.no_grad():
                tensor_a.parts[0].copy_(torch.from_numpy(rng.uniform(-1 / math.sqrt(n_in), 1 / math.sqrt(n_in), size=tensor_a.parts[0].shape).astype(np.float32)))
                tensor_b.parts[0].zero_()
    case = run_case(name, model, tensors, ids, targets, rng, lora=lora, trajectory_start=restart,
                    extra={"method": "lora", "lora": {"rank": rank, "alpha": alpha, "targets": sorted({s[1] for s in specs})}})
    model.lora = None
    return case


def full_case(name, model, tensors, ids, targets, rng, extra=None):
    snapshot = {id(p): p.data.clone() for tensor in tensors for p in tensor.parts}

    def restart():
        with torch.no_grad():
            for tensor in tensors:
                for p in tensor.parts:
                    p.copy_(snapshot[id(p)])
    case = run_case(name, model, tensors, ids, targets, rng, trajectory_start=restart, extra=dict({"method": "full"}, **(extra or {})))
    restart()
    return case


# ---- fixtures ----

def kit_folder(folder):
    """A kit model folder: its float weights (float16 ones as float32, named without _fp16), its config.json, and its
    token map (the Constant of GPT-2's vocabulary size that maps ids to compact rows), or None for a full vocabulary."""
    arrays, proto = onnx_arrays(os.path.join(folder, "model.onnx"))
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    weights = {(k[:-5] if k.endswith("_fp16") else k): v.astype(np.float32) for k, v in arrays.items() if v.dtype in (np.float32, np.float16)}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            value = numpy_helper.to_array(node.attribute[0].t)
            if value.shape == (gptkit.GPT2_VOCAB,) and value.dtype.kind == "i":
                return weights, config, value.astype(np.int64)
    return weights, config, None


def kit_gpt2(folder, fp16=False):
    weights, config, token_map = kit_folder(folder)
    unk = int(np.bincount(token_map).argmax())
    kept = [int(j) for j in np.argsort(token_map, kind="stable") if token_map[j] != unk]
    kept = sorted(kept, key=lambda j: token_map[j])
    c = gptkit.GPTConfig(config["n_layer"], config["n_head"], config["n_embd"], weights["wpe.weight"].shape[0], kept_ids=sorted(kept))
    model = gptkit.GPT(c)
    assert [int(token_map[j]) for j in sorted(kept)] == list(range(len(kept))), "kept ids are not in compact order"
    state = {k: t(v) for k, v in weights.items() if k in dict(model.named_parameters())}
    model.load_state_dict(state, strict=True)
    patch_kit_gpt(model)
    return model.eval(), token_map, unk


def key_bias(name, p):
    """The key slice of a fused q|k|v bias: its gradient is zero (a constant added to every score of a query)."""
    if name.endswith("c_attn.bias"):
        width = p.shape[0] // 3
        return [[width, 2 * width]]
    return None


def kit_tensors(model, folder, fp16=False):
    suffix = "_fp16" if fp16 else ""
    return [Tensor(name + suffix, [p], exclude=key_bias(name, p)) for name, p in model.named_parameters()]


def kit_lora_specs(model, c, roles):
    specs = []
    C = c.n_embd
    for i, block in enumerate(model.blocks):
        for role in roles:
            if role in ("q", "k", "v"):
                specs.append((i, role, C, C, f"blocks.{i}.c_attn.weight.{role}"))
            elif role == "o":
                specs.append((i, role, C, C, f"blocks.{i}.c_proj.weight"))
            elif role == "up":
                specs.append((i, role, C, 4 * C, f"blocks.{i}.c_fc.weight"))
            elif role == "down":
                specs.append((i, role, 4 * C, C, f"blocks.{i}.mlp_proj.weight"))
    return specs


def fix_suffix(specs, suffix):
    return [(l, r, i, w, n.replace(".weight", ".weight" + suffix, 1)) for l, r, i, w, n in specs]


def gpt2_cases(fixtures, rng):
    cases = []
    folder = os.path.join(fixtures, "tiny-gpt2-a")
    model, token_map, unk = kit_gpt2(folder)
    check_golden(model, folder)
    kept = np.nonzero(token_map != unk)[0]
    unseen = np.nonzero(token_map == unk)[0][:6]
    pool = np.concatenate([kept, unseen])
    ids, targets = batch(rng, pool, 2, 16)
    cases.append(full_case("full", model, kit_tensors(model, folder), ids, targets, rng))
    cases.append(lora_case("lora", model, kit_lora_specs(model, model.config, ["q", "k", "v", "o", "up", "down"]), 4, 8.0, ids, targets, rng,
                           qkv_widths=[64, 64, 64]))
    cases.append(extension_case(model, token_map, unk, [int(u) for u in unseen[:3]], ids, targets, rng))
    write(os.path.join(folder, "golden-training.json"), {"fixture": "tiny-gpt2-a", "variant": None, "batch": 2, "sequence": 16,
                                                        "input_ids": ids.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(),
                                                        "adamw": adamw_json(), "cases": cases})


def extension_case(model, token_map, unk, new_ids, ids, targets, rng):
    """Full fine-tuning with three unk ids given rows of their own (copies of the unk row, the unk row's bias)."""
    V = model.wte.weight.shape[0]
    n = len(new_ids)
    new_map = token_map.copy()
    for i, j in enumerate(new_ids):
        new_map[j] = V + i
    original_wte = model.wte.weight.data.clone()
    table = nn.Parameter(torch.cat([original_wte, original_wte[unk:unk + 1].repeat(n, 1)], dim=0))
    base_bias = model.compact_bias.clone()
    ext_bias = nn.Parameter(base_bias[unk].repeat(n).clone())
    old_wte, old_map = model.wte, model.token_map
    model.wte = nn.Embedding(V + n, table.shape[1])
    model.wte.weight = table
    model.token_map = torch.from_numpy(new_map.astype(np.int32))
    original_forward = model.forward

    def forward(*args):
        model.compact_bias = torch.cat([base_bias, ext_bias])
        return original_forward(*args)
    model.forward = forward
    tensors = [Tensor("wte.weight", [table], rows=(0, V)), Tensor("vocabulary_extension.weight", [table], rows=(V, V + n)),
               Tensor("vocabulary_extension.bias", [ext_bias])]
    tensors += [Tensor(name, [p], exclude=key_bias(name, p)) for name, p in model.named_parameters() if name != "wte.weight"]
    # AdamW and gradients act on whole leaves; the rows split only for reading.
    case = full_case("full-extended", model, tensors, ids, targets, rng, extra={"extension": new_ids})
    model.forward = original_forward
    model.wte, model.token_map = old_wte, old_map
    model.compact_bias = base_bias
    return case


def hf_gpt2_cases(fixtures, rng):
    folder = make_hf_fixture(fixtures)
    arrays, _ = onnx_arrays(os.path.join(folder, "model.onnx"))
    c = gptkit.GPTConfig(2, 2, 32, 64, kept_ids=None, vocab_size=419)
    model = HfGpt2(c)
    model.load_state_dict({k: t(v) for k, v in arrays.items() if k in dict(model.named_parameters())}, strict=True)
    model.eval()
    # Check the export kept every parameter name.
    names = {k for k in arrays}
    missing = [k for k, _ in model.named_parameters() if k not in names]
    if missing:
        raise RuntimeError(f"tiny-gpt2-hf: export lost parameter names {missing[:4]}")
    ids, targets = batch(rng, np.arange(419), 2, 12)
    tensors = [Tensor(name, [p], exclude=key_bias(name, p)) for name, p in model.named_parameters()]
    cases = [full_case("full", model, tensors, ids, targets, rng)]
    specs = []
    for i in range(2):
        specs += [(i, "q", 32, 32, f"transformer.h.{i}.attn.c_attn.weight.q"), (i, "v", 32, 32, f"transformer.h.{i}.attn.c_attn.weight.v"),
                  (i, "o", 32, 32, f"transformer.h.{i}.attn.c_proj.weight"), (i, "down", 128, 32, f"transformer.h.{i}.mlp.c_proj.weight")]
    cases.append(lora_case("lora", model, specs, 2, 4.0, ids, targets, rng, qkv_widths=[32, 32, 32]))
    write(os.path.join(folder, "golden-training.json"), {"fixture": "tiny-gpt2-hf", "variant": None, "batch": 2, "sequence": 12,
                                                        "input_ids": ids.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(),
                                                        "adamw": adamw_json(), "cases": cases})


def llama_model():
    spec = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0)
    c = gptkit.HfLlamaConfig(2000, **spec)
    model = gptkit.HfLlama(c)
    patch_hf_llama(model)
    return model, c


def llama_cases(fixtures, rng):
    # onnx-community fp32: weights by value (constant folding leaves projections as anonymous [in, out] MatMul weights).
    folder = os.path.join(fixtures, "tiny-onnx-community")
    arrays, proto = onnx_arrays(os.path.join(folder, "onnx", "model.onnx"))
    model, c = llama_model()
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, p in named.items():
            if name in arrays:
                p.copy_(t(arrays[name]))
        # The projections are anonymous: take them in the graph's MatMul order, then check the logits.
        order = [n.input[1] for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in arrays]
        linear_names = [n for n, _ in model.linears()]
        expected_order = []
        for i in range(c.num_hidden_layers):
            expected_order += [f"layers.{i}.{m}" for m in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")]
        expected_order.append("lm_head")
        assert sorted(expected_order) == sorted(linear_names)
        onnx_name = {}
        for module, init in zip(expected_order, order):
            named[module + ".weight"].copy_(t(arrays[init].T))
            onnx_name[module] = init
    model.eval()
    check_golden(model, folder, "golden.json")
    ids, targets = batch(rng, np.arange(3, 2000), 2, 16)

    def tensors_for(names_of, transpose):
        out = []
        for name, p in model.named_parameters():
            module = name[:-len(".weight")]
            if module in names_of:
                out.append(Tensor(names_of[module], [p], transpose=transpose))
            else:
                out.append(Tensor(name, [p]))
        return out
    cases = [full_case("full", model, tensors_for(onnx_name, True), ids, targets, rng)]
    specs = []
    for i in range(c.num_hidden_layers):
        for role, module, n_in, width in (("q", "q_proj", 64, 64), ("k", "k_proj", 64, 32), ("v", "v_proj", 64, 32), ("o", "o_proj", 64, 64),
                                          ("gate", "gate_proj", 64, 128), ("up", "up_proj", 64, 128), ("down", "down_proj", 128, 64)):
            specs.append((i, role, n_in, width, onnx_name[f"layers.{i}.{module}"]))
    cases.append(lora_case("lora", model, specs, 4, 8.0, ids, targets, rng))
    community_golden = {"fixture": "tiny-onnx-community", "variant": None, "batch": 2, "sequence": 16,
                        "input_ids": ids.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(), "adamw": adamw_json(), "cases": cases}

    # onnx-community q4: the same graph with MatMulNBits; LoRA (q, v) over the dequantized weights.
    arrays_q4, proto_q4 = onnx_arrays(os.path.join(folder, "onnx", "model_q4.onnx"))
    dequantized = nbits_weights(proto_q4, arrays_q4)
    with torch.no_grad():
        for module, init in onnx_name.items():
            named[module + ".weight"].copy_(t(dequantized[init + "_Q4"]))
    check_golden(model, folder, "golden-q4.json")
    q_specs = [(l, r, i, w, n + "_Q4") for l, r, i, w, n in specs if r in ("q", "v")]
    q4_case = lora_case("lora", model, q_specs, 4, 8.0, ids, targets, rng)
    write(os.path.join(folder, "golden-training-q4.json"), {"fixture": "tiny-onnx-community", "variant": "q4", "batch": 2, "sequence": 16,
                                                             "input_ids": ids.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(),
                                                             "adamw": adamw_json(), "cases": [q4_case]})
    write(os.path.join(folder, "golden-training.json"), community_golden)

    # The GenAI builder's int4 graph: fused q|k|v rows, the same dequantized weights (the same quantizer).
    folder = os.path.join(fixtures, "tiny-llama-builder")
    arrays_b, proto_b = onnx_arrays(os.path.join(folder, "model.onnx"))
    deq_b = nbits_weights(proto_b, arrays_b)
    names = {}
    with torch.no_grad():
        for i in range(c.num_hidden_layers):
            qkv = deq_b[f"model.layers.{i}.attn.qkv_proj.MatMul.weight_Q4"]
            layer = model.layers[i]
            layer.q_proj.weight.copy_(t(qkv[:64]))
            layer.k_proj.weight.copy_(t(qkv[64:96]))
            layer.v_proj.weight.copy_(t(qkv[96:128]))
            for module in ("o_proj",):
                layer.o_proj.weight.copy_(t(deq_b[f"model.layers.{i}.attn.o_proj.MatMul.weight_Q4"]))
            for module in ("gate_proj", "up_proj", "down_proj"):
                getattr(layer, module).weight.copy_(t(deq_b[f"model.layers.{i}.mlp.{module}.MatMul.weight_Q4"]))
            layer.input_layernorm.weight.copy_(t(arrays_b[f"model.layers.{i}.input_layernorm.weight"]))
            layer.post_attention_layernorm.weight.copy_(t(arrays_b[f"model.layers.{i}.post_attention_layernorm.weight"]))
        model.norm.weight.copy_(t(arrays_b[f"model.layers.{c.num_hidden_layers}.final_norm_layernorm.weight"]))
        model.embed_tokens.weight.copy_(t(arrays_b["model.embed_tokens.weight"]))
        model.lm_head.weight.copy_(t(deq_b["lm_head.MatMul.weight_Q4"]))
    check_golden(model, folder, "golden.json")
    tensors = [Tensor("model.embed_tokens.weight", [model.embed_tokens.weight])]
    for i in range(c.num_hidden_layers):
        layer = model.layers[i]
        tensors += [Tensor(f"model.layers.{i}.input_layernorm.weight", [layer.input_layernorm.weight]),
                    Tensor(f"model.layers.{i}.attn.qkv_proj.MatMul.weight_Q4", [layer.q_proj.weight, layer.k_proj.weight, layer.v_proj.weight]),
                    Tensor(f"model.layers.{i}.attn.o_proj.MatMul.weight_Q4", [layer.o_proj.weight]),
                    Tensor(f"model.layers.{i}.post_attention_layernorm.weight", [layer.post_attention_layernorm.weight])]
        tensors += [Tensor(f"model.layers.{i}.mlp.{m}.MatMul.weight_Q4", [getattr(layer, m).weight]) for m in ("gate_proj", "up_proj", "down_proj")]
    tensors += [Tensor(f"model.layers.{c.num_hidden_layers}.final_norm_layernorm.weight", [model.norm.weight]),
                Tensor("lm_head.MatMul.weight_Q4", [model.lm_head.weight])]
    b_cases = [full_case("full", model, tensors, ids, targets, rng)]
    b_specs = []
    for i in range(c.num_hidden_layers):
        b_specs += [(i, "q", 64, 64, f"model.layers.{i}.attn.qkv_proj.MatMul.weight_Q4.q"), (i, "v", 64, 32, f"model.layers.{i}.attn.qkv_proj.MatMul.weight_Q4.v"),
                    (i, "gate", 64, 128, f"model.layers.{i}.mlp.gate_proj.MatMul.weight_Q4")]
    b_cases.append(lora_case("lora", model, b_specs, 4, 8.0, ids, targets, rng))
    write(os.path.join(folder, "golden-training.json"), {"fixture": "tiny-llama-builder", "variant": None, "batch": 2, "sequence": 16,
                                                        "input_ids": ids.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(),
                                                        "adamw": adamw_json(), "cases": b_cases})


def default_cases(fixtures, rng):
    folder = os.path.join(os.path.dirname(HERE), "models", "mlnetgpt-kjv")
    model, token_map, unk = kit_gpt2(folder, fp16=True)
    with open(os.path.join(fixtures, "default-golden.json")) as f:
        golden = json.load(f)
    stream = []
    for item in golden["greedy"] + golden["samples"]:
        stream += item["prompt_ids"] + item["generated"]
    S = 32
    ids_np = np.array(stream[:2 * (S + 1)]).reshape(2, S + 1)
    ids = torch.tensor(ids_np[:, :-1], dtype=torch.int64)
    targets = torch.tensor(ids_np[:, 1:], dtype=torch.int64)
    targets[0, 5] = -100
    tensors = kit_tensors(model, folder, fp16=True)
    LEARNING_RATE[0] = 1e-4
    cases = [full_case("full", model, tensors, ids, targets, rng)]
    specs = fix_suffix(kit_lora_specs(model, model.config, ["q", "v"]), "_fp16")
    cases.append(lora_case("lora", model, specs, 8, 16.0, ids, targets, rng, qkv_widths=[192, 192, 192]))
    write(os.path.join(fixtures, "default-training-golden.json"), {"fixture": "mlnetgpt-kjv", "variant": None, "batch": 2, "sequence": S,
                                                                  "input_ids": ids.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(),
                                                                  "adamw": adamw_json(), "cases": cases})


def check_golden(model, folder, name="golden.json"):
    """The torch model reproduces the fixture's own golden prefill log-probabilities (so the weights were read right)."""
    with open(os.path.join(folder, name)) as f:
        golden = json.load(f)
    worst = 0.0
    with torch.no_grad():
        for prompt, prefill in zip(golden["prompts"], golden["prefill"]):
            ids = prompt["ids"]
            if len(ids) < 2:
                continue
            lp = interface_log_probs(model, torch.tensor([ids]))[0]
            for i in range(1, len(ids)):
                worst = max(worst, abs(float(lp[i - 1, ids[i]]) - prefill["token_log_probs"][i - 1]))
    if worst > 1e-3:
        raise RuntimeError(f"{folder}: torch with the file's weights is {worst} away from {name}")
    print(f"make_training_goldens: {os.path.basename(folder)} ({name}) matches its golden to {worst:.1e}")


def adamw_json():
    return {"lr": LEARNING_RATE[0], "beta1": ADAMW["betas"][0], "beta2": ADAMW["betas"][1], "eps": ADAMW["eps"],
            "weight_decay": ADAMW["weight_decay"], "steps": STEPS}


def write(path, content):
    with open(path, "w") as f:
        json.dump(content, f, separators=(",", ":"))
    print(f"make_training_goldens: {path}: {os.path.getsize(path) / 1e3:.0f} kB")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    fixtures = sys.argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = np.random.default_rng(2026)
    gpt2_cases(fixtures, rng)
    hf_gpt2_cases(fixtures, rng)
    llama_cases(fixtures, rng)
    default_cases(fixtures, rng)


if __name__ == "__main__":
    main()
