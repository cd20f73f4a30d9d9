#!/usr/bin/env bash
# Bring your own data and teacher: the whole session over HTTP with curl.
#
#   1. Fashion-MNIST IDX files -> fashion-mnist.npz, uploaded as a dataset
#   2. a CNN teacher trained here with plain PyTorch -> teacher.onnx and logits.npz, uploaded
#   3. three jobs on the uploaded dataset (examples/uploads/*.json, file ids filled in):
#        fashion-mnist-cnn           the service trains the teacher itself
#        fashion-mnist-onnx-teacher  your ONNX teacher labels the data (onnxruntime)
#        fashion-mnist-logits        your precomputed logits are the soft labels
#   4. waits for each, prints its report and downloads its student.onnx
#
# Assumes:
#   - a Distillery service at $DISTILLERY_URL (default http://127.0.0.1:8000), e.g. `make serve`
#     or `distillery serve` in another terminal;
#   - $DISTILLERY_API_KEY, if the service requires keys (sent as "Authorization: Bearer ...");
#   - Fashion-MNIST's IDX files in $FASHION_MNIST_DIR (default: where Debian's
#     `apt-get install dataset-fashion-mnist` puts them, /usr/share/datasets/fashion-mnist);
#   - curl, and $PYTHON (default: the repo's .venv/bin/python, else python3) with numpy and torch
#     (plus onnxscript for the ONNX export, and onnxruntime for the final check, optional).
#
# Run from anywhere:  bash examples/byo.sh [output-dir]      (default ./byo-output)
# Knobs: TRAIN_LIMIT (10000 labelled training images; the rest are the transfer set),
# TEACHER_EPOCHS (4).
# Re-running is safe: jobs are submitted with an Idempotency-Key derived from the file ids.
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
URL="${DISTILLERY_URL:-http://127.0.0.1:8000}"
URL="${URL%/}"
OUT="${1:-byo-output}"
FASHION_MNIST_DIR="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
TRAIN_LIMIT="${TRAIN_LIMIT:-10000}"
TEACHER_EPOCHS="${TEACHER_EPOCHS:-4}"
POLL_SECONDS="${POLL_SECONDS:-5}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

# shellcheck source=examples/http.sh
source "$HERE/http.sh"

# fill TEMPLATE: the template with every <..._FILE_ID> placeholder replaced.
fill() {
    "$PYTHON" -c '
import sys
text = open(sys.argv[1]).read()
for pair in sys.argv[2:]:
    name, value = pair.split("=", 1)
    text = text.replace(f"<{name}>", value)
if "_FILE_ID>" in text:
    sys.exit(f"{sys.argv[1]}: a placeholder is left unfilled")
sys.stdout.write(text)
'  "$1" "FASHION_FILE_ID=$FASHION_ID" "TRANSFER_FILE_ID=$TRANSFER_ID" \
        "TEACHER_FILE_ID=$TEACHER_ID" "LOGITS_FILE_ID=$LOGITS_ID"
}

mkdir -p "$OUT"
api GET /healthz >/dev/null

log "build the dataset: Fashion-MNIST, $TRAIN_LIMIT labelled training images, the 10,000 test"
log "images, and the other training images without labels as a transfer set"
"$PYTHON" "$HERE/fashion_mnist_to_npz.py" --source-dir "$FASHION_MNIST_DIR" \
    --output "$OUT/fashion-mnist.npz" --train-limit "$TRAIN_LIMIT" \
    --transfer-output "$OUT/transfer.npz"
FASHION_ID="$(upload "$OUT/fashion-mnist.npz" dataset)"
TRANSFER_ID="$(upload "$OUT/transfer.npz" dataset)"

log "train a teacher with plain PyTorch ($TEACHER_EPOCHS epochs), export ONNX and its logits"
"$PYTHON" "$HERE/train_onnx_teacher.py" "$OUT/fashion-mnist.npz" \
    --epochs "$TEACHER_EPOCHS" --output-dir "$OUT/teacher" --transfer "$OUT/transfer.npz"
TEACHER_ID="$(upload "$OUT/teacher/teacher.onnx" teacher)"
LOGITS_ID="$(upload "$OUT/teacher/logits.npz" logits)"

declare -A JOBS=()
NAMES=(fashion-mnist-cnn fashion-mnist-onnx-teacher fashion-mnist-logits)
for name in "${NAMES[@]}"; do
    fill "$HERE/uploads/$name.json" >"$OUT/$name.json"
    log "submit $name"
    job="$(api POST /v1/jobs -H 'Content-Type: application/json' \
        -H "Idempotency-Key: byo-$name-$FASHION_ID-$TRANSFER_ID-$TEACHER_ID-$LOGITS_ID" \
        --data-binary "@$OUT/$name.json")"
    JOBS[$name]="$(field id <<<"$job")"
    echo "${JOBS[$name]}" >&2
done

failed=0
for name in "${NAMES[@]}"; do
    id="${JOBS[$name]}"
    log "wait for $name ($id)"
    while :; do
        job="$(api GET "/v1/jobs/$id")"
        status="$(field status <<<"$job")"
        case "$status" in
        succeeded | failed | cancelled) break ;;
        esac
        echo "  $status $(field progress <<<"$job")" >&2
        sleep "$POLL_SECONDS"
    done
    if [[ "$status" != succeeded ]]; then
        echo "$name: $status: $(field error <<<"$job")" >&2
        failed=1
        continue
    fi
    echo "$name report:"
    "$PYTHON" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["result"], indent=2))' \
        <<<"$job"
    mkdir -p "$OUT/$name"
    api GET "/v1/jobs/$id/artifacts/student.onnx" >"$OUT/$name/student.onnx"
    api GET "/v1/jobs/$id/artifacts/report.json" >"$OUT/$name/report.json"
    echo "downloaded $OUT/$name/student.onnx ($(wc -c <"$OUT/$name/student.onnx") bytes)" >&2

    # The student runs without Distillery: onnxruntime on raw pixels (0..255 as float32).
    "$PYTHON" - "$OUT/$name/student.onnx" "$OUT/fashion-mnist.npz" <<'EOF' || true
import sys

import numpy as np

try:
    import onnxruntime
except ImportError:
    sys.exit("(onnxruntime is not installed: skipping the check of the student)")
data = np.load(sys.argv[2], allow_pickle=False)
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
logits = session.run(None, {"x": data["x_test"].astype(np.float32)})[0]
accuracy = float((logits.argmax(1) == data["y_test"]).mean())
print(f"student.onnx in onnxruntime: test accuracy {accuracy:.4f}", file=sys.stderr)
EOF
done
exit "$failed"
