#!/usr/bin/env python3
"""Writes random weights (normal, std 0.02) for every externally stored initializer of an ONNX model,
into weights.bin beside it: a large benchmark model can travel as its graph alone (save it with
onnx.save_model(..., save_as_external_data=True, location="weights.bin")) and get its weights where it runs.

    python3 tools/fill_random_weights.py FOLDER/model.onnx
"""
import sys, os, numpy as np, onnx
path = sys.argv[1]
m = onnx.load(path, load_external_data=False)
rng = np.random.default_rng(1)
target = os.path.join(os.path.dirname(path), "weights.bin")
with open(target, "wb") as f:
    for t in m.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        offset, length = int(info.get("offset", 0)), int(info["length"])
        assert t.data_type == onnx.TensorProto.FLOAT, t.name
        f.seek(offset)
        f.write((rng.standard_normal(length // 4, dtype=np.float32) * 0.02).tobytes())
print("fill:", target, os.path.getsize(target))
