"""Idempotent creation racing other requests: every interleaving answers a defined outcome."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from app import jobs
from app.db import get_session_factory, session_scope
from app.models import DEFAULT_TENANT
from app.settings import Settings
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB

KEY = "nightly-7"


def create(session: Session) -> tuple[Any, bool]:
    body = JobCreate.model_validate(MINIMAL_JOB)
    return jobs.create_job(session, body, KEY, tenant=DEFAULT_TENANT)


def test_a_create_racing_a_create_and_a_delete_of_the_same_key_makes_a_new_job(
    settings: Settings,
) -> None:
    """Request B looks the key up (nothing), request A creates the key's job, B's insert then
    collides with it, and A's job is cancelled and deleted before B looks the key up again.
    B used to re-raise the unique-key error (500); it now creates the job (the key is free)."""
    url = settings.database_url
    others: list[str] = []

    def a_creates_its_job(_: Session) -> None:
        with session_scope(url) as a:
            job, created = create(a)
            assert created
            others.append(job.id)

    def a_deletes_its_job(_: Session) -> None:
        if not others or len(others) > 1:
            return
        with session_scope(url) as a:
            jobs.cancel_job(a, others[0], DEFAULT_TENANT)
            jobs.delete_job(a, others[0], DEFAULT_TENANT)
        others.append("deleted")

    b = get_session_factory(url)()
    try:
        event.listen(b, "before_commit", a_creates_its_job, once=True)
        event.listen(b, "after_rollback", a_deletes_its_job)
        job, created = create(b)
        assert others[1:] == ["deleted"], "the interleaving did not happen"
        assert created and job.id != others[0]
        b.commit()
    finally:
        b.close()
    with session_scope(url) as session:
        assert jobs.get_job(session, job.id, DEFAULT_TENANT).idempotency_key == KEY
        again, created = create(session)
        assert (again.id, created) == (job.id, False)  # the key now replays B's job
