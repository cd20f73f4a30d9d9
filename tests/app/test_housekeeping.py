"""One garbage-collection pass (`collect_garbage`, what `distillery gc` runs): which work
folders, soft labels, staging files, expired jobs and store objects no job needs go, and what
it reports freed. On SQLite and PostgreSQL."""

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from app import jobs
from app.capped_folder import CappedFolder
from app.db import session_scope
from app.files.service import stored_bytes
from app.housekeeping import collect_garbage, delete_job, work_folder
from app.models import DEFAULT_TENANT, Artifact, File, FileStatus, Job, JobStatus, utcnow
from app.settings import Settings
from app.store import make_store
from app.store.base import artifact_key, file_key, job_work_prefix
from distillery.types import JobCreate
from tests.app.test_cli import distillery
from tests.conftest import MINIMAL_JOB, make_settings


def job_in(settings: Settings, status: str, *, days_ago: float = 0.0, **values: Any) -> str:
    """A job with `status`, created (and, when finished, finished) `days_ago`."""
    with session_scope(settings.database_url) as session:
        job, _ = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )
        when = utcnow() - timedelta(days=days_ago)
        finished = when if status in JobStatus.FINISHED else None
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(status=status, created_at=when, finished_at=finished, **values)
        )
        return job.id


def with_work(settings: Settings, job_id: str, size: int) -> Path:
    folder = work_folder(settings, job_id)
    folder.mkdir(parents=True)
    (folder / "student.ckpt").write_bytes(b"c" * size)
    return folder


def backdate(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_work_folders_of_ended_jobs_go_those_of_live_and_recently_failed_ones_stay(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"failed_work_retention_hours": 24})
    gone = {
        "succeeded": with_work(settings, job_in(settings, JobStatus.SUCCEEDED), 100),
        "cancelled": with_work(settings, job_in(settings, JobStatus.CANCELLED), 200),
        "failed 2 days ago": with_work(
            settings, job_in(settings, JobStatus.FAILED, days_ago=2), 300
        ),
        "deleted long ago": with_work(settings, "job_deleted_long_ago", 400),
    }
    backdate(gone["deleted long ago"], 2 * 3600)
    kept = {
        "failed an hour ago": with_work(
            settings, job_in(settings, JobStatus.FAILED, days_ago=1 / 24), 1
        ),
        "running": with_work(settings, job_in(settings, JobStatus.RUNNING), 1),
        "cancelling": with_work(settings, job_in(settings, JobStatus.CANCELLING), 1),
        "requeued": with_work(settings, job_in(settings, JobStatus.QUEUED, attempt=1), 1),
        # Not in this database, but written to a minute ago: gc against the wrong database
        # must not take a running job's folder.
        "unknown, busy": with_work(settings, "job_not_in_this_database", 1),
    }
    report = collect_garbage(settings)
    assert {name for name, path in gone.items() if path.exists()} == set()
    assert {name for name, path in kept.items() if not path.exists()} == set()
    assert (report.work_folders.count, report.work_folders.bytes) == (4, 1000)
    assert (report.expired_jobs.count, report.total.count) == (0, 4)

    # Nothing left to free: a second pass frees nothing.
    assert collect_garbage(settings).total.count == 0


def test_finished_jobs_past_the_retention_period_are_deleted(settings: Settings) -> None:
    store = make_store(settings.artifact_url)
    old = [job_in(settings, status, days_ago=40) for status in JobStatus.FINISHED]
    recent = job_in(settings, JobStatus.SUCCEEDED, days_ago=10)
    running = job_in(settings, JobStatus.RUNNING, days_ago=40)
    source = settings.work_root.parent / "student.onnx"
    source.write_bytes(b"o" * 1000)
    for job_id in [*old, recent]:
        store.put_file(artifact_key(job_id, "student.onnx"), source)
        with session_scope(settings.database_url) as session:
            session.add(
                Artifact(
                    job_id=job_id,
                    name="student.onnx",
                    format="onnx",
                    bytes=1000,
                    sha256="0" * 64,
                    storage_key=artifact_key(job_id, "student.onnx"),
                )
            )

    # Unset (the default): every job is kept.
    assert collect_garbage(settings).expired_jobs.count == 0
    report = collect_garbage(settings.model_copy(update={"job_retention_days": 30}))
    assert (report.expired_jobs.count, report.expired_jobs.bytes) == (3, 3 * 1000)
    with session_scope(settings.database_url) as session:
        left, _ = jobs.list_jobs(session, status=None, limit=100, after=None, tenant=DEFAULT_TENANT)
    assert sorted(j.id for j in left) == sorted([recent, running])
    assert store.list_keys("jobs/") == [artifact_key(recent, "student.onnx")]


def test_soft_labels_over_the_cap_and_stale_upload_staging_files_go(settings: Settings) -> None:
    settings = settings.model_copy(update={"soft_label_store_bytes": 250})
    soft_labels = CappedFolder(settings.soft_label_root, max_bytes=10**6)  # filled past 250
    for age, name in enumerate(["newest", "middle", "oldest"]):
        soft_labels.add(name, 100, lambda f: f.write(b"s" * 100)).close()
        backdate(soft_labels.path(name), 60 * (age + 1))
    (settings.soft_label_root / ".dead.1234.abcd.partial").write_bytes(b"p" * 70)
    staging = make_store(settings.artifact_url).staging_dir()
    (staging / "upload-stale.part").write_bytes(b"u" * 500)
    backdate(staging / "upload-stale.part", 25 * 3600)
    (staging / "upload-arriving.part").write_bytes(b"u" * 5)

    report = collect_garbage(settings)
    assert sorted(p.name for p in settings.soft_label_root.iterdir()) == ["middle", "newest"]
    assert (report.soft_labels.count, report.soft_labels.bytes) == (1, 100)
    assert (report.soft_label_partials.count, report.soft_label_partials.bytes) == (1, 70)
    assert sorted(p.name for p in staging.iterdir()) == ["upload-arriving.part"]
    assert (report.upload_staging.count, report.upload_staging.bytes) == (1, 500)
    assert (report.total.count, report.total.bytes) == (3, 670)
    lines = report.lines()
    assert lines[-1].split()[:3] == ["total", "3", "670"]


def stored_file(settings: Settings, file_id: str, status: str, size: int) -> None:
    """A file record with `size` bytes of upload in the store."""
    source = settings.work_root / f"{file_id}.upload"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b"f" * size)
    make_store(settings.artifact_url).put_file(file_key(file_id, "upload"), source)
    error = {"code": "invalid_file", "message": "not an ONNX model", "param": None}
    with session_scope(settings.database_url) as session:
        session.add(
            File(
                id=file_id,
                purpose="teacher",
                filename="t.onnx",
                format="onnx",
                bytes=size,
                status=status,
                error=error if status == FileStatus.ERROR else None,
                storage_key=file_key(file_id, "upload"),
            )
        )


def test_a_refused_uploads_data_left_in_the_store_goes(settings: Settings) -> None:
    """A checker that died between refusing a file and removing its data left it there: gc
    takes it, and the tenant's quota no longer counts it; the record and its error stay."""
    stored_file(settings, "file_refused", FileStatus.ERROR, 300)
    stored_file(settings, "file_ready", FileStatus.READY, 40)
    stored_file(settings, "file_checking", FileStatus.PROCESSING, 5)
    with session_scope(settings.database_url) as session:
        assert stored_bytes(session, DEFAULT_TENANT) == 345

    report = collect_garbage(settings)
    assert (report.refused_uploads.count, report.refused_uploads.bytes) == (1, 300)
    keys = make_store(settings.artifact_url).list_keys("files/")
    assert keys == [file_key("file_checking", "upload"), file_key("file_ready", "upload")]
    with session_scope(settings.database_url) as session:
        assert stored_bytes(session, DEFAULT_TENANT) == 45
        refused = session.get(File, "file_refused")
        assert refused is not None and refused.error is not None
        assert refused.error["message"] == "not an ONNX model"
    assert collect_garbage(settings).refused_uploads.count == 0


def test_a_failed_jobs_work_files_in_s3_go_with_its_folder(
    sqlite_url: str, tmp_path: Path, s3_server: str, s3_bucket_url: str
) -> None:
    settings = make_settings(sqlite_url, tmp_path).model_copy(
        update={"artifact_url": s3_bucket_url, "s3_endpoint_url": s3_server}
    )
    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    expired = job_in(settings, JobStatus.FAILED, days_ago=2)
    recent = job_in(settings, JobStatus.FAILED)
    for job_id in (expired, recent):
        folder = with_work(settings, job_id, 10)
        store.put_file(job_work_prefix(job_id) + "student.ckpt", folder / "student.ckpt")
        store.put_file(artifact_key(job_id, "metrics.csv"), folder / "student.ckpt")

    report = collect_garbage(settings)
    assert report.work_folders.count == 1
    assert not work_folder(settings, expired).exists()
    assert store.list_keys("jobs/") == sorted(
        [
            artifact_key(expired, "metrics.csv"),  # its artifacts stay, as the job does
            artifact_key(recent, "metrics.csv"),
            job_work_prefix(recent) + "student.ckpt",
        ]
    )


def test_distillery_gc_prints_what_it_freed(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, tmp_path)
    env = {
        "DISTILLERY_DATABASE_URL": sqlite_url,
        "DISTILLERY_WORK_DIR": settings.work_dir,
        "DISTILLERY_ARTIFACT_URL": settings.artifact_url,
    }
    folder = with_work(settings, job_in(settings, JobStatus.SUCCEEDED), 2048)
    done = distillery("gc", **env)
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert lines[0] == ["freed", "on", "this", "host", f"({settings.work_root}):"]
    assert ["work", "folders", "1", "2,048", "bytes", "2.0", "KiB"] in lines
    assert lines[-1][:3] == ["total", "1", "2,048"]
    assert not folder.exists()

    # Pointed at no database, it frees nothing (every folder would look orphaned).
    with_work(settings, "job_of_some_other_database", 1)
    backdate(settings.work_root / "jobs" / "job_of_some_other_database", 7 * 24 * 3600)
    nowhere = tmp_path / "typo.db"
    refused = distillery("gc", **{**env, "DISTILLERY_DATABASE_URL": f"sqlite:///{nowhere}"})
    assert refused.returncode == 1
    assert "no Distillery database" in refused.stderr
    assert not nowhere.exists()
    assert (settings.work_root / "jobs" / "job_of_some_other_database").exists()


def store_settings(settings: Settings, request: pytest.FixtureRequest, kind: str) -> Settings:
    if kind == "local":
        return settings
    return settings.model_copy(
        update={
            "artifact_url": request.getfixturevalue("s3_bucket_url"),
            "s3_endpoint_url": request.getfixturevalue("s3_server"),
        }
    )


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_what_a_lost_worker_wrote_after_its_job_was_deleted_goes(
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest, store_kind: str
) -> None:
    """A worker frozen past its lease writes under the job's prefix after the job was deleted
    (between its last lease check and the write): gc removes it. Objects of a job this
    database never had (another database's store?) are left alone."""
    settings = store_settings(settings, request, store_kind)
    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    source = tmp_path / "bytes"
    source.write_bytes(b"b" * 100)
    deleted = job_in(settings, JobStatus.FAILED)
    with session_scope(settings.database_url) as session:
        delete_job(settings, store, session, deleted, DEFAULT_TENANT)
    store.put_file(artifact_key(deleted, "student.onnx"), source)  # the late writes
    store.put_file(job_work_prefix(deleted) + "student.ckpt", source)
    kept = job_in(settings, JobStatus.SUCCEEDED)
    store.put_file(artifact_key(kept, "student.onnx"), source)
    store.put_file(artifact_key("job_of_another_database", "student.onnx"), source)

    report = collect_garbage(settings)
    assert store.list_keys("jobs/") == sorted(
        [
            artifact_key(kept, "student.onnx"),
            artifact_key("job_of_another_database", "student.onnx"),
        ]
    )
    assert (report.deleted_jobs_objects.count, report.deleted_jobs_objects.bytes) == (2, 200)
    assert collect_garbage(settings).total.count == 0


def test_work_files_in_s3_of_ended_jobs_go_even_without_a_work_folder_here(
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A job the reaper ended while the store was unreachable, or whose worker died while
    removing them: its work files in S3 go as its status says (no host need have its folder)."""
    settings = store_settings(settings, request, "s3").model_copy(
        update={"failed_work_retention_hours": 24}
    )
    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    source = tmp_path / "bytes"
    source.write_bytes(b"w" * 10)
    jobs_by_state = {
        "succeeded": job_in(settings, JobStatus.SUCCEEDED),
        "cancelled": job_in(settings, JobStatus.CANCELLED),
        "failed 2 days ago": job_in(settings, JobStatus.FAILED, days_ago=2),
        "failed an hour ago": job_in(settings, JobStatus.FAILED, days_ago=1 / 24),
        "running": job_in(settings, JobStatus.RUNNING),
        "requeued": job_in(settings, JobStatus.QUEUED, attempt=1),
    }
    for job_id in jobs_by_state.values():
        store.put_file(job_work_prefix(job_id) + "student.ckpt", source)
        store.put_file(artifact_key(job_id, "report.json"), source)

    report = collect_garbage(settings)
    left = {
        state for state, job_id in jobs_by_state.items() if store.list_keys(job_work_prefix(job_id))
    }
    assert left == {"failed an hour ago", "running", "requeued"}
    assert all(
        store.exists(artifact_key(job_id, "report.json")) for job_id in jobs_by_state.values()
    )
    assert (report.store_work_files.count, report.store_work_files.bytes) == (3, 30)
