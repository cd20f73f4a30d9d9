# Shared by examples/byo.sh and examples/fashion_mnist_methods.sh (sourced, not run): talking
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

# upload PATH PURPOSE: POST /v1/files, wait until the file is checked; prints its id.
upload() {
    local path="$1" purpose="$2" file id status
    log "upload $path (purpose=$purpose, $(wc -c <"$path") bytes)"
    file="$(api POST /v1/files -F "file=@$path" -F "purpose=$purpose")"
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
