"""The database: unreachable for 30 s, and its connections terminated mid-job."""

import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.conftest import Service
from tests.faults.jobs import LONG_JOB, TINY_JOB, digits_job
from tests.faults.proxy import TcpProxy, through
from tests.faults.stack import Stack

pytestmark = pytest.mark.services

OUTAGE_SECONDS = 30


def test_jobs_survive_the_database_unreachable_for_30s(
    services: list[Service],
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    postgres_proxy: TcpProxy,
) -> None:
    """Every process reaches PostgreSQL through a proxy. While one job runs and two are
    queued, the proxy closes every connection and refuses new ones for 30 s. All succeed."""
    stack = Stack.celery(services, tmp_path, through(postgres_proxy, postgres_url), redis_url)
    stack.start_api()
    stack.start_worker()
    running = stack.submit(LONG_JOB)
    stack.wait_until_running(running)
    queued = [stack.submit(TINY_JOB) for _ in range(2)]
    assert stack.job(running)["status"] == "running"

    postgres_proxy.cut()
    time.sleep(OUTAGE_SECONDS)  # the outage itself
    postgres_proxy.restore()

    for job_id in [running, *queued]:
        job = stack.wait(job_id, timeout=180)
        assert job["status"] == "succeeded", (job_id, job["error"], stack.logs())
        stack.check(job)


def terminate_connections(database_url: str) -> int:
    """pg_terminate_backend on every other connection to the database; how many there were."""
    url = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_job_survives_its_database_connections_terminated(celery_stack: Stack) -> None:
    """In the middle of distillation every connection to the job's database is terminated
    (the API's and the worker's, pooled or in use), again and again for two seconds, so some
    die in the middle of a write: the job carries on and succeeds."""
    stack = celery_stack
    stack.start_api()
    stack.start_worker()
    job_id = stack.submit(digits_job(distill_epochs=12, batch_size=8))
    stack.wait_until_running(job_id, stage="distill")

    terminated = 0
    for _ in range(20):
        terminated += terminate_connections(stack.env["DISTILLERY_DATABASE_URL"])
        time.sleep(0.1)
    assert terminated > 0

    job = stack.wait(job_id)
    assert job["status"] == "succeeded", (job["error"], stack.logs())
    stack.check(job)
