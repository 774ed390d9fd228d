#!/usr/bin/env python3
"""Converts a model folder of the kit's plain GPT-2 (model.onnx with the standard 50,257-id
vocabulary, such as tools/make_bench_model.py's) to GGUF for llama.cpp, in f32 or f16.

    /usr/bin/python3 tools/make_gguf.py MODEL_DIR VOCAB.tiktoken OUT.gguf [--type f32|f16]
    /usr/bin/python3 tools/make_gguf.py --inspect FILE.gguf

VOCAB.tiktoken is the GPT-2 encoding the library tokenizes with, written by
`dotnet run -c Release --project tools/TokenizeCorpus -- vocab VOCAB.tiktoken`; llama.cpp refuses a
GPT-2 file without its tokens and merges even when it is only given token ids.

The format follows ggml's docs/gguf.md (version 3, little-endian, 32-byte alignment); tensor and
key names follow llama.cpp's GPT-2 architecture (src/llama-arch.cpp): token_embd, position_embd,
blk.N.{attn_norm, attn_qkv, attn_output, ffn_norm, ffn_up, ffn_down}.{weight,bias},
output_norm.{weight,bias}; no output.weight, so llama.cpp ties the head to token_embd as the ONNX
graph does. With --type f16 the 2-D weights are stored as float16 and the norms and biases stay
float32 (llama.cpp's own converter does the same). Quantized types (q8_0, q4_0) are made from the
f16 or f32 file by llama.cpp's quantizer (bench/LlamaRunner quantize).

llama.cpp's GPT-2 has no output bias, so a model whose logits carry one (the default model's
vocabulary remap adds a bias and a gather after the head) cannot be converted exactly: the script
refuses it and says so. --inspect prints a file's header (keys, tensor names, types and shapes)
read back with this file's reader, which is how the writer is checked.
"""
import argparse
import base64
import json
import os
import struct
import sys

try:
    import numpy as np
except ImportError:  # pragma: no cover - message for people setting up the kit
    sys.exit("make_gguf: numpy is missing. Install Debian's package with:\n    sudo apt-get install python3-numpy")

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# gguf_type (docs/gguf.md)
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
SCALAR_FORMATS = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i", FLOAT32: "<f",
                  BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
# ggml_type of the tensors this script writes, and the names of those --inspect may meet
GGML_F32, GGML_F16 = 0, 1
GGML_TYPE_NAMES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0", 9: "q8_1",
                   10: "q2_k", 11: "q3_k", 12: "q4_k", 13: "q5_k", 14: "q6_k", 15: "q8_k", 30: "bf16"}
# llama.cpp's token types
TOKEN_NORMAL, TOKEN_CONTROL = 1, 3
# llama.cpp's file types (general.file_type)
FILE_TYPE = {"f32": 0, "f16": 1}


def byte_symbols():
    """GPT-2's reversible byte -> printable character table: bytes that are printable Latin-1
    stand for themselves, the others take characters from U+0100 upwards in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, shift = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shift)
            shift += 1
    return table


def read_tiktoken(path):
    """Byte sequences by id: one base64 sequence per line (an optional rank after a space),
    skipping the package's "Capacity: N" header."""
    ranks = {}
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("Capacity:"):
                continue
            parts = line.split()
            rank = int(parts[1]) if len(parts) > 1 else len(ranks)
            ranks[base64.b64decode(parts[0])] = rank
    if sorted(ranks.values()) != list(range(len(ranks))):
        sys.exit(f"make_gguf: {path}: ranks are not 0..{len(ranks) - 1} without gaps")
    return ranks


def merges_from_ranks(ranks):
    """The BPE merge list a rank table implies: a token of rank r is the merge of the two pieces
    that byte-pair encoding of its own bytes stops at when only ranks below r may merge."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) < 2:
            continue
        pieces = [bytes([b]) for b in token]
        while len(pieces) > 2:
            best, best_rank = None, None
            for i in range(len(pieces) - 1):
                r = ranks.get(pieces[i] + pieces[i + 1])
                if r is not None and r < rank and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best is None:
                break
            pieces[best:best + 2] = [pieces[best] + pieces[best + 1]]
        if len(pieces) != 2:
            sys.exit(f"make_gguf: token {token!r} (rank {rank}) is not the merge of two lower-ranked pieces")
        merges.append((pieces[0], pieces[1]))
    return merges


def vocabulary(path, vocab_size, end_of_text):
    ranks = read_tiktoken(path)
    if len(ranks) != end_of_text:
        sys.exit(f"make_gguf: {path}: {len(ranks)} byte sequences, expected {end_of_text} (GPT-2's, before <|endoftext|>)")
    symbols = byte_symbols()
    text = lambda b: "".join(symbols[x] for x in b)
    tokens = [None] * vocab_size
    for token, rank in ranks.items():
        tokens[rank] = text(token)
    tokens[end_of_text] = "<|endoftext|>"
    types = [TOKEN_NORMAL] * vocab_size
    types[end_of_text] = TOKEN_CONTROL
    merges = [f"{text(a)} {text(b)}" for a, b in merges_from_ranks(ranks)]
    return tokens, types, merges


class Writer:
    def __init__(self):
        self.kv = []          # (key, type, value, element type)
        self.tensors = []     # (name, array, ggml type)

    def add(self, key, gguf_type, value, element_type=None):
        self.kv.append((key, gguf_type, value, element_type))

    def tensor(self, name, array, ggml_type):
        self.tensors.append((name, np.ascontiguousarray(array), ggml_type))

    @staticmethod
    def _string(out, s):
        data = s.encode("utf-8")
        out.write(struct.pack("<Q", len(data)))
        out.write(data)

    def _value(self, out, gguf_type, value, element_type):
        if gguf_type == STRING:
            self._string(out, value)
        elif gguf_type == ARRAY:
            out.write(struct.pack("<IQ", element_type, len(value)))
            if element_type == STRING:
                for item in value:
                    self._string(out, item)
            else:
                out.write(np.asarray(value, dtype=np.dtype(SCALAR_FORMATS[element_type])).tobytes())
        else:
            out.write(struct.pack(SCALAR_FORMATS[gguf_type], value))

    def write(self, path):
        offsets, offset = [], 0
        for _, array, _ in self.tensors:
            offsets.append(offset)
            offset += (array.nbytes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        with open(path, "wb") as out:
            out.write(GGUF_MAGIC)
            out.write(struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv)))
            for key, gguf_type, value, element_type in self.kv:
                self._string(out, key)
                out.write(struct.pack("<I", gguf_type))
                self._value(out, gguf_type, value, element_type)
            for (name, array, ggml_type), tensor_offset in zip(self.tensors, offsets):
                self._string(out, name)
                dims = list(reversed(array.shape))        # ggml's ne: the fastest-varying dimension first
                out.write(struct.pack("<I", len(dims)))
                out.write(struct.pack(f"<{len(dims)}Q", *dims))
                out.write(struct.pack("<IQ", ggml_type, tensor_offset))
            out.write(b"\0" * (-out.tell() % ALIGNMENT))
            start = out.tell()
            for (_, array, _), tensor_offset in zip(self.tensors, offsets):
                out.write(b"\0" * (start + tensor_offset - out.tell()))
                out.write(array.tobytes())
            out.write(b"\0" * (-out.tell() % ALIGNMENT))


def read_header(path):
    """(version, {key: value}, [(name, ggml type, ne dims, offset)], data start) of a GGUF file."""
    with open(path, "rb") as f:
        def unpack(fmt):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string():
            return f.read(unpack("<Q")).decode("utf-8")

        def value(gguf_type):
            if gguf_type == STRING:
                return string()
            if gguf_type == ARRAY:
                element_type, count = unpack("<I"), unpack("<Q")
                return [value(element_type) for _ in range(count)]
            return unpack(SCALAR_FORMATS[gguf_type])

        if f.read(4) != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file (no GGUF magic)")
        version, n_tensors, n_kv = unpack("<I"), unpack("<Q"), unpack("<Q")
        kv = {}
        for _ in range(n_kv):
            key = string()
            kv[key] = value(unpack("<I"))
        tensors = []
        for _ in range(n_tensors):
            name = string()
            dims = [unpack("<Q") for _ in range(unpack("<I"))]
            tensors.append((name, unpack("<I"), dims, unpack("<Q")))
        alignment = kv.get("general.alignment", ALIGNMENT)
        start = (f.tell() + alignment - 1) // alignment * alignment
    return version, kv, tensors, start


def onnx_parameters(path):
    """The graph's weights by torch parameter name. torch.onnx.export stores equal tensors once and
    names the copies through Identity nodes, and the kit's fp16 storage puts a Cast behind each
    weight, so those names are resolved too."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        sys.exit("make_gguf: onnx is missing. Install Debian's package with:\n    sudo apt-get install python3-onnx")
    model = onnx.load(path)
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("Identity", "Cast") and node.input and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].astype(np.float32) if node.op_type == "Cast" else values[node.input[0]]
    return values


def convert(folder, vocab_path, out_path, type_name):
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    values = onnx_parameters(os.path.join(folder, "model.onnx"))
    if "token_map" in values or any(name.startswith("compact") for name in values) or values["wte.weight"].shape[0] != config["vocab_size"]:
        sys.exit(f"make_gguf: {folder}: the model remaps its vocabulary inside the graph (a bias and a gather after the "
                 "head); llama.cpp's GPT-2 has no output bias, so it cannot be converted exactly.")
    n_layer, n_head, n_embd = config["n_layer"], config["n_head"], config["n_embd"]
    n_ctx, n_vocab = config["n_positions"], config["vocab_size"]

    def weight(name, shape):
        if name not in values:
            sys.exit(f"make_gguf: {folder}/model.onnx has no weight '{name}' (expected the kit's GPT-2 parameter names)")
        array = values[name].astype(np.float32)
        if tuple(array.shape) != tuple(shape):
            sys.exit(f"make_gguf: {folder}/model.onnx: '{name}' has shape {list(array.shape)}, expected {list(shape)}")
        return array

    tokens, token_types, merges = vocabulary(vocab_path, n_vocab, config["eos_token_id"])
    w = Writer()
    w.add("general.architecture", STRING, "gpt2")
    w.add("general.name", STRING, config.get("_name_or_path") or os.path.basename(os.path.normpath(folder)))
    w.add("general.alignment", UINT32, ALIGNMENT)
    w.add("general.file_type", UINT32, FILE_TYPE[type_name])
    w.add("gpt2.context_length", UINT32, n_ctx)
    w.add("gpt2.embedding_length", UINT32, n_embd)
    w.add("gpt2.feed_forward_length", UINT32, 4 * n_embd)
    w.add("gpt2.block_count", UINT32, n_layer)
    w.add("gpt2.attention.head_count", UINT32, n_head)
    w.add("gpt2.attention.layer_norm_epsilon", FLOAT32, float(config.get("layer_norm_epsilon", 1e-5)))
    w.add("tokenizer.ggml.model", STRING, "gpt2")
    w.add("tokenizer.ggml.pre", STRING, "gpt-2")
    w.add("tokenizer.ggml.tokens", ARRAY, tokens, STRING)
    w.add("tokenizer.ggml.token_type", ARRAY, token_types, INT32)
    w.add("tokenizer.ggml.merges", ARRAY, merges, STRING)
    w.add("tokenizer.ggml.bos_token_id", UINT32, config["bos_token_id"])
    w.add("tokenizer.ggml.eos_token_id", UINT32, config["eos_token_id"])

    matrix = GGML_F16 if type_name == "f16" else GGML_F32

    def add(name, array):
        if array.ndim == 2 and matrix == GGML_F16:
            w.tensor(name, array.astype(np.float16), GGML_F16)
        else:
            w.tensor(name, array.astype(np.float32), GGML_F32)

    # torch's Linear weight is [out, in] row-major, which is ggml's {in, out}: no transpose needed.
    add("token_embd.weight", weight("wte.weight", (n_vocab, n_embd)))
    add("position_embd.weight", weight("wpe.weight", (n_ctx, n_embd)))
    for i in range(n_layer):
        p = f"blocks.{i}."
        for gguf, kit, shape in (("attn_norm", "ln_1", None), ("attn_qkv", "c_attn", (3 * n_embd, n_embd)),
                                 ("attn_output", "c_proj", (n_embd, n_embd)), ("ffn_norm", "ln_2", None),
                                 ("ffn_up", "c_fc", (4 * n_embd, n_embd)), ("ffn_down", "mlp_proj", (n_embd, 4 * n_embd))):
            rows = shape[0] if shape else n_embd
            add(f"blk.{i}.{gguf}.weight", weight(p + kit + ".weight", shape or (n_embd,)))
            add(f"blk.{i}.{gguf}.bias", weight(p + kit + ".bias", (rows,)))
    add("output_norm.weight", weight("ln_f.weight", (n_embd,)))
    add("output_norm.bias", weight("ln_f.bias", (n_embd,)))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    w.write(out_path)
    print(f"make_gguf: {out_path}: {type_name}, {len(w.tensors)} tensors, {len(merges)} merges, "
          f"{os.path.getsize(out_path) / 1e6:.0f} MB")


def inspect(path):
    version, kv, tensors, start = read_header(path)
    print(f"{path}: GGUF version {version}, {len(kv)} keys, {len(tensors)} tensors, data at {start}")
    for key, value in kv.items():
        shown = f"[{len(value)} items: {value[:3]}...]" if isinstance(value, list) else repr(value)
        print(f"  {key} = {shown}")
    counts = {}
    for name, ggml_type, dims, _ in tensors:
        counts[GGML_TYPE_NAMES.get(ggml_type, str(ggml_type))] = counts.get(GGML_TYPE_NAMES.get(ggml_type, str(ggml_type)), 0) + 1
    print("  tensor types: " + ", ".join(f"{k} x{v}" for k, v in counts.items()))
    for name, ggml_type, dims, offset in tensors:
        if name.startswith(("token_embd", "position_embd", "output", "blk.0.")):
            print(f"  {name}: {GGML_TYPE_NAMES.get(ggml_type, ggml_type)} {dims} at +{offset}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?")
    p.add_argument("vocab", nargs="?")
    p.add_argument("out", nargs="?")
    p.add_argument("--type", choices=("f32", "f16"), default="f32")
    p.add_argument("--inspect", metavar="GGUF")
    args = p.parse_args()
    if args.inspect:
        inspect(args.inspect)
        return
    if not (args.model and args.vocab and args.out):
        p.error("MODEL_DIR VOCAB.tiktoken OUT.gguf are required (or --inspect FILE)")
    for path in (os.path.join(args.model, "model.onnx"), os.path.join(args.model, "config.json"), args.vocab):
        if not os.path.exists(path):
            sys.exit(f"make_gguf: {path} does not exist")
    convert(args.model, args.vocab, args.out, args.type)


if __name__ == "__main__":
    main()
