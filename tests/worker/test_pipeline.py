"""The pipeline run in-process on a real database (SQLite and PostgreSQL)."""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
from sqlalchemy import update
from sqlalchemy.orm import Session

from app import jobs
from app.db import session_scope
from app.models import DEFAULT_TENANT, Job, JobStatus
from app.settings import Settings
from distillery.types import JobCreate
from worker import lifecycle
from worker.control import LeaseLost
from worker.stages import STAGE_NAMES
from worker.stages.export import Export

TINY: dict[str, Any] = {
    "dataset": {
        "name": "synthetic",
        "options": {"shape": [12], "num_classes": 3, "num_samples": 300},
        "transfer": {
            "name": "synthetic",
            "options": {"shape": [12], "num_classes": 3, "num_samples": 100, "seed": 5},
        },
    },
    "teacher": {
        "arch": "mlp",
        "params": {"hidden": [64, 64]},
        "train": {"epochs": 3, "batch_size": 32},
    },
    "student": {"arch": "mlp", "params": {"hidden": [4]}},
    "distill": {
        "epochs": 3,
        "batch_size": 32,
        "temperature_schedule": {"kind": "linear", "end": 1.0},
    },
}


# The stages a job runs only when its spec asks for them (the TINY spec asks for none).
ASKED_FOR = ("teacher_text", "tune", "hints", "random_init", "prune", "quantize")


def submit(settings: Settings, spec: dict[str, Any]) -> str:
    with session_scope(settings.database_url) as session:
        job, _ = jobs.create_job(session, JobCreate.model_validate(spec), tenant=DEFAULT_TENANT)
        return job.id


def load(settings: Settings, job_id: str) -> tuple[Job, list, list, list]:
    with session_scope(settings.database_url) as session:
        return (
            jobs.unscoped_job(session, job_id),
            jobs.list_events(session, job_id, None, 1000),
            jobs.list_metrics(session, job_id),
            jobs.list_artifacts(session, job_id),
        )


def as_default_tenant(
    command: Callable[[Session, str, str], object],
) -> Callable[[Session, str], object]:
    """The API's `command(session, job_id, tenant)` for jobs of the default tenant (submit's)."""
    return lambda session, job_id: command(session, job_id, DEFAULT_TENANT)


@contextmanager
def once_training(
    settings: Settings, job_id: str, act: Callable[[Session, str], object]
) -> Iterator[threading.Event]:
    """In the background, `act(session, job_id)` once the job's first epoch is recorded; the
    event yielded is set when it has. Leaving the block stops the watcher (the job may have
    ended without an epoch) and waits for it, boundedly: a failure fails, never hangs."""
    stop, acted = threading.Event(), threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with session_scope(settings.database_url) as session:
                if jobs.list_metrics(session, job_id):
                    act(session, job_id)
                    acted.set()
                    return
            stop.wait(0.05)

    watcher = threading.Thread(target=watch, name="once-training", daemon=True)
    watcher.start()
    try:
        yield acted
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive(), "the watcher did not stop within 30 s"


def test_a_job_runs_every_stage_to_exported_artifacts(settings: Settings) -> None:
    job_id = submit(settings, TINY)
    lifecycle.run(job_id, settings)
    job, events, metrics, artifacts = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempt == 1
    assert job.progress is not None and job.progress["fraction"] == 1.0
    stages = [e.message for e in events if e.kind == "stage"]
    assert stages == [s for s in STAGE_NAMES if s not in ASKED_FOR]

    # Metrics per epoch for each training stage, with the T the epoch used.
    by_stage: dict[str, list] = {}
    for m in metrics:
        by_stage.setdefault(m.stage, []).append(m)
    assert {s: len(v) for s, v in by_stage.items()} == {
        "pretrain_teacher": 3,
        "distill": 3,
        "baseline": 3,
    }
    assert [m.values["temperature"] for m in by_stage["distill"]] == [4.0, 2.5, 1.0]
    for m in metrics:
        assert {"train_loss", "val_loss", "val_accuracy", "lr", "samples_per_second"} <= set(
            m.values
        )

    # Baseline: the same number of optimiser steps as distillation: 216 labelled + 100
    # transfer examples in batches of 32 is 10 steps an epoch, so 320 labelled samples.
    seen = [
        m.values["samples_per_second"] * m.values["epoch_seconds"] for m in by_stage["baseline"]
    ]
    assert seen == pytest.approx([10 * 32] * 3, rel=1e-3)

    names = {a.name for a in artifacts}
    assert names == {
        "student.safetensors",
        "student.onnx",
        "student.ts",
        "manifest.json",
        "report.json",
        "metrics.csv",
        "frontier.svg",
    }
    result = job.result
    assert result is not None
    assert result["student"]["params"] == 12 * 4 + 4 + 4 * 3 + 3
    assert result["compression"]["param_ratio"] > 10
    assert set(result["compression"]) == {
        "param_ratio",
        "size_ratio",
        "latency_speedup_cpu",
        "accuracy_retention",
        "kd_gain",
    }

    # The exported ONNX takes raw inputs: its accuracy on the raw test split is the reported one.
    root = Path(settings.artifact_url)
    manifest = json.loads((root / "jobs" / job_id / "manifest.json").read_text())
    assert manifest["input"] == {"name": "x", "shape": [None, 12], "dtype": "float32"}
    from worker.data import load_dataset

    raw = load_dataset("synthetic", job.spec["dataset"]["options"])
    session = onnxruntime.InferenceSession(str(root / "jobs" / job_id / "student.onnx"))
    logits = session.run(None, {"x": raw.x_test.astype(np.float32)})[0]
    accuracy = float((logits.argmax(1) == raw.y_test).mean())
    assert accuracy == pytest.approx(result["student"]["test_accuracy"], abs=1e-4)
    traced = torch.jit.load(str(root / "jobs" / job_id / "student.ts"))
    assert np.allclose(traced(torch.from_numpy(raw.x_test)).detach().numpy(), logits, atol=1e-4)


def test_a_second_delivery_of_a_running_job_does_nothing(settings: Settings) -> None:
    job_id = submit(settings, TINY)
    with session_scope(settings.database_url) as session:
        assert jobs.claim(session, job_id, "other-worker", lease_seconds=60, max_attempts=3)
    lifecycle.run(job_id, settings)
    job, _, metrics, _ = load(settings, job_id)
    assert job.status == JobStatus.RUNNING and job.lease_owner == "other-worker"
    assert metrics == []


def test_a_model_that_does_not_fit_the_data_fails_early_naming_the_field(
    settings: Settings,
) -> None:
    spec = {**TINY, "teacher": {"arch": "cnn2d", "params": {}}}
    job_id = submit(settings, spec)
    lifecycle.run(job_id, settings)
    job, _, metrics, _ = load(settings, job_id)
    assert job.status == JobStatus.FAILED
    assert job.error is not None
    assert job.error["param"] == "teacher.arch"
    assert job.error["stage"] == "validate"
    assert "cnn2d" in job.error["message"]
    assert metrics == []
    # Kept for an operator to look at, until gc (DISTILLERY_FAILED_WORK_RETENTION_HOURS).
    assert (settings.work_root / "jobs" / job_id).is_dir()


def test_cancel_stops_a_running_job(settings: Settings) -> None:
    settings = settings.model_copy(update={"lease_seconds": 0.6, "cancel_check_steps": 1})
    spec = {**TINY, "teacher": {**TINY["teacher"], "train": {"epochs": 2000, "batch_size": 8}}}
    job_id = submit(settings, spec)

    with once_training(settings, job_id, as_default_tenant(jobs.cancel_job)) as cancelled:
        lifecycle.run(job_id, settings)
    assert cancelled.is_set()
    job, events, metrics, _ = load(settings, job_id)
    assert job.status == JobStatus.CANCELLED
    assert [e.message for e in events if e.kind == "status"][-2:] == ["cancelling", "cancelled"]
    assert len(metrics) < 2000
    assert not (settings.work_root / "jobs" / job_id).exists()


def test_a_requeued_job_resumes_and_skips_finished_stages(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = submit(settings, TINY)

    # The worker is presumed dead after all the training (its lease lost): the work folder
    # stays for the next attempt.
    def lost(*_args: object) -> None:
        raise LeaseLost(job_id)

    with monkeypatch.context() as patch:
        patch.setattr(Export, "run", lost)
        lifecycle.run(job_id, settings)
    work = settings.work_root / "jobs" / job_id
    assert (work / "student.safetensors").exists()
    # Requeued, the rerun reuses stage outputs.
    with session_scope(settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.QUEUED))
    lifecycle.run(job_id, settings)
    job, events, _, _ = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED and job.attempt == 2
    reused = [e.message for e in events if "earlier attempt" in e.message]
    assert len(reused) == 3  # teacher, student and baseline weights
    assert any("reused from the store" in e.message for e in events)
    assert not work.exists()  # done for good: its work folder went with it


def test_pause_frees_the_worker_and_resume_continues_where_it_stopped(settings: Settings) -> None:
    settings = settings.model_copy(update={"lease_seconds": 0.6, "cancel_check_steps": 1})
    # Enough teacher epochs that the pause (seen within a heartbeat, 0.2 s, of the first epoch's
    # row) lands in the teacher's training even on a fast idle machine.
    epochs = 30
    spec = {**TINY, "teacher": {**TINY["teacher"], "train": {"epochs": epochs, "batch_size": 8}}}
    job_id = submit(settings, spec)

    with once_training(settings, job_id, as_default_tenant(jobs.pause_job)) as paused:
        lifecycle.run(job_id, settings)  # returns once paused: the worker is free
    assert paused.is_set()
    job, events, metrics, _ = load(settings, job_id)
    assert job.status == JobStatus.PAUSED and job.lease_owner is None
    assert [e.message for e in events if e.kind == "status"][-2:] == ["pausing", "paused"]
    done_before = len(metrics)
    assert 1 <= done_before < epochs

    with session_scope(settings.database_url) as session:
        assert jobs.resume_job(session, job_id, DEFAULT_TENANT).status == JobStatus.QUEUED
    lifecycle.run(job_id, settings)
    job, events, metrics, artifacts = load(settings, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempt == 1  # a pause is not a failed attempt
    paused_stage = metrics[0].stage  # the teacher's training
    recorded = [m.epoch for m in metrics if m.stage == paused_stage]
    assert recorded == list(range(1, epochs + 1))  # each epoch once: none redone, none missing
    assert artifacts


def test_the_distilled_student_does_not_depend_on_whether_a_baseline_ran(
    sqlite_settings: Settings,
) -> None:
    # The baseline runs before distill; with dropout, distillation draws from the global RNG,
    # which the baseline's training must leave as it found it.
    spec = {**TINY, "student": {"arch": "mlp", "params": {"hidden": [8], "dropout": 0.3}}}
    curves = []
    for baseline in (True, False):
        job_id = submit(sqlite_settings, {**spec, "baseline": baseline})
        lifecycle.run(job_id, sqlite_settings)
        job, _, metrics, _ = load(sqlite_settings, job_id)
        assert job.status == JobStatus.SUCCEEDED, job.error
        curves.append([m.values["val_loss"] for m in metrics if m.stage == "distill"])
    with_baseline, without = curves
    assert with_baseline == without
