"""The model kit's shared code: a GPT-2-architecture decoder in torch, its ONNX export with the
Hugging Face Optimum "decoder with past" signature, and writers for a complete model folder.

The interface vocabulary is always the standard GPT-2 encoding (50257 ids). Inside, the model may
use a compact vocabulary: `token_map` sends every GPT-2 id to a compact id (ids never seen in
training share one `unk` id), and the output logits are gathered back to 50257 columns. The unk
logit is lowered by log(number of unseen ids), so the 50257-way softmax is a proper distribution:
unseen tokens share the probability the model gives to unk.
"""
import json
import math
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as error:  # pragma: no cover - message for people setting up the kit
    sys.exit(f"model kit: {error.name} is missing. Install Debian's packages with:\n"
             "    sudo apt-get install python3-torch python3-onnx python3-numpy libopenblas0-openmp\n"
             "and run the kit with /usr/bin/python3 (the system interpreter that sees them).")

GPT2_VOCAB = 50257
END_OF_TEXT = 50256


def require_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError:
        sys.exit("model kit: onnx is missing. Install it with:\n    sudo apt-get install python3-onnx")


class GPTConfig:
    def __init__(self, n_layer, n_head, n_embd, n_positions, kept_ids, dropout=0.0,
                 bos_token_id=END_OF_TEXT, eos_token_id=END_OF_TEXT, vocab_size=GPT2_VOCAB):
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} is not divisible by n_head {n_head}")
        self.n_layer, self.n_head, self.n_embd, self.n_positions = n_layer, n_head, n_embd, n_positions
        # GPT-2 ids with their own embedding row; None: the plain 50257-id vocabulary, no remapping
        self.kept_ids = None if kept_ids is None else sorted(int(i) for i in kept_ids)
        self.dropout = dropout
        self.bos_token_id, self.eos_token_id = bos_token_id, eos_token_id
        # The interface vocabulary: GPT-2's, or a tokenizer of the kit's own (no remapping then)
        if vocab_size != GPT2_VOCAB and kept_ids is not None:
            raise ValueError("a vocabulary of the kit's own size cannot be remapped to kept GPT-2 ids")
        self.vocab_size = vocab_size

    @property
    def compact_vocab(self):
        return self.vocab_size if self.kept_ids is None else len(self.kept_ids) + 1   # + unk

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    def to_json(self):
        return dict(n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd, n_positions=self.n_positions,
                    kept_ids=self.kept_ids, dropout=self.dropout,
                    bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id, vocab_size=self.vocab_size)

    @staticmethod
    def from_json(d):
        return GPTConfig(**d)


def vocabulary_maps(kept_ids):
    """token_map: GPT-2 id -> compact id (unk = len(kept_ids)); unk_bias: -log(#unseen ids)."""
    unk = len(kept_ids)
    token_map = np.full(GPT2_VOCAB, unk, dtype=np.int32)
    token_map[np.asarray(kept_ids, dtype=np.int64)] = np.arange(unk, dtype=np.int32)
    unseen = GPT2_VOCAB - len(kept_ids)
    return token_map, (-math.log(unseen) if unseen > 0 else 0.0)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.head_dim = c.n_head, c.head_dim
        self.ln_1 = nn.LayerNorm(c.n_embd)
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd)
        self.ln_2 = nn.LayerNorm(c.n_embd)
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd)
        self.mlp_proj = nn.Linear(4 * c.n_embd, c.n_embd)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, allowed, past_k, past_v):
        B, S, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q = q.view(B, S, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, S, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(B, S, self.n_head, self.head_dim).transpose(1, 2)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        scores = torch.where(allowed, scores, torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype))
        attention = self.drop(F.softmax(scores, dim=-1))
        y = torch.matmul(attention, v).transpose(1, 2).reshape(B, S, C)
        x = x + self.drop(self.c_proj(y))
        x = x + self.drop(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")))
        return x, k, v


class GPT(nn.Module):
    def __init__(self, c: GPTConfig):
        super().__init__()
        self.config = c
        self.wte = nn.Embedding(c.compact_vocab, c.n_embd)
        self.wpe = nn.Embedding(c.n_positions, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd)
        self.remapped = c.kept_ids is not None
        if self.remapped:
            token_map, unk_bias = vocabulary_maps(c.kept_ids)
            self.register_buffer("token_map", torch.from_numpy(token_map), persistent=False)
            bias = torch.zeros(c.compact_vocab)
            bias[-1] = unk_bias
            self.register_buffer("compact_bias", bias, persistent=False)

    def init_weights(self, std=0.02, seed=None, vector_std=0.0):
        """GPT-2 initialisation. vector_std > 0 also randomises biases and LayerNorm gains
        (around 1), so golden tests notice a bias or gain that is dropped or misapplied."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    residual = name.endswith(("c_proj.weight", "mlp_proj.weight"))
                    scale = std / math.sqrt(2 * self.config.n_layer) if residual else std
                    p.copy_(torch.randn(p.shape, generator=generator) * scale)
                else:
                    base = 1.0 if (name.startswith("ln") or ".ln_" in name) and name.endswith("weight") else 0.0
                    noise = torch.randn(p.shape, generator=generator) * vector_std if vector_std > 0 else 0.0
                    p.copy_(base + noise)

    def compact_logits(self, compact_ids, attention_mask, position_ids, past=None, logits_to_keep=None):
        """Logits over the compact vocabulary; used for training (cross-entropy on compact ids).
        logits_to_keep (int64 tensor, 0 = all) keeps only the last positions' logits."""
        B, S = compact_ids.shape
        total = attention_mask.shape[1]
        key_index = torch.arange(total, device=compact_ids.device)
        query_index = torch.arange(S, device=compact_ids.device) + (total - S)
        causal = key_index.unsqueeze(0) <= query_index.unsqueeze(1)                       # [S, T]
        allowed = causal.unsqueeze(0).unsqueeze(0) & (attention_mask == 1).unsqueeze(1).unsqueeze(2)  # [B,1,S,T]
        x = self.drop(self.wte(compact_ids) + self.wpe(position_ids))
        presents = []
        for i, block in enumerate(self.blocks):
            pk, pv = (past[2 * i], past[2 * i + 1]) if past is not None else (None, None)
            x, k, v = block(x, allowed, pk, pv)
            presents += [k, v]
        x = self.ln_f(x)
        if logits_to_keep is not None:
            S_now = x.shape[1]
            start = torch.where(logits_to_keep > 0, S_now - logits_to_keep, torch.zeros_like(logits_to_keep))
            x = torch.index_select(x, 1, torch.arange(start, S_now))
        return F.linear(x, self.wte.weight), presents

    def forward(self, input_ids, attention_mask, position_ids, *past):
        """The exported signature: GPT-2 ids in, 50257-way logits and presents out. With
        `logits_to_keep_input` set, the last argument is num_logits_to_keep (0 = every position)."""
        keep = None
        if getattr(self, "logits_to_keep_input", False):
            keep, past = past[-1], past[:-1]
        compact_ids = self.token_map[input_ids].long() if self.remapped else input_ids
        logits, presents = self.compact_logits(compact_ids, attention_mask, position_ids, list(past) if past else None, keep)
        if self.remapped:
            logits = logits + self.compact_bias
            logits = torch.index_select(logits, 2, self.token_map.long())
        return (logits, *presents)


def load_checkpoint(path):
    state = torch.load(path, map_location="cpu")
    model = GPT(GPTConfig.from_json(state["config"]))
    model.load_state_dict(state["model"])
    return model, state


def round_to_fp16(model):
    """Rounds every weight to fp16 and back, so torch computes with exactly the values the
    fp16-stored ONNX file holds."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


def store_weights_as_fp16(path, parameter_names):
    """Rewrites the exported file so every torch parameter is stored as an fp16 initializer
    followed by a Cast to fp32: half the file, same arithmetic in fp32 (ORT folds the casts at
    load time). Call round_to_fp16 on the torch model for golden data that matches."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto
    model = onnx.load(path)
    graph = model.graph
    casts, converted = [], set()
    for initializer in list(graph.initializer):
        if initializer.name in parameter_names and initializer.data_type == TensorProto.FLOAT:
            values = numpy_helper.to_array(initializer).astype(np.float16)
            half = numpy_helper.from_array(values, initializer.name + "_fp16")
            graph.initializer.remove(initializer)
            graph.initializer.append(half)
            casts.append(helper.make_node("Cast", [half.name], [initializer.name], to=TensorProto.FLOAT,
                                          name=initializer.name + "_cast"))
            converted.add(initializer.name)
    missing = set(parameter_names) - converted
    if missing:
        raise RuntimeError(f"parameters not found as initializers in {path}: {sorted(missing)[:5]}")
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.save(model, path)


def export_onnx(model, path, fp16_weights=False, opset=17, logits_to_keep=False):
    """Exports with Optimum names: input_ids, attention_mask, position_ids,
    past_key_values.{i}.key/value -> logits, present.{i}.key/value; every axis dynamic.
    With logits_to_keep, the graph also takes the optional int64 scalar `num_logits_to_keep`
    (an input backed by an initializer of 0, so runtimes that do not know it get every position's
    logits, as Hugging Face's num_logits_to_keep=0 means)."""
    require_onnx()
    import onnx
    c = model.config
    model = model.eval()
    B, P, S = 2, 3, 4
    input_ids = torch.randint(0, getattr(c, "vocab_size", GPT2_VOCAB), (B, S))
    attention_mask = torch.ones(B, P + S, dtype=torch.int64)
    position_ids = torch.arange(P, P + S).unsqueeze(0).expand(B, S).contiguous()
    past = []
    input_names, output_names = ["input_ids", "attention_mask", "position_ids"], ["logits"]
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    for i in range(c.n_layer):
        for kind in ("key", "value"):
            past.append(torch.randn(B, c.n_head, P, c.head_dim))
            name_in, name_out = f"past_key_values.{i}.{kind}", f"present.{i}.{kind}"
            input_names.append(name_in)
            output_names.append(name_out)
            axes[name_in] = {0: "batch_size", 2: "past_sequence_length"}
            axes[name_out] = {0: "batch_size", 2: "total_sequence_length"}
    extra = []
    if logits_to_keep:
        extra = [torch.tensor(1, dtype=torch.int64)]
        input_names.append("num_logits_to_keep")
        axes["logits"] = {0: "batch_size", 1: "logits_length"}
    model.logits_to_keep_input = logits_to_keep
    try:
        with torch.no_grad():
            torch.onnx.export(model, (input_ids, attention_mask, position_ids, *past, *extra), path,
                              input_names=input_names, output_names=output_names, dynamic_axes=axes,
                              opset_version=opset, do_constant_folding=False)
    finally:
        model.logits_to_keep_input = False
    if logits_to_keep:
        from onnx import numpy_helper
        exported = onnx.load(path)
        exported.graph.initializer.append(numpy_helper.from_array(np.array(0, dtype=np.int64), "num_logits_to_keep"))
        onnx.save(exported, path)
    if fp16_weights:
        store_weights_as_fp16(path, {name for name, _ in model.named_parameters()})
    onnx.checker.check_model(onnx.load(path))
    return path


def write_model_folder(model, folder, *, name, fp16_weights, card=None, generation=None, extra_config=None, add_bos_token=False,
                       logits_to_keep=False):
    """Writes model.onnx, config.json, generation_config.json, tokenizer_config.json and README.md."""
    os.makedirs(folder, exist_ok=True)
    c = model.config
    export_onnx(model, os.path.join(folder, "model.onnx"), fp16_weights=fp16_weights, logits_to_keep=logits_to_keep)
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "_name_or_path": name,
        "n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd,
        "n_positions": c.n_positions, "n_ctx": c.n_positions,
        "vocab_size": GPT2_VOCAB,
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "tie_word_embeddings": True, "use_cache": True,
        "torch_dtype": "float16" if fp16_weights else "float32",
    }
    config.update(extra_config or {})
    generation_config = {"bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
                         "pad_token_id": c.eos_token_id}
    generation_config.update(generation or {})
    tokenizer_config = {"tokenizer_class": "GPT2Tokenizer", "encoding": "gpt2",
                        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                        "add_bos_token": add_bos_token, "model_max_length": c.n_positions}
    for file, content in (("config.json", config), ("generation_config.json", generation_config),
                          ("tokenizer_config.json", tokenizer_config)):
        with open(os.path.join(folder, file), "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2)
            f.write("\n")
    if card:
        with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
            f.write(card)


# --- A Llama-style decoder with grouped-query attention (test fixture for the GenAI layout) ---

class LlamaConfig:
    def __init__(self, n_layer, n_head, n_kv_head, n_embd, n_positions, kept_ids, rope_theta=10000.0,
                 bos_token_id=END_OF_TEXT, eos_token_id=END_OF_TEXT):
        if n_embd % n_head or n_head % n_kv_head:
            raise ValueError("n_embd must be divisible by n_head, and n_head by n_kv_head")
        self.n_layer, self.n_head, self.n_kv_head, self.n_embd, self.n_positions = n_layer, n_head, n_kv_head, n_embd, n_positions
        self.kept_ids = sorted(int(i) for i in kept_ids)
        self.rope_theta = rope_theta
        self.bos_token_id, self.eos_token_id = bos_token_id, eos_token_id

    @property
    def compact_vocab(self):
        return len(self.kept_ids) + 1

    @property
    def head_dim(self):
        return self.n_embd // self.n_head


class RMSNorm(nn.Module):
    def __init__(self, n, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class LlamaBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c.head_dim
        self.input_norm = RMSNorm(c.n_embd)
        self.q_proj = nn.Linear(c.n_embd, c.n_head * d, bias=False)
        self.k_proj = nn.Linear(c.n_embd, c.n_kv_head * d, bias=False)
        self.v_proj = nn.Linear(c.n_embd, c.n_kv_head * d, bias=False)
        self.o_proj = nn.Linear(c.n_head * d, c.n_embd, bias=False)
        self.post_norm = RMSNorm(c.n_embd)
        self.gate = nn.Linear(c.n_embd, 2 * c.n_embd, bias=False)
        self.up = nn.Linear(c.n_embd, 2 * c.n_embd, bias=False)
        self.down = nn.Linear(2 * c.n_embd, c.n_embd, bias=False)

    def forward(self, x, allowed, cos, sin, past_k, past_v):
        c, (B, S, _) = self.c, x.shape
        h = self.input_norm(x)
        q = self.q_proj(h).view(B, S, c.n_head, c.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, S, c.n_kv_head, c.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, S, c.n_kv_head, c.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        T = k.shape[2]
        groups = c.n_head // c.n_kv_head
        k_all = k.unsqueeze(2).expand(B, c.n_kv_head, groups, T, c.head_dim).reshape(B, c.n_head, T, c.head_dim)
        v_all = v.unsqueeze(2).expand(B, c.n_kv_head, groups, T, c.head_dim).reshape(B, c.n_head, T, c.head_dim)
        scores = torch.matmul(q, k_all.transpose(-1, -2)) * (1.0 / math.sqrt(c.head_dim))
        scores = torch.where(allowed, scores, torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype))
        y = torch.matmul(F.softmax(scores, dim=-1), v_all).transpose(1, 2).reshape(B, S, c.n_head * c.head_dim)
        x = x + self.o_proj(y)
        h = self.post_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h)), k, v


class Llama(nn.Module):
    """RMSNorm, rotary positions, SwiGLU, grouped-query attention, untied output head. It has no
    position_ids input: positions come from the attention mask (cumulative sum), as some exports do."""

    def __init__(self, c: LlamaConfig):
        super().__init__()
        self.config = c
        self.embed = nn.Embedding(c.compact_vocab, c.n_embd)
        self.blocks = nn.ModuleList([LlamaBlock(c) for _ in range(c.n_layer)])
        self.norm = RMSNorm(c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.compact_vocab, bias=False)
        token_map, unk_bias = vocabulary_maps(c.kept_ids)
        self.register_buffer("token_map", torch.from_numpy(token_map), persistent=False)
        bias = torch.zeros(c.compact_vocab)
        bias[-1] = unk_bias
        self.register_buffer("compact_bias", bias, persistent=False)
        inv_freq = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2).float() / c.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def init_weights(self, std, seed):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=generator) * std)
                else:
                    p.copy_(1.0 + torch.randn(p.shape, generator=generator) * 0.1)

    def forward(self, input_ids, attention_mask, *past):
        B, S = input_ids.shape
        total = attention_mask.shape[1]
        positions = (torch.cumsum(attention_mask, dim=1) - 1).clamp(min=0)[:, total - S:]
        freqs = positions.unsqueeze(-1).float() * self.inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos().unsqueeze(1), emb.sin().unsqueeze(1)
        key_index = torch.arange(total)
        query_index = torch.arange(S) + (total - S)
        causal = key_index.unsqueeze(0) <= query_index.unsqueeze(1)
        allowed = causal.unsqueeze(0).unsqueeze(0) & (attention_mask == 1).unsqueeze(1).unsqueeze(2)
        x = self.embed(self.token_map[input_ids].long())
        presents = []
        for i, block in enumerate(self.blocks):
            pk, pv = (past[2 * i], past[2 * i + 1]) if past else (None, None)
            x, k, v = block(x, allowed, cos, sin, pk, pv)
            presents += [k, v]
        logits = self.lm_head(self.norm(x)) + self.compact_bias
        return (torch.index_select(logits, 2, self.token_map.long()), *presents)


def export_llama(model, path, opset=17):
    """Optimum-style names without position_ids; the cache has n_kv_head heads."""
    require_onnx()
    import onnx
    c = model.config
    B, P, S = 2, 3, 4
    args = [torch.randint(0, GPT2_VOCAB, (B, S)), torch.ones(B, P + S, dtype=torch.int64)]
    input_names, output_names = ["input_ids", "attention_mask"], ["logits"]
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    for i in range(c.n_layer):
        for kind in ("key", "value"):
            args.append(torch.randn(B, c.n_kv_head, P, c.head_dim))
            name_in, name_out = f"past_key_values.{i}.{kind}", f"present.{i}.{kind}"
            input_names.append(name_in)
            output_names.append(name_out)
            axes[name_in] = {0: "batch_size", 2: "past_sequence_length"}
            axes[name_out] = {0: "batch_size", 2: "total_sequence_length"}
    with torch.no_grad():
        torch.onnx.export(model.eval(), tuple(args), path, input_names=input_names, output_names=output_names,
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=False)
    onnx.checker.check_model(onnx.load(path))


def export_gpt_without_past(model, path, opset=17):
    """Optimum's decoder_model.onnx: prefill only, no past inputs, presents out."""
    require_onnx()
    import onnx
    c = model.config
    B, S = 2, 4
    args = (torch.randint(0, GPT2_VOCAB, (B, S)), torch.ones(B, S, dtype=torch.int64), torch.arange(S).unsqueeze(0).expand(B, S).contiguous())
    input_names, output_names = ["input_ids", "attention_mask", "position_ids"], ["logits"]
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in input_names + ["logits"]}
    for i in range(c.n_layer):
        for kind in ("key", "value"):
            output_names.append(f"present.{i}.{kind}")
            axes[f"present.{i}.{kind}"] = {0: "batch_size", 2: "sequence_length"}
    with torch.no_grad():
        torch.onnx.export(model.eval(), args, path, input_names=input_names, output_names=output_names,
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=False)
    onnx.checker.check_model(onnx.load(path))


def merge_decoders(no_past_path, with_past_path, out_path):
    """Builds Optimum's decoder_model_merged.onnx: an If on the `use_cache_branch` input runs the
    with-past graph (true) or the no-past graph (false); both share the initializers."""
    require_onnx()
    import onnx
    from onnx import helper, TensorProto
    import hashlib
    no_past, with_past = onnx.load(no_past_path), onnx.load(with_past_path)
    outer = {i.name for i in with_past.graph.input} | {t.name for t in with_past.graph.initializer} | {"use_cache_branch"}
    shared_constants = {}       # large Constant tensors (the vocabulary map) become one shared initializer

    def branch(graph, prefix):
        renamed = {}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute[0].name == "value" and len(node.attribute[0].t.raw_data) > 4096:
                tensor = node.attribute[0].t
                key = "shared_const_" + hashlib.sha1(tensor.raw_data + bytes(str(tensor.dims), "ascii")).hexdigest()[:16]
                if key not in shared_constants:
                    shared = onnx.TensorProto()
                    shared.CopyFrom(tensor)
                    shared.name = key
                    shared_constants[key] = shared
                renamed[node.output[0]] = key

        def name(n):
            if n == "" or n in outer or n in shared_constants:
                return n
            return renamed.setdefault(n, prefix + n)
        nodes = []
        for node in graph.node:
            if node.op_type == "Constant" and renamed.get(node.output[0], "").startswith("shared_const_"):
                continue
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = prefix + node.name
            del copy.input[:]
            copy.input.extend(name(i) for i in node.input)
            del copy.output[:]
            copy.output.extend(name(o) for o in node.output)
            nodes.append(copy)
        outputs = []
        for output in graph.output:
            o = onnx.ValueInfoProto()
            o.CopyFrom(output)
            o.name = name(output.name)
            outputs.append(o)
        return helper.make_graph(nodes, prefix + "branch", [], outputs)

    initializers = {t.name: t for t in with_past.graph.initializer}
    for t in no_past.graph.initializer:
        initializers.setdefault(t.name, t)
    use_cache = helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    then_branch, else_branch = branch(with_past.graph, "with_past_"), branch(no_past.graph, "no_past_")
    initializers.update(shared_constants)
    if_node = helper.make_node("If", ["use_cache_branch"], [o.name for o in with_past.graph.output], name="optimum_if",
                               then_branch=then_branch, else_branch=else_branch)
    graph = helper.make_graph([if_node], "decoder_merged", list(with_past.graph.input) + [use_cache],
                              list(with_past.graph.output), list(initializers.values()))
    merged = helper.make_model(graph, opset_imports=with_past.opset_import)
    merged.ir_version = with_past.ir_version
    onnx.checker.check_model(merged)
    onnx.save(merged, out_path)


# --- A Hugging Face Llama (LlamaForCausalLM's arithmetic) on a SentencePiece vocabulary: the model of
#     the ONNX Runtime GenAI builder and onnx-community fixtures ---

class HfLlamaConfig:
    def __init__(self, vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
                 num_key_value_heads, max_position_embeddings, rms_norm_eps=1e-5, rope_theta=10000.0,
                 bos_token_id=1, eos_token_id=2):
        if hidden_size % num_attention_heads or num_attention_heads % num_key_value_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads, and that by num_key_value_heads")
        self.vocab_size, self.hidden_size, self.intermediate_size = vocab_size, hidden_size, intermediate_size
        self.num_hidden_layers, self.num_attention_heads, self.num_key_value_heads = num_hidden_layers, num_attention_heads, num_key_value_heads
        self.max_position_embeddings, self.rms_norm_eps, self.rope_theta = max_position_embeddings, rms_norm_eps, rope_theta
        self.bos_token_id, self.eos_token_id = bos_token_id, eos_token_id

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def config_json(self, name):
        """config.json as transformers writes it for LlamaForCausalLM."""
        return {
            "_name_or_path": name, "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
            "bos_token_id": self.bos_token_id, "eos_token_id": self.eos_token_id, "head_dim": self.head_dim, "hidden_act": "silu",
            "hidden_size": self.hidden_size, "initializer_range": 0.02, "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings, "mlp_bias": False, "model_type": "llama",
            "num_attention_heads": self.num_attention_heads, "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads, "pretraining_tp": 1, "rms_norm_eps": self.rms_norm_eps,
            "rope_scaling": None, "rope_theta": self.rope_theta, "tie_word_embeddings": False, "torch_dtype": "float32",
            "transformers_version": "4.46.0", "use_cache": True, "vocab_size": self.vocab_size,
        }


def rope_inverse_frequencies(head_dim, theta):
    """inv_freq as transformers and the GenAI builder compute it (int64 arange, then float32)."""
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))


def rope_caches(head_dim, length, theta):
    """The builder's cos_cache / sin_cache: [length, head_dim / 2] for positions 0..length-1."""
    freqs = torch.outer(torch.arange(length, dtype=torch.int64).float(), rope_inverse_frequencies(head_dim, theta))
    return freqs.cos(), freqs.sin()


class HfLlamaBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c.head_dim
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * d, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * d, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * d, bias=False)
        self.o_proj = nn.Linear(c.num_attention_heads * d, c.hidden_size, bias=False)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x, allowed, cos, sin, past_k, past_v):
        c, (B, S, _) = self.c, x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, S, c.num_attention_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, S, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, S, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        T, groups = k.shape[2], c.num_attention_heads // c.num_key_value_heads
        k_all = k.unsqueeze(2).expand(B, c.num_key_value_heads, groups, T, c.head_dim).reshape(B, c.num_attention_heads, T, c.head_dim)
        v_all = v.unsqueeze(2).expand(B, c.num_key_value_heads, groups, T, c.head_dim).reshape(B, c.num_attention_heads, T, c.head_dim)
        scores = torch.matmul(q, k_all.transpose(-1, -2)) * (1.0 / math.sqrt(c.head_dim))
        scores = torch.where(allowed, scores, torch.tensor(torch.finfo(scores.dtype).min, dtype=scores.dtype))
        y = torch.matmul(F.softmax(scores, dim=-1), v_all).transpose(1, 2).reshape(B, S, c.num_attention_heads * c.head_dim)
        x = x + self.o_proj(y)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h)), k, v


class HfLlama(nn.Module):
    """LlamaForCausalLM's forward: RMSNorm, rotary positions from position_ids (rotate_half layout),
    grouped-query attention, SwiGLU, untied output head; the cache holds num_key_value_heads heads."""

    def __init__(self, c: HfLlamaConfig):
        super().__init__()
        self.config = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([HfLlamaBlock(c) for _ in range(c.num_hidden_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.register_buffer("inv_freq", rope_inverse_frequencies(c.head_dim, c.rope_theta), persistent=False)

    def init_weights(self, std, seed):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _, p in self.named_parameters():
                if p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=generator) * std)
                else:
                    p.copy_(1.0 + torch.randn(p.shape, generator=generator) * 0.1)

    def linears(self):
        """(name, module) of every projection, the weights MatMulNBits quantizes."""
        return [(name, m) for name, m in self.named_modules() if isinstance(m, nn.Linear)]

    def forward(self, input_ids, attention_mask, position_ids, *past):
        B, S = input_ids.shape
        total = attention_mask.shape[1]
        freqs = position_ids.unsqueeze(-1).float() * self.inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos().unsqueeze(1), emb.sin().unsqueeze(1)
        key_index = torch.arange(total)
        query_index = torch.arange(S) + (total - S)
        causal = key_index.unsqueeze(0) <= query_index.unsqueeze(1)
        allowed = causal.unsqueeze(0).unsqueeze(0) & (attention_mask == 1).unsqueeze(1).unsqueeze(2)
        x = self.embed_tokens(input_ids)
        presents = []
        for i, layer in enumerate(self.layers):
            pk, pv = (past[2 * i], past[2 * i + 1]) if past else (None, None)
            x, k, v = layer(x, allowed, cos, sin, pk, pv)
            presents += [k, v]
        return (self.lm_head(self.norm(x)), *presents)


def export_optimum_llama(model, path, opset=17):
    """torch.onnx.export with Optimum's decoder-with-past signature and dimension names (input_ids,
    attention_mask, position_ids, past_key_values.{i}.key/value -> logits, present.{i}.key/value), as
    onnx-community / transformers.js repositories ship it; constant folding leaves every projection a
    MatMul on a transposed-weight initializer, the form MatMulNBits quantization needs."""
    require_onnx()
    import onnx
    c = model.config
    B, P, S = 2, 3, 4
    args = [torch.randint(0, c.vocab_size, (B, S)), torch.ones(B, P + S, dtype=torch.int64),
            torch.arange(P, P + S).unsqueeze(0).expand(B, S).contiguous()]
    input_names, output_names = ["input_ids", "attention_mask", "position_ids"], ["logits"]
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "past_sequence_length + sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    for i in range(c.num_hidden_layers):
        for kind in ("key", "value"):
            args.append(torch.randn(B, c.num_key_value_heads, P, c.head_dim))
            name_in, name_out = f"past_key_values.{i}.{kind}", f"present.{i}.{kind}"
            input_names.append(name_in)
            output_names.append(name_out)
            axes[name_in] = {0: "batch_size", 2: "past_sequence_length"}
            axes[name_out] = {0: "batch_size", 2: "past_sequence_length + sequence_length"}
    with torch.no_grad():
        torch.onnx.export(model.eval(), tuple(args), path, input_names=input_names, output_names=output_names,
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(path))


# --- MatMulNBits: onnxruntime's blockwise int4 weight format ---

INT4_BLOCK = 32


def quantize_int4(weight_kn, block_size=INT4_BLOCK):
    """Symmetric blockwise int4 of a MatMul weight B [K, N], as onnxruntime's MatMulNBits quantizer
    does it (is_symmetric, no zero points): per column n and block of block_size rows along K, scale =
    (the value of largest magnitude) / -8 and q = clip(round(w / scale), -8, 7). Returns the MatMulNBits
    inputs (B uint8 [N, k_blocks, block_size / 2], low nibble first, stored as q + 8; scales float32
    [N * k_blocks]) and the dequantized weight (q * scale, [K, N]) that MatMulNBits multiplies by."""
    weight_kn = np.asarray(weight_kn, dtype=np.float32)
    K, N = weight_kn.shape
    k_blocks = (K + block_size - 1) // block_size
    padded = np.zeros((k_blocks * block_size, N), dtype=np.float32)
    padded[:K] = weight_kn
    blocks = padded.T.reshape(N, k_blocks, block_size)
    largest, smallest = blocks.max(axis=2, keepdims=True), blocks.min(axis=2, keepdims=True)
    scale = (np.where(np.abs(largest) > np.abs(smallest), largest, smallest) / np.float32(-8.0)).astype(np.float32)
    safe = np.where(scale == 0, np.float32(1.0), scale)
    q = np.where(scale == 0, 0, np.clip(np.round(blocks / safe), -8, 7)).astype(np.int8)
    dequantized = (q.astype(np.float32) * scale).reshape(N, k_blocks * block_size)[:, :K].T.copy()
    stored = (q + 8).astype(np.uint8)
    packed = (stored[:, :, 0::2] | (stored[:, :, 1::2] << 4)).astype(np.uint8)
    return packed, scale.reshape(N * k_blocks), dequantized


def matmul_nbits_node(name, input_name, output_name, weight_name, K, N, accuracy_level=None, block_size=INT4_BLOCK):
    from onnx import helper
    attributes = dict(K=K, N=N, bits=4, block_size=block_size)
    if accuracy_level is not None:
        attributes["accuracy_level"] = accuracy_level
    return helper.make_node("MatMulNBits", [input_name, weight_name + "_Q4", weight_name + "_scales"], [output_name],
                            name=name, domain="com.microsoft", **attributes)


def quantize_matmuls(model_proto, accuracy_level=None):
    """onnxruntime's MatMul4BitsQuantizer (default algorithm, symmetric, block 32) on an ONNX model:
    every MatMul whose B is a 2-D initializer becomes MatMulNBits named <node>_Q4 with initializers
    <B>_Q4 and <B>_scales. Returns {B name: dequantized [K, N]} for the torch reference."""
    from onnx import numpy_helper
    graph = model_proto.graph
    initializers = {t.name: t for t in graph.initializer}
    dequantized, nodes = {}, []
    for node in graph.node:
        b = initializers.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if b is None or len(b.dims) != 2:
            nodes.append(node)
            continue
        K, N = b.dims
        packed, scales, dequantized[b.name] = quantize_int4(numpy_helper.to_array(b))
        graph.initializer.extend([numpy_helper.from_array(packed, b.name + "_Q4"), numpy_helper.from_array(scales, b.name + "_scales")])
        nodes.append(matmul_nbits_node(node.name + "_Q4" if node.name else "", node.input[0], node.output[0], b.name, K, N, accuracy_level))
    used = {name for n in nodes for name in n.input}
    for name in list(dequantized):
        if name not in used:
            graph.initializer.remove(initializers[name])
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(o.domain == "com.microsoft" for o in model_proto.opset_import):
        model_proto.opset_import.add(domain="com.microsoft", version=1)
    return dequantized
