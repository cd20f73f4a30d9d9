#!/usr/bin/env bash
# The distill-throughput benchmarks on a CUDA machine (a few minutes each): the distill stage
# with stored soft labels and with replayed augmented views against a bare student-only loop
# using the GPU the same way (the spec's "precision": "mixed": bf16 autocast or fp16 + scaler,
# channels_last; data on the GPU).
# Then the causal-LM case (issue 19): KD of an HF Llama student (two of its teacher's four
# layers, dim 512, a 8,192-token BPE vocabulary) from stored top-16 token labels against a bare
# HF loop training the same student on the GPU.
# Prints the tables; writes benchmarks/distill_throughput.json and lm_distill_throughput_hf.json.
#
#     benchmarks/gpu.sh [extra distill_throughput.py arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
make install >/dev/null
.venv/bin/python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: run benchmarks/distill_throughput.py on CPU"
print(torch.cuda.get_device_name(), "torch", torch.__version__)
PY
.venv/bin/python benchmarks/distill_throughput.py \
    --examples 51200 --epochs 4 --rounds 2 --batch-size 256 --student-depth 20 \
    --precision mixed "$@"
exec .venv/bin/python benchmarks/lm_distill_throughput.py --hf \
    --bytes 2000000 --context 256 --batch-size 32 --dim 512 --heads 4 --vocab 8192 \
    --epochs 3 --rounds 2 --top-k 16
