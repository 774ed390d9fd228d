#!/usr/bin/env python3
"""Trains the default model on tokenized KJV verses (see tools/README.md for the whole recipe).

    /usr/bin/python3 tools/train.py --data artifacts/kjv --out artifacts/default --steps 1500

Writes OUT/checkpoint.pt (best validation loss), OUT/train.log (every number of the run) and
OUT/run.json (the settings). Losses are reported at the model's interface: cross-entropy over the
50257 GPT-2 ids, natural log, so the perplexity equals what ScoreText measures on the same text.
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gptkit  # noqa: E402  (exits with apt instructions when torch is missing)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def load_ids(path):
    if not os.path.isfile(path):
        sys.exit(f"train: token file '{path}' does not exist; run prepare_corpus.py and TokenizeCorpus first "
                 "(tools/README.md, steps 1-2).")
    return np.fromfile(path, dtype=np.uint16).astype(np.int64)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with train.bin and val.bin")
    p.add_argument("--out", required=True)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--min-count", type=int, default=2, help="ids seen fewer times share the unk embedding")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_ids, val_ids = load_ids(os.path.join(args.data, "train.bin")), load_ids(os.path.join(args.data, "val.bin"))
    counts = np.bincount(train_ids, minlength=gptkit.GPT2_VOCAB)
    kept = np.nonzero(counts >= args.min_count)[0]
    config = gptkit.GPTConfig(args.layers, args.heads, args.width, args.context, kept, dropout=args.dropout)
    model = gptkit.GPT(config)
    model.init_weights(std=0.02, seed=args.seed)
    token_map, unk_bias = gptkit.vocabulary_maps(config.kept_ids)
    unk = config.compact_vocab - 1
    train_c, val_c = token_map[train_ids].astype(np.int64), token_map[val_ids].astype(np.int64)

    decay = [p_ for n, p_ in model.named_parameters() if p_.dim() >= 2]
    no_decay = [p_ for n, p_ in model.named_parameters() if p_.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    T = args.context
    positions = torch.arange(T).unsqueeze(0)
    full_mask = torch.ones(1, T, dtype=torch.int64)

    def batch():
        starts = rng.integers(0, len(train_c) - T - 1, size=args.batch)
        block = torch.from_numpy(np.stack([train_c[s:s + T + 1] for s in starts]))
        return block[:, :-1], block[:, 1:]

    @torch.no_grad()
    def evaluate():
        model.eval()
        nll, tokens = 0.0, 0
        for s in range(0, len(val_c) - 1, T):
            x = torch.from_numpy(val_c[s:s + T]).unsqueeze(0)
            y = torch.from_numpy(val_c[s + 1:s + T + 1]).unsqueeze(0)
            x = x[:, :y.shape[1]]
            logits, _ = model.compact_logits(x, full_mask[:, :x.shape[1]], positions[:, :x.shape[1]])
            logits[..., -1] += unk_bias              # the interface distribution (see gptkit)
            losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
            losses = losses - (y.reshape(-1) == unk).float() * unk_bias
            nll += losses.sum().item()
            tokens += y.numel()
        model.train()
        return nll / tokens

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * progress))

    os.makedirs(args.out, exist_ok=True)
    run = dict(vars(args), parameters=sum(p_.numel() for p_ in model.parameters()), kept_ids=len(kept),
               train_tokens=int(len(train_ids)), val_tokens=int(len(val_ids)), torch=torch.__version__)
    with open(os.path.join(args.out, "run.json"), "w") as f:
        json.dump(run, f, indent=2)
    log = open(os.path.join(args.out, "train.log"), "a", buffering=1)

    def say(line):
        print(line, flush=True)
        log.write(line + "\n")

    say(f"# run {json.dumps(run)}")
    best, started, running = float("inf"), time.time(), None
    mask = full_mask.expand(args.batch, T)
    pos = positions.expand(args.batch, T)
    for step in range(args.steps + 1):
        if step % args.eval_every == 0 or step == args.steps:
            val = evaluate()
            elapsed = time.time() - started
            seen = step * args.batch * T
            say(f"step {step:5d} | train {running if running is not None else float('nan'):.4f} | val {val:.4f} "
                f"| val ppl {math.exp(val):8.2f} | lr {lr_at(step):.2e} | tokens {seen} "
                f"| epochs {seen / len(train_c):.2f} | {seen / max(elapsed, 1e-9):.0f} tok/s | {elapsed / 60:.1f} min")
            if val < best:
                best = val
                torch.save({"config": config.to_json(), "model": model.state_dict(), "step": step,
                            "val_loss": val}, os.path.join(args.out, "checkpoint.pt"))
        if step == args.steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        x, y = batch()
        logits, _ = model.compact_logits(x, mask, pos)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
    say(f"# done: best val loss {best:.4f} (ppl {math.exp(best):.2f}) in {(time.time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
