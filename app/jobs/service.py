"""The API's commands on jobs: create (idempotent, within the tenant's limits), read, list,
cancel, pause, resume, delete, and a job's events, metrics and artifacts.

Every command takes the caller's tenant (required): another tenant's job answers JobNotFound,
like a missing one. What acts on any tenant's job says so in its name (`unscoped_job`,
`delete_unscoped_job`). Each status change is a conditional UPDATE and leaves a `job_event`.
"""

import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import newest_first_page, rows_changed
from app.files.usage import check_job_files
from app.jobs.errors import IdempotencyConflict, JobConflict, JobNotFound, QuotaExceeded
from app.jobs.rows import RUNNING_STATUSES, status_event, unscoped_job
from app.jobs.spec import request_hash, resolve_spec
from app.models import (
    Artifact,
    DeletedJob,
    Job,
    JobEvent,
    JobFile,
    JobStatus,
    JobWebhook,
    LabelShard,
    Metric,
    utcnow,
)
from distillery.types import JobCreate

# A request whose key is taken and freed again this many times in a row gives up (409).
CREATE_TRIES = 3


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def create_job(
    session: Session,
    body: JobCreate,
    idempotency_key: str | None = None,
    *,
    tenant: str,
    max_running: int | None = None,
    max_queued: int | None = None,
) -> tuple[Job, bool]:
    """Create a queued job. Returns (job, created); created is False for an idempotent replay.

    Idempotency keys are per tenant. A replay is answered before the tenant's limits are
    checked (QuotaExceeded when it already has `max_running` running or cancelling jobs, or
    `max_queued` queued ones; None: no limit). The check is not a lock: requests racing each
    other can overshoot a limit by their number.

    A request racing another with the same key replays the job that won; should that job be
    deleted before it is read (a DELETE in between), the key is free again and this request
    creates its job after all, as a request after the DELETE would."""
    digest = request_hash(body)
    for _ in range(CREATE_TRIES):
        if idempotency_key is not None:
            existing = _by_idempotency_key(session, tenant, idempotency_key, digest)
            if existing is not None:
                return existing, False
        check_quota(session, tenant, max_running=max_running, max_queued=max_queued)
        job = _new_job(session, body, digest, idempotency_key, tenant)
        try:
            session.commit()
        except IntegrityError:
            # Another request with the same key won the race: the next turn answers with its
            # job, or creates this one if that job was deleted meanwhile.
            session.rollback()
            if idempotency_key is None:
                raise
            continue
        return job, True
    raise IdempotencyConflict(
        "this Idempotency-Key's job was created and deleted by other requests while this one "
        "ran; retry"
    )


def _new_job(
    session: Session, body: JobCreate, digest: str, idempotency_key: str | None, tenant: str
) -> Job:
    """Add a queued job's rows to the session (the caller commits)."""
    spec = resolve_spec(body)
    used_files = check_job_files(session, tenant, spec)
    job = Job(
        id=new_job_id(),
        tenant=tenant,
        name=body.name,
        status=JobStatus.QUEUED,
        spec=spec,
        metadata_=body.metadata,
        idempotency_key=idempotency_key,
        request_hash=digest,
        progress={"stage": None, "fraction": 0.0},
    )
    session.add(job)
    session.add_all(JobFile(job_id=job.id, file_id=f, role=role) for f, role in used_files)
    session.add(status_event(session, job.id, "queued", new=job))
    if body.webhook is not None:
        session.add(JobWebhook(job_id=job.id, url=body.webhook.url, secret=body.webhook.secret))
    return job


def check_quota(
    session: Session, tenant: str, *, max_running: int | None, max_queued: int | None
) -> None:
    """Raise QuotaExceeded when the tenant is at its running or queued job limit."""
    counts: dict[str, int] = dict(
        session.execute(
            select(Job.status, func.count())
            .where(
                Job.tenant == tenant,
                Job.status.in_([JobStatus.QUEUED, *RUNNING_STATUSES]),
            )
            .group_by(Job.status)
        ).all()
    )
    running = sum(counts.get(status, 0) for status in RUNNING_STATUSES)
    if max_running is not None and running >= max_running:
        raise QuotaExceeded(
            f"tenant {tenant!r} has {running} running jobs (limit {max_running}); "
            "retry when one finishes"
        )
    queued = counts.get(JobStatus.QUEUED, 0)
    if max_queued is not None and queued >= max_queued:
        raise QuotaExceeded(
            f"tenant {tenant!r} has {queued} queued jobs (limit {max_queued}); "
            "retry when the queue drains"
        )


def _by_idempotency_key(session: Session, tenant: str, key: str, digest: str) -> Job | None:
    job = session.scalar(select(Job).where(Job.tenant == tenant, Job.idempotency_key == key))
    if job is not None and job.request_hash != digest:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different request body"
        )
    return job


def get_job(session: Session, job_id: str, tenant: str) -> Job:
    """The tenant's job (another tenant's job is JobNotFound, exactly like a missing one).
    Workers, the runner and maintenance, acting on any tenant's job, use unscoped_job."""
    job = unscoped_job(session, job_id)
    if job.tenant != tenant:
        raise JobNotFound(job_id)
    return job


def list_jobs(
    session: Session,
    *,
    status: str | None,
    limit: int,
    after: str | None,
    tenant: str,
) -> tuple[list[Job], bool]:
    """The tenant's jobs, newest first; `after` is the id of the last job of the previous page
    (the tenant's own job)."""
    query = select(Job).where(Job.tenant == tenant)
    if status is not None:
        query = query.where(Job.status == status)
    cursor = get_job(session, after, tenant) if after is not None else None
    return newest_first_page(session, query, Job, cursor, limit)


def cancel_job(session: Session, job_id: str, tenant: str) -> Job:
    """Cooperative cancel: a queued or paused job is cancelled at once, a running (or pausing)
    one becomes cancelling.

    Each change is conditional on the status just read; if a worker claimed the job (or the
    reaper requeued it) in between, read again and retry, so a cancel is never dropped."""
    while True:
        job = get_job(session, job_id, tenant)
        session.refresh(job)
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            raise JobConflict(f"job {job_id} already {job.status}")
        if job.status in (JobStatus.CANCELLING, JobStatus.CANCELLED):
            return job
        now = utcnow()
        if job.status in (JobStatus.QUEUED, JobStatus.PAUSED):  # no worker holds it
            target = {"status": JobStatus.CANCELLED, "finished_at": now, "updated_at": now}
        else:
            target = {"status": JobStatus.CANCELLING, "updated_at": now}
        if _change_status(session, job, target):
            return job


def _change_status(session: Session, job: Job, values: dict[str, Any]) -> bool:
    """Set `values` (a new "status" among them) on `job` if its status is still the one read,
    with the status event in the same transaction; False when another writer changed it first
    (the caller reads the job again and decides anew)."""
    changed = rows_changed(
        session.execute(
            update(Job).where(Job.id == job.id, Job.status == job.status).values(**values)
        )
    )
    if not changed:
        session.rollback()
        return False
    session.add(status_event(session, job.id, values["status"]))
    session.commit()
    session.refresh(job)
    return True


def delete_job(
    session: Session,
    job_id: str,
    tenant: str,
    *,
    remove_files: Callable[[Job], None] | None = None,
) -> Job:
    """Delete a finished job's rows: the job, its events, metrics, artifacts and file links.
    JobConflict while it is not finished.

    `remove_files(job)` runs first (its stored artifacts and work files): should it fail, the
    rows stay, and deleting again finishes the job off; nothing is left that no row points to.
    The job's Idempotency-Key goes with it: the same key then creates a new job."""
    return _delete_finished(session, get_job(session, job_id, tenant), remove_files)


def delete_unscoped_job(
    session: Session, job_id: str, *, remove_files: Callable[[Job], None] | None = None
) -> Job:
    """delete_job for any tenant's job (retention: app.housekeeping deletes expired jobs)."""
    return _delete_finished(session, unscoped_job(session, job_id), remove_files)


def _delete_finished(session: Session, job: Job, remove_files: Callable[[Job], None] | None) -> Job:
    job_id = job.id
    session.refresh(job)
    if job.status not in JobStatus.FINISHED:
        advice = (
            "wait until it is cancelled"
            if job.status == JobStatus.CANCELLING
            else f"cancel it first (POST /v1/jobs/{job_id}/cancel)"
        )
        raise JobConflict(f"job {job_id} is {job.status}: {advice}, then delete it")
    if remove_files is not None:
        remove_files(job)
    for table in (JobEvent, Metric, Artifact, JobFile, JobWebhook, LabelShard):
        session.execute(delete(table).where(table.job_id == job_id))
    gone = delete(Job).where(Job.id == job_id, Job.status.in_(JobStatus.FINISHED))
    if rows_changed(session.execute(gone)):  # not a second DELETE racing this one
        # Remembered for gc: a worker that had lost the job may still write under its prefix.
        session.add(DeletedJob(id=job_id))
    session.commit()
    return job


def _transition(
    session: Session, job_id: str, tenant: str, targets: dict[str, str], verb: str
) -> Job:
    """Move the job from the status it has to `targets[status]` with a conditional UPDATE
    (retried when a worker or the reaper changed it in between, like cancel_job). A job
    already in a target status is answered as it is; any other status is a JobConflict."""
    while True:
        job = get_job(session, job_id, tenant)
        session.refresh(job)
        if job.status in targets.values():
            return job
        target = targets.get(job.status)
        if target is None:
            raise JobConflict(f"job {job_id} is {job.status}: it cannot be {verb}d")
        values: dict[str, Any] = {"status": target, "updated_at": utcnow()}
        if target == JobStatus.QUEUED:
            values["dispatched_at"] = None
        if _change_status(session, job, values):
            return job


def pause_job(session: Session, job_id: str, tenant: str) -> Job:
    """A queued job is paused at once; a running one becomes pausing, and its worker
    checkpoints, frees itself and marks it paused (mark_paused). Idempotent."""
    targets = {JobStatus.QUEUED: JobStatus.PAUSED, JobStatus.RUNNING: JobStatus.PAUSING}
    return _transition(session, job_id, tenant, targets, "pause")


def resume_job(session: Session, job_id: str, tenant: str) -> Job:
    """A paused job goes back to the queue (the caller dispatches it) and continues from its
    last checkpoint. Idempotent for a job already queued or running; 409 while it is still
    pausing (resume once it is paused) or when it has finished."""
    job = get_job(session, job_id, tenant)
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        return job
    return _transition(session, job_id, tenant, {JobStatus.PAUSED: JobStatus.QUEUED}, "resume")


def list_events(session: Session, job_id: str, after: int | None, limit: int) -> list[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id)
    if after is not None:
        query = query.where(JobEvent.id > after)
    return list(session.scalars(query.order_by(JobEvent.id).limit(limit)))


def list_metrics(session: Session, job_id: str) -> list[Metric]:
    query = select(Metric).where(Metric.job_id == job_id).order_by(Metric.id)
    return list(session.scalars(query))


def list_artifacts(session: Session, job_id: str) -> list[Artifact]:
    query = select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.id)
    return list(session.scalars(query))


def get_artifact(session: Session, job_id: str, name: str) -> Artifact | None:
    return session.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))
