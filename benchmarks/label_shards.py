"""Soft-label throughput of one job with 1 and with 2 Celery workers (worker/label_shards.py).

One job whose teacher (an `mlp` [2048, 2048, 2048], trained one epoch on 900 examples) labels
--rows synthetic transfer examples in shards of --shard-rows; `celery -A worker.celery_app
worker -c 1` processes, each on one thread (OMP_NUM_THREADS=1, DISTILLERY_TORCH_THREADS=1), on
PostgreSQL and Redis. The labelling time is the job's own: from its "soft labels: N shards"
event to its "soft labels ... written to the store" event (both stamped by the database's
clock), so it includes the helpers' start (data, teacher weights), the waits and the join.
The variants alternate, --rounds each.

Prints forwards/s per variant and the speed-up, writes benchmarks/label_shards-<shard rows>.json
(label_shards-<rows>-<shard rows>.json for other --rows).

    .venv/bin/python benchmarks/label_shards.py [--rows 196608] [--shard-rows 8192] [--rounds 2]
"""

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.celery_gap import wait_for_pool
from benchmarks.services import REDIS_URL, ROOT, Process, postgres_database, running


def job_spec(rows: int) -> dict[str, Any]:
    return {
        "name": "bench-label-shards",
        "dataset": {
            "name": "synthetic",
            "options": {"shape": [64], "num_classes": 10, "num_samples": 1000},
            "transfer": {
                "name": "synthetic",
                "options": {"shape": [64], "num_classes": 10, "num_samples": rows, "seed": 3},
            },
        },
        "teacher": {
            "arch": "mlp",
            "params": {"hidden": [2048, 2048, 2048]},
            "train": {"epochs": 1, "batch_size": 64},
        },
        "student": {"arch": "mlp", "params": {"hidden": [8]}},
        "distill": {"epochs": 1, "batch_size": 1024},
        "baseline": False,
        "export": ["safetensors"],
    }


def one_run(workers: int, rows: int, shard_rows: int, folder: Path) -> dict[str, Any]:
    from app import jobs as job_service
    from app.db import session_scope, upgrade_database
    from app.dispatch.celery import CeleryDispatcher
    from app.models import DEFAULT_TENANT, JobStatus
    from app.settings import Settings
    from distillery.types import JobCreate

    queue = f"shards-{secrets.token_hex(3)}"
    with postgres_database("distillery_shards") as database_url:
        upgrade_database(database_url)
        settings = Settings(
            database_url=database_url,
            broker_url=REDIS_URL,
            celery_queue=queue,
            artifact_url=str(folder / "artifacts"),
            work_dir=str(folder / "work"),
        )
        env = {
            "DISTILLERY_DATABASE_URL": database_url,
            "DISTILLERY_BROKER_URL": REDIS_URL,
            "DISTILLERY_CELERY_QUEUE": queue,
            "DISTILLERY_ARTIFACT_URL": settings.artifact_url,
            "DISTILLERY_WORK_DIR": settings.work_dir,
            "DISTILLERY_JOB_ESTIMATES": "false",
            "DISTILLERY_SOFT_LABEL_SHARD_ROWS": str(shard_rows),
            "DISTILLERY_TORCH_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "DISTILLERY_LOG_LEVEL": "WARNING",
        }
        argv = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", queue]
        processes = [
            Process(f"worker-{i}", [*argv, "-c", "1", "-n", f"w{i}@%h"], env, folder)
            for i in range(workers)
        ]
        with running(processes):
            for process in processes:
                wait_for_pool(process)
            with session_scope(database_url) as session:
                job, _ = job_service.create_job(
                    session, JobCreate.model_validate(job_spec(rows)), tenant=DEFAULT_TENANT
                )
                job_id = job.id
            CeleryDispatcher(settings).send(job_id)
            deadline = time.monotonic() + 1800
            while True:
                with session_scope(database_url) as session:
                    row = job_service.unscoped_job(session, job_id)
                    if row.status in JobStatus.FINISHED:
                        events = job_service.list_events(session, job_id, None, 1000)
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("the job did not finish:\n" + processes[0].output())
                time.sleep(0.5)
        if row.status != JobStatus.SUCCEEDED:
            raise SystemExit(f"the job {row.status}: {row.error}\n{processes[0].output()}")
    planned = next(e for e in events if e.data and "shard_rows" in e.data)
    written = next(e for e in events if e.data and "key" in e.data)
    shard_events = [e for e in events if e.data and "shard" in e.data and "worker" in e.data]
    labelled = [e.data or {} for e in shard_events]
    forwards = sum(d["stop"] - d["start"] for d in labelled)
    seconds = (written.created_at - planned.created_at).total_seconds()
    per_worker: dict[str, int] = {}
    # Where the time goes besides labelling: when each worker began its first shard (after
    # the plan), and the join (from the last shard's end to the entry written).
    began: dict[str, float] = {}
    for e in shard_events:
        d = e.data or {}
        per_worker[d["worker"]] = per_worker.get(d["worker"], 0) + 1
        start = (e.created_at - planned.created_at).total_seconds() - d["seconds"]
        began[d["worker"]] = min(began.get(d["worker"], start), start)
    last_done = max(e.created_at for e in shard_events)
    return {
        "workers": workers,
        "forwards": forwards,
        "shards": len(labelled),
        "seconds": round(seconds, 2),
        "forwards_per_s": round(forwards / seconds, 1),
        "shards_per_worker": sorted(per_worker.values(), reverse=True),
        "shard_seconds_median": round(statistics.median(d["seconds"] for d in labelled), 3),
        "workers_began_s": sorted(round(v, 2) for v in began.values()),
        "join_s": round((written.created_at - last_done).total_seconds(), 2),
    }


DEFAULT_ROWS = 196608


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--shard-rows", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for workers in (1, 2):
            with tempfile.TemporaryDirectory(prefix="distillery-shards-") as folder:
                run = one_run(workers, args.rows, args.shard_rows, Path(folder))
            print(f"round {round_ + 1}: {run}", flush=True)
            runs.append(run)
    rate = {
        w: statistics.median(r["forwards_per_s"] for r in runs if r["workers"] == w) for w in (1, 2)
    }
    speedup = round(rate[2] / rate[1], 3)
    print(f"forwards/s: 1 worker {rate[1]:.0f}, 2 workers {rate[2]:.0f}: {speedup}x")
    out = {
        "rows": args.rows,
        "shard_rows": args.shard_rows,
        "rounds": args.rounds,
        "forwards_per_s": {str(w): r for w, r in rate.items()},
        "speedup": speedup,
        "runs": runs,
    }
    name = f"label_shards-{args.shard_rows}.json"
    if args.rows != DEFAULT_ROWS:
        name = f"label_shards-{args.rows}-{args.shard_rows}.json"
    (ROOT / "benchmarks" / name).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
