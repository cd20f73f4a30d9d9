"""A job whose first send failed (broker down) is sent again by the maintenance loop."""

from datetime import timedelta

from sqlalchemy import update

from app import jobs
from app.db import session_scope
from app.dispatch import dispatch, maintain_once
from app.models import Job, utcnow
from app.schemas import JobCreate
from app.settings import Settings
from tests.conftest import MINIMAL_JOB


class FlakyBroker:
    def __init__(self) -> None:
        self.down = True
        self.sent: list[str] = []

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def ready(self) -> bool:
        return not self.down

    def send(self, job_id: str) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.sent.append(job_id)


def test_a_failed_send_is_retried_until_it_goes_through(settings: Settings) -> None:
    broker = FlakyBroker()
    with session_scope(settings.database_url) as session:
        job_id = jobs.create_job(session, JobCreate.model_validate(MINIMAL_JOB))[0].id
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
        assert jobs.get_job(session, job_id).dispatched_at is not None
