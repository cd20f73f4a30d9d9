"""Claim, lease, reaper: the rules that keep a job from being lost or run twice."""

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app import jobs
from app.db import session_scope
from app.models import DEFAULT_TENANT, Job, JobStatus, utcnow
from app.settings import Settings
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB


def new_job(session: Session) -> str:
    job, created = jobs.create_job(
        session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
    )
    assert created
    return job.id


def expire_lease(session: Session, job_id: str) -> None:
    session.execute(
        update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=5))
    )
    session.commit()


def test_only_one_worker_claims_a_job(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job_id = new_job(session)
        first = jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        second = jobs.claim(session, job_id, "w2", lease_seconds=60, max_attempts=3)
        assert first is not None and first.attempt == 1 and first.lease_owner == "w1"
        assert second is None


def test_lease_renewal_belongs_to_the_owner(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job_id = new_job(session)
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        assert jobs.renew_lease(session, job_id, "w1", 60) == JobStatus.RUNNING
        assert jobs.renew_lease(session, job_id, "w2", 60) is None
        assert not jobs.finish(session, job_id, "w2", JobStatus.SUCCEEDED)


def test_reaper_requeues_a_job_whose_worker_died(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job_id = new_job(session)
        jobs.mark_dispatched(session, job_id)
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        assert jobs.reap_expired(session, max_attempts=3) == []
        expire_lease(session, job_id)
        assert jobs.reap_expired(session, max_attempts=3) == [job_id]
        job = jobs.unscoped_job(session, job_id)
        session.refresh(job)
        assert job.status == JobStatus.QUEUED and job.lease_owner is None
        assert jobs.undispatched_job_ids(session) == [job_id]
        # The dead worker's late writes are refused; the next claim is attempt 2.
        assert jobs.renew_lease(session, job_id, "w1", 60) is None
        again = jobs.claim(session, job_id, "w2", lease_seconds=60, max_attempts=3)
        assert again is not None and again.attempt == 2


def test_a_worker_that_lost_its_lease_cannot_write(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job_id = new_job(session)
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        expire_lease(session, job_id)
        jobs.reap_expired(session, max_attempts=3)
        jobs.claim(session, job_id, "w2", lease_seconds=60, max_attempts=3)
        for write in (
            lambda: jobs.set_stage(session, job_id, "w1", "distill", {}),
            lambda: jobs.record_epoch(session, job_id, "w1", "distill", 1, {}, {}),
            lambda: jobs.add_artifact(
                session, job_id, "w1", name="a", fmt="json", size=1, sha256="0", key="k"
            ),
        ):
            with pytest.raises(jobs.LeaseLost):
                write()
        assert jobs.list_metrics(session, job_id) == []
        assert jobs.list_artifacts(session, job_id) == []


def test_a_worker_whose_lease_was_taken_over_cannot_add_an_event(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job_id = new_job(session)
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        jobs.add_event(session, job_id, "info", "from w1", {"n": 1}, owner="w1")
        expire_lease(session, job_id)
        jobs.reap_expired(session, max_attempts=3)
        jobs.claim(session, job_id, "w2", lease_seconds=60, max_attempts=3)
        with pytest.raises(jobs.LeaseLost):
            jobs.add_event(session, job_id, "info", "late, from w1", owner="w1")
        jobs.add_event(session, job_id, "info", "from w2", owner="w2")
        jobs.add_event(session, job_id, "info", "from the API")  # not a worker: no lease
        events = jobs.list_events(session, job_id, after=None, limit=100)
        messages = [event.message for event in events]
        assert "late, from w1" not in messages
        assert messages[-3:] == ["running (attempt 2)", "from w2", "from the API"]
        assert next(e for e in events if e.message == "from w1").data == {"n": 1}


def test_reaper_fails_a_job_out_of_attempts(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job_id = new_job(session)
        for attempt in range(2):
            assert jobs.claim(session, job_id, f"w{attempt}", lease_seconds=60, max_attempts=2)
            expire_lease(session, job_id)
            jobs.reap_expired(session, max_attempts=2)
        job = jobs.unscoped_job(session, job_id)
        session.refresh(job)
        assert job.status == JobStatus.FAILED
        assert job.error is not None and job.error["code"] == "worker_lost"


def test_reaper_finishes_a_cancel_whose_worker_died(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job_id = new_job(session)
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        jobs.cancel_job(session, job_id, DEFAULT_TENANT)
        expire_lease(session, job_id)
        assert jobs.reap_expired(session, max_attempts=3) == []
        job = jobs.unscoped_job(session, job_id)
        session.refresh(job)
        assert job.status == JobStatus.CANCELLED


def test_an_expired_lease_can_be_claimed_directly(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job_id = new_job(session)
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        expire_lease(session, job_id)
        taken = jobs.claim(session, job_id, "w2", lease_seconds=60, max_attempts=3)
        assert taken is not None and taken.lease_owner == "w2" and taken.attempt == 2


def test_a_finished_job_never_changes_status(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job_id = new_job(session)
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        assert jobs.finish(session, job_id, "w1", JobStatus.SUCCEEDED, result={})
        assert not jobs.finish(session, job_id, "w1", JobStatus.FAILED)
        assert jobs.claim(session, job_id, "w2", lease_seconds=60, max_attempts=3) is None
        expire_lease(session, job_id)
        assert jobs.reap_expired(session, max_attempts=3) == []
        job = jobs.unscoped_job(session, job_id)
        session.refresh(job)
        assert job.status == JobStatus.SUCCEEDED
