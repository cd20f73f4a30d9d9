"""One job's training stages in 1 process and in 2 torchrun processes (worker/torchrun.py).

The job distils an `mlp` [1024, 1024] student from an `mlp` [512] teacher on 20,000
synthetic examples of 256 values (10 classes), batches of --batch-size, in-process on SQLite
(lifecycle.run, as a worker runs it). Variants, alternating, --rounds each:
`1 process x 1 thread`, `2 processes x 1 thread` (DISTILLERY_TORCH_THREADS=2, shared) and
`1 process x 2 threads`. Reported per variant: the distill stage's samples/s (its epochs'
median, as the metrics record it: every rank's examples over the epoch's seconds) and the
stage's wall time from its event to the next stage's (torchrun's start and the ranks'
rebuilding of the job included).

Prints the table, writes benchmarks/data_parallel.json.

    .venv/bin/python benchmarks/data_parallel.py [--rounds 2] [--epochs 3] [--batch-size 256]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DISTILLERY_JOB_ESTIMATES", "false")

from benchmarks.services import ROOT

VARIANTS = {
    "1 process x 1 thread": (1, 1),
    "2 processes x 1 thread": (2, 2),
    "1 process x 2 threads": (1, 2),
}


def job_spec(processes: int, epochs: int, batch_size: int) -> dict[str, Any]:
    return {
        "dataset": {
            "name": "synthetic",
            "options": {"shape": [256], "num_classes": 10, "num_samples": 20000},
        },
        "teacher": {"arch": "mlp", "params": {"hidden": [512]}, "train": {"epochs": 1}},
        "student": {"arch": "mlp", "params": {"hidden": [1024, 1024]}},
        "distill": {"epochs": epochs, "batch_size": batch_size},
        "baseline": False,
        "export": ["safetensors"],
        "resources": {"processes": processes},
    }


def one_run(
    processes: int, threads: int, epochs: int, batch_size: int, folder: Path
) -> dict[str, Any]:
    from app import jobs
    from app.db import session_scope, upgrade_database
    from app.models import DEFAULT_TENANT, JobStatus
    from app.settings import Settings
    from distillery.types import JobCreate
    from worker import lifecycle

    url = f"sqlite:///{folder / 'd.db'}"
    upgrade_database(url)
    settings = Settings(
        database_url=url,
        artifact_url=str(folder / "artifacts"),
        work_dir=str(folder / "work"),
        broker_url=None,
        torch_threads=threads,
        job_estimates=False,
    )
    with session_scope(url) as session:
        job, _ = jobs.create_job(
            session,
            JobCreate.model_validate(job_spec(processes, epochs, batch_size)),
            tenant=DEFAULT_TENANT,
        )
        job_id = job.id
    lifecycle.run(job_id, settings)
    with session_scope(url) as session:
        row = jobs.unscoped_job(session, job_id)
        events = jobs.list_events(session, job_id, None, 1000)
        metrics = jobs.list_metrics(session, job_id)
    if row.status != JobStatus.SUCCEEDED:
        raise SystemExit(f"the job {row.status}: {row.error}")
    stages = [e for e in events if e.kind == "stage"]
    start = next(i for i, e in enumerate(stages) if e.message == "distill")
    wall = (stages[start + 1].created_at - stages[start].created_at).total_seconds()
    rates = [m.values["samples_per_second"] for m in metrics if m.stage == "distill"]
    return {
        "processes": processes,
        "threads": threads,
        "samples_per_s": round(statistics.median(rates), 1),
        "distill_stage_s": round(wall, 2),
        "test_accuracy": row.result["student"]["test_accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for round_ in range(args.rounds):
        for name, (processes, threads) in VARIANTS.items():
            with tempfile.TemporaryDirectory(prefix="distillery-dp-") as folder:
                run = one_run(processes, threads, args.epochs, args.batch_size, Path(folder))
            print(f"round {round_ + 1} {name}: {run}", flush=True)
            runs[name].append(run)
    base = statistics.median(r["samples_per_s"] for r in runs["1 process x 1 thread"])
    table = {}
    for name, rows in runs.items():
        rate = statistics.median(r["samples_per_s"] for r in rows)
        wall = statistics.median(r["distill_stage_s"] for r in rows)
        table[name] = {
            "samples_per_s": rate,
            "speedup": round(rate / base, 3),
            "distill_stage_s": wall,
        }
        print(f"{name}: {rate:.0f} samples/s ({rate / base:.2f}x), distill stage {wall:.1f} s")
    out = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "summary": table,
        "runs": runs,
    }
    (ROOT / "benchmarks" / "data_parallel.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
