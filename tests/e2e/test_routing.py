"""Device-aware routing with real processes: a Celery worker announces its device kind and
consumes that kind's queue; a job asking for it runs there, one asking for a kind no worker
has is a 422 at POST."""

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from app.db import session_scope
from app.models import Worker
from tests.e2e.conftest import Service
from tests.faults import checks
from tests.faults.jobs import TINY_JOB
from tests.faults.stack import Stack

pytestmark = pytest.mark.services


def announced(database_url: str) -> list[Worker]:
    with session_scope(database_url) as session:
        return list(session.scalars(select(Worker)))


def test_a_job_goes_to_a_worker_of_its_device_kind(
    services: list[Service], tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    stack = Stack.celery(
        services, tmp_path, postgres_url, redis_url, DISTILLERY_WORKER_DEVICE="cpu"
    )
    stack.start_api()
    worker = stack.start_worker()
    (row,) = checks.wait_until(
        lambda: [w for w in announced(postgres_url) if stack.queue in w.queues],
        120,
        "the worker's announcement",
        stack.services,
    )
    assert row.device == "cpu" and row.gpus == 0
    assert sorted(row.queues) == [stack.queue, f"{stack.queue}.cpu"]

    # Sent to <queue>.cpu only: it runs because the worker consumes that queue too.
    job_id = stack.submit({**TINY_JOB, "resources": {"device": "cpu"}})
    job = stack.wait(job_id)
    assert job["status"] == "succeeded", (job["error"], stack.logs())
    stack.check(job)

    refused = httpx.post(
        f"{stack.url}/v1/jobs", json={**TINY_JOB, "resources": {"device": "cuda"}}, timeout=10
    )
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["param"] == "resources.device"
    assert f"{row.name} (cpu" in error["message"]

    # A worker that stops says so: its announcement goes.
    worker.stop()
    assert not [w for w in announced(postgres_url) if w.name == row.name]
