#!/usr/bin/env python3
"""Builds the tiny random-weight test fixtures and their torch-computed golden data.

    /usr/bin/python3 tools/make_fixtures.py tests/Fixtures

Each fixture is a complete model folder (model.onnx, config.json, generation_config.json,
tokenizer_config.json) plus golden.json:
  prompts          text and GPT-2 ids (tokenized by TokenizeCorpus, i.e. Microsoft.ML.Tokenizers)
  probe_ids        the vocabulary columns whose logits are stored (kept and unseen ids)
  prefill          per prompt, batch of one: probe logits, logsumexp over all 50257 and argmax
                   at every position, and token_log_probs: log p(token i | tokens before it), i >= 1
  padded_batch     all prompts in one left-padded batch: the model inputs and, per row, the same
                   figures at every position (pad positions hold unspecified values; skip them)
  decode_step      after the padded prefill, one step feeding each row's argmax through the
                   KV cache: the figures for that step
  greedy           32 greedy tokens per prompt, computed without a KV cache (full recompute each
                   step), with the smallest top-1/top-2 logit margin seen, so ties cannot flip
Weights are drawn with a large scale (std 0.3, random biases and gains) so that greedy output
varies instead of repeating the last token.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gptkit  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GREEDY_TOKENS = 32
MIN_MARGIN = 1e-3
PROBES_KEPT, PROBES_UNSEEN = 40, 8

FIXTURES = [
    # name, layers, heads, width, positions, seed: different depth, an odd head count, different widths
    dict(name="tiny-gpt2-a", n_layer=2, n_head=4, n_embd=64, n_positions=128, seed=11),
    # b also takes the optional num_logits_to_keep input (default 0 = all positions), as recent exports do
    dict(name="tiny-gpt2-b", n_layer=3, n_head=3, n_embd=48, n_positions=64, seed=23, logits_to_keep=True),
]
# Grouped-query attention (2 key/value heads for 4 query heads), in the ONNX Runtime GenAI layout.
GQA_FIXTURE = dict(name="tiny-gqa-genai", n_layer=2, n_head=4, n_kv_head=2, n_embd=64, n_positions=128, seed=31)


def tokenize_prompts(prompts_file):
    out = os.path.join(os.path.dirname(prompts_file), ".prompts.json")
    project = os.path.join(HERE, "TokenizeCorpus")
    try:
        subprocess.run(["dotnet", "run", "-c", "Release", "--project", project, "--", "texts", prompts_file, out],
                       check=True, stdout=subprocess.DEVNULL)
    except FileNotFoundError:
        sys.exit("make_fixtures: the .NET SDK (dotnet) is needed to tokenize the prompts with Microsoft.ML.Tokenizers.")
    with open(out, encoding="utf-8") as f:
        prompts = json.load(f)
    os.remove(out)
    return prompts


def figures(logits, probe_ids):
    """logits [S, V] -> probe values, logsumexp and argmax per position."""
    return {"probe": logits[:, probe_ids].tolist(),
            "logsumexp": torch.logsumexp(logits, dim=-1).tolist(),
            "argmax": logits.argmax(dim=-1).tolist()}


def run(model, ids, mask, positions, past=None):
    with torch.no_grad():
        if getattr(model.config, "n_kv_head", None) is not None:        # Llama-style: no position_ids input
            out = model(torch.tensor(ids), torch.tensor(mask), *(past or []))
        else:
            out = model(torch.tensor(ids), torch.tensor(mask), torch.tensor(positions), *(past or []))
    return out[0], list(out[1:])


def left_padded(prompts, pad_id):
    width = max(len(p) for p in prompts)
    ids = [[pad_id] * (width - len(p)) + p for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    positions = [[0] * (width - len(p)) + list(range(len(p))) for p in prompts]
    return ids, mask, positions


def golden(model, prompts, probe_ids, pad_id):
    data = {"probe_ids": probe_ids, "prompts": prompts, "prefill": [], "greedy": []}
    for p in prompts:
        ids = p["ids"]
        logits, _ = run(model, [ids], [[1] * len(ids)], [list(range(len(ids)))])
        entry = figures(logits[0], probe_ids)
        # log p(token i | tokens < i) for i >= 1: what scoring must reproduce
        log_probs = torch.log_softmax(logits[0], dim=-1)
        entry["token_log_probs"] = [float(log_probs[i - 1, ids[i]]) for i in range(1, len(ids))]
        data["prefill"].append(entry)

    ids, mask, positions = left_padded([p["ids"] for p in prompts], pad_id)
    logits, presents = run(model, ids, mask, positions)
    data["padded_batch"] = {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                            "rows": [figures(logits[r], probe_ids) for r in range(len(ids))]}
    next_ids = [[int(logits[r, -1].argmax())] for r in range(len(ids))]
    step_mask = [m + [1] for m in mask]
    step_positions = [[len(p["ids"])] for p in prompts]
    logits, _ = run(model, next_ids, step_mask, step_positions, presents)
    data["decode_step"] = {"input_ids": next_ids, "attention_mask": step_mask, "position_ids": step_positions,
                           "rows": [figures(logits[r], probe_ids) for r in range(len(ids))]}

    for p in prompts:
        ids, margin = list(p["ids"]), float("inf")
        for _ in range(GREEDY_TOKENS):
            logits, _ = run(model, [ids], [[1] * len(ids)], [list(range(len(ids)))])
            top = torch.topk(logits[0, -1], 2).values
            margin = min(margin, float(top[0] - top[1]))
            ids.append(int(logits[0, -1].argmax()))
        if margin < MIN_MARGIN:
            raise UnstableGolden(f"greedy margin {margin} for prompt {p['text']!r} is too small to be a stable golden")
        data["greedy"].append({"prompt_ids": p["ids"], "generated": ids[len(p["ids"]):], "min_margin": margin})
    return data


def probe_columns(kept, seed):
    rng = np.random.default_rng(seed)
    unseen = np.setdiff1d(np.arange(gptkit.GPT2_VOCAB), kept)
    return sorted(rng.choice(kept, PROBES_KEPT, replace=False).tolist() + rng.choice(unseen, PROBES_UNSEEN, replace=False).tolist())


class UnstableGolden(Exception):
    pass


def stable_model(build, spec, prompts, kept):
    """A seed whose greedy paths pass near a tie would make the golden flaky: draw seeds from
    spec['seed'] on until no greedy step has a top-1/top-2 margin below MIN_MARGIN."""
    for seed in range(spec["seed"], spec["seed"] + 50):
        model = build(seed).eval()
        try:
            return model, golden(model, prompts, probe_columns(np.asarray(kept), seed), pad_id=gptkit.END_OF_TEXT), seed
        except UnstableGolden as reason:
            print(f"make_fixtures: {spec['name']} seed {seed}: {reason}; trying the next seed")
    raise RuntimeError(f"no stable seed found for {spec['name']}")


def finish_folder(folder, spec, data, description):
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(f"# {spec['name']}\n\nA random-weight test fixture made by tools/make_fixtures.py: {description}. "
                "It produces no meaningful text; golden.json holds what torch computes for it.\n")
    if data is not None:
        data["fixture"] = spec
        with open(os.path.join(folder, "golden.json"), "w", encoding="utf-8") as f:
            json.dump(data, f)
    size = sum(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))
    largest = max(os.path.getsize(os.path.join(folder, name)) for name in os.listdir(folder))
    margin = f", min greedy margin {min(g['min_margin'] for g in data['greedy']):.4f}" if data else ""
    print(f"make_fixtures: {folder}: {size / 1e6:.2f} MB (largest file {largest / 1e6:.2f} MB){margin}")


def kept_ids(prompts):
    # Low GPT-2 ids are the most frequent BPE pieces; the prompts' own ids are kept too.
    return sorted(set(range(768)) | {i for p in prompts for i in p["ids"]})


def make_gpt2_fixture(spec, prompts, out_dir):
    kept = kept_ids(prompts)
    config = gptkit.GPTConfig(spec["n_layer"], spec["n_head"], spec["n_embd"], spec["n_positions"], kept)

    def build(seed):
        model = gptkit.GPT(config)
        model.init_weights(std=0.3, seed=seed, vector_std=0.1)
        return model
    model, data, seed = stable_model(build, spec, prompts, kept)
    spec = dict(spec, seed=seed)
    folder = os.path.join(out_dir, spec["name"])
    keep = spec.get("logits_to_keep", False)
    gptkit.write_model_folder(model, folder, name=spec["name"], fp16_weights=False, generation={"max_new_tokens": 20}, logits_to_keep=keep)
    finish_folder(folder, spec, data, f"GPT-2 architecture, {spec['n_layer']} layers, {spec['n_head']} heads, width "
                  f"{spec['n_embd']}, {spec['n_positions']} positions, {len(kept)} kept GPT-2 ids, seed {seed}"
                  + (", optional num_logits_to_keep input" if keep else ""))
    return model


def make_layout_variants(model, out_dir, base):
    """The same weights as `base` in Optimum's other two layouts (its golden.json applies to them)."""
    import shutil
    pair = os.path.join(out_dir, base + "-pair")
    merged = os.path.join(out_dir, base + "-merged")
    for folder in (pair, merged):
        os.makedirs(folder, exist_ok=True)
        for name in ("config.json", "generation_config.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(out_dir, base, name), os.path.join(folder, name))
    gptkit.export_gpt_without_past(model, os.path.join(pair, "decoder_model.onnx"))
    gptkit.export_onnx(model, os.path.join(pair, "decoder_with_past_model.onnx"))
    gptkit.merge_decoders(os.path.join(pair, "decoder_model.onnx"), os.path.join(pair, "decoder_with_past_model.onnx"),
                          os.path.join(merged, "decoder_model_merged.onnx"))
    finish_folder(pair, {"name": base + "-pair"}, None,
                  f"the weights of {base} as decoder_model.onnx (prefill, no past inputs) + decoder_with_past_model.onnx; compare with {base}/golden.json")
    finish_folder(merged, {"name": base + "-merged"}, None,
                  f"the weights of {base} as decoder_model_merged.onnx (If on use_cache_branch); compare with {base}/golden.json")


def make_gqa_fixture(spec, prompts, out_dir):
    kept = kept_ids(prompts)
    config = gptkit.LlamaConfig(spec["n_layer"], spec["n_head"], spec["n_kv_head"], spec["n_embd"], spec["n_positions"], kept)

    def build(seed):
        model = gptkit.Llama(config)
        model.init_weights(std=0.3, seed=seed)
        return model
    model, data, seed = stable_model(build, spec, prompts, kept)
    spec = dict(spec, seed=seed)
    folder = os.path.join(out_dir, spec["name"])
    os.makedirs(folder, exist_ok=True)
    gptkit.export_llama(model, os.path.join(folder, "model.onnx"))
    genai = {
        "model": {
            "bos_token_id": gptkit.END_OF_TEXT, "eos_token_id": gptkit.END_OF_TEXT, "pad_token_id": gptkit.END_OF_TEXT,
            "context_length": spec["n_positions"], "vocab_size": gptkit.GPT2_VOCAB, "type": "decoder",
            "decoder": {
                "filename": "model.onnx", "head_size": config.head_dim, "hidden_size": config.n_embd,
                "num_attention_heads": config.n_head, "num_key_value_heads": config.n_kv_head, "num_hidden_layers": config.n_layer,
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                           "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key", "present_value_names": "present.%d.value"},
            },
        },
        "search": {"do_sample": False, "max_length": spec["n_positions"], "num_beams": 1, "past_present_share_buffer": False,
                   "temperature": 1.0, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0},
    }
    with open(os.path.join(folder, "genai_config.json"), "w") as f:
        json.dump(genai, f, indent=2)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "GPT2Tokenizer", "encoding": "gpt2"}, f, indent=2)
    finish_folder(folder, spec, data, f"Llama-style decoder (RMSNorm, rotary positions, SwiGLU) with grouped-query attention: "
                  f"{spec['n_layer']} layers, {spec['n_head']} query heads, {spec['n_kv_head']} key/value heads, width {spec['n_embd']}, "
                  f"no position_ids input (positions come from the attention mask), ONNX Runtime GenAI layout, seed {seed}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    torch.set_num_threads(1)
    prompts = tokenize_prompts(os.path.join(HERE, "fixtures", "prompts.txt"))
    for spec in FIXTURES:
        model = make_gpt2_fixture(spec, prompts, out_dir)
        if spec["name"] == "tiny-gpt2-a":
            make_layout_variants(model, out_dir, spec["name"])
    make_gqa_fixture(GQA_FIXTURE, prompts, out_dir)


if __name__ == "__main__":
    main()
