"""The pipeline every job runs, in both modes (worker/stages, in order):

validate -> pretrain_teacher -> soft_labels -> baseline -> distill -> evaluate -> frontier -> export

(with teacher_text, tune and hints where the spec asks for them, before the baseline,
random_init after it, and prune, quantize and frontier before export). The
baseline runs before distillation so that the teacher is checked against the student trained
alone (worker/diagnosis.py) before distillation spends its budget. After validate the job
estimates itself (worker/estimate.py) on its device and records the estimate in its `cost`;
when the last stage is done it puts what it actually did beside it.

Each stage leaves its output in the job's work folder (teacher / student / baseline weights,
soft labels in the store) and checkpoints every epoch, so a job restarted after a crash skips
finished stages and resumes the current one from its last complete epoch. worker/lifecycle.py
turns how the pipeline ends into the job's final status.
"""

import logging
import time
from typing import Any

from app import jobs
from app.housekeeping import remove_job_work
from app.models import Job
from app.settings import Settings
from worker import worksync
from worker.control import Interrupted, JobCancelled, JobControl, JobPaused, LeaseLost
from worker.estimate import Timed, estimate, stage_costs
from worker.failures import is_infrastructure_error
from worker.job_context import JobContext
from worker.stages import STAGE_NAMES, STAGES

log = logging.getLogger(__name__)

__all__ = ["STAGES", "STAGE_NAMES", "Pipeline"]


class Pipeline:
    def __init__(self, settings: Settings, claimed: Job, control: JobControl):
        """`claimed` is the job's row as this worker's claim left it (no need to read it
        again): its spec, tenant, attempt and any estimate an earlier attempt recorded."""
        self.job_id = claimed.id
        self.attempt = claimed.attempt
        self.cost: dict[str, Any] | None = claimed.cost
        self.job = JobContext.for_job(claimed, settings, control)
        self.seconds: dict[str, float] = {}  # each stage's wall time at this attempt

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
                self.clear_remote_work()
            raise
        self._remove_work()
        return self.job.report

    def _run_stages(self) -> None:
        job = self.job
        job.enter("validate")
        started = time.monotonic()
        cost, attempt = self.cost, self.attempt
        job.workdir.mkdir(parents=True, exist_ok=True)
        # Work files an attempt on another host left in a remote store (no-op for a local one).
        worksync.pull(job.store, self.job_id, job.workdir)
        first, *rest = STAGES
        first.run(job)
        self.seconds[first.name] = time.monotonic() - started
        applying = [stage for stage in rest if stage.applies(job)]
        job.progress.plan({first.name: 0.0, **{s.name: s.work(job) for s in applying}})
        # A resumed job keeps its first estimate.
        if job.settings.job_estimates and not (cost or {}).get("estimate"):
            started = time.monotonic()
            cost = self._estimate()
            self.seconds["estimate"] = time.monotonic() - started
        for stage in applying:
            job.enter(stage.name)
            started = time.monotonic()
            stage.run(job)
            self.seconds[stage.name] = time.monotonic() - started
        if cost:
            job.control.cost({**cost, "actual": self._actual([first, *applying], attempt)})

    def _estimate(self) -> dict[str, Any] | None:
        """Estimate the job on its device and record it (a failure costs the job nothing)."""
        job = self.job
        try:
            timed = Timed(validate=self.seconds["validate"])
            answer = estimate(job, [job.device], timed)
        except (Interrupted, JobCancelled, LeaseLost):
            raise
        except Exception:
            log.warning("could not estimate %s", self.job_id, exc_info=True)
            job.event("warning", "could not estimate the job (see the worker's log)")
            return None
        wall = answer["wall_seconds"][job.device.type]
        work = answer["work"]
        job.event(
            "info",
            f"estimate: {wall['total']:.0f} s on {wall['device']}, "
            f"{work['student_steps']} student steps, {work['teacher_passes']} teacher passes",
            {"seconds": wall["total"], "dry_run_seconds": answer["dry_run_seconds"]},
        )
        cost = {"estimate": answer, "actual": None}
        job.control.cost(cost)
        return cost

    def _actual(self, stages: list[Any], attempt: int) -> dict[str, Any]:
        """What the job did: its stages' wall time at this attempt, the optimiser steps of the
        epochs it trained (whichever attempt ran them), the soft-label bytes it stored."""
        job = self.job
        epochs = job.control.write(lambda session: jobs.epochs_recorded(session, self.job_id))
        steps = {
            name: round(cost.steps * epochs.get(name, 0) / cost.epochs)
            for name, cost in stage_costs(job, stages).items()
            if cost.epochs
        }
        teacher_steps = steps.get("pretrain_teacher", 0)
        stored = job.stored_logits
        return {
            "device": job.device.type,
            "total": round(sum(self.seconds.values()), 1),
            "stages": {name: round(seconds, 2) for name, seconds in self.seconds.items()},
            "steps": steps,
            "teacher_steps": teacher_steps,
            "student_steps": sum(steps.values()) - teacher_steps,
            "soft_label_bytes": stored.nbytes if stored is not None else 0,
            "attempt": attempt,
        }

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

    def clear_remote_work(self) -> None:
        """Remove the job's work files from a remote store (it failed: they resume nothing)."""
        try:
            worksync.clear(self.job.store, self.job_id)
        except Exception:
            log.warning(
                "could not remove the work files of %s from the store", self.job_id, exc_info=True
            )
