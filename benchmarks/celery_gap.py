"""The idle gap of one Celery worker between jobs: from one job ending to the next queued job
being claimed (celery/celery#9588), with the stock prefork pool and with worker/celery_pool.py.

One `celery -A <app> worker -Q <queue> -c 1` process on PostgreSQL and Redis; --jobs tiny jobs
are created and sent at once, so each job is waiting in the queue when the one before it ends.
For each pair of consecutive jobs the gap is the next job's started_at (its claim) minus the
previous one's finished_at, both written by the worker's host clock. The variants alternate,
--rounds each: `stock` runs worker.celery_app with `worker_pool` set back to "prefork" (a module
on PYTHONPATH), `prompt` runs worker.celery_app as it is.

Prints median / p90 / max of the gaps per variant, writes benchmarks/celery_gap.json.

    .venv/bin/python benchmarks/celery_gap.py [--jobs 12] [--rounds 2]
"""

import argparse
import itertools
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.services import (
    REDIS_URL,
    ROOT,
    TINY_DIGITS_JOB,
    Process,
    postgres_database,
    running,
)

# Trains for well under a second: the gap, not the job, is what is measured.
TINY_JOB: dict[str, Any] = {**TINY_DIGITS_JOB, "name": "bench-gap"}
STOCK_APP = """from worker.celery_app import app  # noqa: F401

app.conf.worker_pool = "prefork"
"""


def wait_for_pool(worker: Process, timeout: float = 180) -> None:
    """Until the worker has forked its pool child (it imported the pipeline first)."""
    import psutil

    deadline = time.monotonic() + timeout
    while not psutil.Process(worker.process.pid).children():
        if worker.process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start:\n{worker.output()}")
        time.sleep(0.2)


def one_run(variant: str, jobs: int, folder: Path) -> list[float]:
    from app import jobs as job_service
    from app.db import session_scope, upgrade_database
    from app.dispatch.celery import CeleryDispatcher
    from app.models import DEFAULT_TENANT, JobStatus
    from app.settings import Settings
    from distillery.types import JobCreate

    queue = f"gap-{secrets.token_hex(3)}"
    with postgres_database("distillery_gap") as database_url:
        upgrade_database(database_url)
        settings = Settings(
            database_url=database_url,
            broker_url=REDIS_URL,
            celery_queue=queue,
            artifact_url=str(folder / "artifacts"),
            work_dir=str(folder / "work"),
            job_estimates=False,
            tenant_max_queued_jobs=jobs,
        )
        env = {
            "DISTILLERY_DATABASE_URL": database_url,
            "DISTILLERY_BROKER_URL": REDIS_URL,
            "DISTILLERY_CELERY_QUEUE": queue,
            "DISTILLERY_ARTIFACT_URL": settings.artifact_url,
            "DISTILLERY_WORK_DIR": settings.work_dir,
            "DISTILLERY_JOB_ESTIMATES": "false",
            "DISTILLERY_TENANT_MAX_RUNNING_JOBS": "1",
            "DISTILLERY_LOG_LEVEL": "WARNING",
            "PYTHONPATH": f"{folder}:{ROOT}",
        }
        app = "stock_app" if variant == "stock" else "worker.celery_app"
        (folder / "stock_app.py").write_text(STOCK_APP)
        argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, "-c", "1"]
        worker = Process(f"worker-{variant}", argv, env, folder)
        with running([worker]):
            wait_for_pool(worker)
            dispatcher = CeleryDispatcher(settings)
            ids = []
            with session_scope(database_url) as session:
                for _ in range(jobs):
                    job, _ = job_service.create_job(
                        session, JobCreate.model_validate(TINY_JOB), tenant=DEFAULT_TENANT
                    )
                    ids.append(job.id)
            for job_id in ids:
                dispatcher.send(job_id)
            deadline = time.monotonic() + 60 * jobs
            while True:
                with session_scope(database_url) as session:
                    rows = [job_service.unscoped_job(session, i) for i in ids]
                    if all(r.status in JobStatus.FINISHED for r in rows):
                        break
                if time.monotonic() > deadline or worker.process.poll() is not None:
                    raise SystemExit(f"jobs did not finish:\n{worker.output()}")
                time.sleep(0.5)
            failed = [r.id for r in rows if r.status != JobStatus.SUCCEEDED]
            if failed:
                raise SystemExit(f"jobs failed: {failed}\n{worker.output()}")
            order = sorted(rows, key=lambda r: r.started_at)
            return [
                (b.started_at - a.finished_at).total_seconds() for a, b in itertools.pairwise(order)
            ]


def summary(gaps: list[float]) -> dict[str, float]:
    ordered = sorted(gaps)
    return {
        "gaps": len(ordered),
        "median_s": round(statistics.median(ordered), 3),
        "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
        "max_s": round(ordered[-1], 3),
        "over_1s": sum(g > 1.0 for g in ordered),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"stock": [], "prompt": []}
    for round_ in range(args.rounds):
        for variant in ("stock", "prompt"):
            with tempfile.TemporaryDirectory(prefix="distillery-gap-") as folder:
                gaps = one_run(variant, args.jobs, Path(folder))
            print(f"round {round_ + 1} {variant}: " + " ".join(f"{g:.2f}" for g in gaps))
            results[variant].extend(gaps)
    table = {variant: summary(gaps) for variant, gaps in results.items()}
    for variant, row in table.items():
        print(variant, row)
    out = {"jobs": args.jobs, "rounds": args.rounds, "summary": table, "gaps": results}
    (ROOT / "benchmarks" / "celery_gap.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
