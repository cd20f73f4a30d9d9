"""A job that fails on something unexpected tells the user what failed, without the server's
paths or a traceback (those go to the worker's log) (issue 6)."""

import json

import pytest

from app import jobs
from app.db import session_scope
from app.models import DEFAULT_TENANT, JobStatus
from app.settings import Settings
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB
from worker import lifecycle
from worker.stages.validate import Validate


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unexpected_failure_shows_no_server_paths_or_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def missing(*_args: object) -> None:
        raise FileNotFoundError(2, "No such file", "/srv/distillery/work/jobs/x/teacher.ckpt")

    monkeypatch.setattr(Validate, "run", missing)
    with session_scope(settings.database_url) as session:
        job, _ = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )
    lifecycle.run(job.id, settings)

    with session_scope(settings.database_url) as session:
        done = jobs.unscoped_job(session, job.id)
        events = [(e.kind, e.message, e.data) for e in jobs.list_events(session, job.id, None, 100)]
    assert done.status == JobStatus.FAILED
    assert done.error is not None
    assert done.error["message"] == "FileNotFoundError: [Errno 2] No such file: '<path>'"
    public = json.dumps([done.error, events])
    assert "/srv/distillery" not in public and "Traceback" not in public
    assert "traceback" not in public
    # The operator still has both in the log.
    assert "/srv/distillery/work/jobs/x/teacher.ckpt" in caplog.text
    assert "Traceback" in caplog.text
