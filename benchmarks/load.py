"""Load: many tiny jobs from 32 concurrent clients; each runs once, each ends, none is lost.

    .venv/bin/python benchmarks/load.py             # Celery: PostgreSQL, Redis, 2 workers, 500 jobs
    .venv/bin/python benchmarks/load.py --embedded  # embedded default: SQLite, no broker, 100 jobs
    .venv/bin/python benchmarks/load.py --jobs 20   # a quick try (either mode)

Celery mode creates a fresh database on the local PostgreSQL (postgres@127.0.0.1:5432, trust)
and uses Redis database 7 on 127.0.0.1:6379 (flushed first, so nothing else may use it); it
starts the API (`distillery serve`, which only dispatches when a broker is set) and two
`celery worker -c 1` processes. Embedded mode starts the API alone on SQLite in a temporary
folder: its runner runs the jobs one at a time. Every job has its own Idempotency-Key (a client
retries a failed submit with the same key). The script waits until every job is final, then
reads each job's events and metrics and prints one line, and writes benchmarks/load.json:

    submitted S / succeeded K / duplicates D / lost L in W s (failed F, cancelled C)

A duplicate is a job that ran more than once: more than one "running (attempt N)" event, an
attempt above 1, more than one final status event, or an epoch's metrics recorded twice. A
lost job is one accepted but not final when the script gives up (--timeout), or missing. The
exit status is 0 only for S / S / 0 / 0. Every process it started is stopped at the end, on
Ctrl-C and on errors too; their logs are kept (path printed) when something went wrong.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from statistics import median, quantiles
from types import FrameType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "load.json"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/7"  # not 0 (a developer's) nor 9 (the tests')
CLIENTS = 32
FINAL = ("succeeded", "failed", "cancelled")
ATTEMPT_EVENT = re.compile(r"running \(attempt (\d+)\)")
FINAL_EVENT = re.compile(r"(succeeded|failed|cancelled)\b")

# About as small as a job gets: 200 synthetic rows, one epoch per stage, no baseline, only the
# safetensors export. Its cost is the process around it (start, torch, database), not training.
TINY_JOB: dict[str, Any] = {
    "name": "load",
    "dataset": {
        "name": "synthetic",
        "options": {"shape": [8], "num_classes": 4, "num_samples": 200},
    },
    "teacher": {"arch": "mlp", "params": {"hidden": [16]}, "train": {"epochs": 1}},
    "student": {"arch": "mlp", "params": {"hidden": [4]}},
    "distill": {"epochs": 1},
    "baseline": False,
    "export": ["safetensors"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Started in their own process groups (a Ctrl-C reaches only this script, which then
    stops them in order); each one's output goes to a log file."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((name, process))
        return process

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}): see {self.log_dir}")

    def wait_for_pools(self, timeout: float = 180) -> None:
        """Until every Celery worker has forked its pool child: it has started (imported the
        pipeline) and the load measures jobs, not start-up."""
        import psutil

        deadline = time.monotonic() + timeout
        workers = [p for name, p in self.started if name.startswith("worker-")]
        while not all(psutil.Process(p.pid).children() for p in workers):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not start within {timeout:.0f} s")
            time.sleep(0.3)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time each process used so far, with that of the children it reaped: a Celery
        worker's job children, the embedded API's `worker.run` children. Unlike wall time, it
        hardly depends on what else runs on the machine."""
        import psutil

        used = {}
        for name, process in self.started:
            t = psutil.Process(process.pid).cpu_times()
            used[name] = round(t.user + t.system + t.children_user + t.children_system, 1)
        return used

    def stop_all(self) -> None:
        """SIGTERM (a worker finishes its job, the API stops its runner), then SIGKILL to
        whatever is left in each group, pool children included."""
        for _, process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def postgres_database() -> Iterator[str]:
    import psycopg

    name = f"distillery_load_{secrets.token_hex(4)}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).flushdb()


def service_env(folder: Path, database_url: str, broker_url: str | None, jobs: int) -> dict:
    # The caller's own DISTILLERY_* settings would change what is measured: none pass through.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTILLERY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        DISTILLERY_DATABASE_URL=database_url,
        DISTILLERY_ARTIFACT_URL=str(folder / "artifacts"),
        DISTILLERY_WORK_DIR=str(folder / "work"),
        # All jobs are submitted at once: the per-tenant queue quota (100) would answer 429.
        DISTILLERY_TENANT_MAX_QUEUED_JOBS=str(jobs),
    )
    if broker_url:
        env.update(DISTILLERY_BROKER_URL=broker_url, DISTILLERY_CELERY_QUEUE="load")
    return env


def wait_ready(url: str, processes: Processes, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        with suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the API was not ready within {timeout:.0f} s")


@dataclass
class Submissions:
    ids: dict[int, str] = field(default_factory=dict)  # job number -> job id
    rejected: dict[int, str] = field(default_factory=dict)  # job number -> last answer
    retries: int = 0
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def submit_all(url: str, jobs: int, run: str) -> Submissions:
    """CLIENTS threads, each with its own connection, submit jobs 0..jobs-1 between them. A
    transport error, 429 or 5xx is retried with the same Idempotency-Key for up to a minute."""
    result = Submissions()
    stop = threading.Event()

    def client(first: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for number in range(first, jobs, CLIENTS):
                headers = {"Idempotency-Key": f"load-{run}-{number}"}
                body = {**TINY_JOB, "metadata": {"load": run, "number": number}}
                give_up = time.monotonic() + 60
                while not stop.is_set():
                    started = time.perf_counter()
                    try:
                        response = http.post("/v1/jobs", json=body, headers=headers)
                        answer = f"{response.status_code} {response.text[:200]}"
                    except httpx.TransportError as exc:
                        response, answer = None, repr(exc)
                    with result.lock:
                        if response is not None and response.status_code in (200, 201):
                            result.ids[number] = response.json()["id"]
                            result.latencies.append(time.perf_counter() - started)
                            break
                        code = 0 if response is None else response.status_code
                        retry = code == 0 or code == 429 or code >= 500
                        if not retry or time.monotonic() > give_up:
                            result.rejected[number] = answer
                            break
                        result.retries += 1
                    time.sleep(0.5)

    with ThreadPoolExecutor(CLIENTS, thread_name_prefix="client") as pool:
        futures = [pool.submit(client, first) for first in range(CLIENTS)]
        try:
            for future in futures:
                future.result()
        finally:
            stop.set()  # on Ctrl-C, the clients stop after their current request
    return result


def list_statuses(http: httpx.Client) -> dict[str, str]:
    """Every job's status, from the list endpoint (100 a page)."""
    statuses: dict[str, str] = {}
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = http.get("/v1/jobs", params=params)
        page.raise_for_status()
        body = page.json()
        statuses.update((job["id"], job["status"]) for job in body["data"])
        if not body["has_more"] or not body["data"]:
            return statuses
        params["after"] = body["data"][-1]["id"]


def wait_final(
    http: httpx.Client, ids: set[str], timeout: float, processes: Processes
) -> dict[str, str]:
    """Poll until every job in `ids` is final or `timeout` passes; progress goes to stderr."""
    deadline = time.monotonic() + timeout
    shown = 0.0
    while True:
        processes.check_alive()
        try:
            statuses = list_statuses(http)
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            print(f"  (list failed: {exc!r}; retrying)", file=sys.stderr)
            time.sleep(2)
            continue
        counts = Counter(statuses.get(i, "missing") for i in ids)
        done = sum(counts[s] for s in FINAL)
        if done == len(ids) or time.monotonic() > deadline:
            return statuses
        if time.monotonic() - shown > 30:
            summary = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
            print(f"  {done}/{len(ids)} final: {summary}", file=sys.stderr, flush=True)
            shown = time.monotonic()
        time.sleep(2)


def seconds_between(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def check_job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """What a user can see of one job: its status, and why it would count as run twice."""
    response = http.get(f"/v1/jobs/{job_id}")
    if response.status_code == 404:
        return {"id": job_id, "status": "missing", "ran_twice": []}
    response.raise_for_status()
    job = response.json()
    events = http.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    statuses = [e["message"] for e in events if e["kind"] == "status"]
    metrics = http.get(f"/v1/jobs/{job_id}/metrics").json()["data"]
    ran_twice = []
    attempts = [m for m in statuses if ATTEMPT_EVENT.fullmatch(m)]
    if len(attempts) > 1:
        ran_twice.append(f"{len(attempts)} running events")
    if job["attempt"] > 1:
        ran_twice.append(f"attempt {job['attempt']}")
    finals = [m for m in statuses if FINAL_EVENT.match(m)]
    if len(finals) > 1:
        ran_twice.append(f"{len(finals)} final events")
    repeated = [k for k, n in Counter((m["stage"], m["epoch"]) for m in metrics).items() if n > 1]
    if repeated:
        ran_twice.append(f"metrics recorded twice: {repeated}")
    return {
        "id": job_id,
        "status": job["status"],
        "ran_twice": ran_twice,
        "run_s": seconds_between(job["started_at"], job["finished_at"]),
        "created_to_finished_s": seconds_between(job["created_at"], job["finished_at"]),
        "error": job["error"],
        "events": statuses,
    }


def percentile(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return quantiles(values, n=100, method="inclusive")[q - 1]


def run(args: argparse.Namespace, folder: Path, database_url: str) -> dict[str, Any]:
    broker = None if args.embedded else REDIS_URL
    if broker:
        flush_redis()
    env = service_env(folder, database_url, broker, args.jobs)
    processes = Processes(folder, env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        serve = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
        processes.start("api", serve)
        wait_ready(url, processes)
        for n in range(1, args.workers + 1 if broker else 1):
            worker = [sys.executable, "-m", "celery", "-A", args.celery_app, "worker"]
            worker += ["-Q", "load", "-c", "1", "-n", f"w{n}@%h", "--loglevel", "INFO"]
            processes.start(f"worker-{n}", [*worker, "--without-gossip", "--without-mingle"])
        processes.wait_for_pools()

        print(f"{args.mode}: submitting {args.jobs} jobs from {CLIENTS} clients", file=sys.stderr)
        started = time.monotonic()
        submitted = submit_all(url, args.jobs, secrets.token_hex(4))
        submit_s = time.monotonic() - started
        ids = set(submitted.ids.values())
        print(f"  submitted {len(ids)} in {submit_s:.1f} s", file=sys.stderr)
        with httpx.Client(base_url=url, timeout=60) as http:
            wait_final(http, ids, args.timeout, processes)
            wall_s = time.monotonic() - started
            checked = [check_job(http, job_id) for job_id in sorted(ids)]
        cpu_s = processes.cpu_seconds()
    finally:
        processes.stop_all()

    statuses = Counter(c["status"] for c in checked)
    duplicates = [c for c in checked if c["ran_twice"]]
    lost = [c for c in checked if c["status"] not in FINAL]
    run_s = [c["run_s"] for c in checked if c["run_s"] is not None]
    turnaround = [c["created_to_finished_s"] for c in checked if c["created_to_finished_s"]]
    # The processes that run jobs: the workers, or the embedded API (its own share is small).
    job_cpu_s = sum(v for k, v in cpu_s.items() if k.startswith("worker-") or not broker)
    return {
        "mode": args.mode,
        "database": "postgresql" if broker else "sqlite",
        "workers": args.workers if broker else 1,
        "celery_app": args.celery_app if broker else None,
        "clients": CLIENTS,
        "jobs": args.jobs,
        "submitted": len(ids),
        "rejected": len(submitted.rejected),
        "submit_retries": submitted.retries,
        "succeeded": statuses["succeeded"],
        "failed": statuses["failed"],
        "cancelled": statuses["cancelled"],
        "duplicates": len(duplicates),
        "lost": len(lost),
        "wall_s": round(wall_s, 1),
        "submit_s": round(submit_s, 1),
        "submit_latency_s": {
            "p50": round(median(submitted.latencies), 3) if submitted.latencies else None,
            "p95": _round(percentile(submitted.latencies, 95)),
        },
        "jobs_per_minute": round(statuses["succeeded"] / wall_s * 60, 1),
        "job_run_s": {"p50": _round(percentile(run_s, 50)), "p95": _round(percentile(run_s, 95))},
        "cpu_s": cpu_s,
        "job_cpu_s": round(job_cpu_s / max(1, len(checked)), 2),
        "job_turnaround_s_max": _round(max(turnaround, default=None)),
        "problems": {
            "rejected": submitted.rejected,
            "duplicates": duplicates,
            "lost": lost,
            "failed": [c for c in checked if c["status"] == "failed"][:10],
        },
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # a SIGTERM stops the services the way Ctrl-C does


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embedded", action="store_true", help="SQLite, no broker (100 jobs)")
    parser.add_argument("--jobs", type=int, help="default: 500 (Celery), 100 (embedded)")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (-c 1 each)")
    parser.add_argument("--timeout", type=float, help="seconds to wait for the last job")
    parser.add_argument(
        "--celery-app", default="worker.celery_app", help="the workers' -A (to compare variants)"
    )
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the logs and data folder")
    args = parser.parse_args()
    args.mode = "embedded" if args.embedded else "celery"
    args.jobs = args.jobs or (100 if args.embedded else 500)
    # Generous: about 15 s a job per runner on a busy 2-core machine, plus start-up.
    runners = 1 if args.embedded else args.workers
    args.timeout = args.timeout or 300 + 15 * args.jobs / runners
    signal.signal(signal.SIGTERM, _interrupt)

    folder = Path(tempfile.mkdtemp(prefix=f"distillery-load-{args.mode}-"))
    keep = True
    try:
        if args.embedded:
            result = run(args, folder, f"sqlite:///{folder / 'distillery.db'}")
        else:
            with postgres_database() as database_url:
                result = run(args, folder, database_url)
        keep = args.keep or bool(result["duplicates"] or result["lost"] or result["failed"])
    except KeyboardInterrupt:
        print("interrupted: the services it started are stopped", file=sys.stderr)
        return 130
    finally:
        if keep:
            print(f"logs and data kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)

    for kind, problems in result["problems"].items():
        for problem in problems if isinstance(problems, list) else problems.items():
            print(f"  {kind}: {json.dumps(problem)[:2000]}", file=sys.stderr)
    print(
        f"  {result['jobs_per_minute']} jobs/min; a job runs {result['job_run_s']['p50']} s "
        f"(p50, claim to end) and takes {result['job_cpu_s']} CPU s; submit p95 "
        f"{result['submit_latency_s']['p95']} s, {result['submit_retries']} retries",
        file=sys.stderr,
    )
    print(
        f"{args.mode}: submitted {result['submitted']} / succeeded {result['succeeded']} / "
        f"duplicates {result['duplicates']} / lost {result['lost']} in {result['wall_s']:.0f} s "
        f"(failed {result['failed']}, cancelled {result['cancelled']}, "
        f"rejected {result['rejected']})"
    )
    saved = json.loads(args.json.read_text()) if args.json.exists() else {}
    saved[args.mode] = {
        **{k: v for k, v in result.items() if k != "problems"},
        "machine": f"{os.cpu_count()} cores",
    }
    args.json.write_text(json.dumps(saved, indent=2) + "\n")
    clean = result["submitted"] == result["succeeded"] == args.jobs
    return 0 if clean and not result["duplicates"] and not result["lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
