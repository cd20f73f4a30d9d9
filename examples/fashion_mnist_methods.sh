#!/usr/bin/env bash
# The distillation methods on Fashion-MNIST: resnet_cifar 56 -> 20, over HTTP with curl.
#
#   1. Fashion-MNIST IDX files -> fm.npz (TRAIN_LIMIT labelled training images, the 10,000 test
#      images) and transfer.npz (TRANSFER_LIMIT of the other training images, no labels)
#   2. a resnet_cifar 56 teacher trained once with plain PyTorch on TEACHER_TRAIN_LIMIT labelled
#      images (all 60,000 by default: a user's pretrained model; the student sees only
#      TRAIN_LIMIT labels) (examples/train_resnet_teacher.py) -> teacher.safetensors, a
#      `weights` teacher
#   3. the five jobs examples/uploads/fashion-mnist-resnet-{kd,dkd,fitnets,at,kd-augment}.json,
#      one at a time, each waited for; one line per job: accuracies, kd_gain, wall time
#      (METHODS="compress" runs fashion-mnist-resnet-compress.json instead: kd, then the
#      student pruned to half its parameters and quantised to int8)
#
# Same assumptions and knobs as examples/byo.sh (DISTILLERY_URL, DISTILLERY_API_KEY,
# FASHION_MNIST_DIR, PYTHON, POLL_SECONDS), plus TRAIN_LIMIT (5000), TRANSFER_LIMIT (15000),
# TEACHER_TRAIN_LIMIT (60000), TEACHER_EPOCHS (2), METHODS (the jobs' suffixes, in order).
# Run:  bash examples/fashion_mnist_methods.sh [output-dir]
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
URL="${DISTILLERY_URL:-http://127.0.0.1:8000}"
URL="${URL%/}"
OUT="${1:-fashion-mnist-methods}"
FASHION_MNIST_DIR="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
TRAIN_LIMIT="${TRAIN_LIMIT:-5000}"
TRANSFER_LIMIT="${TRANSFER_LIMIT:-15000}"
TEACHER_TRAIN_LIMIT="${TEACHER_TRAIN_LIMIT:-60000}"
TEACHER_EPOCHS="${TEACHER_EPOCHS:-2}"
POLL_SECONDS="${POLL_SECONDS:-5}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
# shellcheck source=examples/http.sh
source "$HERE/http.sh"

mkdir -p "$OUT"
api GET /healthz >/dev/null

log "build the dataset: $TRAIN_LIMIT labelled images, the test images, $TRANSFER_LIMIT transfer images"
"$PYTHON" "$HERE/fashion_mnist_to_npz.py" --source-dir "$FASHION_MNIST_DIR" \
    --output "$OUT/fm.npz" --train-limit "$TRAIN_LIMIT" --transfer-output "$OUT/transfer-all.npz"
"$PYTHON" -c 'import sys, numpy as np
np.savez(sys.argv[2], x=np.load(sys.argv[1])["x"][: int(sys.argv[3])])' \
    "$OUT/transfer-all.npz" "$OUT/transfer.npz" "$TRANSFER_LIMIT"

if [[ ! -f "$OUT/teacher.safetensors" ]]; then # a re-run reuses the teacher
    log "train the resnet_cifar 56 teacher ($TEACHER_TRAIN_LIMIT images, $TEACHER_EPOCHS epochs)"
    "$PYTHON" "$HERE/fashion_mnist_to_npz.py" --source-dir "$FASHION_MNIST_DIR" \
        --output "$OUT/teacher-data.npz" --train-limit "$TEACHER_TRAIN_LIMIT"
    PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "$HERE/train_resnet_teacher.py" \
        "$OUT/teacher-data.npz" --depth 56 --epochs "$TEACHER_EPOCHS" \
        --output "$OUT/teacher.safetensors"
fi

FASHION_ID="$(upload "$OUT/fm.npz" dataset)"
TRANSFER_ID="$(upload "$OUT/transfer.npz" dataset)"
TEACHER_ID="$(upload "$OUT/teacher.safetensors" teacher)"

failed=0
for method in ${METHODS:-kd dkd fitnets at kd-augment}; do
    name="fashion-mnist-resnet-$method"
    sed "s/<FASHION_FILE_ID>/$FASHION_ID/; s/<TRANSFER_FILE_ID>/$TRANSFER_ID/; \
s/<TEACHER_FILE_ID>/$TEACHER_ID/" "$HERE/uploads/$name.json" >"$OUT/$name.json"
    run_job "$name" "$OUT/$name.json" "methods-$name-$FASHION_ID-$TRANSFER_ID-$TEACHER_ID" \
        "$OUT" || failed=1
done
exit "$failed"
