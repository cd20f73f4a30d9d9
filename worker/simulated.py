"""A simulated job, for load tests of the control plane (DISTILLERY_SIMULATED_TRAINING=1):
the real protocol, fake-fast training.

A worker in this mode claims, holds (heartbeat, cancel and pause checks), reports and finishes
each job exactly as a real one does, through the same JobControl: a stage row per stage, an
epoch's metrics row per epoch of the training stages, events, one small artifact written to
the store and recorded, the final status with a result. Only the training is missing: an
epoch takes DISTILLERY_SIMULATED_EPOCH_SECONDS of sleep. benchmarks/fleet_day.py runs a fleet
of such workers (Celery, thread pool) against the real API and PostgreSQL.
"""

import hashlib
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from app.models import Job, JobStatus
from app.settings import Settings
from app.store import make_store
from app.store.base import artifact_key
from worker.control import JobCancelled, JobControl, JobPaused
from worker.progress import Progress

# The stages of a plain job, and the epochs of those that train.
STAGES = (
    "validate",
    "pretrain_teacher",
    "soft_labels",
    "baseline",
    "distill",
    "evaluate",
    "export",
)
EPOCHS = {"pretrain_teacher": 3, "baseline": 3, "distill": 3}


def run_simulated(job: Job, control: JobControl, settings: Settings) -> None:
    """Walk the job through the stages, reporting as a real job does, to a final status."""
    pause = settings.simulated_epoch_seconds
    progress = Progress()
    progress.plan({stage: float(EPOCHS.get(stage, 1)) for stage in STAGES})
    draw = random.Random(job.id)
    try:
        for stage in STAGES:
            progress.enter(stage)
            control.stage(stage, progress.snapshot())
            epochs = EPOCHS.get(stage, 0)
            progress.start_epochs(max(epochs, 1))
            for epoch in range(1, epochs + 1):
                time.sleep(pause)
                control.check()
                progress.epoch_done(epoch)
                values = {
                    "train_loss": 1.0 / epoch,
                    "val_accuracy": min(1.0, 0.5 + 0.1 * epoch + draw.random() / 10),
                    "samples_per_second": 1000.0,
                    "epoch_seconds": pause,
                }
                control.epoch(stage, epoch, values, progress.snapshot())
            control.event("info", f"{stage}: simulated", {"epochs": epochs})
        control.artifact(**_artifact(job.id, settings))
    except JobCancelled:
        control.finish(JobStatus.CANCELLED, progress=progress.snapshot())
        return
    except JobPaused:
        if not control.paused(progress.snapshot()):
            control.finish(JobStatus.CANCELLED, progress=progress.snapshot())
        return
    accuracy = round(0.8 + draw.random() / 10, 4)
    result: dict[str, Any] = {
        "teacher": {"params": 28298, "test_accuracy": 0.93},
        "student": {"params": 858, "test_accuracy": accuracy},
        "simulated": True,
    }
    control.finish(JobStatus.SUCCEEDED, result=result, progress=progress.snapshot(True))


def _artifact(job_id: str, settings: Settings) -> dict[str, Any]:
    """A small student file in the store, as the export stage leaves one."""
    body = f"simulated student of {job_id}\n".encode()
    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    key = artifact_key(job_id, "student.safetensors")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "student.safetensors"
        path.write_bytes(body)
        size, sha256 = store.put_file(key, path, sha256=hashlib.sha256(body).hexdigest())
    return {
        "name": "student.safetensors",
        "fmt": "safetensors",
        "size": size,
        "sha256": sha256,
        "key": key,
    }
