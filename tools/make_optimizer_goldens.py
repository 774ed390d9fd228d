#!/usr/bin/env python3
"""Torch goldens for the trainer's optimizer and loop (tests/MLNetGpt.Core.Tests/Training).

    /usr/bin/python3 tools/make_optimizer_goldens.py tests/Fixtures/training/optimizer-golden.json

Two parts, both computed by Debian's python3-torch (1.13) in float32:

  adamw    three fixed tensors (two matrices with weight decay, a bias without, as two parameter groups) and a fixed
           gradient per step; each step runs torch.nn.utils.clip_grad_norm_(max_norm), then torch.optim.AdamW, then a
           torch.optim.lr_scheduler.LambdaLR step with Hugging Face's get_cosine_schedule_with_warmup factor (written
           out below: transformers is not packaged for Debian). Recorded per step: the learning rate used, the total
           norm clip_grad_norm_ returned, and every tensor after the step. Some steps' gradients are large enough to
           be clipped, others are not.

  trainer  a tiny bigram language model, logits = E[previous token] @ U + b (E, U with weight decay, b without),
           trained the way MLNetGpt's trainer does it: micro-batches of fixed sequences taken in the trainer's seeded
           data order (its SplitMix64 Fisher-Yates permutation, reimplemented here), the summed cross-entropy
           (ignore_index -100) backpropagated per micro-batch, gradients added over the accumulated micro-batches and
           divided by their counted tokens, clipped, AdamW, LambdaLR. Recorded: each step's mean loss and the final
           tensors. The C# test runs the real Trainer over an exact C# bigram graph with these initial values.
"""
import json
import math
import os
import sys

try:
    import torch
except ImportError:  # pragma: no cover
    sys.exit("torch is missing: sudo apt-get install python3-torch python3-numpy libopenblas0-openmp, and run with /usr/bin/python3")

MASK = (1 << 64) - 1


def cosine_with_warmup(warmup, total):
    """Hugging Face's get_cosine_schedule_with_warmup factor (num_cycles 0.5)."""
    def factor(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(0.5) * 2.0 * progress)))
    return factor


def floats(tensor):
    return [float(x) for x in tensor.detach().reshape(-1).tolist()]


def adamw_part():
    g = torch.Generator().manual_seed(20261207)
    shapes = {"w1": (3, 4), "b1": (4,), "w2": (2, 3)}
    decay = {"w1": True, "b1": False, "w2": True}
    params = {n: torch.nn.Parameter(torch.randn(s, generator=g)) for n, s in shapes.items()}
    initial = {n: floats(p) for n, p in params.items()}
    steps, warmup, lr, wd, betas, eps, max_norm = 7, 2, 0.05, 0.1, (0.9, 0.999), 1e-8, 1.0
    # Gradient scales: norms well above max_norm on some steps (clipped), below on others.
    scales = [2.0, 0.05, 0.6, 3.0, 0.1, 1.5, 0.02]
    grads = [{n: torch.randn(s, generator=g) * scales[i] for n, s in shapes.items()} for i in range(steps)]
    optimizer = torch.optim.AdamW([
        {"params": [params["w1"], params["w2"]], "weight_decay": wd},
        {"params": [params["b1"]], "weight_decay": 0.0},
    ], lr=lr, betas=betas, eps=eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(warmup, steps))
    order = ["w1", "b1", "w2"]
    records = []
    for i in range(steps):
        for n in order:
            params[n].grad = grads[i][n].clone()
        norm = torch.nn.utils.clip_grad_norm_([params[n] for n in order], max_norm)
        used = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        records.append({"learning_rate": used, "total_norm": float(norm),
                        "after": {n: floats(params[n]) for n in order}})
    return {
        "learning_rate": lr, "weight_decay": wd, "beta1": betas[0], "beta2": betas[1], "epsilon": eps,
        "max_norm": max_norm, "warmup_steps": warmup, "total_steps": steps,
        "tensors": [{"name": n, "shape": list(shapes[n]), "decay": decay[n], "initial": initial[n]} for n in order],
        "gradients": [{n: floats(grads[i][n]) for n in order} for i in range(steps)],
        "steps": records,
    }


def splitmix_next(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def permutation(count, seed, epoch):
    """MLNetGpt.Training.DataOrder.Permutation."""
    items = list(range(count))
    state = (((seed & 0xFFFFFFFF) * 0x9E3779B97F4A7C15) & MASK) ^ ((epoch * 0xD1B54A32D192ED03) & MASK)
    for i in range(count - 1, 0, -1):
        bound = i + 1
        limit = MASK - MASK % bound
        while True:
            state, value = splitmix_next(state)
            if value < limit:
                j = value % bound
                break
        items[i], items[j] = items[j], items[i]
    return items


def trainer_part():
    g = torch.Generator().manual_seed(7)
    vocab, dim, length = 7, 3, 5
    batch, accumulation, steps, warmup = 2, 2, 6, 2
    lr, wd, betas, eps, max_norm, seed = 0.1, 0.05, (0.9, 0.999), 1e-8, 1.0, 11
    # Ten sequences; some targets ignored (-100), as padding and prompts are.
    sequences = []
    for s in range(10):
        inputs = torch.randint(0, vocab, (length,), generator=g).tolist()
        targets = torch.randint(0, vocab, (length,), generator=g).tolist()
        for k in range(length):
            if (s + k) % 4 == 3:
                targets[k] = -100
        sequences.append({"inputs": inputs, "targets": targets})
    E = torch.nn.Parameter(torch.randn(vocab, dim, generator=g) * 0.5)
    U = torch.nn.Parameter(torch.randn(dim, vocab, generator=g) * 0.5)
    b = torch.nn.Parameter(torch.randn(vocab, generator=g) * 0.1)
    initial = {"embedding": floats(E), "output": floats(U), "bias": floats(b)}
    optimizer = torch.optim.AdamW([{"params": [E, U], "weight_decay": wd}, {"params": [b], "weight_decay": 0.0}],
                                  lr=lr, betas=betas, eps=eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(warmup, steps))
    position, cached_epoch, perm = 0, -1, None
    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=False)
        loss_sum, tokens = 0.0, 0
        for _micro in range(accumulation):
            rows = []
            for _row in range(batch):
                epoch = position // len(sequences)
                if epoch != cached_epoch:
                    perm, cached_epoch = permutation(len(sequences), seed, epoch), epoch
                rows.append(sequences[perm[position % len(sequences)]])
                position += 1
            x = torch.tensor([r["inputs"] for r in rows])
            y = torch.tensor([r["targets"] for r in rows])
            logits = E[x] @ U + b
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1), ignore_index=-100, reduction="sum")
            loss.backward()
            loss_sum += float(loss)
            tokens += int((y != -100).sum())
        for p in (E, U, b):
            p.grad /= tokens
        torch.nn.utils.clip_grad_norm_([E, U, b], max_norm)
        optimizer.step()
        scheduler.step()
        losses.append(loss_sum / tokens)
    return {
        "vocabulary": vocab, "dimension": dim, "sequence_length": length, "batch_size": batch,
        "gradient_accumulation_steps": accumulation, "max_steps": steps, "warmup_steps": warmup,
        "learning_rate": lr, "weight_decay": wd, "beta1": betas[0], "beta2": betas[1], "epsilon": eps,
        "clip_norm": max_norm, "seed": seed,
        "sequences": sequences, "initial": initial, "losses": losses,
        "final": {"embedding": floats(E), "output": floats(U), "bias": floats(b)},
        "permutation_epoch0": permutation(len(sequences), seed, 0),
        "permutation_epoch1": permutation(len(sequences), seed, 1),
    }


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    golden = {"torch": torch.__version__, "adamw": adamw_part(), "trainer": trainer_part()}
    os.makedirs(os.path.dirname(os.path.abspath(sys.argv[1])), exist_ok=True)
    with open(sys.argv[1], "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print(f"wrote {sys.argv[1]}")


if __name__ == "__main__":
    main()
