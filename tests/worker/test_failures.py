"""Infrastructure errors (database, disk, store) requeue a job, bounded by max_attempts; the
job's own errors fail it (issue 6)."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError
from sqlalchemy.exc import OperationalError

from app import jobs
from app.db import session_scope
from app.models import DEFAULT_TENANT, JobStatus
from app.settings import Settings
from distillery.types import JobCreate
from distillery.types.protocol import EXIT_DATABASE_UNREACHABLE
from tests.conftest import MINIMAL_JOB, make_settings
from worker import lifecycle
from worker.failures import infrastructure_message, is_infrastructure_error


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        PermissionError(errno.EACCES, "Permission denied"),
        OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        EndpointConnectionError(endpoint_url="http://s3.local"),
    ],
)
def test_what_counts_as_infrastructure(exc: Exception) -> None:
    assert is_infrastructure_error(exc)


@pytest.mark.parametrize(
    "exc", [ValueError("bad shape"), FileNotFoundError(2, "No such file"), RuntimeError("nan")]
)
def test_the_jobs_own_errors_are_not(exc: Exception) -> None:
    assert not is_infrastructure_error(exc)


def test_a_full_disk_says_so() -> None:
    message = infrastructure_message(OSError(errno.ENOSPC, "No space left", "/var/work/x"))
    assert message == "the worker's disk is full"


def _events(settings: Settings, job_id: str) -> list[str]:
    with session_scope(settings.database_url) as session:
        return [e.message for e in jobs.list_events(session, job_id, None, 100)]


def test_an_unwritable_work_folder_requeues_the_job_then_fails_it_at_max_attempts(
    sqlite_url: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the work folder should be")
    settings = make_settings(sqlite_url, tmp_path).model_copy(
        update={"work_dir": str(blocker / "work"), "max_attempts": 2}
    )
    with session_scope(settings.database_url) as session:
        job, _ = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )

    lifecycle.run(job.id, settings)
    with session_scope(settings.database_url) as session:
        first = jobs.unscoped_job(session, job.id)
    assert first.status == JobStatus.QUEUED and first.error is None
    reason = "the worker could not use its disk (ENOTDIR: Not a directory) in stage validate"
    assert f"queued again: {reason} (attempt 1 of 2)" in _events(settings, job.id)

    lifecycle.run(job.id, settings)  # the second and last attempt
    with session_scope(settings.database_url) as session:
        last = jobs.unscoped_job(session, job.id)
    assert last.status == JobStatus.FAILED and last.error is not None
    assert last.error["code"] == "infrastructure_error"
    assert last.error["message"] == f"{reason} (attempt 2 of 2); giving up"
    assert str(tmp_path) not in json.dumps([last.error, _events(settings, job.id)])


def test_a_job_cancelled_meanwhile_is_cancelled_not_requeued(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job, _ = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )
        assert jobs.claim(session, job.id, "w:1", lease_seconds=60, max_attempts=3)
        jobs.cancel_job(session, job.id, DEFAULT_TENANT)
        status = jobs.requeue(session, job.id, "w:1", reason="the disk is full", max_attempts=3)
        assert status == JobStatus.CANCELLED
        assert jobs.unscoped_job(session, job.id).status == JobStatus.CANCELLED
        # Another worker's requeue finds the job gone from it.
        assert jobs.requeue(session, job.id, "w:2", reason="x", max_attempts=3) is None


def test_the_embedded_child_leaves_the_job_queued_when_the_database_is_unreachable(
    tmp_path: Path,
) -> None:
    closed_port = "postgresql+psycopg://postgres@127.0.0.1:9/test?connect_timeout=2"
    env = {
        **os.environ,
        "DISTILLERY_DATABASE_URL": closed_port,
        "DISTILLERY_WORK_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "worker.run", "job_0123"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == EXIT_DATABASE_UNREACHABLE, done.stderr.decode()[-2000:]
