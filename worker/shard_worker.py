"""A worker helping with another worker's job: it labels shards of the job's soft labels (the
`distillery.label_shards` task, worker/tasks.py, claims the first one before torch loads).

It builds only what labelling needs (the data and the teacher, with the weights the job's
pretrain_teacher stage left in the job's work folder or remote store), checks that its entry
is the one the job planned, then labels shards until none is left to claim. It never holds the
job's lease, writes no status, and stops as soon as the job is not running (cancelled, paused,
failed): a shard it held then goes back to the others.
"""

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from app.db import session_scope
from app.jobs import shards
from app.jobs.rows import unscoped_job
from app.jobs.shards import ClaimedShard
from app.models import JobStatus
from app.settings import Settings
from app.store import make_store
from app.store.base import Store
from worker import worksync
from worker.control import JobCancelled, JobControl, JobPaused
from worker.job_context import JobContext
from worker.label_shards import label_shard
from worker.precision import set_worker_threads
from worker.stages.soft_labels import labelling, plan
from worker.stages.validate import Validate
from worker.teachers.train import TEACHER_FILE

log = logging.getLogger(__name__)


class HelperControl(JobControl):
    """A helper's link to the job: its heartbeat watches the job's status instead of renewing
    the job's lease (the job's own worker holds it), and stops the helper once the job is not
    running; its events are written while the job runs."""

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.settings.control_poll_seconds):
            try:
                with session_scope(self.settings.database_url) as session:
                    status = shards.job_status(session, self.job_id)
            except Exception:
                log.exception("reading the job's status failed; retrying")
                continue
            if status != JobStatus.RUNNING:
                self.cancel_requested.set()
                return

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        if not self.write(
            lambda session: shards.add_shard_event(session, self.job_id, kind, message, data)
        ):
            raise JobCancelled(self.job_id)


def help_label(job_id: str, first: ClaimedShard, owner: str, settings: Settings) -> int:
    """Label shards of the job, `first` (claimed by `owner`, this process) and then any other
    left to claim; returns how many this worker labelled."""
    set_worker_threads(settings)
    with session_scope(settings.database_url) as session:
        row = unscoped_job(session, job_id)
    control = HelperControl(settings, job_id, owner)
    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    job = JobContext.for_job(
        row, settings, control, store=store, workdir=_workdir(settings, store, job_id)
    )
    labelled = 0
    claimed: ClaimedShard | None = first
    with control:
        try:
            # Only the teacher's trained weights, if any: parts, checkpoints and the rest are
            # the job's worker's business.
            worksync.pull(job.store, job_id, job.workdir, names=[TEACHER_FILE])
            Validate.prepare(job)
            if job.teacher.module is not None:
                job.outputs.load(job.teacher.module, "teacher")  # trained by the job, if it was
            labels = labelling(job, plan(job))
            if labels.key != first.entry:
                raise RuntimeError(
                    f"this worker's soft-label entry {labels.key} is not the job's {first.entry}"
                )
            while claimed is not None:
                labelled += label_shard(job, labels, claimed)
                claimed = control.write(
                    lambda session: shards.claim_shard(
                        session, job_id, owner, settings.lease_seconds
                    )
                )
        except (JobCancelled, JobPaused):
            log.info("job %s stopped running; leaving its shards", job_id)
        except Exception:
            # The job's own worker (or another helper) labels the shard instead.
            log.exception("could not label shards of %s", job_id)
            if claimed is not None:
                held = claimed
                control.write(
                    lambda session: shards.release_shard(session, job_id, held.shard, owner)
                )
        finally:
            if store.remote:
                shutil.rmtree(job.workdir, ignore_errors=True)
    return labelled


def _workdir(settings: Settings, store: Store, job_id: str) -> Path:
    """Where the helper writes: with a local store, the job's own work folder (workers share
    it, and the job's worker reads the parts there); with S3, a scratch folder of this
    process's (the parts go to the job's work prefix), removed when it is done."""
    if store.remote:
        return settings.work_root / "helpers" / f"{job_id}-{os.getpid()}"
    return settings.work_root / "jobs" / job_id
