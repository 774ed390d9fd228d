#!/usr/bin/env python3
"""Builds the Llama fixtures in the two layouts people download, with torch goldens.

    /usr/bin/python3 tools/make_llama_fixtures.py tests/Fixtures

Needs tools/make_sentencepiece_tokenizer.py's output (spbpe-legacy, spbpe-metaspace) in the same folder.
One random-weight Llama (2 layers, 4 query / 2 key-value heads of size 16, width 64, SwiGLU 128,
RMSNorm eps 1e-5, rope theta 10000, 128 positions, the 2,000-piece SentencePiece vocabulary) in:

  tiny-llama-builder/    ONNX Runtime GenAI model builder's CPU int4 output for a Llama
                         (src/python/py/models/builder.py: genai_config.json with
                         past_present_share_buffer true, model.onnx + model.onnx.data): embedding
                         Gather, SimplifiedLayerNormalization / SkipSimplifiedLayerNormalization,
                         packed QKV, GroupQueryAttention with do_rotary (no position_ids input) fed
                         seqlens_k / total_sequence_length computed in the graph from attention_mask,
                         MatMulNBits int4 (block 32, symmetric) for every projection and the LM head;
                         the tokenizer.json of spbpe-legacy. golden.json from torch with the
                         dequantized int4 weights; its padded batch is RIGHT-padded (what
                         GroupQueryAttention needs, see the fixture README).
  tiny-onnx-community/   the onnx-community / transformers.js layout: config.json,
                         generation_config.json, tokenizer files at the root (spbpe-metaspace's
                         tokenizer.json), onnx/model.onnx (fp32 torch.onnx.export with Optimum's
                         names) and onnx/model_q4.onnx (the same graph with every MatMul turned into
                         MatMulNBits int4 as transformers.js' quantize.py does). golden.json (fp32)
                         and golden-q4.json (dequantized int4 weights), both left-padded.

The golden format is make_fixtures.py's (see its docstring) with two additions: `padding_side`, and
prompt ids are the tokenizer's ids without BOS (what Tokenizer.EncodeToIds returns; prefill and the
padded batch use them as they are) while every greedy prompt_ids starts with BOS, as generation from
text does with add_bos_token. Seeds are drawn until no greedy step of any of the three goldens has a
top-1/top-2 margin under 1e-3.
"""
import copy
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gptkit  # noqa: E402
import make_fixtures  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

try:
    import sentencepiece as spm
except ImportError:  # pragma: no cover - message for people setting up the kit
    sys.exit("make_llama_fixtures: sentencepiece is missing. Install it with:\n    sudo apt-get install python3-sentencepiece")

SPEC = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0, std=0.3, seed=41)
EXTRA_PROMPTS = ["Ελληνικά and 😀 emoji"]      # byte fallback inside a prompt
PROBES = 32
BOS, EOS = 1, 2
# The GenAI builder's CPU default is accuracy_level 4 (int8 activations inside MatMulNBits); 0 keeps the
# arithmetic fp32, exactly the dequantized-weight matmul the torch golden computes.
ACCURACY_LEVEL = 0


def prompts(sp_legacy, sp_metaspace_check):
    with open(os.path.join(HERE, "fixtures", "prompts.txt"), encoding="utf-8") as f:
        texts = [line.rstrip("\n").replace("\\n", "\n") for line in f if line.strip()]
    texts += EXTRA_PROMPTS
    result = []
    for text in texts:
        ids = sp_legacy.encode(text)
        if text.startswith(" ") or sp_metaspace_check(text) != ids:
            sys.exit(f"make_llama_fixtures: the two tokenizer forms disagree on prompt {text!r}; prompts must not start with a space")
        result.append({"text": text, "ids": ids})
    return result


def run(model, ids, mask, positions, past=None):
    with torch.no_grad():
        out = model(torch.tensor(ids), torch.tensor(mask), torch.tensor(positions), *(past or []))
    return out[0], list(out[1:])


def padded(prompt_ids, pad_id, side):
    width = max(len(p) for p in prompt_ids)
    rows = []
    for p in prompt_ids:
        pad = width - len(p)
        if side == "left":
            rows.append(([pad_id] * pad + p, [0] * pad + [1] * len(p), [0] * pad + list(range(len(p)))))
        else:
            rows.append((p + [pad_id] * pad, [1] * len(p) + [0] * pad, list(range(len(p))) + [0] * pad))
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def golden(model, prompt_list, probe_ids, side):
    figures = make_fixtures.figures
    data = {"probe_ids": probe_ids, "prompts": prompt_list, "prefill": [], "greedy": [], "padding_side": side}
    for p in prompt_list:
        ids = p["ids"]
        logits, _ = run(model, [ids], [[1] * len(ids)], [list(range(len(ids)))])
        entry = figures(logits[0], probe_ids)
        log_probs = torch.log_softmax(logits[0], dim=-1)
        entry["token_log_probs"] = [float(log_probs[i - 1, ids[i]]) for i in range(1, len(ids))]
        data["prefill"].append(entry)

    lengths = [len(p["ids"]) for p in prompt_list]
    ids, mask, positions = padded([p["ids"] for p in prompt_list], EOS, side)
    logits, presents = run(model, ids, mask, positions)
    data["padded_batch"] = {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                            "rows": [figures(logits[r], probe_ids) for r in range(len(ids))]}
    last = [len(ids[0]) - 1 if side == "left" else n - 1 for n in lengths]
    next_ids = [[int(logits[r, last[r]].argmax())] for r in range(len(ids))]
    step_mask = [m + [1] for m in mask]
    step_positions = [[n] for n in lengths]
    logits, _ = run(model, next_ids, step_mask, step_positions, presents)
    data["decode_step"] = {"input_ids": next_ids, "attention_mask": step_mask, "position_ids": step_positions,
                           "rows": [figures(logits[r], probe_ids) for r in range(len(ids))]}

    for p in prompt_list:
        prompt = [BOS] + p["ids"]
        ids, margin = list(prompt), float("inf")
        for _ in range(make_fixtures.GREEDY_TOKENS):
            logits, _ = run(model, [ids], [[1] * len(ids)], [list(range(len(ids)))])
            top = torch.topk(logits[0, -1], 2).values
            margin = min(margin, float(top[0] - top[1]))
            ids.append(int(logits[0, -1].argmax()))
        if margin < make_fixtures.MIN_MARGIN:
            raise make_fixtures.UnstableGolden(f"greedy margin {margin} for prompt {p['text']!r}")
        data["greedy"].append({"prompt_ids": prompt, "generated": ids[len(prompt):], "min_margin": margin})
    return data


def dequantized(model):
    """A copy whose projections hold the int4-dequantized weights MatMulNBits multiplies by."""
    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        for _, linear in copy_.linears():
            _, _, weight_kn = gptkit.quantize_int4(linear.weight.detach().numpy().T)
            linear.weight.copy_(torch.from_numpy(weight_kn.T.copy()))
    return copy_


# --- the GenAI model builder's graph ---

def builder_graph(model):
    """The graph builder.py emits for a Llama with --precision int4 --execution_provider cpu (node and
    tensor names, op types, attributes, input/output names and dimension names as it writes them)."""
    from onnx import TensorProto, helper, numpy_helper
    c = model.config
    nodes, initializers, constants = [], [], {}

    def constant(dtype_name, value):
        name = f"/model/constants/{dtype_name}/{value}"
        if name not in constants:
            array = np.array(value, dtype={"INT64": np.int64}[dtype_name])
            constants[name] = helper.make_node("Constant", [], [name], name=name.replace("constants", "constant_nodes"),
                                               value=numpy_helper.from_array(array, name))
            nodes.append(constants[name])
        return name

    def initializer(array, name):
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op, inputs, outputs, name, domain="", **attributes):
        nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain, **attributes))
        return outputs[0]

    def matmul(basename, root, weight_kn, output=None):
        # builder.py emits a float MatMul named <basename>; its to_nbits pass (MatMulNBitsQuantizer) turns it
        # into <basename>_Q4 with initializers <weight>_Q4 / <weight>_scales and keeps the output name.
        weight = basename[1:].replace("/", ".") + ".weight"
        packed, scales, _ = gptkit.quantize_int4(weight_kn)
        initializer(packed, weight + "_Q4")
        initializer(scales, weight + "_scales")
        K, N = weight_kn.shape
        out = output or f"{basename}/output_0"
        nodes.append(gptkit.matmul_nbits_node(basename + "_Q4", root, out, weight, K, N, ACCURACY_LEVEL))
        return out

    def w(linear):
        return linear.weight.detach().numpy().T.astype(np.float32)

    # attention mask -> seqlens_k (row sums - 1) and total_sequence_length (mask width), both int32
    base = "/model/attn_mask_reformat/attn_mask_subgraph"
    reduced = node("ReduceSum", ["attention_mask", constant("INT64", [1])], [f"{base}/ReduceSum/output_0"], f"{base}/ReduceSum", keepdims=0)
    sub = node("Sub", [reduced, constant("INT64", [1])], [f"{base}/Sub/output_0"], f"{base}/Sub")
    seqlens_k = node("Cast", [sub], [f"{base}/Sub/Cast/output_0"], f"{base}/Sub/Cast", to=TensorProto.INT32)
    shape = node("Shape", ["attention_mask"], [f"{base}/Shape/output_0"], f"{base}/Shape")
    width = node("Gather", [shape, constant("INT64", 1)], [f"{base}/Gather/output_0"], f"{base}/Gather", axis=0)
    total = node("Cast", [width], [f"{base}/Gather/Cast/output_0"], f"{base}/Gather/Cast", to=TensorProto.INT32)

    embeds = node("Gather", [initializer(model.embed_tokens.weight.detach().numpy(), "model.embed_tokens.weight"), "input_ids"],
                  ["/model/embed_tokens/Gather/output_0"], "/model/embed_tokens/Gather")
    cos, sin = gptkit.rope_caches(c.head_dim, c.max_position_embeddings, c.rope_theta)
    initializer(cos.numpy(), "cos_cache")
    initializer(sin.numpy(), "sin_cache")
    eps = float(c.rms_norm_eps)

    root, skip, normed = embeds, None, None

    def layernorm(layer, location, weight, last=False):
        nonlocal root, skip, normed
        weight_name = initializer(weight.detach().numpy(), f"model.layers.{layer}.{location}_layernorm.weight")
        prefix = f"/model/layers.{layer}/{location}_layernorm"
        if skip is None:
            normed = node("SimplifiedLayerNormalization", [root, weight_name], [f"{prefix}/output_0"], f"{prefix}/LayerNorm",
                          epsilon=eps, axis=-1, stash_type=1)
            return
        outputs = [f"{prefix}/output_0"] if last else [f"{prefix}/output_0", "", "", f"{prefix}/output_3"]
        nodes.append(helper.make_node("SkipSimplifiedLayerNormalization", [root, skip, weight_name], outputs,
                                      name=f"{prefix}/SkipLayerNorm", domain="com.microsoft", epsilon=eps))
        normed = outputs[0]
        if not last:
            root = outputs[3]

    for i, layer in enumerate(model.layers):
        layernorm(i, "input", layer.input_layernorm.weight)
        qkv = np.concatenate([w(layer.q_proj), w(layer.k_proj), w(layer.v_proj)], axis=1)
        qkv_out = matmul(f"/model/layers.{i}/attn/qkv_proj/MatMul", normed, qkv)
        attn = f"/model/layers.{i}/attn/GroupQueryAttention"
        node("GroupQueryAttention",
             [qkv_out, "", "", f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens_k, total, "cos_cache", "sin_cache", "", "", ""],
             [f"{attn}/output_0", f"present.{i}.key", f"present.{i}.value"], attn, domain="com.microsoft",
             num_heads=c.num_attention_heads, kv_num_heads=c.num_key_value_heads, scale=float(1 / np.sqrt(c.head_dim)),
             local_window_size=-1, softcap=0.0, do_rotary=1, rotary_interleaved=0)
        skip = matmul(f"/model/layers.{i}/attn/o_proj/MatMul", f"{attn}/output_0", w(layer.o_proj))
        layernorm(i, "post_attention", layer.post_attention_layernorm.weight)
        mlp_in = normed
        gate = matmul(f"/model/layers.{i}/mlp/gate_proj/MatMul", mlp_in, w(layer.gate_proj))
        up = matmul(f"/model/layers.{i}/mlp/up_proj/MatMul", mlp_in, w(layer.up_proj))
        sigmoid = node("Sigmoid", [gate], [f"/model/layers.{i}/mlp/act_fn/Sigmoid/output_0"], f"/model/layers.{i}/mlp/act_fn/Sigmoid")
        act = node("Mul", [gate, sigmoid], [f"/model/layers.{i}/mlp/act_fn/Mul/output_0"], f"/model/layers.{i}/mlp/act_fn/Mul")
        product = node("Mul", [act, up], [f"/model/layers.{i}/mlp/Mul/output_0"], f"/model/layers.{i}/mlp/Mul")
        skip = matmul(f"/model/layers.{i}/mlp/down_proj/MatMul", product, w(layer.down_proj))
    layernorm(c.num_hidden_layers, "final_norm", model.norm.weight, last=True)
    matmul("/lm_head/MatMul", normed, w(model.lm_head), output="logits")

    kv = ["batch_size", c.num_key_value_heads]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "sequence_length", c.vocab_size])]
    for i in range(c.num_hidden_layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kind}", TensorProto.FLOAT, kv + ["past_sequence_length", "kv_cache_dim"]))
    for i in range(c.num_hidden_layers):
        for kind in ("key", "value"):
            outputs.append(helper.make_tensor_value_info(f"present.{i}.{kind}", TensorProto.FLOAT, kv + ["total_sequence_length", "kv_cache_dim"]))
    graph = helper.make_graph(nodes, "main_graph", inputs, outputs, initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)],
                              producer_name="onnxruntime-genai")
    proto.ir_version = 10
    return proto


def genai_config(c, filename):
    """genai_config.json as builder.py's make_genai_config writes it for a CPU Llama with GroupQueryAttention."""
    return {
        "model": {
            "bos_token_id": c.bos_token_id, "context_length": c.max_position_embeddings,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": filename, "head_size": c.head_dim, "hidden_size": c.hidden_size,
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                           "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key", "present_value_names": "present.%d.value"},
                "num_attention_heads": c.num_attention_heads, "num_hidden_layers": c.num_hidden_layers,
                "num_key_value_heads": c.num_key_value_heads,
            },
            "eos_token_id": c.eos_token_id, "pad_token_id": c.eos_token_id, "type": "llama", "vocab_size": c.vocab_size,
        },
        "search": {
            "diversity_penalty": 0.0, "do_sample": False, "early_stopping": True, "length_penalty": 1.0,
            "max_length": c.max_position_embeddings, "min_length": 0, "no_repeat_ngram_size": 0, "num_beams": 1,
            "num_return_sequences": 1, "past_present_share_buffer": True, "repetition_penalty": 1.0, "temperature": 1.0,
            "top_k": 50, "top_p": 1.0,
        },
    }


def rounded(value):
    """Floats to 7 significant digits (float32 carries about 7; the tests allow 1e-4 relative): the
    goldens stay under the fixture size limit."""
    if isinstance(value, float):
        return float(f"{value:.7g}")
    if isinstance(value, list):
        return [rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def write_json(path, content, indent=2):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(content, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def copy_tokenizer(source, folder, max_length):
    for name in ("tokenizer.json", "tokenizer.model"):
        shutil.copy(os.path.join(source, name), os.path.join(folder, name))
    with open(os.path.join(source, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config["model_max_length"] = max_length
    write_json(os.path.join(folder, "tokenizer_config.json"), config)
    special = {"content": None, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    write_json(os.path.join(folder, "special_tokens_map.json"),
               {name: dict(special, content=token) for name, token in (("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>"))})


def folder_size(folder):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(folder) for f in files)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    torch.set_num_threads(2)
    import onnx
    sp = spm.SentencePieceProcessor(model_file=os.path.join(out_dir, "spbpe-legacy", "tokenizer.model"))
    raw = spm.SentencePieceProcessor()
    from sentencepiece import sentencepiece_model_pb2
    proto = sentencepiece_model_pb2.ModelProto()
    with open(os.path.join(out_dir, "spbpe-legacy", "tokenizer.model"), "rb") as f:
        proto.ParseFromString(f.read())
    proto.normalizer_spec.add_dummy_prefix = False
    raw.LoadFromSerializedProto(proto.SerializeToString())

    def metaspace_ids(text):
        replaced = text.replace(" ", "\u2581")
        return raw.encode(replaced if replaced.startswith("\u2581") else "\u2581" + replaced) if text else []

    prompt_list = prompts(sp, metaspace_ids)
    config = gptkit.HfLlamaConfig(sp.get_piece_size(), SPEC["hidden_size"], SPEC["intermediate_size"], SPEC["num_hidden_layers"],
                                  SPEC["num_attention_heads"], SPEC["num_key_value_heads"], SPEC["max_position_embeddings"],
                                  SPEC["rms_norm_eps"], SPEC["rope_theta"], BOS, EOS)
    rng_probes = np.random.default_rng(SPEC["seed"])
    probe_ids = sorted(rng_probes.choice(config.vocab_size, PROBES, replace=False).tolist())

    for seed in range(SPEC["seed"], SPEC["seed"] + 50):
        model = gptkit.HfLlama(config)
        model.init_weights(SPEC["std"], seed)
        model.eval()
        int4 = dequantized(model).eval()
        try:
            fp32_golden = golden(model, prompt_list, probe_ids, "left")
            q4_golden = golden(int4, prompt_list, probe_ids, "left")
            builder_golden = golden(int4, prompt_list, probe_ids, "right")
            break
        except make_fixtures.UnstableGolden as reason:
            print(f"make_llama_fixtures: seed {seed}: {reason}; trying the next seed")
    else:
        raise RuntimeError("no stable seed found")
    spec = dict(SPEC, seed=seed, vocab_size=config.vocab_size)

    # tiny-llama-builder
    folder = os.path.join(out_dir, "tiny-llama-builder")
    os.makedirs(folder, exist_ok=True)
    for stale in ("model.onnx", "model.onnx.data"):
        if os.path.exists(os.path.join(folder, stale)):
            os.remove(os.path.join(folder, stale))
    onnx.save_model(builder_graph(model), os.path.join(folder, "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    write_json(os.path.join(folder, "genai_config.json"), genai_config(config, "model.onnx"), indent=4)
    copy_tokenizer(os.path.join(out_dir, "spbpe-legacy"), folder, config.max_position_embeddings)
    builder_golden["fixture"] = dict(spec, name="tiny-llama-builder", weights="int4 (MatMulNBits, block 32, symmetric), dequantized for torch")
    write_json(os.path.join(folder, "golden.json"), rounded(builder_golden), indent=None)

    # tiny-onnx-community
    folder = os.path.join(out_dir, "tiny-onnx-community")
    os.makedirs(os.path.join(folder, "onnx"), exist_ok=True)
    fp32_path, q4_path = os.path.join(folder, "onnx", "model.onnx"), os.path.join(folder, "onnx", "model_q4.onnx")
    gptkit.export_optimum_llama(model, fp32_path)
    exported = onnx.load(fp32_path)
    reference = {name: linear.weight for name, linear in int4.linears()}
    weights = gptkit.quantize_matmuls(exported, accuracy_level=None)
    if len(weights) != len(reference):
        raise RuntimeError(f"quantized {len(weights)} MatMuls, expected {len(reference)} projections")
    for kn in weights.values():      # every quantized initializer must be one of the dequantized projections
        if not any(w.shape == kn.T.shape and np.array_equal(w.detach().numpy(), kn.T) for w in reference.values()):
            raise RuntimeError("a quantized MatMul does not match any dequantized projection")
    onnx.save(exported, q4_path)
    hf = config.config_json("tiny-onnx-community")
    hf["transformers.js_config"] = {"kv_cache_dtype": {"q4f16": "float16", "fp16": "float16"}}
    write_json(os.path.join(folder, "config.json"), hf)
    write_json(os.path.join(folder, "generation_config.json"),
               {"bos_token_id": BOS, "eos_token_id": EOS, "max_new_tokens": 20, "transformers_version": "4.46.0"})
    copy_tokenizer(os.path.join(out_dir, "spbpe-metaspace"), folder, config.max_position_embeddings)
    os.remove(os.path.join(folder, "tokenizer.model"))       # onnx-community repositories ship tokenizer.json only
    fp32_golden["fixture"] = dict(spec, name="tiny-onnx-community", weights="float32")
    q4_golden["fixture"] = dict(spec, name="tiny-onnx-community", weights="int4 (MatMulNBits, block 32, symmetric), dequantized for torch")
    write_json(os.path.join(folder, "golden.json"), rounded(fp32_golden), indent=None)
    write_json(os.path.join(folder, "golden-q4.json"), rounded(q4_golden), indent=None)

    def margin(data):
        return f"{min(g['min_margin'] for g in data['greedy']):.4f}"
    for name, data in (("tiny-llama-builder", builder_golden), ("tiny-onnx-community", fp32_golden), ("tiny-onnx-community q4", q4_golden)):
        generated = {t for g in data["greedy"] for t in g["generated"]}
        print(f"make_llama_fixtures: {name}: seed {seed}, {len(generated)} distinct greedy tokens, min greedy margin {margin(data)}")
    for name, fields in (("tiny-llama-builder", {"@MARGIN@": margin(builder_golden)}),
                         ("tiny-onnx-community", {"@MARGIN@": margin(fp32_golden), "@MARGIN_Q4@": margin(q4_golden)})):
        with open(os.path.join(HERE, "fixtures", f"{name}.md"), encoding="utf-8") as f:
            readme = f.read().replace("@SEED@", str(seed))
        for key, value in fields.items():
            readme = readme.replace(key, value)
        folder = os.path.join(out_dir, name)
        readme_path = os.path.join(folder, "README.md")
        # The size line counts the README itself, so it is written once with a placeholder first.
        for _ in range(2):
            with open(readme_path, "w", encoding="utf-8") as f:
                f.write(readme.replace("@SIZE@", f"{folder_size(folder) / 1e6:.2f} MB in all (limit 2.5 MB)"))
        print(f"make_llama_fixtures: {name}: {folder_size(folder) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
