"""A simulated fleet day: the control plane (API, PostgreSQL, Redis, the workers' protocol)
under a fleet's load, with fake-fast training (worker/simulated.py).

- `distillery serve --workers 2` with DISTILLERY_AUTH=required, on a fresh PostgreSQL
  database, Celery over Redis;
- --worker-processes `celery worker -P threads -c N` processes, DISTILLERY_SIMULATED_TRAINING=1:
  --workers simulated workers in all, each claiming, heartbeating, writing 7 stages, 9 epochs'
  metrics, 7 events and an artifact per job, then finishing it;
- --tenants tenants (an API key each) submitting --jobs jobs through POST /v1/jobs, as fast as
  the API takes them (--submitters at once), while --pollers clients each GET one of their
  tenant's jobs once a second.

Every 5 s it samples the jobs by status (queue depth), PostgreSQL's CPU (its processes' CPU
time) and the statements PostgreSQL is running (pg_stat_activity: where its time goes). At the
end, with the tables at full size: jobs/min, the queue wait (created -> claimed), POST and
poll latency p50/p99, the statements seen most often, scans per table
(pg_stat_user_tables) and EXPLAIN ANALYZE of the queries the day ran most.

Prints a report, writes benchmarks/fleet_day.json.

    .venv/bin/python benchmarks/fleet_day.py [--jobs 10000] [--workers 100] [--tenants 50]
"""

import argparse
import asyncio
import collections
import json
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.services import (
    BIN,
    REDIS_URL,
    ROOT,
    Process,
    free_port,
    postgres_database,
    running,
    wait_answering,
)

SAMPLE_SECONDS = 5.0
JOB: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "teacher": {"arch": "mlp", "params": {"hidden": [32]}, "train": {"epochs": 3}},
    "student": {"arch": "mlp", "params": {"hidden": [8]}},
    "distill": {"epochs": 3},
    "baseline": True,
    "export": ["safetensors"],
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process so far."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.info["name"] and process.info["name"].startswith("postgres"):
            times = process.info["cpu_times"]
            if times is not None:
                total += times.user + times.system
    return total


class Sampler(threading.Thread):
    """Queue depth, PostgreSQL CPU and running statements, every SAMPLE_SECONDS."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        self.url = database_url.replace("postgresql+psycopg://", "postgresql://")
        self.stop = threading.Event()
        self.samples: list[dict[str, Any]] = []
        self.statements: collections.Counter[str] = collections.Counter()

    def run(self) -> None:
        import psycopg

        started, cpu_before = time.monotonic(), postgres_cpu()
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                # Statements in flight, 10 looks a sample (0.5 s apart): where the time goes.
                for _ in range(10):
                    rows = conn.execute(
                        "SELECT query FROM pg_stat_activity WHERE state = 'active' "
                        "AND pid <> pg_backend_pid() AND datname = current_database()"
                    ).fetchall()
                    for (query,) in rows:
                        self.statements[" ".join(query.split())[:160]] += 1
                    if self.stop.wait(SAMPLE_SECONDS / 10):
                        break
                counts: dict[str, int] = dict(
                    conn.execute("SELECT status, count(*) FROM job GROUP BY status").fetchall()
                )
                now, cpu = time.monotonic(), postgres_cpu()
                self.samples.append(
                    {
                        "t": round(now - started, 1),
                        "queued": counts.get("queued", 0),
                        "running": counts.get("running", 0),
                        "succeeded": counts.get("succeeded", 0),
                        "postgres_cpu": round((cpu - cpu_before) / SAMPLE_SECONDS, 2),
                    }
                )
                cpu_before = cpu


async def submit_all(
    url: str,
    keys: list[str],
    jobs: int,
    submitters: int,
    created: list[tuple[str, str]],
    latencies: list[float],
    limited: list[tuple[int, float]],
) -> None:
    """POST `jobs` jobs, round-robin over the tenants' keys, adding (key, job id) to `created`
    as they come (the pollers read it) and each POST's seconds to `latencies`; a 429 or 503
    is waited out as its Retry-After says, and counted in `limited`."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(jobs):
        queue.put_nowait(i)

    async def submitter(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            key = keys[i % len(keys)]
            body = {**JOB, "name": f"fleet-{i}", "metadata": {"n": i}}
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"fleet-{i}"}
            failures = 0
            while True:
                started = time.perf_counter()
                try:
                    response = await client.post(f"{url}/v1/jobs", json=body, headers=headers)
                except httpx.TransportError:
                    failures += 1
                    if failures == 3:
                        raise
                    await asyncio.sleep(1.0)  # the same key: a retry makes no second job
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code not in (429, 503):
                    break
                # The tenant at its running-job limit (429), or the API short of database
                # connections (503): wait as told, as the SDK does, and count it.
                wait = float(response.headers.get("Retry-After", "1"))
                limited.append((response.status_code, wait))
                await asyncio.sleep(wait)
            if response.status_code not in (200, 201):
                raise SystemExit(f"POST /v1/jobs answered {response.status_code}: {response.text}")
            created.append((key, response.json()["id"]))

    limits = httpx.Limits(max_connections=submitters)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(*(submitter(client) for _ in range(submitters)))


async def poll(
    url: str,
    created: list[tuple[str, str]],
    pollers: int,
    stop: asyncio.Event,
    latencies: list[float],
    errors: list[str],
) -> None:
    """`pollers` clients, each GETting a job of its tenant once a second until `stop`."""

    async def poller(client: httpx.AsyncClient, n: int) -> None:
        draw = random.Random(n)
        while not stop.is_set():
            if created:
                key, job_id = created[draw.randrange(len(created))]
                started = time.perf_counter()
                try:
                    response = await client.get(
                        f"{url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}
                    )
                except httpx.TransportError as exc:
                    # Counted, not fatal: a connection the server closed under load.
                    errors.append(type(exc).__name__)
                    await asyncio.sleep(1.0)
                    continue
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors.append(str(response.status_code))
            await asyncio.sleep(1.0)

    limits = httpx.Limits(max_connections=pollers)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(*(poller(client, n) for n in range(pollers)))


RUNNING = "('running', 'cancelling', 'pausing')"
EXPLAINED = {
    "poll: a job by id and tenant": "SELECT * FROM job WHERE id = %(job)s AND tenant = %(tenant)s",
    "list: a tenant's newest jobs": (
        "SELECT * FROM job WHERE tenant = %(tenant)s ORDER BY created_at DESC, id DESC LIMIT 21"
    ),
    "events of a job": (
        "SELECT * FROM job_event WHERE job_id = %(job)s AND id > 0 ORDER BY id LIMIT 100"
    ),
    "metrics of a job": "SELECT * FROM metric WHERE job_id = %(job)s ORDER BY stage, epoch",
    "maintenance: queued, undispatched": (
        "SELECT id, tenant FROM job WHERE status = 'queued' AND dispatched_at IS NULL "
        "ORDER BY created_at, id"
    ),
    "maintenance: sent, unclaimed": (
        "SELECT id FROM job WHERE status = 'queued' AND dispatched_at IS NOT NULL "
        "AND dispatched_at <= now() ORDER BY created_at, id"
    ),
    "reaper: expired leases": (
        f"SELECT id FROM job WHERE status IN {RUNNING} AND lease_expires_at < now()"
    ),
    "claim: the tenant's running jobs": (
        f"SELECT count(*) FROM job WHERE tenant = %(tenant)s AND status IN {RUNNING}"
    ),
    "webhooks: due deliveries": (
        "SELECT * FROM job_webhook WHERE next_attempt_at <= now() "
        "ORDER BY next_attempt_at LIMIT 100"
    ),
}


def explain(database_url: str) -> dict[str, Any]:
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        job, tenant = conn.execute(
            "SELECT id, tenant FROM job ORDER BY random() LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        params = {"job": job, "tenant": tenant}
        for name, sql in EXPLAINED.items():
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()
            lines = [row[0] for row in plan]
            out[name] = {"sql": sql, "plan": lines}
        out["tables"] = [
            dict(
                zip(
                    (
                        "table",
                        "rows",
                        "seq_scan",
                        "seq_tup_read",
                        "idx_scan",
                        "updates",
                        "hot_updates",
                        "dead_rows",
                        "autovacuums",
                        "bytes",
                    ),
                    row,
                    strict=True,
                )
            )
            for row in conn.execute(
                "SELECT relname, n_live_tup, seq_scan, seq_tup_read, idx_scan, n_tup_upd, "
                "n_tup_hot_upd, n_dead_tup, autovacuum_count, pg_total_relation_size(relid) "
                "FROM pg_stat_user_tables ORDER BY seq_tup_read DESC"
            ).fetchall()
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--worker-processes", type=int, default=2)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--pollers", type=int, default=200)
    parser.add_argument("--submitters", type=int, default=16)
    parser.add_argument("--epoch-seconds", type=float, default=0.2)
    parser.add_argument(
        "--worker-pool",
        type=int,
        default=0,
        help="DISTILLERY_DATABASE_POOL_SIZE of each worker process, no overflow (0: defaults)",
    )
    parser.add_argument("--out", default="fleet_day.json")
    args = parser.parse_args()

    from app.auth import create_key
    from app.db import session_scope, upgrade_database

    queue = f"fleet-{secrets.token_hex(3)}"
    with (
        tempfile.TemporaryDirectory(prefix="distillery-fleet-") as scratch,
        postgres_database("distillery_fleet") as database_url,
    ):
        folder = Path(scratch)
        upgrade_database(database_url)
        keys = []
        with session_scope(database_url) as session:
            for t in range(args.tenants):
                _, key = create_key(session, f"tenant-{t:02d}")
                keys.append(key)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            "DISTILLERY_DATABASE_URL": database_url,
            "DISTILLERY_BROKER_URL": REDIS_URL,
            "DISTILLERY_CELERY_QUEUE": queue,
            "DISTILLERY_ARTIFACT_URL": str(folder / "artifacts"),
            "DISTILLERY_WORK_DIR": str(folder / "work"),
            "DISTILLERY_AUTH": "required",
            "DISTILLERY_AUTO_MIGRATE": "false",
            "DISTILLERY_TENANT_MAX_QUEUED_JOBS": str(args.jobs),
            "DISTILLERY_SIMULATED_TRAINING": "true",
            "DISTILLERY_SIMULATED_EPOCH_SECONDS": str(args.epoch_seconds),
            "DISTILLERY_LOG_LEVEL": "WARNING",
            "DISTILLERY_JOB_ESTIMATES": "false",
        }
        per_process = max(1, args.workers // args.worker_processes)
        worker_env = {}
        if args.worker_pool:
            worker_env = {
                "DISTILLERY_DATABASE_POOL_SIZE": str(args.worker_pool),
                "DISTILLERY_DATABASE_MAX_OVERFLOW": "0",
            }
        celery = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "-Q",
            queue,
            "-P",
            "threads",
        ]
        processes = [
            Process(
                "api",
                [str(BIN / "distillery"), "serve", "--port", str(port), "--workers", "2"],
                env,
                folder,
            ),
            *(
                Process(
                    f"workers-{i}",
                    [*celery, "-c", str(per_process), "-n", f"fleet{i}@%h"],
                    {**env, **worker_env},
                    folder,
                )
                for i in range(args.worker_processes)
            ),
        ]
        with running(processes):
            wait_answering(f"{url}/readyz", processes[0])
            sampler = Sampler(database_url)
            sampler.start()
            day_started = time.monotonic()
            poll_latencies: list[float] = []
            poll_errors: list[str] = []
            post_latencies: list[float] = []
            limited: list[tuple[int, float]] = []

            async def day() -> None:
                stop = asyncio.Event()
                created: list[tuple[str, str]] = []
                pollers = asyncio.create_task(
                    poll(url, created, args.pollers, stop, poll_latencies, poll_errors)
                )
                await submit_all(
                    url, keys, args.jobs, args.submitters, created, post_latencies, limited
                )
                submitted = time.monotonic()
                print(
                    f"submitted {len(created)} jobs in {submitted - day_started:.0f} s", flush=True
                )
                try:
                    while True:
                        counts = sampler.samples[-1] if sampler.samples else {}
                        if counts.get("succeeded", 0) >= args.jobs:
                            break
                        if any(p.process.poll() is not None for p in processes):
                            raise SystemExit(
                                "a process exited:\n" + "\n".join(p.output() for p in processes)
                            )
                        await asyncio.sleep(1.0)
                finally:
                    stop.set()
                    await pollers

            try:
                asyncio.run(day())
            finally:
                # Measured whatever happened: the tables are at the size the day left them.
                day_seconds = time.monotonic() - day_started
                sampler.stop.set()
                sampler.join()
                report = measure(
                    database_url, args, day_seconds, post_latencies, poll_latencies, sampler
                )
                report["summary"]["poll_errors"] = dict(collections.Counter(poll_errors))
                report["summary"]["post_retried"] = dict(
                    collections.Counter(str(code) for code, _ in limited)
                )
                (ROOT / "benchmarks" / args.out).write_text(
                    json.dumps(report, indent=2, default=str) + "\n"
                )
        print(json.dumps(report["summary"], indent=2))


def _count(conn: Any, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def measure(
    database_url: str,
    args: argparse.Namespace,
    day_seconds: float,
    post_latencies: list[float],
    poll_latencies: list[float],
    sampler: Sampler,
) -> dict[str, Any]:
    import psycopg

    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        waits = [
            float(row[0])
            for row in conn.execute(
                "SELECT extract(epoch FROM started_at - created_at) FROM job "
                "WHERE started_at IS NOT NULL"
            ).fetchall()
        ]
        finished = [
            row[0]
            for row in conn.execute(
                "SELECT finished_at FROM job WHERE status = 'succeeded' ORDER BY finished_at"
            ).fetchall()
        ]
        attempts = conn.execute("SELECT max(attempt), sum(attempt) FROM job").fetchone()
        rows = {t: _count(conn, t) for t in ("job", "job_event", "metric", "artifact", "api_key")}
    span = (finished[-1] - finished[0]).total_seconds() if len(finished) > 1 else float("nan")
    cpu = [s["postgres_cpu"] for s in sampler.samples]
    summary = {
        "jobs": args.jobs,
        "workers": args.workers,
        "tenants": args.tenants,
        "pollers": args.pollers,
        "day_seconds": round(day_seconds, 1),
        "jobs_per_minute": round(60 * len(finished) / span, 1) if span == span else None,
        "queue_wait_s": {
            "p50": round(percentile(waits, 0.5), 2),
            "p99": round(percentile(waits, 0.99), 2),
        },
        "post_ms": {
            "p50": round(1000 * percentile(post_latencies, 0.5), 1),
            "p99": round(1000 * percentile(post_latencies, 0.99), 1),
        },
        "poll_ms": {
            "p50": round(1000 * percentile(poll_latencies, 0.5), 1),
            "p99": round(1000 * percentile(poll_latencies, 0.99), 1),
            "polls": len(poll_latencies),
        },
        "postgres_cpu_cores": {
            "mean": round(statistics.mean(cpu), 2) if cpu else None,
            "max": max(cpu) if cpu else None,
        },
        "max_attempt": attempts[0] if attempts else None,
        "worker_pool": args.worker_pool or "default (10 + 20 overflow)",
        "rows": rows,
        "top_statements": sampler.statements.most_common(12),
    }
    return {"summary": summary, "samples": sampler.samples, "explain": explain(database_url)}


if __name__ == "__main__":
    main()
