#!/usr/bin/env python3
"""The torch side of the training benchmark (bench/MLNetGpt.Bench `training`): the same recipe as the training graph
on the same model file, timed per step, one JSON line on stdout.

    /usr/bin/python3 tools/bench_training_torch.py MODEL_FOLDER full|lora THREADS [--batch 8] [--sequence 128]
        [--steps 5] [--warmup 1] [--rank 8] [--alpha 16]

The model is the kit's GPT (tools/gptkit.py) with the weights of MODEL_FOLDER/model.onnx (float16 ones rounded
exactly). A step is forward, the next-token cross-entropy (for a remapped vocabulary: over the inner rows with the
same per-row offset the training graph adds, so both compute the same loss), backward, and torch.optim.AdamW
(lr 1e-4, weight decay 0.1 on matrices). LoRA: rank 8, alpha 16 on the query and value slices of c_attn, the rest
frozen. Input ids are uniform random over the model's ids (speed does not depend on them).
"""
import argparse
import json
import math
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gptkit  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import make_training_goldens as goldens  # noqa: E402  (the kit GPT's LoRA hook)


def load(folder):
    weights, config, token_map = goldens.kit_folder(folder)
    kept = None
    if token_map is not None:
        unk = int(np.bincount(token_map).argmax())
        kept = sorted(int(j) for j in np.nonzero(token_map != unk)[0])
    c = gptkit.GPTConfig(config["n_layer"], config["n_head"], config["n_embd"], weights["wpe.weight"].shape[0], kept_ids=kept)
    model = gptkit.GPT(c)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items() if k in dict(model.named_parameters())}, strict=True)
    goldens.patch_kit_gpt(model)
    offset = None
    if kept is not None:
        counts = np.bincount(token_map, minlength=len(kept) + 1).astype(np.float64)
        bias = model.compact_bias.numpy().astype(np.float64)
        offset = torch.from_numpy((bias + np.log(counts)).astype(np.float32))
    return model.train(), token_map, offset


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("method", choices=["full", "lora"])
    p.add_argument("threads", type=int)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--sequence", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--profile", action="store_true", help="print torch's profiler table of the last step instead of the JSON line")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, token_map, offset = load(args.folder)
    C = model.config.n_embd
    params = list(model.parameters())
    if args.method == "lora":
        for q in params:
            q.requires_grad_(False)
        lora = goldens.Lora(args.alpha / args.rank)
        lora.qkv_widths = [C, C, C]
        params = []
        for i in range(model.config.n_layer):
            for role in ("q", "v"):
                a = torch.nn.Parameter(torch.empty(C, args.rank).uniform_(-1 / math.sqrt(C), 1 / math.sqrt(C)))
                b = torch.nn.Parameter(torch.zeros(args.rank, C))
                lora.pairs[(i, role)] = (a, b)
                params += [a, b]
        model.lora = lora
    decay = [q for q in params if q.dim() >= 2]
    plain = [q for q in params if q.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": plain, "weight_decay": 0.0}], lr=1e-4)

    rng = np.random.default_rng(1)
    vocab = gptkit.GPT2_VOCAB if token_map is not None else model.config.vocab_size
    ids = torch.from_numpy(rng.integers(0, vocab, size=(args.batch, args.sequence + 1)))
    inner = torch.from_numpy(token_map)[ids] if token_map is not None else ids
    inputs, targets = inner[:, :-1].contiguous(), inner[:, 1:].contiguous()
    mask = torch.ones(args.batch, args.sequence, dtype=torch.int64)
    positions = torch.arange(args.sequence).unsqueeze(0).expand(args.batch, args.sequence).contiguous()
    times, cpu, losses = [], [], []
    if args.profile:
        for _ in range(args.warmup):
            optimizer.zero_grad(set_to_none=True)
            logits, _ = model.compact_logits(inputs, mask, positions)
            F.cross_entropy((logits + offset if offset is not None else logits).view(-1, logits.shape[-1]), targets.view(-1)).backward()
            optimizer.step()
        with torch.autograd.profiler.profile(record_shapes=True) as prof:
            optimizer.zero_grad(set_to_none=True)
            logits, _ = model.compact_logits(inputs, mask, positions)
            F.cross_entropy((logits + offset if offset is not None else logits).view(-1, logits.shape[-1]), targets.view(-1)).backward()
            optimizer.step()
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=30))
        return
    for step in range(args.warmup + args.steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        logits, _ = model.compact_logits(inputs, mask, positions)
        if offset is not None:
            logits = logits + offset
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
        loss.backward()
        optimizer.step()
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if step >= args.warmup:
            times.append(elapsed * 1000)
            cpu.append(elapsed_cpu * 1000)
            losses.append(float(loss))
    tokens = args.batch * args.sequence
    print(json.dumps({"subject": "torch", "torch": torch.__version__, "step_ms": times, "tokens_per_second": tokens / (float(np.median(times)) / 1000),
                      "cpu_ms": cpu, "tokens_per_cpu_second": tokens / (float(np.median(cpu)) / 1000),
                      "loss": losses[-1], "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


if __name__ == "__main__":
    main()
