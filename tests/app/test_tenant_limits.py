"""A tenant's running-job limit holds when workers start jobs, not only when jobs are submitted:
a job past it stays queued (and is not lost) while other tenants' jobs run.
Each test runs on SQLite and on PostgreSQL."""

import threading
from datetime import timedelta

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from app import jobs
from app.db import get_engine, session_scope, upgrade_database
from app.dispatch.base import dispatch
from app.dispatch.maintenance import maintain_once
from app.models import Job, JobStatus, utcnow
from app.settings import Settings
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB, RecordingDispatcher


def new_job(session: Session, tenant: str) -> str:
    job, created = jobs.create_job(session, JobCreate.model_validate(MINIMAL_JOB), tenant=tenant)
    assert created
    return job.id


def take(session: Session, job_id: str, owner: str, max_running: int = 1) -> Job | None:
    return jobs.claim(
        session, job_id, owner, lease_seconds=60, max_attempts=3, max_running=max_running
    )


def status(session: Session, job_id: str) -> str:
    job = jobs.unscoped_job(session, job_id)
    session.refresh(job)
    return job.status


def make_idle(session: Session, job_id: str) -> None:
    """As if the job had sat untouched longer than the maintenance loop waits."""
    earlier = utcnow() - timedelta(minutes=1)
    session.execute(update(Job).where(Job.id == job_id).values(updated_at=earlier))
    session.commit()


def test_a_tenant_at_its_limit_cannot_start_another_job_until_one_ends(
    settings: Settings,
) -> None:
    with session_scope(settings.database_url) as session:
        first, second = new_job(session, "acme"), new_job(session, "acme")
        other = new_job(session, "globex")
        assert take(session, first, "w1") is not None
        assert take(session, second, "w2") is None
        assert status(session, second) == JobStatus.QUEUED
        # Another tenant's job is not held up.
        assert take(session, other, "w3") is not None
        # A cancelling job still runs: it counts until it has stopped.
        jobs.cancel_job(session, first, "acme")
        assert take(session, second, "w2") is None
        assert jobs.finish(session, first, "w1", JobStatus.CANCELLED)
        started = take(session, second, "w2")
        assert started is not None and started.status == JobStatus.RUNNING


def test_no_limit_means_every_job_can_start(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        ids = [new_job(session, "acme") for _ in range(3)]
        for job_id in ids:
            assert jobs.claim(session, job_id, "w", lease_seconds=60, max_attempts=3)


def test_a_job_whose_worker_died_is_claimed_again_under_the_same_limit(
    settings: Settings,
) -> None:
    with session_scope(settings.database_url) as session:
        first, second = new_job(session, "acme"), new_job(session, "acme")
        assert take(session, first, "w1", max_running=2)
        assert take(session, second, "w2", max_running=2)
        session.execute(
            update(Job)
            .where(Job.id == first)
            .values(lease_expires_at=utcnow() - timedelta(seconds=5))
        )
        session.commit()
        # The job itself does not count against taking it over, the tenant's other one does.
        assert take(session, first, "w3", max_running=1) is None
        again = take(session, first, "w3", max_running=2)
        assert again is not None and again.lease_owner == "w3" and again.attempt == 2
        # Requeued by the reaper, it waits for a slot like any queued job.
        session.execute(
            update(Job)
            .where(Job.id == first)
            .values(lease_expires_at=utcnow() - timedelta(seconds=5))
        )
        session.commit()
        assert jobs.reap_expired(session, max_attempts=3) == [first]
        assert take(session, first, "w4", max_running=1) is None
        assert jobs.finish(session, second, "w2", JobStatus.SUCCEEDED, result={})
        assert take(session, first, "w4", max_running=1) is not None


def test_the_runner_picks_the_oldest_job_whose_tenant_has_a_free_slot(
    settings: Settings,
) -> None:
    with session_scope(settings.database_url) as session:
        running = new_job(session, "acme")
        waiting = new_job(session, "acme")
        others = new_job(session, "globex")
        assert jobs.oldest_queued_job_id(session, max_running=1) == running
        assert take(session, running, "w1")
        assert jobs.oldest_queued_job_id(session) == waiting  # without a limit
        assert jobs.oldest_queued_job_id(session, max_running=1) == others
        assert take(session, others, "w2")
        assert jobs.oldest_queued_job_id(session, max_running=1) is None
        assert jobs.finish(session, running, "w1", JobStatus.SUCCEEDED, result={})
        assert jobs.oldest_queued_job_id(session, max_running=1) == waiting


def test_a_job_put_back_to_wait_is_sent_again_when_its_tenant_has_a_slot(
    settings: Settings,
) -> None:
    limited = settings.model_copy(update={"tenant_max_running_jobs": 1})
    broker = RecordingDispatcher()
    with session_scope(settings.database_url) as session:
        running, waiting = new_job(session, "acme"), new_job(session, "acme")
    assert dispatch(limited, broker, running) and dispatch(limited, broker, waiting)
    with session_scope(settings.database_url) as session:
        assert take(session, running, "w1")
        # The worker that got the second job finds the tenant at its limit.
        assert take(session, waiting, "w2") is None
        assert jobs.wait_for_tenant_slot(session, waiting, 1) is True
        assert jobs.wait_for_tenant_slot(session, waiting, 1) is False  # a retry: no new event
        job = jobs.unscoped_job(session, waiting)
        session.refresh(job)
        assert job.status == JobStatus.QUEUED and job.dispatched_at is None
        events = [e.message for e in jobs.list_events(session, waiting, None, 100)]
        assert events == ["queued", jobs.WAITING_FOR_TENANT_SLOT]
        make_idle(session, waiting)
    broker.sent.clear()
    maintain_once(limited, broker)  # the tenant is still at its limit: nothing to send yet
    assert broker.sent == []
    with session_scope(settings.database_url) as session:
        assert jobs.finish(session, running, "w1", JobStatus.SUCCEEDED, result={})
    maintain_once(limited, broker)
    assert broker.sent == [waiting]
    maintain_once(limited, broker)  # sent once, not again
    assert broker.sent == [waiting]
    with session_scope(settings.database_url) as session:
        assert take(session, waiting, "w2") is not None
        # A job that is no longer queued is not put back.
        assert jobs.wait_for_tenant_slot(session, waiting, 1) is None
        assert status(session, waiting) == JobStatus.RUNNING


def test_maintenance_sends_only_as_many_of_a_tenants_jobs_as_it_has_free_slots(
    settings: Settings,
) -> None:
    limited = settings.model_copy(update={"tenant_max_running_jobs": 2})
    broker = RecordingDispatcher()
    with session_scope(settings.database_url) as session:
        running = new_job(session, "acme")
        waiting = [new_job(session, "acme") for _ in range(3)]
        others = new_job(session, "globex")
        assert take(session, running, "w1", max_running=2)
        for job_id in [*waiting, others]:
            make_idle(session, job_id)
    maintain_once(limited, broker)
    assert broker.sent == [waiting[0], others]


class DeferringBroker(RecordingDispatcher):
    """A broker whose worker gets the job at once, before the sender has marked it sent, and
    finds its tenant at the limit."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def send(self, job_id: str, device: str = "any") -> None:
        super().send(job_id)
        with session_scope(self.settings.database_url) as session:
            assert take(session, job_id, "fast-worker") is None
            assert jobs.wait_for_tenant_slot(session, job_id, 1) is True


def test_a_job_put_back_before_its_send_was_recorded_is_not_marked_sent(
    settings: Settings,
) -> None:
    with session_scope(settings.database_url) as session:
        running, waiting = new_job(session, "acme"), new_job(session, "acme")
        assert take(session, running, "w1")
    assert dispatch(settings, DeferringBroker(settings), waiting)
    with session_scope(settings.database_url) as session:
        assert jobs.unscoped_job(session, waiting).dispatched_at is None
        make_idle(session, waiting)
        assert jobs.finish(session, running, "w1", JobStatus.SUCCEEDED, result={})
    broker = RecordingDispatcher()
    maintain_once(settings, broker)
    assert broker.sent == [waiting]


def test_two_workers_claiming_one_tenants_jobs_at_once_start_only_one(
    postgres_url: str,
) -> None:
    """PostgreSQL, READ COMMITTED: the second claim waits for the first one's tenant lock and
    then counts its job (without the lock both would count zero running jobs)."""
    upgrade_database(postgres_url)
    with session_scope(postgres_url) as session:
        first, second = new_job(session, "acme"), new_job(session, "acme")
    results: list[Job | None] = []
    with session_scope(postgres_url) as holder:
        # A claim of `first` in progress: lock taken, row changed, not yet committed.
        jobs.lock_tenant(holder, "acme")
        holder.execute(update(Job).where(Job.id == first).values(status=JobStatus.RUNNING))

        def claim_second() -> None:
            with session_scope(postgres_url) as session:
                results.append(take(session, second, "w2"))

        worker = threading.Thread(target=claim_second)
        worker.start()
        # Wait until the second claim is blocked on the tenant lock (or, were there no lock,
        # has already finished).
        with get_engine(postgres_url).connect() as watcher:
            blocked = text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            while worker.is_alive() and not watcher.execute(blocked).scalar():
                watcher.rollback()
                worker.join(0.01)
    worker.join(timeout=60)  # the holder committed: the second claim goes on
    assert not worker.is_alive(), "the second claim still waits on the tenant lock"
    assert results == [None]
    with session_scope(postgres_url) as session:
        assert status(session, second) == JobStatus.QUEUED
