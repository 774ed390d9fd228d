#!/usr/bin/env python3
"""Turns the trained checkpoint into the embedded default model folder, its model card and the
default model's golden greedy data.

    /usr/bin/python3 tools/export_default.py --run artifacts/default --out models/mlnetgpt-kjv \
        --golden tests/Fixtures/default-golden.json

Weights are stored as fp16 (with Casts to fp32 in the graph); torch computes the golden data and
the card's samples from the same fp16-rounded weights. The training log is copied to
tools/logs/ so the card's numbers can be checked against it.
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gptkit  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_NAME = "mlnetgpt-kjv"
GREEDY_PROMPTS = ["In the beginning", "And the children of Israel", "Blessed are the", "The LORD is my shepherd;",
                  "And it came to pass, when", "And the LORD said unto Moses,"]
# Prompts that end a clause (with ':' or ';') tend to be answered with <|endoftext|> at once, as many
# KJV verses end there; these open a sentence the model can carry on.
SAMPLE_PROMPTS = ["In the beginning", "And the children of Israel", "For God so loved the world,"]
SAMPLE_SETTINGS = dict(temperature=0.8, top_k=40, max_new_tokens=40, seed=2026)
GREEDY_TOKENS = 24


def tokenize(texts):
    path = os.path.join(HERE, "fixtures", ".default-prompts.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    out = path + ".json"
    subprocess.run(["dotnet", "run", "-c", "Release", "--project", os.path.join(HERE, "TokenizeCorpus"), "--", "texts", path, out],
                   check=True, stdout=subprocess.DEVNULL)
    with open(out, encoding="utf-8") as f:
        items = json.load(f)
    os.remove(path)
    os.remove(out)
    return items


def next_logits(model, ids):
    with torch.no_grad():
        T = len(ids)
        return model(torch.tensor([ids]), torch.ones(1, T, dtype=torch.long), torch.arange(T).unsqueeze(0))[0][0, -1]


def greedy(model, ids, steps, eos):
    ids, margin, out = list(ids), float("inf"), []
    for _ in range(steps):
        logits = next_logits(model, ids)
        top = torch.topk(logits, 2).values
        margin = min(margin, float(top[0] - top[1]))
        token = int(logits.argmax())
        if token == eos:
            break
        out.append(token)
        ids.append(token)
    return out, margin


def sample(model, ids, temperature, top_k, max_new_tokens, seed, eos):
    generator = torch.Generator().manual_seed(seed)
    ids, out = list(ids), []
    for _ in range(max_new_tokens):
        logits = next_logits(model, ids) / temperature
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = float("-inf")
        token = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))
        if token == eos:
            break
        out.append(token)
        ids.append(token)
    return out


def decode(id_lists):
    """Decodes with the same .NET tokenizer the library uses."""
    path = os.path.join(HERE, "fixtures", ".decode.json")
    with open(path, "w") as f:
        json.dump(id_lists, f)
    subprocess.run(["dotnet", "run", "-c", "Release", "--project", os.path.join(HERE, "TokenizeCorpus"), "--", "decode", path, path + ".out"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(path + ".out", encoding="utf-8") as f:
        texts = json.load(f)
    os.remove(path)
    os.remove(path + ".out")
    return texts


def samples_markdown(items):
    texts = decode([item["generated"] for item in items])
    lines = []
    for item, text in zip(items, texts):
        lines.append(f"- **{item['text']}**{text}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="the training output folder (checkpoint.pt, train.log, run.json)")
    p.add_argument("--out", required=True)
    p.add_argument("--golden", required=True)
    args = p.parse_args()
    torch.set_num_threads(2)

    checkpoint = os.path.join(args.run, "checkpoint.pt")
    if not os.path.isfile(checkpoint):
        sys.exit(f"export_default: '{checkpoint}' does not exist; run tools/train.py first.")
    model, state = gptkit.load_checkpoint(checkpoint)
    model = gptkit.round_to_fp16(model.eval())
    with open(os.path.join(args.run, "run.json")) as f:
        run = json.load(f)
    log_lines = open(os.path.join(args.run, "train.log")).read().splitlines()
    evals = [l for l in log_lines if l.startswith("step")]
    last = evals[-1]
    minutes = float(re.search(r"\| ([\d.]+) min", last).group(1))
    steps_done = int(re.match(r"step\s+(\d+)", last).group(1))
    notes = [l.lstrip("# ").strip() for l in log_lines if l.startswith("#") and not l.startswith("# run {")]
    if steps_done < run["steps"]:
        stopped = (f" The run was planned for {run['steps']} steps and stopped after step {steps_done}"
                   + (f" ({'; '.join(notes)})" if notes else "") + "; the exported weights are that checkpoint.")
    else:
        stopped = ""
    best_val = state["val_loss"]

    eos = gptkit.END_OF_TEXT
    # Each training verse follows <|endoftext|>, so text prompts start with it (add_bos_token).
    greedy_items = [dict(item, ids=[eos] + item["ids"]) for item in tokenize(GREEDY_PROMPTS)]
    golden = []
    for item in greedy_items:
        tokens, margin = greedy(model, item["ids"], GREEDY_TOKENS, eos)
        golden.append({"text": item["text"], "prompt_ids": item["ids"], "generated": tokens, "min_margin": margin,
                       "finished_by_eos": len(tokens) < GREEDY_TOKENS})
    samples = []
    for item in [dict(item, ids=[eos] + item["ids"]) for item in tokenize(SAMPLE_PROMPTS)]:
        samples.append({"text": item["text"], "prompt_ids": item["ids"],
                        "generated": sample(model, item["ids"], eos=eos, **SAMPLE_SETTINGS)})
    os.makedirs(os.path.dirname(os.path.abspath(args.golden)), exist_ok=True)
    with open(args.golden, "w", encoding="utf-8") as f:
        json.dump({"model": MODEL_NAME, "greedy": golden, "samples": samples, "sample_settings": SAMPLE_SETTINGS}, f, indent=1)

    logs = os.path.join(HERE, "logs")
    os.makedirs(logs, exist_ok=True)
    shutil.copy(os.path.join(args.run, "train.log"), os.path.join(logs, "default-train.log"))
    shutil.copy(os.path.join(args.run, "run.json"), os.path.join(logs, "default-run.json"))

    c = model.config
    card_template = open(os.path.join(HERE, "model_card.md")).read()
    card = card_template.format(
        name=MODEL_NAME, layers=c.n_layer, heads=c.n_head, width=c.n_embd, context=c.n_positions,
        parameters=run["parameters"], kept=run["kept_ids"], min_count=run["min_count"],
        train_tokens=run["train_tokens"], val_tokens=run["val_tokens"], steps=steps_done, batch=run["batch"],
        tokens_seen=steps_done * run["batch"] * run["context"],
        epochs=steps_done * run["batch"] * run["context"] / run["train_tokens"], stopped=stopped,
        lr=run["lr"], min_lr=run["min_lr"], warmup=run["warmup"], weight_decay=run["weight_decay"], dropout=run["dropout"],
        seed=run["seed"], minutes=minutes, hours=minutes / 60, best_step=state["step"], val_loss=best_val,
        val_ppl=math.exp(best_val), eval_table="\n".join("    " + l for l in evals),
        samples=samples_markdown(samples), greedy=samples_markdown(golden[:3]), torch=run["torch"],
        sample_settings=", ".join(f"{k} {v}" for k, v in SAMPLE_SETTINGS.items()))
    gptkit.write_model_folder(
        model, args.out, name=MODEL_NAME, fp16_weights=True, card=card,
        generation={"do_sample": True, "temperature": 0.8, "top_k": 40, "top_p": 0.95, "repetition_penalty": 1.1,
                    "max_new_tokens": 40}, add_bos_token=True, logits_to_keep=True)
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"export_default: {args.out}: {size / 1e6:.2f} MB; best validation loss {best_val:.4f} (step {state['step']}); "
          f"golden -> {args.golden}")


if __name__ == "__main__":
    main()
