"""The worker's side of a job: claim it, hold its lease (renew, read, release), write its
stage, progress, cost, metrics, events and artifacts while it holds it, and end the attempt:
finish, requeue, paused, or failed before any worker claimed it.

Every write is conditional on the worker still holding the job (LeaseLost otherwise), so a
worker the reaper gave up on cannot write over the job's next attempt. `lease_ended` is the
one decision of what a job becomes when its attempt ends unfinished, shared with the reaper
(app/jobs/recovery.py).
"""

import os
import socket
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from app.db import relax_commit, rows_changed, utc_now_plus
from app.jobs.errors import LeaseLost
from app.jobs.queue import lock_tenant, tenant_running
from app.jobs.rows import RUNNING_STATUSES, status_event, unscoped_job
from app.models import Artifact, Job, JobEvent, JobStatus, Metric, utcnow

WAITING_FOR_TENANT_SLOT = "waiting: tenant at its running-job limit"


def lease_owner(pid: int | None = None) -> str:
    """How a worker process names itself in `job.lease_owner`."""
    return f"{socket.gethostname()}:{pid if pid is not None else os.getpid()}"


def claim(
    session: Session,
    job_id: str,
    owner: str,
    *,
    lease_seconds: float,
    max_attempts: int,
    max_running: int | None = None,
) -> Job | None:
    """Take the job with one conditional UPDATE. None means someone else has it (or it ended):
    a duplicate delivery, so the caller does nothing; or, with `max_running`, that the job's
    tenant already has that many other jobs running or cancelling: then the job is still
    queued, and the caller puts it back to wait (wait_for_tenant_slot)."""
    now = utcnow()
    claimable = or_(
        Job.status == JobStatus.QUEUED,
        and_(
            Job.status == JobStatus.RUNNING,
            Job.lease_expires_at < utc_now_plus(0),
            Job.attempt < max_attempts,
        ),
    )
    if max_running is not None:
        tenant = session.scalar(select(Job.tenant).where(Job.id == job_id))
        if tenant is None:
            session.rollback()
            return None
        lock_tenant(session, tenant)
        claimable = and_(claimable, tenant_running() < max_running)
    claimed = rows_changed(
        session.execute(
            update(Job)
            .where(Job.id == job_id, claimable)
            .values(
                status=JobStatus.RUNNING,
                attempt=Job.attempt + 1,
                lease_owner=owner,
                lease_expires_at=utc_now_plus(lease_seconds),
                started_at=now,
                updated_at=now,
                error=None,
            )
        )
    )
    if not claimed:
        session.rollback()
        return None
    job = unscoped_job(session, job_id)
    session.add(
        status_event(
            session,
            job_id,
            f"running (attempt {job.attempt})",
            {"attempt": job.attempt, "worker": owner},
        )
    )
    session.commit()
    session.refresh(job)
    return job


def wait_for_tenant_slot(session: Session, job_id: str, limit: int) -> bool | None:
    """Put a queued job that could not be claimed (its tenant is at its running limit) back to
    wait: undispatched, so the maintenance loop sends it again once the tenant has a free slot.

    Returns None when the job is not queued (someone else has it, or it ended); else whether
    this is the start of the wait (the "waiting" event is written once, not on every retry)."""
    now = utcnow()
    waiting = rows_changed(
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(dispatched_at=None, updated_at=now)
        )
    )
    if not waiting:
        session.rollback()
        return None
    last = session.scalar(
        select(JobEvent.message)
        .where(JobEvent.job_id == job_id)
        .order_by(JobEvent.id.desc())
        .limit(1)
    )
    first = last != WAITING_FOR_TENANT_SLOT
    if first:
        session.add(
            JobEvent(
                job_id=job_id, kind="info", message=WAITING_FOR_TENANT_SLOT, data={"limit": limit}
            )
        )
    session.commit()
    return first


def renew_lease(session: Session, job_id: str, owner: str, lease_seconds: float) -> str | None:
    """Extend the lease; returns the job's status, or None when this worker no longer owns it.
    (Not flushed to disk at once: a renewal lost to a database crash is redone a third of a
    lease later.)"""
    relax_commit(session)
    renewed = rows_changed(
        session.execute(
            update(Job)
            .where(_held_by(job_id, owner))
            .values(lease_expires_at=utc_now_plus(lease_seconds))
        )
    )
    session.commit()
    if not renewed:
        return None
    return session.scalar(select(Job.status).where(Job.id == job_id))


def held_status(session: Session, job_id: str, owner: str) -> str | None:
    """The job's status while `owner` holds it; None when it no longer does (a read only)."""
    status = session.scalar(select(Job.status).where(_held_by(job_id, owner)))
    session.rollback()
    return status


def release_lease(session: Session, job_id: str, owner: str) -> None:
    """Expire a dead worker's lease now, so the reaper requeues the job on its next pass."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner)
        .values(lease_expires_at=utc_now_plus(-1))
    )
    session.commit()


def add_event(
    session: Session,
    job_id: str,
    kind: str,
    message: str,
    data: dict[str, Any] | None = None,
    *,
    owner: str | None = None,
) -> None:
    """Add an event to the job. With `owner` (a worker's event) only while that worker holds
    the job, like _hold, else LeaseLost: one INSERT ... SELECT from the job row while it is
    held. On PostgreSQL the SELECT locks that row (FOR UPDATE), so a reaper or claim changing
    it waits for this insert, or makes it insert nothing; SQLite runs the statement under its
    one writer lock."""
    if owner is None:
        session.add(JobEvent(job_id=job_id, kind=kind, message=message, data=data))
        session.commit()
        return
    columns = JobEvent.__table__.c
    held_row = (
        select(
            Job.id,
            literal(utcnow(), columns.created_at.type),
            literal(kind, columns.kind.type),
            literal(message, columns.message.type),
            literal(data, columns.data.type),
        )
        .where(_held_by(job_id, owner))
        .with_for_update()
    )
    names = ["job_id", "created_at", "kind", "message", "data"]
    # An INSERT's rowcount is kept only when asked for (SQLAlchemy reports -1 otherwise).
    added = insert(JobEvent).from_select(names, held_row).execution_options(preserve_rowcount=True)
    if not rows_changed(session.execute(added)):
        session.rollback()
        raise LeaseLost(job_id)
    session.commit()


def _held_by(job_id: str, owner: str) -> ColumnElement[bool]:
    """The job is still running (or cancelling) under `owner`'s lease."""
    return and_(
        Job.id == job_id,
        Job.lease_owner == owner,
        Job.status.in_(RUNNING_STATUSES),
    )


def _hold(session: Session, job_id: str, owner: str, **values: Any) -> None:
    """Update the job only while `owner` holds it; raise LeaseLost otherwise, so a worker the
    reaper gave up on cannot write over the job's new attempt."""
    held = _held_by(job_id, owner)
    if not rows_changed(
        session.execute(update(Job).where(held).values(updated_at=utcnow(), **values))
    ):
        session.rollback()
        raise LeaseLost(job_id)


def set_stage(session: Session, job_id: str, owner: str, stage: str, progress: dict) -> None:
    """The stage the job is in, its progress and a `stage` event (progress: relax_commit)."""
    relax_commit(session)
    _hold(session, job_id, owner, stage=stage, progress=progress)
    session.add(JobEvent(job_id=job_id, kind="stage", message=stage, data={"stage": stage}))
    session.commit()


def set_progress(session: Session, job_id: str, owner: str, progress: dict) -> None:
    """Progress within a stage that has no epochs (e.g. the teacher writing text)."""
    relax_commit(session)
    _hold(session, job_id, owner, progress=progress)
    session.commit()


def set_cost(session: Session, job_id: str, owner: str, cost: dict[str, Any]) -> None:
    """The job's estimate (after validate), then its actual figures beside it (at the end)."""
    _hold(session, job_id, owner, cost=cost)
    session.commit()


def epochs_recorded(session: Session, job_id: str) -> dict[str, int]:
    """Epochs with metrics, per stage (each epoch once, whichever attempt ran it)."""
    rows = session.execute(
        select(Metric.stage, func.count()).where(Metric.job_id == job_id).group_by(Metric.stage)
    )
    return {stage: count for stage, count in rows}


def record_epoch(
    session: Session, job_id: str, owner: str, stage: str, epoch: int, values: dict, progress: dict
) -> None:
    """Store one epoch's metrics (replacing a row a resumed attempt wrote before) and progress
    (a curve's point: relax_commit)."""
    relax_commit(session)
    _hold(session, job_id, owner, progress=progress)
    session.execute(
        delete(Metric).where(Metric.job_id == job_id, Metric.stage == stage, Metric.epoch == epoch)
    )
    session.add(Metric(job_id=job_id, stage=stage, epoch=epoch, values=values))
    session.commit()


def add_artifact(
    session: Session,
    job_id: str,
    owner: str,
    *,
    name: str,
    fmt: str,
    size: int,
    sha256: str,
    key: str,
) -> None:
    _hold(session, job_id, owner)
    session.execute(delete(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))
    session.add(
        Artifact(job_id=job_id, name=name, format=fmt, bytes=size, sha256=sha256, storage_key=key)
    )
    session.commit()


def finish(
    session: Session,
    job_id: str,
    owner: str,
    status: str,
    *,
    result: dict | None = None,
    error: dict | None = None,
    progress: dict | None = None,
) -> bool:
    """Move an owned job to a final status. False if the lease was lost meanwhile."""
    assert status in JobStatus.FINISHED
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "updated_at": now,
        "result": result,
        "error": error,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    if progress is not None:
        values["progress"] = progress
    done = rows_changed(
        session.execute(update(Job).where(_held_by(job_id, owner)).values(**values))
    )
    if done:
        message = status if error is None else f"{status}: {error.get('message', '')}"
        session.add(status_event(session, job_id, message, error))
    session.commit()
    return bool(done)


def lease_ended(
    status: str,
    attempt: int,
    max_attempts: int,
    *,
    code: str,
    reason: str,
    gave_up: str,
    again: str,
    now: datetime,
) -> tuple[dict[str, Any], str, dict[str, str] | None]:
    """What a job becomes when its attempt ends without its worker finishing it (the worker
    hit an infrastructure error: requeue; its lease expired: recovery.reap_expired), as
    (the job's new column values, its status event's message, its error or None).

    A job asked to cancel is cancelled and one asked to pause is paused ("cancelled
    (<reason>)", "paused (<reason>)"): neither need run again now. Else, after its last
    attempt (`attempt` >= `max_attempts`), it fails with error `code` and message `gave_up`;
    before that it is queued again, undispatched, with the event `again`. Its lease is
    released in every case."""
    released: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    error = None
    if status == JobStatus.CANCELLING:  # the user asked it to stop: it need not run again
        values = {"status": JobStatus.CANCELLED, "finished_at": now, **released}
        message = f"cancelled ({reason})"
    elif status == JobStatus.PAUSING:  # it waits for resume, from its last checkpoint
        values = {"status": JobStatus.PAUSED, **released}
        message = f"paused ({reason})"
    elif attempt >= max_attempts:
        error = {"code": code, "message": gave_up}
        values = {"status": JobStatus.FAILED, "finished_at": now, "error": error, **released}
        message = f"failed: {gave_up}"
    else:
        values = {"status": JobStatus.QUEUED, "dispatched_at": None, **released}
        message = again
    return values, message, error


def requeue(
    session: Session, job_id: str, owner: str, *, reason: str, max_attempts: int
) -> str | None:
    """Give an owned job back to the queue after an infrastructure error (the job's next
    attempt resumes from its checkpoints), or fail it when that was its last attempt; a job
    asked to cancel meanwhile is cancelled (lease_ended decides). Returns the job's new status;
    None when the lease was lost. Conditional on the status read, like cancel_job, so a cancel
    is never lost."""
    while True:
        status, attempt = session.execute(
            select(Job.status, Job.attempt).where(_held_by(job_id, owner))
        ).one_or_none() or (None, 0)
        if status is None:
            session.rollback()
            return None
        values, message, error = lease_ended(
            status,
            attempt,
            max_attempts,
            code="infrastructure_error",
            reason=reason,
            gave_up=f"{reason} (attempt {attempt} of {max_attempts}); giving up",
            again=f"queued again: {reason} (attempt {attempt} of {max_attempts})",
            now=utcnow(),
        )
        unchanged = and_(_held_by(job_id, owner), Job.status == status)
        if rows_changed(session.execute(update(Job).where(unchanged).values(**values))):
            session.add(status_event(session, job_id, message, error))
            session.commit()
            return str(values["status"])
        session.rollback()


def mark_paused(session: Session, job_id: str, owner: str, progress: dict) -> bool:
    """The worker stopped a pausing job at a checkpoint: paused, its worker freed. The attempt
    is given back (a pause is not a failure: resume claims the same attempt number again).
    False if the lease was lost meanwhile."""
    now = utcnow()
    paused = rows_changed(
        session.execute(
            update(Job)
            .where(_held_by(job_id, owner), Job.status == JobStatus.PAUSING)
            .values(
                status=JobStatus.PAUSED,
                attempt=Job.attempt - 1,
                progress=progress,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
    )
    if paused:
        session.add(status_event(session, job_id, JobStatus.PAUSED))
    session.commit()
    return bool(paused)


def fail_unclaimed(session: Session, job_id: str, error: dict) -> bool:
    """Fail a queued job that no worker could even start (e.g. the worker process crashed)."""
    now = utcnow()
    done = rows_changed(
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.FAILED, finished_at=now, updated_at=now, error=error)
        )
    )
    if done:
        session.add(status_event(session, job_id, "failed", error))
    session.commit()
    return bool(done)
