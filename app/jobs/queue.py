"""Dispatch bookkeeping: which queued jobs to send (or send again) and when a job was sent,
and the tenant's running-job count and claim lock that keep a tenant within its limit."""

from datetime import datetime, timedelta

from sqlalchemy import Integer, ScalarSelect, and_, func, literal, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, aliased

from app.db import lock_sqlite_tenant, rows_changed
from app.jobs.rows import RUNNING_STATUSES
from app.models import Job, JobStatus, utcnow

# First key of the PostgreSQL advisory lock a claim takes on its tenant (the second is the
# tenant's hash), so it cannot collide with advisory locks taken for anything else.
TENANT_LOCK_SPACE = 0x6A6F62  # "job"


def sending(session: Session, job_id: str) -> tuple[datetime | None, str]:
    """What sending the job takes, in one read: its version (updated_at, passed to
    mark_dispatched) and the device kind it asks for (`resources.device`; "any" for jobs from
    before it), which picks its queue."""
    row = session.execute(select(Job.updated_at, Job.spec).where(Job.id == job_id)).first()
    if row is None:
        return None, "any"
    version, spec = row
    return version, str(((spec or {}).get("resources") or {}).get("device", "any"))


def mark_dispatched(session: Session, job_id: str, *, version: datetime | None = None) -> bool:
    """Record that the job was sent. With `version` (read by `sending`), only
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
        query = query.where(tenant_running() < max_running)
    return session.scalar(query.order_by(Job.created_at, Job.id).limit(1))


def tenant_running() -> ScalarSelect[int]:
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
    """Hold the tenant's lock until this transaction ends, so two processes that count what
    the tenant has and then add to it take turns: two workers claiming jobs of one tenant count
    each other's running jobs (under READ COMMITTED each would otherwise count before the other
    commits), two uploads count each other's bytes. PostgreSQL: an advisory lock; a SQLite
    file: a file lock beside it (app.db.lock_sqlite_tenant). Take it before the transaction's
    first write."""
    if session.get_bind().dialect.name == "postgresql":
        key = sql_cast(literal(TENANT_LOCK_SPACE), Integer)
        session.execute(select(func.pg_advisory_xact_lock(key, func.hashtext(tenant))))
    else:
        lock_sqlite_tenant(session, tenant)
