"""A worker that gets a job whose tenant is at its running limit leaves it queued and
undispatched (maintenance sends it again), saying so once; the limit counts the tenant's jobs
on every device queue. SQLite and PostgreSQL."""

import pytest

from app import jobs
from app.db import session_scope
from app.models import JobStatus
from app.settings import Settings
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB
from worker import lifecycle


@pytest.mark.parametrize("running_on", ["any", "cuda"])
def test_a_job_past_its_tenants_running_limit_waits_queued(
    settings: Settings, running_on: str
) -> None:
    """`running_on`: the device kind (so the queue) of the tenant's job that is running; the
    waiting one goes to the `any` queue. Fairness holds across queues: either way it waits."""
    limited = settings.model_copy(update={"tenant_max_running_jobs": 1})
    with session_scope(settings.database_url) as session:
        body = JobCreate.model_validate(MINIMAL_JOB)
        elsewhere = JobCreate.model_validate({**MINIMAL_JOB, "resources": {"device": running_on}})
        running = jobs.create_job(session, elsewhere, tenant="acme")[0].id
        waiting = jobs.create_job(session, body, tenant="acme")[0].id
        assert jobs.sending(session, running)[1] == running_on
        assert jobs.claim(session, running, "other-worker", lease_seconds=60, max_attempts=3)
        jobs.mark_dispatched(session, waiting)
    lifecycle.run(waiting, limited)
    lifecycle.run(waiting, limited)  # delivered again while the tenant is still at its limit
    with session_scope(settings.database_url) as session:
        job = jobs.unscoped_job(session, waiting)
        assert job.status == JobStatus.QUEUED and job.attempt == 0
        assert job.dispatched_at is None
        assert jobs.undispatched_job_ids(session, max_running=2) == [waiting]
        assert jobs.undispatched_job_ids(session, max_running=1) == []
        events = [(e.kind, e.message) for e in jobs.list_events(session, waiting, None, 100)]
        assert events == [("status", "queued"), ("info", jobs.WAITING_FOR_TENANT_SLOT)]
