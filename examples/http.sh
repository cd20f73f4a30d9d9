# Shared by the example scripts (byo.sh, *_methods.sh; sourced, not run): talking
# to a Distillery service with curl. Expects URL, PYTHON and POLL_SECONDS set by the caller,
# and DISTILLERY_API_KEY when the service requires keys.
# shellcheck shell=bash

AUTH=()
if [[ -n "${DISTILLERY_API_KEY:-}" ]]; then
    AUTH=(-H "Authorization: Bearer $DISTILLERY_API_KEY")
fi

log() { printf '\n== %s\n' "$*" >&2; }

# api METHOD PATH [curl arguments...]: the response body on stdout; on HTTP >= 400 prints the
# error ({"error": {"code", "message", "param"}}) and exits.
api() {
    local method="$1" path="$2" body status
    shift 2
    body="$(mktemp)"
    status="$(curl -sS -o "$body" -w '%{http_code}' -X "$method" ${AUTH[@]+"${AUTH[@]}"} \
        "$@" "$URL$path")" || { rm -f "$body"; echo "cannot reach $URL" >&2; exit 1; }
    if ((status >= 400)); then
        echo "$method $path: HTTP $status" >&2
        cat "$body" >&2
        echo >&2
        rm -f "$body"
        exit 1
    fi
    cat "$body"
    rm -f "$body"
}

# field NAME [NAME...]: reads JSON on stdin, prints obj[NAME][NAME]... (JSON for non-strings).
field() {
    "$PYTHON" -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1:]:
    value = value[key] if value is not None else None
print(value if isinstance(value, str) else json.dumps(value))
' "$@"
}

# upload PATH PURPOSE [OPTION=VALUE...]: POST /v1/files with the upload options (e.g.
# max_length=128), wait until the file is checked; prints its id.
upload() {
    local path="$1" purpose="$2" file id status option
    local fields=(-F "file=@$path" -F "purpose=$purpose")
    shift 2
    for option in "$@"; do fields+=(-F "$option"); done
    log "upload $path (purpose=$purpose${*:+, $*}, $(wc -c <"$path") bytes)"
    file="$(api POST /v1/files "${fields[@]}")"
    id="$(field id <<<"$file")"
    status="$(field status <<<"$file")"
    while [[ "$status" == processing ]]; do
        sleep "$POLL_SECONDS"
        file="$(api GET "/v1/files/$id")"
        status="$(field status <<<"$file")"
    done
    if [[ "$status" != ready ]]; then
        echo "file $id was refused: $(field error <<<"$file")" >&2
        exit 1
    fi
    echo "$id ready: $(field info <<<"$file")" >&2
    echo "$id"
}

# run_job NAME SPEC IDEMPOTENCY_KEY OUT: submit the job SPEC (a file), wait for it, save its
# report as OUT/NAME.report.json and print (and append to OUT/summary.txt) one line: the
# teacher's, student's and baseline's test accuracy, kd_gain and the wall time. Returns 1 when
# the job did not succeed.
run_job() {
    local name="$1" spec="$2" key="$3" out="$4" job id status start wall
    log "submit $name"
    start="$(date +%s)"
    job="$(api POST /v1/jobs -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
        --data-binary "@$spec")"
    id="$(field id <<<"$job")"
    while :; do
        job="$(api GET "/v1/jobs/$id")"
        status="$(field status <<<"$job")"
        case "$status" in succeeded | failed | cancelled) break ;; esac
        sleep "$POLL_SECONDS"
    done
    wall=$(($(date +%s) - start))
    if [[ "$status" != succeeded ]]; then
        echo "$name ($id): $status after ${wall} s: $(field error <<<"$job")" >&2
        return 1
    fi
    api GET "/v1/jobs/$id/artifacts/report.json" >"$out/$name.report.json"
    "$PYTHON" -c '
import json, sys
r = json.load(sys.stdin)["result"]
acc = lambda k: (r.get(k) or {}).get("test_accuracy")
name, job, wall = sys.argv[1:]
teacher, student, baseline = (acc(k) for k in ("teacher", "student", "baseline"))
gain = r["compression"]["kd_gain"]
compressed = ""
if "pruned" in r:
    p = r["pruned"]
    compressed += " pruned %s (%s params)" % (acc("pruned"), p["params"])
if "int8" in r:
    q = r["int8"]
    f = q["float_onnx"]
    compressed += " int8 %s (%s bytes, float graph %s %s bytes)" % (
        acc("int8"), q["bytes"], f["test_accuracy"], f["bytes"])
print(f"{name} {job}: teacher {teacher} student {student} baseline {baseline} "
      f"kd_gain {gain}{compressed} wall {wall} s")
' "$name" "$id" "$wall" <<<"$job" | tee -a "$out/summary.txt"
}
