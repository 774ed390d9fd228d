#!/usr/bin/env bash
# Fine-tuning on CUDA, for a machine with an NVIDIA GPU: full fine-tuning and LoRA (rank 8, alpha 16, q and v) of the
# GPT-2-small shape (12 layers, width 768, 50,257-token vocabulary) through the training graph, the same seeded
# batch of 8 x 128 tokens and AdamW steps on CUDA and on the CPU; prints each step's loss on both, the largest
# relative difference (PASS within 1e-3) and CUDA's tokens/s. Then the default model the same way. Exit 0 = PASS.
#
#   tools/gpu/finetune-cuda.sh [GPT2_SMALL_FOLDER] [STEPS]
#
# GPT2_SMALL_FOLDER (default artifacts/models/gpt2-small-train) holds the model kit's GPT-2-small graph:
#   /usr/bin/python3 tools/make_bench_model.py artifacts/models/gpt2-small-train --vector-std 0.02
# (torch and onnx needed, as on the development machine). To carry only the graph to the GPU machine, save it with
# external data and draw the weights there: python3 tools/fill_random_weights.py FOLDER/model.onnx
# CUDA 12/13 and cuDNN 9 libraries must be on LD_LIBRARY_PATH (docs/gpu.md says how the last lent machine had them).
set -euo pipefail
cd "$(dirname "$0")/../.."
folder=${1:-artifacts/models/gpt2-small-train}
steps=${2:-8}
if [ ! -f "$folder/model.onnx" ]; then
  echo "finetune-cuda: no model in '$folder' (see the comment at the top of $0 for how to make it)" >&2
  exit 2
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
cat /proc/loadavg
dotnet build bench/MLNetGpt.Bench -c Release -v q -nologo > /dev/null
bench=bench/MLNetGpt.Bench/bin/Release/net10.0/MLNetGpt.Bench.dll
status=0
dotnet "$bench" training-cuda "$folder" --steps "$steps" || status=1
dotnet "$bench" training-cuda default --steps "$steps" || status=1
cat /proc/loadavg
exit $status
