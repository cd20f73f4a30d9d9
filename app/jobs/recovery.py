"""The reaper: jobs whose worker stopped renewing its lease (it died, or lost its node) are
requeued, or failed past their last attempt, as lease.lease_ended decides (`worker_lost`)."""

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from app.db import rows_changed, utc_now_plus
from app.jobs.lease import lease_ended
from app.jobs.rows import RUNNING_STATUSES, status_event
from app.models import Job, JobStatus, utcnow


def reap_expired(
    session: Session, *, max_attempts: int, ended: list[str] | None = None
) -> list[str]:
    """Requeue jobs whose worker stopped renewing its lease; fail those out of attempts (and
    cancel those asked to cancel).

    Returns the ids put back in the queue (the caller dispatches them again); the ids of the
    jobs it ended (failed or cancelled) are added to `ended` (the caller removes their work
    files from a remote store, as a worker ending a job does).
    """
    now = utcnow()
    expired = session.execute(
        select(Job.id, Job.status, Job.attempt).where(
            Job.status.in_(RUNNING_STATUSES),
            Job.lease_expires_at < utc_now_plus(0),
        )
    ).all()
    requeued = []
    for job_id, status, attempt in expired:
        still_expired = and_(
            Job.id == job_id, Job.status == status, Job.lease_expires_at < utc_now_plus(0)
        )
        values, message, _ = lease_ended(
            status,
            attempt,
            max_attempts,
            code="worker_lost",
            reason="worker stopped",
            gave_up=f"the worker stopped responding {attempt} times; giving up",
            again="queued again: the worker stopped renewing its lease",
            now=now,
        )
        if rows_changed(session.execute(update(Job).where(still_expired).values(**values))):
            # The event carries no error data of its own (its "job" has the job's error).
            session.add(status_event(session, job_id, message))
            if values["status"] == JobStatus.QUEUED:
                requeued.append(job_id)
            elif values["status"] in JobStatus.FINISHED and ended is not None:
                ended.append(job_id)
    session.commit()
    return requeued
