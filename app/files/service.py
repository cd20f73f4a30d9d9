"""File records: create, list, get, delete, stored bytes per tenant, the check's lease, and a
refused file's data (removed; the record stays with its error).

Every query filters by tenant; a file of another tenant is "not found"."""

import logging
import secrets
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.db import newest_first_page, rows_changed, utc_now_plus
from app.models import Artifact, File, FileStatus, Job, JobFile, JobStatus, utcnow
from app.store.base import Store

log = logging.getLogger(__name__)

LIVE_JOB_STATUSES = JobStatus.LIVE
# The storage key of a refused file whose data has been removed (its record stays, with why
# it was refused).
DATA_REMOVED = ""


class FileNotFound(LookupError):
    pass


class FileInUse(RuntimeError):
    pass


def new_file_id() -> str:
    return "file_" + secrets.token_hex(12)


def get_file(session: Session, tenant: str, file_id: str) -> File:
    if "\x00" in file_id:  # no id has one, and PostgreSQL refuses to compare with it
        raise FileNotFound(file_id)
    row = session.scalar(select(File).where(File.id == file_id, File.tenant == tenant))
    if row is None:
        raise FileNotFound(file_id)
    return row


def list_files(
    session: Session, tenant: str, *, purpose: str | None, limit: int, after: str | None
) -> tuple[list[File], bool]:
    """Newest first; `after` is the id of the last file of the previous page."""
    query = select(File).where(File.tenant == tenant)
    if purpose is not None:
        query = query.where(File.purpose == purpose)
    cursor = get_file(session, tenant, after) if after is not None else None
    return newest_first_page(session, query, File, cursor, limit)


def stored_bytes(session: Session, tenant: str) -> int:
    """What the tenant keeps in the store: uploads (a refused one until its data is removed),
    prepared arrays and job artifacts."""
    files = session.scalar(
        select(func.coalesce(func.sum(File.bytes + File.prepared_bytes), 0)).where(
            File.tenant == tenant, File.storage_key != DATA_REMOVED
        )
    )
    artifacts = session.scalar(
        select(func.coalesce(func.sum(Artifact.bytes), 0))
        .join(Job, Job.id == Artifact.job_id)
        .where(Job.tenant == tenant)
    )
    return int(files or 0) + int(artifacts or 0)


def live_jobs_using(session: Session, file_id: str) -> list[tuple[str, str]]:
    """(job id, status) of queued, running or cancelling jobs that use the file."""
    rows = session.execute(
        select(Job.id, Job.status)
        .join(JobFile, JobFile.job_id == Job.id)
        .where(JobFile.file_id == file_id, Job.status.in_(LIVE_JOB_STATUSES))
        .order_by(Job.created_at)
    ).all()
    return [(str(r[0]), str(r[1])) for r in rows]


def delete_file(session: Session, tenant: str, file_id: str) -> File:
    """Delete the record (the caller removes the stored data). FileInUse while a live job uses
    it."""
    row = get_file(session, tenant, file_id)
    users = live_jobs_using(session, file_id)
    if users:
        job_id, status = users[0]
        raise FileInUse(f"file {file_id} is used by job {job_id} ({status}); cancel it first")
    session.delete(row)
    session.commit()
    return row


# --- the check's lease -------------------------------------------------------------------------


def _claimable() -> Any:
    return and_(
        File.status == FileStatus.PROCESSING,
        or_(File.lease_expires_at.is_(None), File.lease_expires_at < utc_now_plus(0)),
    )


def claim_next(session: Session, lease_seconds: float) -> str | None:
    """Take the oldest file waiting for its check (or whose checker died) with one conditional
    UPDATE; None when there is none."""
    candidates = session.scalars(
        select(File.id).where(_claimable()).order_by(File.created_at, File.id).limit(5)
    ).all()
    for file_id in candidates:
        claimed = rows_changed(
            session.execute(
                update(File)
                .where(File.id == file_id, _claimable())
                .values(lease_expires_at=utc_now_plus(lease_seconds))
            )
        )
        session.commit()
        if claimed:
            return str(file_id)
    return None


def renew_lease(session: Session, file_id: str, lease_seconds: float) -> None:
    session.execute(
        update(File)
        .where(File.id == file_id, File.status == FileStatus.PROCESSING)
        .values(lease_expires_at=utc_now_plus(lease_seconds))
    )
    session.commit()


def release_lease(session: Session, file_id: str) -> None:
    """Give the file back for another check (the checker is stopping)."""
    session.execute(
        update(File)
        .where(File.id == file_id, File.status == FileStatus.PROCESSING)
        .values(lease_expires_at=None)
    )
    session.commit()


def finish_ready(session: Session, file_id: str, info: dict[str, Any], prepared: int) -> bool:
    """Mark the check passed; False when the file is gone or no longer processing."""
    return _finish(
        session, file_id, status=FileStatus.READY, info=info, error=None, prepared_bytes=prepared
    )


MAX_MESSAGE_CHARS = 2000


def _error(message: str) -> dict[str, Any]:
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    return {"code": "invalid_file", "message": message, "param": None}


def finish_error(session: Session, file_id: str, message: str) -> bool:
    """Mark the check failed with `message`; False when the file is gone or not processing."""
    return _finish(session, file_id, status=FileStatus.ERROR, error=_error(message))


def refuse(session: Session, store: Store, file_id: str, message: str) -> bool:
    """Remove the file's data from the store, then mark the check failed and the data gone in
    one update: the moment the file reads `error`, its bytes no longer count against the
    quota. When the removal fails, the file is marked failed with its data still recorded, and
    the next gc pass removes it. False when the file is gone or not processing."""
    row = session.get(File, file_id)
    if row is None or row.status != FileStatus.PROCESSING:
        return False
    session.rollback()  # no transaction held while the store is reached
    try:
        store.delete_prefix(f"files/{file_id}/")
        gone: dict[str, Any] = {"storage_key": DATA_REMOVED}
    except Exception:
        log.warning("could not remove the data of refused file %s; gc will", file_id, exc_info=True)
        gone = {}
    return _finish(session, file_id, status=FileStatus.ERROR, error=_error(message), **gone)


def _finish(session: Session, file_id: str, **values: Any) -> bool:
    """End the check of a file still processing (the check's lease goes with it)."""
    done = rows_changed(
        session.execute(
            update(File)
            .where(File.id == file_id, File.status == FileStatus.PROCESSING)
            .values(lease_expires_at=None, updated_at=utcnow(), **values)
        )
    )
    session.commit()
    return bool(done)


# --- a refused file's data ---------------------------------------------------------------------


def refused_with_data(session: Session, limit: int) -> list[tuple[str, int]]:
    """(file id, bytes) of refused files whose data is still in the store, any tenant's."""
    query = (
        select(File.id, File.bytes)
        .where(File.status == FileStatus.ERROR, File.storage_key != DATA_REMOVED)
        .order_by(File.updated_at, File.id)
        .limit(limit)
    )
    return [(str(file_id), int(size)) for file_id, size in session.execute(query).all()]


def remove_refused_data(session: Session, store: Store, file_id: str) -> bool:
    """Remove a refused file's data from the store, and record it gone (it no longer counts
    against the tenant's quota). False when the file is not refused or its data already gone."""
    row = session.get(File, file_id)
    if row is None or row.status != FileStatus.ERROR or row.storage_key == DATA_REMOVED:
        return False
    store.delete_prefix(f"files/{file_id}/")
    removed = rows_changed(
        session.execute(
            update(File)
            .where(File.id == file_id, File.storage_key != DATA_REMOVED)
            .values(storage_key=DATA_REMOVED)
        )
    )
    session.commit()
    return bool(removed)
