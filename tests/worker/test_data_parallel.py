"""Training stages in 2 torchrun processes (gloo, CPU): the same loop over the same seeded
order, each process half of every batch, gradients averaged. The job reaches the student one
process reaches, within float tolerance, records each epoch once, and survives a process
SIGKILLed mid-training (torchrun restarts the group from the last checkpoint)."""

import os
import signal
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
from safetensors.torch import load_file

from app.db import session_scope
from app.jobs import list_metrics
from app.models import JobStatus
from app.settings import Settings
from tests.conftest import make_settings
from tests.worker.test_pipeline import load, submit
from worker import lifecycle

# No dropout, no BatchNorm, every example labelled: what a process computes on its half of a
# batch is exactly its share of the whole batch's gradient (with a transfer set, the hard-label
# term averages over each half's labelled examples: close, not equal). Batches of 50 over 216
# examples end on 16 = 8 + 8; the teacher's (64) on 24 = 12 + 12.
SPEC: dict[str, Any] = {
    "dataset": {
        "name": "synthetic",
        "options": {"shape": [12], "num_classes": 3, "num_samples": 300},
    },
    "teacher": {"arch": "mlp", "params": {"hidden": [32]}, "train": {"epochs": 2}},
    "student": {"arch": "mlp", "params": {"hidden": [8]}},
    "distill": {"epochs": 40, "batch_size": 50},
    "baseline": True,
    "export": ["safetensors"],
}


def weights(settings: Settings, job_id: str) -> dict[str, torch.Tensor]:
    *_, artifacts = load(settings, job_id)
    (student,) = [a for a in artifacts if a.name == "student.safetensors"]
    return load_file(str(Path(settings.artifact_url) / student.storage_key))


def kill_a_rank_once_distilling(
    settings: Settings, job_id: str, stop: threading.Event
) -> list[int]:
    """In the background: once the distill stage has recorded an epoch, SIGKILL one of the
    job's training processes (this test's grandchildren). Returns the pids killed."""
    killed: list[int] = []

    def watch() -> None:
        while not stop.wait(0.02):
            with session_scope(settings.database_url) as session:
                if not any(m.stage == "distill" for m in list_metrics(session, job_id)):
                    continue
            ranks = [
                p
                for p in psutil.Process().children(recursive=True)
                if "worker.rank" in " ".join(p.cmdline())
            ]
            if ranks:
                os.kill(ranks[-1].pid, signal.SIGKILL)
                killed.append(ranks[-1].pid)
                return

    threading.Thread(target=watch, daemon=True).start()
    return killed


def test_two_processes_train_the_student_one_process_trains_even_when_one_is_killed(
    sqlite_url: str, tmp_path: Path
) -> None:
    one = make_settings(sqlite_url, tmp_path / "one").model_copy(update={"torch_threads": 1})
    two = make_settings(sqlite_url, tmp_path / "two").model_copy(update={"torch_threads": 2})
    single_id = submit(one, SPEC)
    lifecycle.run(single_id, one)
    single, _, single_metrics, _ = load(one, single_id)

    job_id = submit(two, {**SPEC, "resources": {"processes": 2}})
    stop = threading.Event()
    killed = kill_a_rank_once_distilling(two, job_id, stop)
    try:
        lifecycle.run(job_id, two)
    finally:
        stop.set()
    job, events, metrics, _ = load(two, job_id)
    assert job.status == JobStatus.SUCCEEDED, (job.error, [e.message for e in events])
    assert killed, "no training process was killed: the job ended first"

    launched = [e.message.split(":")[0] for e in events if "torchrun" in e.message]
    assert launched == ["pretrain_teacher", "baseline", "distill"]
    # Each epoch recorded once (rank 0's; the epoch the kill cut short redone), as one
    # process records them, with the same losses.
    assert [(m.stage, m.epoch) for m in metrics] == [(m.stage, m.epoch) for m in single_metrics]
    for a, b in zip(single_metrics, metrics, strict=True):
        assert b.values["train_loss"] == pytest.approx(a.values["train_loss"], rel=1e-5)
    assert job.result["student"]["test_accuracy"] == single.result["student"]["test_accuracy"]
    mine, theirs = weights(two, job_id), weights(one, single_id)
    for name, tensor in theirs.items():
        torch.testing.assert_close(mine[name], tensor, rtol=1e-5, atol=1e-6)
