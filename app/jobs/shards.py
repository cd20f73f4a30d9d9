"""A job's soft labels in shards: the rows of `label_shard` that workers claim, lease, finish
and give back, like jobs (app/jobs/lease.py) but a range of teacher forwards each.

The job's own worker plans the shards when its soft_labels stage starts and labels them
itself; other workers sent a shard task (worker/label_shards.py) claim the rest. Each claim is
one conditional UPDATE, so two workers never label the same shard at once; a worker that dies
keeps its shard only until its lease expires, and a shard is done once, by its owner.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from app.db import rows_changed, utc_now_plus
from app.jobs.lease import add_event
from app.jobs.rows import RUNNING_STATUSES
from app.models import Job, JobStatus, LabelShard, ShardStatus, utcnow

# Candidates read per claim: past them, every shard is taken or done (or others won the race).
CLAIM_CANDIDATES = 8


@dataclass(frozen=True)
class ClaimedShard:
    job_id: str
    shard: int
    shards: int
    entry: str
    start: int
    stop: int
    attempts: int


def plan_shards(session: Session, job_id: str, entry: str, bounds: list[tuple[int, int]]) -> int:
    """Record the shards of the store entry `entry` (teacher forwards `start` to `stop` each),
    keeping the ones a previous attempt finished when the plan is the same; returns how many
    are done already."""
    rows = session.scalars(
        select(LabelShard).where(LabelShard.job_id == job_id).order_by(LabelShard.shard)
    ).all()
    if [(r.entry, r.start, r.stop) for r in rows] == [(entry, a, b) for a, b in bounds]:
        return sum(r.status == ShardStatus.DONE for r in rows)
    session.execute(delete(LabelShard).where(LabelShard.job_id == job_id))
    session.add_all(
        LabelShard(
            job_id=job_id,
            shard=i,
            entry=entry,
            start=start,
            stop=stop,
            status=ShardStatus.PENDING,
            attempts=0,
        )
        for i, (start, stop) in enumerate(bounds)
    )
    session.commit()
    return 0


def _claimable() -> ColumnElement[bool]:
    """Nobody is labelling the shard: pending, or its worker's lease ran out."""
    return or_(
        LabelShard.status == ShardStatus.PENDING,
        and_(
            LabelShard.status == ShardStatus.RUNNING,
            LabelShard.lease_expires_at < utc_now_plus(0),
        ),
    )


def claim_shard(
    session: Session, job_id: str, owner: str, lease_seconds: float
) -> ClaimedShard | None:
    """Take the job's first shard that nobody is labelling (pending, or its worker's lease ran
    out) while the job runs; None when there is none."""
    job_runs = exists().where(Job.id == job_id, Job.status == JobStatus.RUNNING)
    candidates = session.scalars(
        select(LabelShard.shard)
        .where(LabelShard.job_id == job_id, _claimable())
        .order_by(LabelShard.shard)
        .limit(CLAIM_CANDIDATES)
    ).all()
    for shard in candidates:
        taken = rows_changed(
            session.execute(
                update(LabelShard)
                .where(LabelShard.job_id == job_id, LabelShard.shard == shard, _claimable())
                .where(job_runs)
                .values(
                    status=ShardStatus.RUNNING,
                    owner=owner,
                    lease_expires_at=utc_now_plus(lease_seconds),
                    attempts=LabelShard.attempts + 1,
                    updated_at=utcnow(),
                )
            )
        )
        if taken:
            session.commit()
            row = session.get(LabelShard, (job_id, shard))
            assert row is not None
            total = session.scalar(
                select(func.count()).select_from(LabelShard).where(LabelShard.job_id == job_id)
            )
            return ClaimedShard(
                job_id, shard, int(total or 0), row.entry, row.start, row.stop, row.attempts
            )
    session.rollback()
    return None


def _held(job_id: str, shard: int, owner: str) -> ColumnElement[bool]:
    return and_(
        LabelShard.job_id == job_id,
        LabelShard.shard == shard,
        LabelShard.status == ShardStatus.RUNNING,
        LabelShard.owner == owner,
    )


def renew_shard(
    session: Session, job_id: str, shard: int, owner: str, lease_seconds: float
) -> bool:
    """Extend `owner`'s lease on the shard; False when it no longer holds it."""
    renewed = rows_changed(
        session.execute(
            update(LabelShard)
            .where(_held(job_id, shard, owner))
            .values(lease_expires_at=utc_now_plus(lease_seconds))
        )
    )
    session.commit()
    return bool(renewed)


def finish_shard(session: Session, job_id: str, shard: int, owner: str) -> bool:
    """The shard's labels are written: done, if `owner` still holds it (False otherwise: a
    worker that took it over writes the same rows, and finishes it)."""
    done = rows_changed(
        session.execute(
            update(LabelShard)
            .where(_held(job_id, shard, owner))
            .values(status=ShardStatus.DONE, lease_expires_at=None, updated_at=utcnow())
        )
    )
    session.commit()
    return bool(done)


def release_shard(session: Session, job_id: str, shard: int, owner: str) -> None:
    """Give a shard back unfinished (its worker stopped: a cancel, a pause, an error), so
    another worker may claim it at once rather than after the lease."""
    session.execute(
        update(LabelShard)
        .where(_held(job_id, shard, owner))
        .values(status=ShardStatus.PENDING, owner=None, lease_expires_at=None)
    )
    session.commit()


def redo_shards(session: Session, job_id: str, shards: list[int]) -> None:
    """Shards marked done whose labels are missing (a host's work folder lost): pending again."""
    session.execute(
        update(LabelShard)
        .where(LabelShard.job_id == job_id, LabelShard.shard.in_(shards))
        .values(status=ShardStatus.PENDING, owner=None, lease_expires_at=None)
    )
    session.commit()


@dataclass(frozen=True)
class ShardCounts:
    total: int
    done: int
    running: int

    @property
    def pending(self) -> int:
        return self.total - self.done - self.running


def shard_counts(session: Session, job_id: str) -> ShardCounts:
    counts = dict(
        session.execute(
            select(LabelShard.status, func.count())
            .where(LabelShard.job_id == job_id)
            .group_by(LabelShard.status)
        ).all()
    )
    return ShardCounts(
        total=sum(counts.values()),
        done=counts.get(ShardStatus.DONE, 0),
        running=counts.get(ShardStatus.RUNNING, 0),
    )


def job_status(session: Session, job_id: str) -> str | None:
    """The job's status (None: it is gone): a shard worker stops once it is not running."""
    return session.scalar(select(Job.status).where(Job.id == job_id))


def add_shard_event(
    session: Session, job_id: str, kind: str, message: str, data: dict[str, Any] | None
) -> bool:
    """An event from a worker labelling a shard of the job (not the worker holding the job's
    lease), written while the job runs; False once it does not."""
    if job_status(session, job_id) not in RUNNING_STATUSES:
        session.rollback()
        return False
    add_event(session, job_id, kind, message, data)
    return True
