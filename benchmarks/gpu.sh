#!/usr/bin/env bash
# The distill-throughput benchmark on a CUDA machine, in under 5 minutes: the distill stage
# with stored soft labels and with replayed augmented views against a bare student-only loop
# using the GPU the same way (the spec's "precision": "mixed": bf16 autocast or fp16 + scaler,
# channels_last; data on the GPU).
# Prints the table; writes benchmarks/distill_throughput.json.
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
exec .venv/bin/python benchmarks/distill_throughput.py \
    --examples 51200 --epochs 4 --rounds 2 --batch-size 256 --student-depth 20 \
    --precision mixed "$@"
