#!/usr/bin/env python3
"""Writes a GPT-2-small-shaped model with random weights for benchmarks (never committed):
12 layers, 12 heads, width 768, 1,024 positions, the plain 50,257-id GPT-2 vocabulary, tied
embeddings, fp32 (~500 MB). Its speed is what a real GPT-2 small's would be; its text is noise.

    /usr/bin/python3 tools/make_bench_model.py artifacts/models/gpt2-small-random [--layers 12 --width 768 --heads 12]

--keep-layers N writes the same model cut after its first N blocks (the final norm and the tied embedding kept):
an early exit of the full model, which the speculation benchmark uses as its draft model.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gptkit  # noqa: E402
import torch  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--positions", type=int, default=1024)
    # Random biases and LayerNorm gains (around 1) instead of zeros and ones: torch.onnx.export stores identical
    # tensors once, so with the plain GPT-2 start every bias of the file is one shared initializer. Training
    # benchmarks need each block's own (tools/bench_training_torch.py loads the file by parameter name).
    p.add_argument("--vector-std", type=float, default=0.0)
    p.add_argument("--keep-layers", type=int, default=None)
    args = p.parse_args()
    torch.set_num_threads(2)
    config = gptkit.GPTConfig(args.layers, args.heads, args.width, args.positions, kept_ids=None)
    model = gptkit.GPT(config)
    model.init_weights(std=0.02, seed=1, vector_std=args.vector_std)
    if args.keep_layers is not None:
        # The same weights, the blocks after the first N dropped.
        model.blocks = model.blocks[:args.keep_layers]
        model.config.n_layer = args.keep_layers
    name = os.path.basename(os.path.normpath(args.out))
    kept = "" if args.keep_layers is None else f" cut after its first {args.keep_layers} blocks,"
    card = (f"# {name}\n\nRandom weights in GPT-2 small's shape{kept} ({args.layers} layers, {args.heads} heads, width {args.width}, "
            f"{args.positions} positions, 50,257 ids), made by tools/make_bench_model.py for speed measurements only.\n")
    gptkit.write_model_folder(model.eval(), args.out, name=name, fp16_weights=False, card=card,
                              generation={"do_sample": False, "max_new_tokens": 32}, logits_to_keep=True)
    size = os.path.getsize(os.path.join(args.out, "model.onnx"))
    print(f"make_bench_model: {args.out}: {sum(p.numel() for p in model.parameters()):,} parameters, model.onnx {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
