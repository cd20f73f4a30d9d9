"""Submit -> running latency with an idle worker, in both modes.

Embedded: `distillery serve` on SQLite, its in-process runner starting each job. Celery:
`distillery serve` on PostgreSQL with Redis, and one `celery -A worker.celery_app worker -Q
<queue> -c 1` process. In each, a warm-up job runs first (the worker is started and idle), then
--jobs tiny jobs are submitted one at a time, each --settle seconds after the previous one
finished (the process that ran a job exits after it, and a new one takes its place). For each:
- client: from sending POST /v1/jobs to the first GET /v1/jobs/{id} (polled every 10 ms)
  that no longer says `queued`;
- server: the job's started_at - created_at (both written by the service's clock).

Prints p50 / p95 / max of both, writes benchmarks/submit.json. DESIGN §9 target: p95 < 1 s.

    .venv/bin/python benchmarks/submit.py [--jobs 20] [--modes embedded celery]
"""

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.services import (
    REDIS_URL,
    ROOT,
    TINY_DIGITS_JOB,
    Process,
    free_port,
    postgres_database,
    running,
    wait_answering,
)

TARGET_P95_SECONDS = 1.0
# A job that trains for well under a second: the latency measured is the service's, not torch's.
TINY_JOB: dict[str, Any] = {**TINY_DIGITS_JOB, "name": "bench-submit"}
FINISHED = ("succeeded", "failed", "cancelled")


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def submit_one(client: httpx.Client) -> dict[str, Any]:
    """Submit TINY_JOB, time it to `running`, wait for it to finish."""
    sent = time.perf_counter()
    job = client.post("/v1/jobs", json=TINY_JOB).raise_for_status().json()
    while job["status"] == "queued":
        time.sleep(0.01)
        job = client.get(f"/v1/jobs/{job['id']}").raise_for_status().json()
    observed = time.perf_counter() - sent
    deadline = time.monotonic() + 300
    while job["status"] not in FINISHED:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job['id']} did not finish in 300 s")
        time.sleep(0.1)
        job = client.get(f"/v1/jobs/{job['id']}").raise_for_status().json()
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job['id']} {job['status']}: {job['error']}")
    server = (_when(job["started_at"]) - _when(job["created_at"])).total_seconds()
    return {"id": job["id"], "client_s": observed, "server_s": server}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def measure(mode: str, jobs: int, settle: float, tmp: Path, postgres_url: str) -> dict[str, Any]:
    (tmp / mode).mkdir(parents=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "DISTILLERY_ARTIFACT_URL": str(tmp / mode / "artifacts"),
        "DISTILLERY_WORK_DIR": str(tmp / mode / "work"),
        "DISTILLERY_LOG_LEVEL": "WARNING",
    }
    api_argv = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    processes: list[Process] = []
    with running(processes):
        if mode == "embedded":
            env["DISTILLERY_DATABASE_URL"] = f"sqlite:///{tmp / mode / 'distillery.db'}"
            processes.append(Process(f"api-{mode}", api_argv, env, tmp))
        else:
            queue = f"bench-submit-{secrets.token_hex(4)}"
            env |= {
                "DISTILLERY_DATABASE_URL": postgres_url,
                "DISTILLERY_BROKER_URL": REDIS_URL,
                "DISTILLERY_CELERY_QUEUE": queue,
            }
            processes.append(Process(f"api-{mode}", api_argv, env, tmp))
            worker = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"]
            worker += ["-Q", queue, "-c", "1", "--without-gossip", "--without-mingle"]
            processes.append(Process("celery-worker", [*worker, "--loglevel", "WARNING"], env, tmp))
        wait_answering(f"{url}/readyz", processes[0])
        with httpx.Client(base_url=url, timeout=30) as client:
            submit_one(client)  # warm-up: the worker is up and idle afterwards
            runs = []
            for _ in range(jobs):
                time.sleep(settle)
                runs.append(submit_one(client))
    client_s = [r["client_s"] for r in runs]
    server_s = [r["server_s"] for r in runs]
    return {
        "jobs": jobs,
        "client_p50_s": statistics.median(client_s),
        "client_p95_s": _p95(client_s),
        "client_max_s": max(client_s),
        "server_p50_s": statistics.median(server_s),
        "server_p95_s": _p95(server_s),
        "server_max_s": max(server_s),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--modes", nargs="+", default=["embedded", "celery"])
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds between a job's end and the next submission: the worker process that "
        "ran a job exits after it and a fresh one takes its place",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "submit.json")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with (
        postgres_database("distillery_bench_submit") as postgres_url,
        tempfile.TemporaryDirectory() as tmp_name,
    ):
        for mode in args.modes:
            results[mode] = measure(mode, args.jobs, args.settle, Path(tmp_name), postgres_url)
    lines = [
        f"{'mode':<9} {'jobs':>4} {'client p50':>10} {'client p95':>10} {'client max':>10} "
        f"{'server p50':>10} {'server p95':>10} {'server max':>10}  target p95 < "
        f"{TARGET_P95_SECONDS:g} s"
    ]
    for mode, r in results.items():
        met = r["client_p95_s"] < TARGET_P95_SECONDS
        lines.append(
            f"{mode:<9} {r['jobs']:>4} {r['client_p50_s']:>9.3f}s {r['client_p95_s']:>9.3f}s "
            f"{r['client_max_s']:>9.3f}s {r['server_p50_s']:>9.3f}s {r['server_p95_s']:>9.3f}s "
            f"{r['server_max_s']:>9.3f}s  {'met' if met else 'NOT met'}"
        )
    print("\n".join(lines))
    args.json.write_text(
        json.dumps(
            {"cpus": os.cpu_count(), "results": results, "table": lines}, indent=2, default=str
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
