"""What every side of the job service shares: the statuses that hold a worker, reading a
job row by its id alone, whichever tenant it belongs to (`unscoped_job`), and the `status`
event every status change writes (`status_event`).

The API's commands take a tenant (app/jobs/service.py); `unscoped_job` is for those that act
on any tenant's job: the worker after its claim, the embedded runner, maintenance, tests.
"""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs.errors import JobNotFound
from app.models import Job, JobEvent, JobStatus

# A tenant's jobs in these hold a worker and count against its running-job limit.
RUNNING_STATUSES = (JobStatus.RUNNING, JobStatus.CANCELLING, JobStatus.PAUSING)


def unscoped_job(session: Session, job_id: str) -> Job:
    """The job, whichever tenant's it is (JobNotFound when there is none). Not for the API's
    requests: those read it with service.get_job, scoped to the caller's tenant."""
    if "\x00" in job_id:  # no id has one, and PostgreSQL refuses to compare with it
        raise JobNotFound(job_id)
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def status_event(
    session: Session,
    job_id: str,
    message: str,
    data: dict[str, Any] | None = None,
    *,
    new: Job | None = None,
) -> JobEvent:
    """The `status` event of the change this transaction just made to the job: `message`,
    and `data` with, under "job", the job as it is now (its status value, stage, error,
    result's compression and finished_at: what its webhook delivers for this event, however
    late). The job's row is read after the UPDATE, which holds it until the commit; a job
    being created is described from its `new` row, not yet written."""
    if new is not None:
        status, stage, error, result, finished_at = (
            new.status,
            new.stage,
            new.error,
            new.result,
            new.finished_at,
        )
    else:
        status, stage, error, result, finished_at = session.execute(
            select(Job.status, Job.stage, Job.error, Job.result, Job.finished_at).where(
                Job.id == job_id
            )
        ).one()
    snapshot = {
        "status": status,
        "stage": stage,
        "error": error,
        "compression": (result or {}).get("compression"),
        "finished_at": finished_at.isoformat() + "Z" if finished_at else None,
    }
    return JobEvent(
        job_id=job_id, kind="status", message=message, data={**(data or {}), "job": snapshot}
    )
