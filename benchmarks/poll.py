"""Status-poll speed of the API against the thinnest honest endpoint, side by side in one run.

On a scratch PostgreSQL database of the local server, seeds one running job (progress, events,
per-epoch metrics) and 60 finished ones, then for each worker count (1 and 2):
- starts the API as `distillery serve --workers N` runs it (uvicorn app.main:app, the
  production HTTP settings, no access log, DISTILLERY_AUTH=off, jobs going to a broker queue
  nobody consumes, so no runner takes CPU);
- starts benchmarks/bare_endpoint.py (Starlette + psycopg async pool + orjson) with the same
  worker count;
- runs wrk (64 connections; a Python load generator if wrk is not installed) against
  GET /v1/jobs/{id} of both, and the API's list, events and metrics against bare ones reading
  the same rows, round after round (and the API's If-None-Match poll, answered 304).

Prints a table (req/s, p50, p99, ratios to bare) and writes benchmarks/poll.json. DESIGN §9
target: the API's GET /v1/jobs/{id} at >= 0.75 x bare's req/s with p99 <= 1.5 x bare's p99.

    .venv/bin/python benchmarks/poll.py [--workers 1 2] [--duration 10] [--rounds 3]
"""

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.services import (
    REDIS_URL,
    ROOT,
    Process,
    free_port,
    postgres_database,
    running,
    wait_answering,
)

TARGET_RATIO = 0.75
TARGET_P99_RATIO = 1.5
RESULT = {
    "teacher": {"arch": "mlp", "params": 85002, "bytes": 340008, "test_accuracy": 0.975},
    "student": {"arch": "mlp", "params": 1210, "bytes": 4840, "test_accuracy": 0.95},
    "baseline": {"arch": "mlp", "params": 1210, "bytes": 4840, "test_accuracy": 0.967},
    "compression": {
        "param_ratio": 70.3,
        "size_ratio": 70.2,
        "latency_speedup_cpu": 6.1,
        "accuracy_retention": 0.974,
        "kd_gain": -0.017,
    },
}


# --- data -------------------------------------------------------------------------------------


def seed(database_url: str) -> str:
    """60 finished jobs and one running one, through the job service; returns the running
    job's id (the one every poll reads)."""
    from app import jobs
    from app.db import session_scope, upgrade_database
    from app.models import DEFAULT_TENANT, JobStatus
    from distillery.types.job_spec import JobCreate

    upgrade_database(database_url)
    body = JobCreate.model_validate(json.loads((ROOT / "examples" / "digits.json").read_text()))

    def run(session: Any, job_id: str, epochs: int) -> None:
        jobs.claim(session, job_id, "bench", lease_seconds=86400, max_attempts=3)
        for stage in ("teacher", "distill"):
            jobs.set_stage(session, job_id, "bench", stage, {"stage": stage, "fraction": 0.0})
            for epoch in range(1, epochs + 1):
                progress = {
                    "stage": stage,
                    "epoch": epoch,
                    "epochs": 20,
                    "fraction": round(epoch / 40 + (0.5 if stage == "distill" else 0), 3),
                    "eta_seconds": 4.1,
                }
                values = {"loss": 0.31, "accuracy": 0.93, "val_loss": 0.35, "val_accuracy": 0.92}
                jobs.record_epoch(session, job_id, "bench", stage, epoch, values, progress)

    with session_scope(database_url) as session:
        for i in range(60):
            job, _ = jobs.create_job(
                session, body.model_copy(update={"name": f"bench-{i}"}), tenant=DEFAULT_TENANT
            )
            run(session, job.id, 3)
            jobs.finish(session, job.id, "bench", JobStatus.SUCCEEDED, result=RESULT)
        polled, _ = jobs.create_job(session, body, tenant=DEFAULT_TENANT)
        run(session, polled.id, 7)
    return polled.id


# --- load -------------------------------------------------------------------------------------


def _milliseconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, connections: int, seconds: float, headers: dict[str, str]) -> dict[str, Any]:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.MULTILINE)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _milliseconds(percentiles["50"]),
        "p99_ms": _milliseconds(percentiles["99"]),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
    }


async def _python_load(
    url: str, connections: int, seconds: float, headers: dict[str, str]
) -> dict[str, Any]:
    """A keep-alive HTTP/1.1 client per connection, as wrk does (slower: Python itself takes
    CPU from the servers, so numbers are lower than wrk's)."""
    parsed = httpx.URL(url)
    head = f"GET {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}\r\n"
    request = (head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            errors += int(status_line.split()[1]) >= 400
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
        "socket_errors": None,
    }


def load(url: str, connections: int, seconds: float, headers: dict[str, str]) -> dict[str, Any]:
    if shutil.which("wrk"):
        return wrk(url, connections, seconds, headers)
    return asyncio.run(_python_load(url, connections, seconds, headers))


# --- servers ----------------------------------------------------------------------------------


def start_servers(
    database_url: str, workers: int, tmp: Path, queue: str
) -> tuple[list[Process], str, str]:
    """The API and the bare endpoint, each with `workers` processes; their base URLs."""
    ours_port, bare_port = free_port(), free_port()
    env = {
        "DISTILLERY_DATABASE_URL": database_url,
        "DISTILLERY_AUTH": "off",
        "DISTILLERY_BROKER_URL": REDIS_URL,
        "DISTILLERY_CELERY_QUEUE": queue,
        "DISTILLERY_ARTIFACT_URL": str(tmp / "artifacts"),
        "DISTILLERY_WORK_DIR": str(tmp / "work"),
        "DISTILLERY_LOG_LEVEL": "WARNING",
    }
    ours = Process(
        f"api-{workers}",
        [
            *(sys.executable, "-m", "app.cli", "serve"),
            *("--port", str(ours_port), "--workers", str(workers)),
        ],
        env,
        tmp,
    )
    libpq_url = database_url.replace("postgresql+psycopg://", "postgresql://")
    bare = Process(
        f"bare-{workers}",
        [
            *(sys.executable, "-m", "uvicorn", "--app-dir", "benchmarks", "bare_endpoint:app"),
            *("--port", str(bare_port), "--workers", str(workers)),
            *("--no-access-log", "--log-level", "warning"),
        ],
        {"BARE_DATABASE_URL": libpq_url},
        tmp,
    )
    return [ours, bare], f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{bare_port}"


# (name, path, headers of our request, path of its bare counterpart or None: the job's).
ENDPOINTS: list[tuple[str, str, dict[str, str], str | None]] = [
    ("GET /v1/jobs/{id}", "/v1/jobs/{id}", {}, "/v1/jobs/{id}"),
    ("GET /v1/jobs/{id} If-None-Match: 304", "/v1/jobs/{id}", {"If-None-Match": ""}, None),
    ("GET /v1/jobs (a page of 20)", "/v1/jobs", {}, "/v1/jobs"),
    ("GET /v1/jobs/{id}/events", "/v1/jobs/{id}/events", {}, "/v1/jobs/{id}/events"),
    ("GET /v1/jobs/{id}/metrics", "/v1/jobs/{id}/metrics", {}, "/v1/jobs/{id}/metrics"),
]
HEADLINE = ENDPOINTS[0][0]


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "rounds": runs,
    }


def measure(
    job_id: str, workers: int, database_url: str, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    """{endpoint: {"ours": ..., "bare": ...}}, each the median of args.rounds runs; the runs of
    one round go one after the other, bare then ours, so both see the same machine."""
    queue = f"bench-poll-{os.getpid()}"
    processes, ours, bare = start_servers(database_url, workers, tmp, queue)
    with running(processes):
        wait_answering(f"{ours}/readyz", processes[0])
        wait_answering(f"{bare}/v1/jobs/{job_id}", processes[1])
        etag = httpx.get(f"{ours}/v1/jobs/{job_id}").headers["etag"]
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        targets: list[tuple[tuple[str, str], str, dict[str, str]]] = []
        for name, path, headers, bare_path in ENDPOINTS:
            if bare_path is not None:
                targets.append(((name, "bare"), bare + bare_path.replace("{id}", job_id), {}))
            sent = {k: v or etag for k, v in headers.items()}
            targets.append(((name, "ours"), ours + path.replace("{id}", job_id), sent))
        for _, url, headers in targets:  # warm up: connections, prepared statements
            load(url, args.connections, 2, headers)
        for _ in range(args.rounds):
            for key, url, headers in targets:
                runs.setdefault(key, []).append(load(url, args.connections, args.duration, headers))
    summary: dict[str, Any] = {}
    for name, _, _, bare_path in ENDPOINTS:
        bare_key = (name if bare_path is not None else HEADLINE, "bare")
        summary[name] = {"ours": _median(runs[(name, "ours")]), "bare": _median(runs[bare_key])}
    return summary


def report(results: dict[int, dict[str, Any]]) -> list[str]:
    lines = [
        f"{'workers':>7}  {'endpoint':<37} {'bare req/s':>10} {'ours req/s':>10} {'x bare':>6} "
        f"{'bare p50':>8} {'ours p50':>8} {'bare p99':>8} {'ours p99':>8} {'x bare':>6}"
    ]
    for workers, summary in results.items():
        for name, pair in summary.items():
            ours, bare = pair["ours"], pair["bare"]
            errors = ours["errors"] + bare["errors"]
            lines.append(
                f"{workers:>7}  {name:<37} {bare['rps']:>10.0f} {ours['rps']:>10.0f} "
                f"{ours['rps'] / bare['rps']:>6.2f} {bare['p50_ms']:>8.1f} {ours['p50_ms']:>8.1f} "
                f"{bare['p99_ms']:>8.1f} {ours['p99_ms']:>8.1f} "
                f"{ours['p99_ms'] / bare['p99_ms']:>6.2f}"
                + (f"  ({errors} non-2xx/3xx)" if errors else "")
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per endpoint")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "poll.json")
    args = parser.parse_args()
    results: dict[int, dict[str, Any]] = {}
    with (
        postgres_database("distillery_bench_poll") as database_url,
        tempfile.TemporaryDirectory() as tmp_name,
    ):
        job_id = seed(database_url)
        for workers in args.workers:
            results[workers] = measure(job_id, workers, database_url, args, Path(tmp_name))
    lines = report(results)
    verdicts = {}
    for workers, summary in results.items():
        ours, bare = summary[HEADLINE]["ours"], summary[HEADLINE]["bare"]
        rps_ratio, p99_ratio = ours["rps"] / bare["rps"], ours["p99_ms"] / bare["p99_ms"]
        met = rps_ratio >= TARGET_RATIO and p99_ratio <= TARGET_P99_RATIO
        verdicts[workers] = {"rps_ratio": rps_ratio, "p99_ratio": p99_ratio, "target_met": met}
        lines.append(
            f"{workers} worker(s), {HEADLINE}: {rps_ratio:.2f} x bare req/s (target >= "
            f"{TARGET_RATIO}), p99 {p99_ratio:.2f} x bare (target <= {TARGET_P99_RATIO}): "
            f"{'met' if met else 'NOT met'}"
        )
    print("\n".join(lines))
    args.json.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "processor": _cpu_model(),
                    "load_average_at_end": os.getloadavg(),
                    "python": platform.python_version(),
                    "load_generator": "wrk -t2" if shutil.which("wrk") else "python",
                },
                "connections": args.connections,
                "duration_s": args.duration,
                "rounds": args.rounds,
                "results": results,
                "verdicts": verdicts,
                "table": lines,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
