"""A worker's link to its job row writes only while the worker holds the job."""

import pytest

from app import jobs
from app.db import session_scope
from app.models import DEFAULT_TENANT
from app.settings import Settings
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB
from worker.control import JobControl, LeaseLost


def test_an_event_from_a_worker_whose_lease_was_taken_over_is_refused(
    settings: Settings,
) -> None:
    with session_scope(settings.database_url) as session:
        job, _ = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )
        jobs.claim(session, job.id, "w1", lease_seconds=60, max_attempts=3)
    # Not entered: no heartbeat thread, only the writes.
    control = JobControl(settings, job.id, "w1")
    control.event("info", "while held")
    with session_scope(settings.database_url) as session:
        jobs.release_lease(session, job.id, "w1")  # w1 presumed dead ...
        jobs.claim(session, job.id, "w2", lease_seconds=60, max_attempts=3)  # ... w2 took over
    with pytest.raises(LeaseLost):
        control.event("warning", "too late")
    with session_scope(settings.database_url) as session:
        messages = [e.message for e in jobs.list_events(session, job.id, after=None, limit=100)]
    assert "while held" in messages
    assert "too late" not in messages
    assert messages[-1] == "running (attempt 2)"
