#!/usr/bin/env python3
"""Checks of tools/make_gguf.py (a few seconds; Debian's python3-torch, python3-onnx, python3-numpy):

    /usr/bin/python3 tools/test_make_gguf.py

A tiny kit GPT-2 (2 layers, width 64, random biases and gains) is exported to ONNX, converted to
GGUF f32 and f16, and read back: keys, tensor names, ggml shapes, and every tensor's bytes at its
offset against the torch parameters (exact for f32, fp16 rounding for f16). The vocabulary half is
checked on its own: the byte table is a bijection onto printable characters, and merges derived from
a rank table rebuild every multi-byte token from lower-ranked pieces.
"""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import make_gguf  # noqa: E402


def tiny_vocabulary(path, count):
    """A tiktoken-format file of `count` ids: the 256 bytes, then two-byte tokens (each the merge of
    its two bytes, so the rank table is consistent however the pairs are ordered)."""
    import base64
    tokens = [bytes([b]) for b in range(256)]
    tokens += [bytes([(i * 7) % 256, i // 256]) for i in range(count - 256)]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"Capacity: {count}\n")
        for t in tokens:
            f.write(base64.b64encode(t).decode("ascii") + "\n")
    return tokens


class VocabularyTests(unittest.TestCase):
    def test_the_byte_table_maps_all_256_bytes_to_distinct_printable_characters(self):
        table = make_gguf.byte_symbols()
        self.assertEqual(256, len(set(table.values())))
        self.assertTrue(all(c.isprintable() and not c.isspace() for c in table.values()))
        self.assertEqual("Ġ", table[ord(" ")])      # GPT-2's space
        self.assertEqual("Ċ", table[ord("\n")])     # and newline

    def test_merges_rebuild_every_multi_byte_token_from_lower_ranked_pieces(self):
        ranks = {bytes([b]): b for b in range(256)}
        for token in (b"th", b"the", b" the", b"he", b" t"):
            ranks[token] = len(ranks)
        merges = make_gguf.merges_from_ranks(ranks)
        self.assertEqual(5, len(merges))
        for (a, b), token in zip(merges, [t for t, r in sorted(ranks.items(), key=lambda x: x[1]) if len(t) > 1]):
            self.assertEqual(token, a + b)
            self.assertLess(ranks[a], ranks[token])
            self.assertLess(ranks[b], ranks[token])

    def test_a_token_that_no_lower_ranked_pair_builds_is_refused(self):
        ranks = {bytes([b]): b for b in range(256)}
        ranks[b"abc"] = 256     # neither "ab" nor "bc" exists
        with self.assertRaises(SystemExit):
            make_gguf.merges_from_ranks(ranks)


class WriterTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import torch
        import gptkit
        torch.set_num_threads(2)
        cls.folder = tempfile.mkdtemp(prefix="make-gguf-test-")
        config = gptkit.GPTConfig(2, 4, 64, 32, kept_ids=None)
        cls.model = gptkit.GPT(config)
        cls.model.init_weights(std=0.3, seed=3, vector_std=0.2)
        gptkit.write_model_folder(cls.model.eval(), cls.folder, name="tiny", fp16_weights=False)
        cls.vocab = os.path.join(cls.folder, "vocab.tiktoken")
        tiny_vocabulary(cls.vocab, gptkit.GPT2_VOCAB - 1)
        cls.params = {k: v.detach().numpy() for k, v in cls.model.named_parameters()}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)

    def convert(self, type_name):
        out = os.path.join(self.folder, f"tiny-{type_name}.gguf")
        make_gguf.convert(self.folder, self.vocab, out, type_name)
        return out

    def tensor(self, path, start, info):
        name, ggml_type, dims, offset = info
        dtype = np.float32 if ggml_type == make_gguf.GGML_F32 else np.float16
        count = int(np.prod(dims))
        with open(path, "rb") as f:
            f.seek(start + offset)
            data = np.frombuffer(f.read(count * np.dtype(dtype).itemsize), dtype=dtype)
        return data.reshape(list(reversed(dims))).astype(np.float32)

    def test_the_f32_file_reads_back_with_llama_cpp_names_shapes_and_exact_weights(self):
        path = self.convert("f32")
        version, kv, tensors, start = make_gguf.read_header(path)
        self.assertEqual(3, version)
        self.assertEqual("gpt2", kv["general.architecture"])
        self.assertEqual(2, kv["gpt2.block_count"])
        self.assertEqual(64, kv["gpt2.embedding_length"])
        self.assertEqual(256, kv["gpt2.feed_forward_length"])
        self.assertEqual(4, kv["gpt2.attention.head_count"])
        self.assertEqual(32, kv["gpt2.context_length"])
        self.assertEqual(50257, len(kv["tokenizer.ggml.tokens"]))
        self.assertEqual("<|endoftext|>", kv["tokenizer.ggml.tokens"][50256])
        self.assertEqual(50257 - 256 - 1, len(kv["tokenizer.ggml.merges"]))
        by_name = {t[0]: t for t in tensors}
        self.assertEqual(2 + 2 * 12 + 2, len(tensors))
        self.assertNotIn("output.weight", by_name)    # tied to token_embd
        self.assertEqual([64, 192], by_name["blk.0.attn_qkv.weight"][2])
        self.assertEqual([256, 64], by_name["blk.1.ffn_down.weight"][2])
        self.assertTrue(all(t[3] % make_gguf.ALIGNMENT == 0 for t in tensors))
        pairs = {"token_embd.weight": "wte.weight", "position_embd.weight": "wpe.weight",
                 "blk.1.attn_qkv.weight": "blocks.1.c_attn.weight", "blk.1.attn_qkv.bias": "blocks.1.c_attn.bias",
                 "blk.0.attn_output.weight": "blocks.0.c_proj.weight", "blk.0.ffn_up.weight": "blocks.0.c_fc.weight",
                 "blk.1.ffn_down.bias": "blocks.1.mlp_proj.bias", "blk.1.ffn_norm.weight": "blocks.1.ln_2.weight",
                 "output_norm.bias": "ln_f.bias"}
        for gguf, kit in pairs.items():
            np.testing.assert_array_equal(self.params[kit], self.tensor(path, start, by_name[gguf]), err_msg=gguf)

    def test_the_f16_file_stores_matrices_as_float16_and_keeps_norms_and_biases_float32(self):
        path = self.convert("f16")
        _, kv, tensors, start = make_gguf.read_header(path)
        self.assertEqual(1, kv["general.file_type"])
        by_name = {t[0]: t for t in tensors}
        self.assertEqual(make_gguf.GGML_F16, by_name["blk.0.ffn_up.weight"][1])
        self.assertEqual(make_gguf.GGML_F32, by_name["blk.0.ffn_up.bias"][1])
        self.assertEqual(make_gguf.GGML_F32, by_name["blk.0.attn_norm.weight"][1])
        np.testing.assert_array_equal(self.params["blocks.0.c_fc.weight"].astype(np.float16).astype(np.float32),
                                      self.tensor(path, start, by_name["blk.0.ffn_up.weight"]))

    def test_a_model_that_remaps_its_vocabulary_is_refused_naming_the_output_bias(self):
        import gptkit
        folder = tempfile.mkdtemp(prefix="make-gguf-remap-")
        model = gptkit.GPT(gptkit.GPTConfig(1, 2, 16, 16, kept_ids=list(range(100))))
        model.init_weights(std=0.3, seed=1, vector_std=0.2)   # no equal tensors for the exporter to merge
        gptkit.write_model_folder(model.eval(), folder, name="remap", fp16_weights=True)
        try:
            with self.assertRaises(SystemExit) as refused:
                make_gguf.convert(folder, self.vocab, os.path.join(folder, "x.gguf"), "f32")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.assertIn("output bias", str(refused.exception.code))


if __name__ == "__main__":
    unittest.main(verbosity=2)
