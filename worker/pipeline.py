"""The pipeline every job runs, in both modes (worker/stages, in order):

validate -> pretrain_teacher -> soft_labels -> distill -> baseline -> evaluate -> export

Each stage leaves its output in the job's work folder (teacher / student / baseline weights,
soft labels in the store) and checkpoints every epoch, so a job restarted after a crash skips
finished stages and resumes the current one from its last complete epoch. worker/lifecycle.py
turns how the pipeline ends into the job's final status.
"""

import logging
from typing import Any

import torch

from app import jobs
from app.db import session_scope
from app.housekeeping import remove_job_work
from app.settings import Settings
from app.storage import make_store
from worker import worksync
from worker.control import JobCancelled, JobControl, JobPaused, LeaseLost
from worker.failures import is_infrastructure_error
from worker.job_context import JobContext
from worker.learning_tasks import task_for
from worker.stages import STAGE_NAMES, STAGES

log = logging.getLogger(__name__)

__all__ = ["STAGES", "STAGE_NAMES", "Pipeline"]


class Pipeline:
    def __init__(self, settings: Settings, job_id: str, spec: dict[str, Any], control: JobControl):
        self.job_id = job_id
        self.job = JobContext(
            job_id=job_id,
            spec=spec,
            settings=settings,
            control=control,
            store=make_store(settings.artifact_url, settings.s3_endpoint_url),
            task=task_for(spec),
            device=torch.device("cuda" if torch.cuda.is_available() else "cpu"),
            workdir=settings.work_root / "jobs" / job_id,
        )

    def run(self) -> dict[str, Any]:
        """Run every stage; returns the report. Once the job ends here for good, its work files
        go: all of them when it succeeded or was cancelled; after a failure, those in a remote
        store, while its folder on this host stays for an operator to look at until gc removes
        it (DISTILLERY_FAILED_WORK_RETENTION_HOURS). None go when the lease was lost, the job
        was paused, or an infrastructure error will requeue it: another attempt carries on
        from them."""
        try:
            self._run_stages()
        except (LeaseLost, JobPaused):
            raise
        except JobCancelled:
            self._remove_work()
            raise
        except Exception as exc:
            if not is_infrastructure_error(exc):
                self._clear_remote_work()
            raise
        self._remove_work()
        return self.job.report

    def _run_stages(self) -> None:
        job = self.job
        job.enter("validate")
        job.tenant = self._tenant()
        job.workdir.mkdir(parents=True, exist_ok=True)
        # Work files an attempt on another host left in a remote store (no-op for a local one).
        worksync.pull(job.store, self.job_id, job.workdir)
        first, *rest = STAGES
        first.run(job)
        applying = [stage for stage in rest if stage.applies(job)]
        job.progress.plan({first.name: 0.0, **{s.name: s.work(job) for s in applying}})
        for stage in applying:
            job.enter(stage.name)
            stage.run(job)

    def _tenant(self) -> str:
        """The job's tenant: the only one whose uploaded files the job may read."""
        with session_scope(self.job.settings.database_url) as session:
            return jobs.get_job(session, self.job_id).tenant

    def _remove_work(self) -> None:
        """Remove the work files, here and in a remote store, while this worker still holds the
        job: renewing the lease keeps any other worker from taking the job (and the work
        folder, which workers on one host share) while they go."""
        job = self.job
        try:
            held = job.control.write(
                lambda session: jobs.renew_lease(
                    session, self.job_id, job.control.owner, job.settings.lease_seconds
                )
            )
            if held is not None:
                remove_job_work(job.settings, job.store, self.job_id)
        except Exception:
            log.warning("could not remove the work files of %s", self.job_id, exc_info=True)

    def _clear_remote_work(self) -> None:
        try:
            worksync.clear(self.job.store, self.job_id)
        except Exception:
            log.warning(
                "could not remove the work files of %s from the store", self.job_id, exc_info=True
            )
