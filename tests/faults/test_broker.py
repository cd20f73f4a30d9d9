"""The broker: Redis restarted with its queue lost; one task delivered twice."""

from pathlib import Path

import pytest
import redis
from celery import Celery

from distillery.types.protocol import RUN_JOB_TASK
from tests.e2e.conftest import Service
from tests.faults import checks
from tests.faults.jobs import LONG_JOB, TINY_JOB
from tests.faults.redis_server import RedisServer
from tests.faults.stack import Stack

pytestmark = pytest.mark.services


def test_jobs_survive_redis_restarting_empty(
    services: list[Service], tmp_path: Path, postgres_url: str, own_redis: RedisServer
) -> None:
    """Redis comes back without its data while one job runs and three wait in its queue: their
    messages are gone, so the service must send those jobs again. All four succeed, once."""
    stack = Stack.celery(services, tmp_path, postgres_url, own_redis.url)
    stack.start_api()
    stack.start_worker()
    running = stack.submit(LONG_JOB)
    stack.wait_until_running(running)
    queued = [stack.submit(TINY_JOB) for _ in range(3)]
    checks.wait_until(
        lambda: own_redis.client().llen(stack.queue) == 3,
        10,
        "the three queued jobs' messages in Redis",
        services,
    )
    assert stack.job(running)["status"] == "running"

    own_redis.restart_empty()

    for job_id in [running, *queued]:
        job = stack.wait(job_id, timeout=120)
        assert job["status"] == "succeeded", (job_id, job["error"], stack.logs())
        stack.check(job)


def test_a_task_delivered_twice_runs_once(
    services: list[Service], tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """The API sends the job, the test sends the same task twice more, and two workers take
    the three deliveries: one runs the job, the others skip it."""
    # A long lease: a late heartbeat must not let a duplicate take over a live job here.
    stack = Stack.celery(services, tmp_path, postgres_url, redis_url, DISTILLERY_LEASE_SECONDS="60")
    stack.start_api()
    job_id = stack.submit(TINY_JOB)
    sender = Celery("faults-sender", broker=redis_url)
    try:
        for _ in range(2):
            sender.send_task(RUN_JOB_TASK, args=[job_id], queue=stack.queue)
    finally:
        sender.close()
    assert redis.Redis.from_url(redis_url).llen(stack.queue) == 3
    workers = [stack.start_worker("worker-1"), stack.start_worker("worker-2")]

    job = stack.wait(job_id)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 1
    assert checks.attempts_started(stack.url, job_id) == [1]
    stack.check(job)
    # The two other deliveries were taken too, and skipped.
    checks.wait_until(
        lambda: sum(w.log.read_text().count("not claimable") for w in workers) >= 2,
        30,
        "both duplicate deliveries skipped",
        services,
    )
