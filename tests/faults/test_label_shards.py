"""A job's soft labels sharded over two Celery workers, one of them SIGKILLed in the middle of
a shard: the job succeeds, each shard is finished once (its worker named in the events), and
the store entry is byte for byte the one a single worker writes."""

import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import select

from app.db import session_scope
from app.models import Job, LabelShard, ShardStatus
from tests.e2e.conftest import Service
from tests.faults import checks
from tests.faults.stack import Stack

# A teacher whose labelling takes seconds (a wide MLP, 1.3 s a shard on one thread here),
# trained briefly on few examples, labelling a large transfer set in 8 shards.
SHARD_ROWS = 6144
SHARDED_JOB: dict[str, Any] = {
    "name": "sharded-labels",
    "dataset": {
        "name": "synthetic",
        "options": {"shape": [64], "num_classes": 4, "num_samples": 1000},
        "transfer": {
            "name": "synthetic",
            "options": {"shape": [64], "num_classes": 4, "num_samples": 48000, "seed": 3},
        },
    },
    "teacher": {
        "arch": "mlp",
        "params": {"hidden": [2048, 2048, 2048]},
        "train": {"epochs": 1, "batch_size": 64},
    },
    "student": {"arch": "mlp", "params": {"hidden": [8]}},
    "distill": {"epochs": 1, "batch_size": 512},
    "baseline": False,
    "export": ["safetensors"],
}
ENV = {"DISTILLERY_SOFT_LABEL_SHARD_ROWS": str(SHARD_ROWS)}


def shard_rows(database_url: str, job_id: str) -> list[LabelShard]:
    with session_scope(database_url) as session:
        return list(
            session.scalars(
                select(LabelShard).where(LabelShard.job_id == job_id).order_by(LabelShard.shard)
            )
        )


def job_owner(database_url: str, job_id: str) -> str | None:
    with session_scope(database_url) as session:
        return session.scalar(select(Job.lease_owner).where(Job.id == job_id))


def store_entry(stack: Stack, events: list[dict]) -> bytes:
    (written,) = [e for e in events if e["data"] and "key" in e["data"]]
    return (
        Path(stack.env["DISTILLERY_WORK_DIR"]) / "soft_labels" / f"{written['data']['key']}.npy"
    ).read_bytes()


def worker_of(pid: int, workers: list[Service]) -> Service:
    """The Celery worker whose pool child `pid` is."""
    (worker,) = [
        w for w in workers if pid in {c.pid for c in psutil.Process(w.process.pid).children()}
    ]
    return worker


def test_sharded_labels_survive_a_worker_killed_mid_shard(
    services: list[Service], tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    (tmp_path / "fleet").mkdir()
    (tmp_path / "alone").mkdir()
    stack = Stack.celery(services, tmp_path / "fleet", postgres_url, redis_url, **ENV)
    stack.start_api()
    workers = [stack.start_worker("worker-1"), stack.start_worker("worker-2")]
    job_id = stack.submit(SHARDED_JOB)

    def helper_on_its_second_shard() -> tuple[str, int] | None:
        """(the helper, its shard) once a worker other than the job's has finished a shard
        and is labelling another."""
        coordinator = job_owner(postgres_url, job_id)
        rows = shard_rows(postgres_url, job_id)
        finished = {r.owner for r in rows if r.status == ShardStatus.DONE}
        for row in rows:
            mine = row.owner != coordinator and row.owner in finished
            if row.status == ShardStatus.RUNNING and mine:
                return row.owner, row.shard
        return None

    helper, killed_shard = checks.wait_until(
        helper_on_its_second_shard, 240, "a helper on its second shard", stack.services, 0.05
    )
    pid = int(helper.rsplit(":", 1)[1])
    victim = worker_of(pid, workers)
    os.kill(pid, signal.SIGKILL)
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait()

    job = stack.wait(job_id, timeout=240)
    assert job["status"] == "succeeded", (job["error"], stack.logs())
    stack.check(job)
    events = checks.events(stack.url, job_id)
    labelled = [
        e["data"] for e in events if e["data"] and "shard" in e["data"] and "worker" in e["data"]
    ]
    rows = shard_rows(postgres_url, job_id)
    assert len(rows) == 8 and all(r.status == ShardStatus.DONE for r in rows)
    # Each shard finished once, the killed one by another worker after its lease ran out.
    assert sorted(e["shard"] for e in labelled) == list(range(8))
    workers_named = {e["worker"] for e in labelled}
    assert helper in workers_named and len(workers_named) == 2
    (redone,) = [e for e in labelled if e["shard"] == killed_shard]
    assert redone["worker"] != helper and redone["attempt"] == 2

    # One worker alone, from scratch (its own store): the same entry, byte for byte.
    alone = Stack.embedded(services, tmp_path / "alone", f"sqlite:///{tmp_path / 'alone.db'}")
    alone.env.update(ENV)
    alone.start_api("api-alone")
    started = time.monotonic()
    alone_id = alone.submit(SHARDED_JOB)
    alone_job = alone.wait(alone_id, timeout=240)
    assert alone_job["status"] == "succeeded", (
        alone_job["error"],
        alone.logs(),
        time.monotonic() - started,
    )
    alone_events = checks.events(alone.url, alone_id)
    assert {
        e["data"]["worker"]
        for e in alone_events
        if e["data"] and "worker" in e["data"] and "shard" in e["data"]
    } == {next(e["data"]["worker"] for e in alone_events if e["message"] == "running (attempt 1)")}
    assert store_entry(alone, alone_events) == store_entry(stack, events)
