"""The maintenance loop sends again a job whose first send failed (broker down), every job
the broker lost (a Redis restarted without its data), and a job left unclaimed too long; a job
its reaper ends loses its work files in the store."""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from app import jobs
from app.db import session_scope
from app.dispatch.base import dispatch
from app.dispatch.celery import BROKER_MARKER_KEY, CeleryDispatcher
from app.dispatch.maintenance import MaintenanceLoop, maintain_once
from app.housekeeping import work_folder
from app.models import DEFAULT_TENANT, Job, utcnow
from app.settings import Settings
from app.store import make_store
from app.store.base import artifact_key, job_prefix, job_work_prefix
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB, make_settings


class FlakyBroker:
    def __init__(self) -> None:
        self.down = True
        self.lost_its_data = False
        self.sent: list[str] = []

    def broker_restarted(self) -> bool:
        restarted, self.lost_its_data = self.lost_its_data, False
        return restarted

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def ready(self) -> bool:
        return not self.down

    def send(self, job_id: str, device: str = "any") -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.sent.append(job_id)


def test_a_failed_send_is_retried_until_it_goes_through(settings: Settings) -> None:
    broker = FlakyBroker()
    with session_scope(settings.database_url) as session:
        job_id = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )[0].id
    assert dispatch(settings, broker, job_id) is False

    maintain_once(settings, broker)  # too soon: the creating request may still be sending it
    assert broker.sent == []
    with session_scope(settings.database_url) as session:
        earlier = utcnow() - timedelta(minutes=1)
        session.execute(update(Job).where(Job.id == job_id).values(updated_at=earlier))
    maintain_once(settings, broker)  # still down: stays queued, nothing lost
    broker.down = False
    maintain_once(settings, broker)
    assert broker.sent == [job_id]
    maintain_once(settings, broker)  # sent once, not again
    assert broker.sent == [job_id]
    with session_scope(settings.database_url) as session:
        assert jobs.unscoped_job(session, job_id).dispatched_at is not None


def _sent_job(settings: Settings, broker: FlakyBroker) -> str:
    with session_scope(settings.database_url) as session:
        job_id = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )[0].id
    assert dispatch(settings, broker, job_id) is True
    return job_id


def test_jobs_the_broker_lost_are_sent_again_at_once(settings: Settings) -> None:
    broker = FlakyBroker()
    broker.down = False
    first, second = _sent_job(settings, broker), _sent_job(settings, broker)
    with session_scope(settings.database_url) as session:
        claimed = jobs.claim(session, second, "w:1", lease_seconds=60, max_attempts=3)
    assert claimed is not None
    broker.sent.clear()

    maintain_once(settings, broker)  # nothing lost: nothing sent
    assert broker.sent == []
    broker.lost_its_data = True
    maintain_once(settings, broker)  # the queued one again; the running one needs no message
    assert broker.sent == [first]
    maintain_once(settings, broker)
    assert broker.sent == [first]


def test_a_job_left_unclaimed_too_long_is_sent_again(settings: Settings) -> None:
    broker = FlakyBroker()
    broker.down = False
    job_id = _sent_job(settings, broker)
    broker.sent.clear()
    maintain_once(settings, broker)
    assert broker.sent == []
    with session_scope(settings.database_url) as session:
        overdue = utcnow() - timedelta(seconds=settings.resend_unclaimed_after_seconds + 1)
        session.execute(update(Job).where(Job.id == job_id).values(dispatched_at=overdue))
    maintain_once(settings, broker)
    assert broker.sent == [job_id]
    maintain_once(settings, broker)  # the send counts as a new one: not again at once
    assert broker.sent == [job_id]


def test_a_redis_broker_that_lost_its_data_is_noticed_once(redis_url: str, tmp_path: Path) -> None:
    import redis

    settings = Settings(broker_url=redis_url, database_url="sqlite://", work_dir=str(tmp_path))
    celery_dispatcher = CeleryDispatcher(settings)
    client = redis.Redis.from_url(redis_url)
    client.delete(BROKER_MARKER_KEY)
    assert celery_dispatcher.broker_restarted() is True
    assert celery_dispatcher.broker_restarted() is False
    client.flushdb()  # what a restart without persistence leaves
    assert celery_dispatcher.broker_restarted() is True
    assert celery_dispatcher.broker_restarted() is False


def test_the_maintenance_loop_runs_the_housekeeping(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        job_id = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )[0].id
        session.execute(update(Job).where(Job.id == job_id).values(status="succeeded"))
    left_over = work_folder(settings, job_id)
    left_over.mkdir(parents=True)
    (left_over / "teacher.ckpt").write_bytes(b"x" * 1000)

    loop = MaintenanceLoop(settings, FlakyBroker())
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while left_over.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        loop.stop()
    assert not left_over.exists()


@pytest.mark.parametrize("asked", ["nothing", "cancel"])
def test_a_job_the_reaper_ends_loses_its_work_files_in_the_store(
    postgres_url: str, tmp_path: Path, s3_server: str, s3_bucket_url: str, asked: str
) -> None:
    """Its worker died on the last attempt (failed, worker_lost), or while cancelling
    (cancelled): its checkpoints and stage outputs in S3 go, as they do when a worker ends a
    job itself; they used to stay forever."""
    settings = make_settings(postgres_url, tmp_path).model_copy(
        update={"artifact_url": s3_bucket_url, "s3_endpoint_url": s3_server, "max_attempts": 1}
    )
    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    with session_scope(settings.database_url) as session:
        job_id = jobs.create_job(
            session, JobCreate.model_validate(MINIMAL_JOB), tenant=DEFAULT_TENANT
        )[0].id
        assert jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=1) is not None
        if asked == "cancel":
            jobs.cancel_job(session, job_id, DEFAULT_TENANT)
    checkpoint = tmp_path / "student.ckpt"
    checkpoint.write_bytes(b"c" * 100)
    for name in ("student.ckpt", "teacher.safetensors"):
        store.put_file(job_work_prefix(job_id) + name, checkpoint)
    store.put_file(artifact_key(job_id, "metrics.csv"), checkpoint)
    other = "job_still_running"  # another job's work files stay
    store.put_file(job_work_prefix(other) + "student.ckpt", checkpoint)
    with session_scope(settings.database_url) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(1))
        )

    maintain_once(settings, FlakyBroker())
    with session_scope(settings.database_url) as session:
        job = jobs.unscoped_job(session, job_id)
        assert job.status == ("failed" if asked == "nothing" else "cancelled")
    assert store.list_keys(job_work_prefix(job_id)) == []
    assert store.list_keys(job_prefix(job_id)) == [artifact_key(job_id, "metrics.csv")]
    assert store.list_keys(job_work_prefix(other)) == [job_work_prefix(other) + "student.ckpt"]
