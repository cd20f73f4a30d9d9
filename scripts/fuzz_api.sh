#!/usr/bin/env bash
# Schemathesis over the whole OpenAPI of a real server, with auth required and a valid key.
#
#   scripts/fuzz_api.sh [MAX_EXAMPLES]      (default 60 examples per operation)
#
# Starts uvicorn on SQLite in a temporary folder with DISTILLERY_AUTH=required, creates a key
# with `distillery keys create`, and sends jobs to a Redis queue no worker reads (so fuzzed
# jobs are accepted and stay queued instead of training). Schemathesis runs from its own venv
# (.fuzz-venv, created on first use) so it never changes the project's dependencies.
# Needs Redis on 127.0.0.1:6379. Exits non-zero if any check fails (a 5xx included).
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXAMPLES="${1:-60}"
PORT="${PORT:-8799}"
if [ ! -x .fuzz-venv/bin/schemathesis ]; then
    python3.11 -m venv .fuzz-venv
    .fuzz-venv/bin/pip install --quiet schemathesis
fi
tmp="$(mktemp -d)"
export DISTILLERY_DATABASE_URL="sqlite:///$tmp/distillery.db"
export DISTILLERY_ARTIFACT_URL="$tmp/store"
export DISTILLERY_WORK_DIR="$tmp/work"
export DISTILLERY_AUTH=required
export DISTILLERY_BROKER_URL="redis://127.0.0.1:6379/11"
export DISTILLERY_CELERY_QUEUE="fuzz-nobody-reads-$$"
export DISTILLERY_TENANT_MAX_QUEUED_JOBS=100000
export DISTILLERY_LOG_LEVEL=WARNING
key="$(.venv/bin/distillery keys create --tenant fuzz | tail -n 1)"
.venv/bin/python -m uvicorn app.main:app --port "$PORT" --log-level warning &
server=$!
trap 'kill $server; redis-cli -n 11 del "$DISTILLERY_CELERY_QUEUE" >/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do curl -sf "localhost:$PORT/healthz" >/dev/null && break; sleep 0.2; done
.fuzz-venv/bin/schemathesis run "http://127.0.0.1:$PORT/openapi.json" \
    -H "Authorization: Bearer $key" \
    --checks not_a_server_error \
    --max-examples "$MAX_EXAMPLES" \
    --report ndjson --report-dir "$tmp/report" "${@:2}"
