"""Soft labels in shards, in one process: a job whose teacher has more forwards than a shard
labels every shard itself when no other worker helps, and its store entry holds the same
rows as one written in one go; augmented views and top-k entries shard the same way; a
helper on another host shares only the database and an S3 store with the job's worker."""

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.db import session_scope
from app.jobs import shards
from app.models import JobStatus
from app.settings import Settings
from app.store import make_store
from tests.conftest import make_settings
from tests.worker.test_pipeline import load, submit
from worker import label_shards, lifecycle, shard_worker
from worker.label_shards import shard_bounds

SPEC: dict[str, Any] = {
    "dataset": {
        "name": "synthetic",
        "options": {"shape": [12], "num_classes": 5, "num_samples": 300},
        "transfer": {
            "name": "synthetic",
            "options": {"shape": [12], "num_classes": 5, "num_samples": 100, "seed": 5},
        },
    },
    "teacher": {"arch": "mlp", "params": {"hidden": [32]}, "train": {"epochs": 1}},
    "student": {"arch": "mlp", "params": {"hidden": [4]}},
    "distill": {"epochs": 2, "batch_size": 64},
    "baseline": False,
    "export": ["safetensors"],
}

VIEWS: dict[str, Any] = {
    **SPEC,
    "dataset": {**SPEC["dataset"], "augment": {"kind": "tabular", "noise": 0.1}},
}

TOP_K: dict[str, Any] = {
    **SPEC,
    "distill": {
        **SPEC["distill"],
        "soft_label_top_k": 2,
        "soft_label_tail_samples": 3,
        "temperature": 1.0,
    },
}


def entry_of(settings: Settings, job_id: str) -> tuple[np.ndarray, list[dict]]:
    _, events, _, _ = load(settings, job_id)
    (written,) = [e for e in events if e.data and "key" in e.data]
    path = settings.soft_label_root / f"{written.data['key']}.npy"
    return np.load(path), [e.data for e in events if e.data and "shard" in e.data]


def run(settings: Settings, spec: dict[str, Any]) -> str:
    job_id = submit(settings, spec)
    lifecycle.run(job_id, settings)
    job, *_ = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job_id


@pytest.mark.parametrize("spec", [SPEC, VIEWS, TOP_K], ids=["examples", "views", "top-k"])
def test_a_job_labels_its_shards_alone_into_the_entry_it_would_write_whole(
    sqlite_url: str, tmp_path: Path, spec: dict[str, Any]
) -> None:
    whole = make_settings(sqlite_url, tmp_path / "whole")
    sharded = make_settings(sqlite_url, tmp_path / "sharded").model_copy(
        update={"soft_label_shard_rows": 64, "job_estimates": spec is SPEC}
    )
    expected, no_shards = entry_of(whole, run(whole, spec))
    job_id = run(sharded, spec)
    entry, shard_events = entry_of(sharded, job_id)

    assert no_shards == []
    # A teacher forward a row: an example's, or (augmented) one of each epoch's views.
    bounds = shard_bounds(len(expected), 64)
    assert len(bounds) >= 5
    assert [(e["start"], e["stop"]) for e in shard_events] == bounds
    _, events, _, _ = load(sharded, job_id)
    (running,) = [e.data["worker"] for e in events if e.message == "running (attempt 1)"]
    assert {e["worker"] for e in shard_events} == {running}
    # Each batch of the teacher is the same rows in both, but batched differently (64 rows a
    # shard, 1,024 at once): float rounding may differ in the last bit.
    assert entry.dtype == expected.dtype and entry.shape == expected.shape
    if entry.dtype.names:
        assert np.array_equal(entry["index"], expected["index"])
        assert np.array_equal(entry["tail"], expected["tail"])
        assert np.allclose(entry["value"], expected["value"], atol=1e-5)
    else:
        assert np.allclose(entry.astype(np.float32), expected.astype(np.float32), atol=2e-3)
    with session_scope(sharded.database_url) as session:
        counts = shards.shard_counts(session, job_id)
    assert counts.done == counts.total == len(bounds)
    if spec is SPEC:  # the job's estimate counts the shards
        job, *_ = load(sharded, job_id)
        assert job.cost["estimate"]["work"]["soft_label_shards"] == len(bounds)
    # The parts are gone once joined.
    assert not list((sharded.work_root / "jobs").glob(f"{job_id}/*.part"))


def test_a_helper_on_another_host_labels_shards_through_an_s3_store(
    sqlite_url: str,
    tmp_path: Path,
    s3_server: str,
    s3_bucket_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The job's worker (host A) and a helper with a work folder of its own (host B) share
    only the database and the S3 store: the helper fetches the trained teacher's weights from
    the job's work prefix, pushes its parts there, and the job's worker pulls and joins them."""
    remote = {"artifact_url": s3_bucket_url, "s3_endpoint_url": s3_server}
    host_a = make_settings(sqlite_url, tmp_path / "a").model_copy(
        update={**remote, "soft_label_shard_rows": 64}
    )
    host_b = host_a.model_copy(update={"work_dir": str(tmp_path / "b" / "work")})
    helpers: list[threading.Thread] = []

    def ask_for_help(job: Any, tasks: int) -> None:
        # What a Celery worker on host B does with the task (worker/tasks.py), in a thread;
        # its first shard claimed at once, so it labels at least that one.
        owner = "helper@host-b"
        with session_scope(host_b.database_url) as session:
            claimed = shards.claim_shard(session, job.job_id, owner, host_b.lease_seconds)
        assert claimed is not None
        helper = threading.Thread(
            target=shard_worker.help_label, args=(job.job_id, claimed, owner, host_b)
        )
        helper.start()
        helpers.append(helper)

    monkeypatch.setattr(label_shards, "_ask_for_help", ask_for_help)
    job_id = run(host_a, SPEC)
    for helper in helpers:
        helper.join(timeout=60)
    entry, shard_events = entry_of(host_a, job_id)

    workers = {e["worker"] for e in shard_events}
    assert "helper@host-b" in workers and len(workers) == 2
    assert sorted(e["shard"] for e in shard_events) == list(range(len(shard_events)))
    assert entry.shape[0] == max(e["stop"] for e in shard_events)
    # Host B kept nothing: its scratch folder went, and the job's work prefix holds no part.
    assert not any((tmp_path / "b" / "work" / "helpers").iterdir())
    store = make_store(host_a.artifact_url, host_a.s3_endpoint_url)
    assert not [k for k in store.list_keys(f"jobs/{job_id}/") if k.endswith(".part")]
