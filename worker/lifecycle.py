"""A job's life on a worker, from claim to final status: run the pipeline and turn how it
ended (finished, cancelled, paused, refused spec, failed, infrastructure trouble, lease lost)
into the job's final status, events and error."""

import logging
import re
import resource

from app.models import Job, JobStatus
from app.settings import Settings, get_settings
from distillery.types.catalog import SpecError
from worker.allocator import tune_allocator
from worker.claiming import claim_job, holding
from worker.control import JobCancelled, JobControl, JobPaused, LeaseLost
from worker.failures import infrastructure_message, is_infrastructure_error
from worker.pipeline import Pipeline
from worker.precision import set_worker_threads

log = logging.getLogger(__name__)

# An absolute path in an exception message: /a/b, /a/b/c.txt (not a ratio like 3/4).
SERVER_PATH = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)*[\w.@+-]+")


def public_message(exc: BaseException) -> str:
    """What a job's error and events say about an unexpected exception: its type and message,
    with server paths masked (they mean nothing to the user and describe the host)."""
    return SERVER_PATH.sub("<path>", f"{type(exc).__name__}: {exc}")[:2000]


def run(job_id: str, settings: Settings | None = None) -> None:
    """Claim the job and run it to a final status. A job someone else holds is left alone.
    (In a process that imported this module, torch is loaded already: the entry points,
    worker/run.py and worker/tasks.py, claim before they import it.)"""
    settings = settings or get_settings()
    claimed = claim_job(job_id, settings)
    if claimed is not None:
        job, owner = claimed
        with holding(job, owner, settings) as control:
            run_claimed(job, control, settings)


def run_claimed(job: Job, control: JobControl, settings: Settings) -> None:
    """Run a job this worker has claimed, and holds through `control`, to a final status."""
    if settings.simulated_training:
        from worker.simulated import run_simulated

        try:
            run_simulated(job, control, settings)
        except LeaseLost:
            log.warning("lost the lease on %s; another worker has it", job.id)
        return
    set_worker_threads(settings)
    tune_allocator(settings)
    pipeline = Pipeline(settings, job, control)
    try:
        _run_to_final_status(pipeline, control)
    except LeaseLost:
        # While running, or while writing the final events and status: the job belongs to
        # the worker that took it over, which writes them.
        log.warning("lost the lease on %s; another worker has it", job.id)


def _run_to_final_status(pipeline: Pipeline, control: JobControl) -> None:
    job_id, job = pipeline.job_id, pipeline.job
    try:
        result = pipeline.run()
    except LeaseLost:
        raise
    except JobCancelled:
        control.finish(JobStatus.CANCELLED, progress=job.progress.snapshot())
    except JobPaused:
        # Checkpointed where it stopped; free this worker. A cancel that came meanwhile
        # (the job is cancelling now, not pausing) ends it instead.
        if not control.paused(job.progress.snapshot()):
            control.finish(JobStatus.CANCELLED, progress=job.progress.snapshot())
    except SpecError as exc:
        error = {"code": "invalid_spec", "message": exc.message, "param": exc.param}
        control.finish(JobStatus.FAILED, error={**error, "stage": job.stage})
    except Exception as exc:
        if is_infrastructure_error(exc):
            if _requeue(control, job.stage, exc) in JobStatus.FINISHED:
                # Its last attempt (or cancelled meanwhile): nothing resumes from them now.
                pipeline.clear_remote_work()
            return
        # The traceback and the server's paths go to the log; the user sees what failed.
        log.exception("job %s failed in %s", job_id, job.stage)
        message = public_message(exc)
        control.event("error", message, {"stage": job.stage})
        error = {"code": "stage_failed", "message": message}
        control.finish(JobStatus.FAILED, error={**error, "stage": job.stage})
    else:
        # Peak resident memory of this worker process (what a memory budget has to hold).
        peak_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        control.event("info", f"worker peak memory {peak_mib} MiB", {"peak_rss_mib": peak_mib})
        control.finish(JobStatus.SUCCEEDED, result=result, progress=job.progress.snapshot(True))


def _requeue(control: JobControl, stage: str, exc: BaseException) -> str | None:
    """Not the job's fault: another attempt (after the database or disk recovers, or on
    another worker) resumes it from its checkpoints; the last attempt fails it. Returns the
    job's new status (None when it could not be written)."""
    log.warning("job %s hit an infrastructure error in %s", control.job_id, stage, exc_info=exc)
    reason = f"{infrastructure_message(exc)} in stage {stage}"
    try:
        status = control.requeue(reason)
    except Exception:
        # Still unreachable: the lease expires and the reaper requeues the job (or fails it
        # after its last attempt), so it is not lost either way.
        log.exception("could not requeue %s; its lease will expire", control.job_id)
        return None
    log.info("job %s %s: %s", control.job_id, status, reason)
    return status
