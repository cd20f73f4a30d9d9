"""The job service: create (idempotent), list, cancel, claim, lease, transitions, reaping.

Both the API and the workers change job rows only through these functions, so every status
change is a conditional UPDATE and leaves a `job_event` row behind.
"""

import hashlib
import json
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    ScalarSelect,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from app import catalog
from app.catalog import SpecError
from app.db import newest_first_page, rows_changed, utc_now_plus
from app.files.usage import check_job_files
from app.models import (
    DEFAULT_TENANT,
    Artifact,
    Job,
    JobEvent,
    JobFile,
    JobStatus,
    JobWebhook,
    Metric,
    utcnow,
)
from app.schemas import JobCreate
from app.tasks import check_task

# A tenant's jobs in these hold a worker and count against its running-job limit.
RUNNING_STATUSES = (JobStatus.RUNNING, JobStatus.CANCELLING, JobStatus.PAUSING)


class JobNotFound(LookupError):
    pass


class JobConflict(RuntimeError):
    """The request cannot be applied to the job in its current state."""


class LeaseLost(RuntimeError):
    """The worker no longer holds the job (it was presumed dead and the job requeued)."""


class IdempotencyConflict(RuntimeError):
    """The Idempotency-Key was already used with a different request body."""


class QuotaExceeded(RuntimeError):
    """The tenant is at one of its job limits (answered 429 with Retry-After)."""

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def lease_owner(pid: int | None = None) -> str:
    """How a worker process names itself in `job.lease_owner`."""
    return f"{socket.gethostname()}:{pid if pid is not None else os.getpid()}"


# --- spec -------------------------------------------------------------------------------------


def resolve_spec(body: JobCreate) -> dict[str, Any]:
    """Check every name against the catalog and return the spec with all defaults filled in."""
    spec = body.model_dump(mode="json")
    # The webhook's secret is not part of the spec (which the API shows): only its URL.
    webhook = spec.pop("webhook")
    if webhook is not None:
        spec["webhook"] = {"url": webhook["url"]}
    dataset = spec["dataset"]
    dataset["options"] = catalog.resolve_params(
        catalog.DATASETS, catalog.dataset_kind(dataset["name"]), dataset["options"], "dataset"
    )
    if dataset["transfer"] is not None:
        transfer = dataset["transfer"]
        transfer["options"] = catalog.resolve_params(
            catalog.DATASETS,
            catalog.dataset_kind(transfer["name"]),
            transfer["options"],
            "dataset.transfer",
        )
        if (transfer["name"], transfer["options"]) == (dataset["name"], dataset["options"]):
            raise SpecError(
                "dataset.transfer",
                "the transfer set is the dataset itself (it would hold the test examples); "
                "name another set or change its options, e.g. its seed",
            )
    for role in ("teacher", "student"):
        if "arch" in spec[role]:
            spec[role]["params"] = catalog.resolve_params(
                catalog.MODELS, spec[role]["arch"], spec[role]["params"], role
            )
    if spec["teacher"]["source"] in ("onnx", "logits", "hf") and spec["distill"]["soft_labels"] == (
        "online"
    ):
        raise SpecError(
            "distill.soft_labels",
            f"a teacher from {spec['teacher']['source']!r} has no PyTorch model to run online; "
            "use soft_labels 'auto' or 'stored'",
        )
    if spec["teacher"]["source"] in ("onnx", "logits", "hf") and dataset["augment"] is not None:
        raise SpecError(
            "dataset.augment",
            f"a teacher from {spec['teacher']['source']!r} cannot label new views of the "
            "examples; augmentation needs a zoo model teacher ('train' or 'weights')",
        )
    distill = spec["distill"]
    distill["method_params"] = catalog.resolve_params(
        catalog.METHODS, distill["method"], distill["method_params"], "distill"
    )
    check_task(spec)
    catalog.resolve_layer_pairs(spec)
    spec["export"] = sorted(set(spec["export"]), key=catalog.EXPORT_FORMATS.index)
    return spec


def request_hash(body: JobCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- API side ---------------------------------------------------------------------------------


def create_job(
    session: Session,
    body: JobCreate,
    idempotency_key: str | None = None,
    tenant: str = DEFAULT_TENANT,
    *,
    max_running: int | None = None,
    max_queued: int | None = None,
) -> tuple[Job, bool]:
    """Create a queued job. Returns (job, created); created is False for an idempotent replay.

    Idempotency keys are per tenant. A replay is answered before the tenant's limits are
    checked (QuotaExceeded when it already has `max_running` running or cancelling jobs, or
    `max_queued` queued ones; None: no limit). The check is not a lock: requests racing each
    other can overshoot a limit by their number."""
    digest = request_hash(body)
    if idempotency_key is not None:
        existing = _by_idempotency_key(session, tenant, idempotency_key, digest)
        if existing is not None:
            return existing, False
    check_quota(session, tenant, max_running=max_running, max_queued=max_queued)
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
    session.add(JobEvent(job_id=job.id, kind="status", message="queued"))
    if body.webhook is not None:
        session.add(JobWebhook(job_id=job.id, url=body.webhook.url, secret=body.webhook.secret))
    try:
        session.commit()
    except IntegrityError:
        # Another request with the same key won the race: answer with its job.
        session.rollback()
        assert idempotency_key is not None
        existing = _by_idempotency_key(session, tenant, idempotency_key, digest)
        if existing is None:
            raise
        return existing, False
    return job, True


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


def get_job(session: Session, job_id: str, tenant: str | None = None) -> Job:
    """The job; with `tenant`, only that tenant's (another tenant's job is JobNotFound, exactly
    like a missing one). Workers pass no tenant."""
    if "\x00" in job_id:  # no id has one, and PostgreSQL refuses to compare with it
        raise JobNotFound(job_id)
    job = session.get(Job, job_id)
    if job is None or (tenant is not None and job.tenant != tenant):
        raise JobNotFound(job_id)
    return job


def list_jobs(
    session: Session,
    *,
    status: str | None,
    limit: int,
    after: str | None,
    tenant: str | None = None,
) -> tuple[list[Job], bool]:
    """Newest first; `after` is the id of the last job of the previous page (the tenant's own
    job when `tenant` is given)."""
    query = select(Job)
    if tenant is not None:
        query = query.where(Job.tenant == tenant)
    if status is not None:
        query = query.where(Job.status == status)
    cursor = get_job(session, after, tenant) if after is not None else None
    return newest_first_page(session, query, Job, cursor, limit)


def cancel_job(session: Session, job_id: str, tenant: str | None = None) -> Job:
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
        changed = rows_changed(
            session.execute(
                update(Job).where(Job.id == job_id, Job.status == job.status).values(**target)
            )
        )
        if changed:
            session.add(JobEvent(job_id=job_id, kind="status", message=target["status"]))
            session.commit()
            session.refresh(job)
            return job
        session.rollback()


def delete_job(
    session: Session,
    job_id: str,
    tenant: str | None = None,
    *,
    remove_files: Callable[[Job], None] | None = None,
) -> Job:
    """Delete a finished job's rows: the job, its events, metrics, artifacts and file links.
    JobConflict while it is not finished.

    `remove_files(job)` runs first (its stored artifacts and work files): should it fail, the
    rows stay, and deleting again finishes the job off; nothing is left that no row points to.
    The job's Idempotency-Key goes with it: the same key then creates a new job."""
    job = get_job(session, job_id, tenant)
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
    for table in (JobEvent, Metric, Artifact, JobFile, JobWebhook):
        session.execute(delete(table).where(table.job_id == job_id))
    session.execute(delete(Job).where(Job.id == job_id, Job.status.in_(JobStatus.FINISHED)))
    session.commit()
    return job


def _transition(
    session: Session, job_id: str, tenant: str | None, targets: dict[str, str], verb: str
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
        changed = rows_changed(
            session.execute(
                update(Job).where(Job.id == job_id, Job.status == job.status).values(**values)
            )
        )
        if changed:
            session.add(JobEvent(job_id=job_id, kind="status", message=target))
            session.commit()
            session.refresh(job)
            return job
        session.rollback()


def pause_job(session: Session, job_id: str, tenant: str | None = None) -> Job:
    """A queued job is paused at once; a running one becomes pausing, and its worker
    checkpoints, frees itself and marks it paused (mark_paused). Idempotent."""
    targets = {JobStatus.QUEUED: JobStatus.PAUSED, JobStatus.RUNNING: JobStatus.PAUSING}
    return _transition(session, job_id, tenant, targets, "pause")


def resume_job(session: Session, job_id: str, tenant: str | None = None) -> Job:
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


# --- dispatch ---------------------------------------------------------------------------------


def job_version(session: Session, job_id: str) -> datetime | None:
    """The job's updated_at: read before sending a job, passed to mark_dispatched."""
    return session.scalar(select(Job.updated_at).where(Job.id == job_id))


def mark_dispatched(session: Session, job_id: str, *, version: datetime | None = None) -> bool:
    """Record that the job was sent. With `version` (job_version read before sending), only
    if the job did not change meanwhile: a worker that got the message at once may already
    have put the job back to wait for a tenant slot (wait_for_tenant_slot), and marking it
    sent again would leave it waiting with no message on its way."""
    condition = Job.id == job_id
    if version is not None:
        condition = and_(condition, Job.updated_at == version)
    marked = rows_changed(
        session.execute(update(Job).where(condition).values(dispatched_at=utcnow()))
    )
    session.commit()
    return bool(marked)


def undispatched_job_ids(
    session: Session, *, idle_seconds: float = 0.0, max_running: int | None = None
) -> list[str]:
    """Queued jobs no dispatcher has sent, untouched for `idle_seconds` (a job created a
    moment ago is being sent by the request that created it), oldest first.

    With `max_running`, only as many of a tenant's jobs as it has free running slots: the
    others would only be put back to wait by the worker that got them."""
    cutoff = utcnow() - timedelta(seconds=idle_seconds)
    rows = session.execute(
        select(Job.id, Job.tenant)
        .where(
            Job.status == JobStatus.QUEUED, Job.dispatched_at.is_(None), Job.updated_at <= cutoff
        )
        .order_by(Job.created_at, Job.id)
    ).all()
    if max_running is None:
        return [job_id for job_id, _ in rows]
    tenants = {tenant for _, tenant in rows}
    running: dict[str, int] = dict(
        session.execute(
            select(Job.tenant, func.count())
            .where(Job.tenant.in_(tenants), Job.status.in_(RUNNING_STATUSES))
            .group_by(Job.tenant)
        ).all()
    )
    free = {tenant: max_running - running.get(tenant, 0) for tenant in tenants}
    chosen = []
    for job_id, tenant in rows:
        if free[tenant] > 0:
            chosen.append(job_id)
            free[tenant] -= 1
    return chosen


def unclaimed_job_ids(session: Session, *, sent_seconds_ago: float) -> list[str]:
    """Queued jobs sent to the broker at least `sent_seconds_ago` ago and not claimed since,
    oldest first (their message may be lost)."""
    cutoff = utcnow() - timedelta(seconds=sent_seconds_ago)
    return list(
        session.scalars(
            select(Job.id)
            .where(
                Job.status == JobStatus.QUEUED,
                Job.dispatched_at.is_not(None),
                Job.dispatched_at <= cutoff,
            )
            .order_by(Job.created_at, Job.id)
        )
    )


def oldest_queued_job_id(session: Session, *, max_running: int | None = None) -> str | None:
    """The oldest queued job; with `max_running`, the oldest whose tenant has a free running
    slot (so one tenant at its limit does not hold up the others)."""
    query = select(Job.id).where(Job.status == JobStatus.QUEUED)
    if max_running is not None:
        query = query.where(_tenant_running() < max_running)
    return session.scalar(query.order_by(Job.created_at, Job.id).limit(1))


# --- worker side: claim, lease, progress, finish ----------------------------------------------


# First key of the PostgreSQL advisory lock a claim takes on its tenant (the second is the
# tenant's hash), so it cannot collide with advisory locks taken for anything else.
TENANT_LOCK_SPACE = 0x6A6F62  # "job"

WAITING_FOR_TENANT_SLOT = "waiting: tenant at its running-job limit"


def _tenant_running() -> ScalarSelect[int]:
    """How many other jobs of the job's tenant are running or cancelling (correlated to the
    `job` row of the enclosing statement)."""
    other = aliased(Job)
    return (
        select(func.count())
        .select_from(other)
        .where(
            other.tenant == Job.tenant,
            other.status.in_(RUNNING_STATUSES),
            other.id != Job.id,
        )
        .scalar_subquery()
    )


def lock_tenant(session: Session, tenant: str) -> None:
    """On PostgreSQL, hold the tenant's claim lock until this transaction ends, so two workers
    claiming jobs of one tenant at once count each other's running jobs (under READ COMMITTED
    each would otherwise count before the other commits). SQLite serialises writers itself."""
    if session.get_bind().dialect.name == "postgresql":
        key = sql_cast(literal(TENANT_LOCK_SPACE), Integer)
        session.execute(select(func.pg_advisory_xact_lock(key, func.hashtext(tenant))))


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
        claimable = and_(claimable, _tenant_running() < max_running)
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
    job = get_job(session, job_id)
    session.add(
        JobEvent(
            job_id=job_id,
            kind="status",
            message=f"running (attempt {job.attempt})",
            data={"attempt": job.attempt, "worker": owner},
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
    """Extend the lease; returns the job's status, or None when this worker no longer owns it."""
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
    _hold(session, job_id, owner, stage=stage, progress=progress)
    session.add(JobEvent(job_id=job_id, kind="stage", message=stage, data={"stage": stage}))
    session.commit()


def set_progress(session: Session, job_id: str, owner: str, progress: dict) -> None:
    """Progress within a stage that has no epochs (e.g. the teacher writing text)."""
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
    """Store one epoch's metrics (replacing a row a resumed attempt wrote before) and progress."""
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
        session.add(JobEvent(job_id=job_id, kind="status", message=message, data=error))
    session.commit()
    return bool(done)


def requeue(
    session: Session, job_id: str, owner: str, *, reason: str, max_attempts: int
) -> str | None:
    """Give an owned job back to the queue after an infrastructure error (the job's next
    attempt resumes from its checkpoints), or fail it when that was its last attempt; a job
    asked to cancel meanwhile is cancelled. Returns the job's new status; None when the
    lease was lost. Conditional on the status read, like cancel_job, so a cancel is never lost."""
    while True:
        status, attempt = session.execute(
            select(Job.status, Job.attempt).where(_held_by(job_id, owner))
        ).one_or_none() or (None, 0)
        if status is None:
            session.rollback()
            return None
        now = utcnow()
        released: dict[str, Any] = {
            "lease_owner": None,
            "lease_expires_at": None,
            "updated_at": now,
        }
        error = None
        if status == JobStatus.CANCELLING:  # the user asked it to stop: it need not run again
            values = {"status": JobStatus.CANCELLED, "finished_at": now, **released}
            message = f"cancelled ({reason})"
        elif status == JobStatus.PAUSING:  # it waits for resume, from its last checkpoint
            values = {"status": JobStatus.PAUSED, **released}
            message = f"paused ({reason})"
        elif attempt >= max_attempts:
            error = {
                "code": "infrastructure_error",
                "message": f"{reason} (attempt {attempt} of {max_attempts}); giving up",
            }
            values = {"status": JobStatus.FAILED, "finished_at": now, "error": error, **released}
            message = f"failed: {error['message']}"
        else:
            values = {"status": JobStatus.QUEUED, "dispatched_at": None, **released}
            message = f"queued again: {reason} (attempt {attempt} of {max_attempts})"
        unchanged = and_(_held_by(job_id, owner), Job.status == status)
        if rows_changed(session.execute(update(Job).where(unchanged).values(**values))):
            session.add(JobEvent(job_id=job_id, kind="status", message=message, data=error))
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
        session.add(JobEvent(job_id=job_id, kind="status", message=JobStatus.PAUSED))
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
        session.add(JobEvent(job_id=job_id, kind="status", message="failed", data=error))
    session.commit()
    return bool(done)


def reap_expired(session: Session, *, max_attempts: int) -> list[str]:
    """Requeue jobs whose worker stopped renewing its lease; fail those out of attempts.

    Returns the ids put back in the queue (the caller dispatches them again).
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
        lost: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
        if status == JobStatus.CANCELLING:
            values = {"status": JobStatus.CANCELLED, "finished_at": now, **lost}
            message = "cancelled (worker stopped)"
        elif status == JobStatus.PAUSING:  # resumes from its last checkpoint
            values = {"status": JobStatus.PAUSED, **lost}
            message = "paused (worker stopped)"
        elif attempt >= max_attempts:
            error = {
                "code": "worker_lost",
                "message": f"the worker stopped responding {attempt} times; giving up",
            }
            values = {"status": JobStatus.FAILED, "finished_at": now, "error": error, **lost}
            message = f"failed: {error['message']}"
        else:
            values = {"status": JobStatus.QUEUED, "dispatched_at": None, **lost}
            message = "queued again: the worker stopped renewing its lease"
        if rows_changed(session.execute(update(Job).where(still_expired).values(**values))):
            session.add(JobEvent(job_id=job_id, kind="status", message=message))
            if values["status"] == JobStatus.QUEUED:
                requeued.append(job_id)
    session.commit()
    return requeued
