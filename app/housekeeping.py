"""Disk and retention housekeeping: deleting a job everywhere, and one garbage-collection pass.

`collect_garbage(settings)` frees, on the host it runs on (`distillery gc`; the API's maintenance
loop every DISTILLERY_GC_INTERVAL_SECONDS):
- work folders (`<work_dir>/jobs/<job_id>`) of jobs that succeeded or were cancelled, of failed
  jobs once DISTILLERY_FAILED_WORK_RETENTION_HOURS have passed, and of jobs that no longer
  exist; a queued or running job's folder stays (a requeued job resumes from its checkpoints);
- the soft-label store down to DISTILLERY_SOFT_LABEL_STORE_BYTES, least recently used first,
  and partial entries whose writer died; the download cache of a remote store's files likewise,
  down to DISTILLERY_DOWNLOAD_CACHE_BYTES (never a copy a running job reads);
- upload staging files an API process killed mid-upload left behind;
- the data of refused uploads (the check removes it at once; this takes what a checker that
  died, or a store that was away, left), which then no longer counts against the quota;
- with DISTILLERY_JOB_RETENTION_DAYS, finished jobs older than that, as DELETE /v1/jobs/{id}
  deletes them: rows, stored artifacts, work files;
- in the store (shared by every host): objects under the prefix of a job deleted in the last
  DELETED_JOB_MEMORY_DAYS (a worker frozen past its lease wrote them after the delete), and the
  work files in a remote store of ended jobs, by the work folders' rule. Objects of a job this
  database never had are left alone: they may be another database's.
"""

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app import jobs
from app.capped_folder import CappedFolder, Freed
from app.db import session_scope
from app.files import service as files
from app.files.upload import STALE_STAGING_SECONDS, sweep_staging
from app.models import DeletedJob, Job, JobStatus, utcnow
from app.settings import Settings
from app.store import make_store
from app.store.base import Store, job_prefix, job_work_prefix

log = logging.getLogger(__name__)

# A work folder whose job is not in the database is removed only once it has been left alone
# this long: gc run against the wrong database must not take the folders of running jobs (they
# write a checkpoint every epoch).
UNKNOWN_JOB_GRACE_SECONDS = 3600.0
# Jobs looked up, or deleted, per query.
BATCH = 500
# How long gc remembers a deleted job (app.models.DeletedJob) to remove what a worker that had
# lost it writes under its prefix afterwards.
DELETED_JOB_MEMORY_DAYS = 30


@dataclass
class GcReport:
    """What one pass freed, per kind."""

    expired_jobs: Freed = field(default_factory=Freed, metadata={"label": "expired jobs"})
    work_folders: Freed = field(default_factory=Freed, metadata={"label": "work folders"})
    soft_labels: Freed = field(
        default_factory=Freed, metadata={"label": "soft-label entries evicted"}
    )
    soft_label_partials: Freed = field(
        default_factory=Freed, metadata={"label": "soft-label partial writes"}
    )
    download_cache: Freed = field(
        default_factory=Freed, metadata={"label": "download cache evicted"}
    )
    upload_staging: Freed = field(default_factory=Freed, metadata={"label": "upload staging files"})
    refused_uploads: Freed = field(default_factory=Freed, metadata={"label": "refused uploads"})
    deleted_jobs_objects: Freed = field(
        default_factory=Freed, metadata={"label": "deleted jobs' store objects"}
    )
    store_work_files: Freed = field(
        default_factory=Freed, metadata={"label": "ended jobs' store work files"}
    )

    def kinds(self) -> list[tuple[str, Freed]]:
        return [(f.metadata["label"], getattr(self, f.name)) for f in fields(self)]

    @property
    def total(self) -> Freed:
        total = Freed()
        for _, freed in self.kinds():
            total += freed
        return total

    def lines(self) -> list[str]:
        rows = [*self.kinds(), ("total", self.total)]
        return [
            f"{label:<28} {freed.count:>6}  {freed.bytes:>15,} bytes  {human_bytes(freed.bytes)}"
            for label, freed in rows
        ]


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{value:.1f} TiB"


def work_folder(settings: Settings, job_id: str) -> Path:
    """The job's work folder on this host (checkpoints, stage outputs, exports)."""
    return settings.work_root / "jobs" / job_id


def remove_tree(path: Path) -> int:
    """Remove a folder; returns the bytes it held (0 when it was not there, or could not be
    removed: that is logged, and the next pass tries again)."""
    size = tree_bytes(path)
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return 0
    except OSError:
        log.warning("could not remove %s", path, exc_info=True)
        return 0
    return size


def tree_bytes(path: Path) -> int:
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            with suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def remove_job_work(settings: Settings, store: Store, job_id: str) -> int:
    """Remove a job's work files: its folder on this host, and their copies in a remote store.
    Returns the local bytes freed."""
    remove_remote_work(store, job_id)
    return remove_tree(work_folder(settings, job_id))


def remove_remote_work(store: Store, job_id: str) -> None:
    """Remove a job's work files from a remote store (none are kept in a local one)."""
    if store.remote:
        store.delete_prefix(job_work_prefix(job_id))


def delete_job(settings: Settings, store: Store, session: Session, job_id: str, tenant: str) -> int:
    """Delete the tenant's finished job everywhere (DELETE /v1/jobs/{id}): its stored artifacts
    and work files first, then its rows. JobNotFound, or JobConflict while it is not finished.
    Returns the bytes freed (artifacts, and the work folder when it is on this host)."""
    return _delete(settings, store, session, partial(jobs.delete_job, session, job_id, tenant))


def delete_unscoped_job(settings: Settings, store: Store, session: Session, job_id: str) -> int:
    """delete_job for any tenant's finished job (retention)."""
    return _delete(settings, store, session, partial(jobs.delete_unscoped_job, session, job_id))


def _delete(
    settings: Settings, store: Store, session: Session, delete_rows: Callable[..., Job]
) -> int:
    """Run `delete_rows(remove_files=...)`, removing the job's files; the bytes freed."""
    freed = 0

    def remove_files(job: Job) -> None:
        nonlocal freed
        artifacts = sum(a.bytes for a in jobs.list_artifacts(session, job.id))
        store.delete_prefix(job_prefix(job.id))
        freed = artifacts + remove_tree(work_folder(settings, job.id))

    delete_rows(remove_files=remove_files)
    return freed


def collect_garbage(settings: Settings, store: Store | None = None) -> GcReport:
    """One housekeeping pass on this host (see the module's docstring); returns what it freed.
    Safe to run from several processes at once."""
    store = store or make_store(settings.artifact_url, settings.s3_endpoint_url)
    report = GcReport()
    report.work_folders = _sweep_work_folders(settings, store)
    soft_labels = CappedFolder(settings.soft_label_root, settings.soft_label_store_bytes)
    report.soft_label_partials = soft_labels.sweep_partials()
    report.soft_labels = soft_labels.make_room()
    cache = CappedFolder(settings.download_cache_root, settings.download_cache_bytes)
    report.download_cache = cache.sweep_partials()
    report.download_cache += cache.make_room()
    report.upload_staging = _sweep_staging(store.staging_dir())
    report.deleted_jobs_objects, report.store_work_files = _sweep_store(settings, store)
    if settings.job_retention_days is not None:
        cutoff = utcnow() - timedelta(days=settings.job_retention_days)
        report.expired_jobs = _delete_finished_before(settings, store, cutoff)
    report.refused_uploads = _remove_refused_uploads(settings, store)
    if report.total.count:
        log.info(
            "gc freed %s",
            ", ".join(f"{label} {f.count} ({f.bytes} B)" for label, f in report.kinds()),
        )
    return report


def _sweep_work_folders(settings: Settings, store: Store) -> Freed:
    freed = Freed()
    root = settings.work_root / "jobs"
    if not root.is_dir():
        return freed
    folders = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    known = _job_states(settings, [p.name for p in folders])
    failed_cutoff = utcnow() - timedelta(hours=settings.failed_work_retention_hours)
    unknown_cutoff = time.time() - UNKNOWN_JOB_GRACE_SECONDS
    for folder in folders:
        state = known.get(folder.name)
        if state is None:
            try:
                idle = folder.stat().st_mtime < unknown_cutoff
            except FileNotFoundError:
                continue
            if idle:
                freed.add(remove_tree(folder))
            continue
        if _work_may_go(state, failed_cutoff):
            freed.add(remove_job_work(settings, store, folder.name))
    return freed


def _work_may_go(state: tuple[str, datetime | None], failed_cutoff: datetime) -> bool:
    """A job's work files go once it succeeded or was cancelled, or failed before the cutoff."""
    status, finished_at = state
    if status in (JobStatus.SUCCEEDED, JobStatus.CANCELLED):
        return True
    return status == JobStatus.FAILED and (finished_at is None or finished_at <= failed_cutoff)


def _sweep_store(settings: Settings, store: Store) -> tuple[Freed, Freed]:
    """Remove from the store the objects of jobs deleted lately, and the work files in a
    remote store of ended jobs; returns what each freed. Forgets deleted jobs past
    DELETED_JOB_MEMORY_DAYS."""
    by_job: dict[str, list[tuple[str, int]]] = {}
    for key, size in store.list_objects("jobs/"):
        by_job.setdefault(key.split("/")[1], []).append((key, size))
    states = _job_states(settings, list(by_job))
    deleted_ids = _deleted_jobs(settings, [job_id for job_id in by_job if job_id not in states])
    failed_cutoff = utcnow() - timedelta(hours=settings.failed_work_retention_hours)
    deleted, work = Freed(), Freed()
    for job_id, objects in by_job.items():
        if job_id in deleted_ids:
            store.delete_prefix(job_prefix(job_id))
            gone, freed = objects, deleted
        elif store.remote and job_id in states and _work_may_go(states[job_id], failed_cutoff):
            gone = [o for o in objects if o[0].startswith(job_work_prefix(job_id))]
            if gone:
                remove_remote_work(store, job_id)
            freed = work
        else:
            continue
        for _, size in gone:
            freed.add(size)
    with session_scope(settings.database_url) as session:
        forgotten = utcnow() - timedelta(days=DELETED_JOB_MEMORY_DAYS)
        session.execute(delete(DeletedJob).where(DeletedJob.deleted_at < forgotten))
    return deleted, work


def _deleted_jobs(settings: Settings, job_ids: list[str]) -> set[str]:
    """Those of `job_ids` this database deleted (and still remembers)."""
    found: set[str] = set()
    with session_scope(settings.database_url) as session:
        for chunk in _batches(job_ids):
            found.update(session.scalars(select(DeletedJob.id).where(DeletedJob.id.in_(chunk))))
    return found


def _job_states(settings: Settings, job_ids: list[str]) -> dict[str, tuple[str, datetime | None]]:
    states: dict[str, tuple[str, datetime | None]] = {}
    with session_scope(settings.database_url) as session:
        for chunk in _batches(job_ids):
            query = select(Job.id, Job.status, Job.finished_at).where(Job.id.in_(chunk))
            for job_id, status, finished_at in session.execute(query):
                states[job_id] = (status, finished_at)
    return states


def _delete_finished_before(settings: Settings, store: Store, cutoff: datetime) -> Freed:
    freed = Freed()
    with session_scope(settings.database_url) as session:
        while True:
            expired = list(
                session.scalars(
                    select(Job.id)
                    .where(Job.status.in_(JobStatus.FINISHED), Job.finished_at < cutoff)
                    .order_by(Job.finished_at, Job.id)
                    .limit(BATCH)
                )
            )
            if not expired:
                return freed
            for job_id in expired:
                # Deleted meanwhile (DELETE, or another pass): JobNotFound.
                with suppress(jobs.JobNotFound):
                    freed.add(delete_unscoped_job(settings, store, session, job_id))


def _remove_refused_uploads(settings: Settings, store: Store) -> Freed:
    freed = Freed()
    with session_scope(settings.database_url) as session:
        while refused := files.refused_with_data(session, BATCH):
            for file_id, size in refused:
                # Removed meanwhile (by its check, or another pass): not counted again.
                if files.remove_refused_data(session, store, file_id):
                    freed.add(size)
            if len(refused) < BATCH:
                return freed
    return freed


def _sweep_staging(staging: Path) -> Freed:
    """sweep_staging, counting what it removed: files past its age limit (no upload is still
    writing to one) that are gone after it."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    stale = {}
    for path in staging.glob("upload-*.part"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if stat.st_mtime < cutoff:
            stale[path] = stat.st_size
    sweep_staging(staging)
    freed = Freed()
    for path, size in stale.items():
        if not path.exists():
            freed.add(size)
    return freed


def _batches(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
