"""Distributed mode: uvicorn + PostgreSQL + Redis + a real `celery worker` subprocess."""

import os
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest
from celery import Celery

from tests.e2e.conftest import Service, free_port, start, uvicorn_argv, wait_for_job, wait_ready
from tests.e2e.jobs import DIGITS_JOB, check_downloaded_student

pytestmark = pytest.mark.services


def distributed_env(
    postgres_url: str, redis_url: str, tmp_path: Path, queue: str
) -> dict[str, str]:
    return {
        "DISTILLERY_DATABASE_URL": postgres_url,
        "DISTILLERY_BROKER_URL": redis_url,
        "DISTILLERY_ARTIFACT_URL": str(tmp_path / "artifacts"),
        "DISTILLERY_WORK_DIR": str(tmp_path / "work"),
        "DISTILLERY_CELERY_QUEUE": queue,
    }


def celery_argv(queue: str) -> list[str]:
    """A worker on `queue` (the jobs' queue, or the estimates')."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        queue,
        "-c",
        "1",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]


def test_digits_job_through_celery(
    services: list[Service], tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    queue = f"gpu-test-{secrets.token_hex(4)}"
    # The job estimates itself on the worker, and records what it did beside the estimate.
    env = {
        **distributed_env(postgres_url, redis_url, tmp_path, queue),
        "DISTILLERY_JOB_ESTIMATES": "true",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = start(services, "api", uvicorn_argv(port), env, tmp_path)
    wait_ready(url, api)
    start(services, "worker", celery_argv(queue), env, tmp_path)

    created = httpx.post(f"{url}/v1/jobs", json=DIGITS_JOB)
    assert created.status_code == 201, created.text
    job = wait_for_job(url, created.json()["id"], 240, services)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 1
    check_downloaded_student(url, job, tmp_path)
    estimate, actual = job["cost"]["estimate"], job["cost"]["actual"]
    assert actual["student_steps"] == estimate["work"]["student_steps"] > 0
    assert set(actual["stages"]) == set(estimate["wall_seconds"]["cpu"]["stages"])
    # The worker runs the pool that replaces its exited child at once (celery/celery#9588).
    stats = Celery(broker=redis_url).control.inspect(timeout=10).stats() or {}
    pools = {worker["pool"]["implementation"] for worker in stats.values()}
    assert pools == {"worker.celery_pool:TaskPool"}, stats


def test_estimates_go_to_their_own_queue_and_wait_for_no_job(
    services: list[Service], tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """An estimate is answered by a worker on the estimate queue (through Redis, the result
    backend too), even while the only job worker is busy; with no estimate worker the API
    answers 503 once its wait is over."""
    queue, estimates = f"gpu-test-{secrets.token_hex(4)}", f"estimate-{secrets.token_hex(4)}"
    env = {
        **distributed_env(postgres_url, redis_url, tmp_path, queue),
        "DISTILLERY_CELERY_ESTIMATE_QUEUE": estimates,
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, start(services, "api", uvicorn_argv(port), env, tmp_path))
    start(services, "estimator", celery_argv(estimates), env, tmp_path)
    # A job that waits in the job queue (no job worker): the estimate does not wait for it.
    assert httpx.post(f"{url}/v1/jobs", json=DIGITS_JOB).status_code == 201

    answer = httpx.post(f"{url}/v1/jobs/estimate", json=DIGITS_JOB, timeout=150)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "estimate"
    assert body["work"]["student_steps"] > 0 and body["wall_seconds"]["cpu"]["total"] > 0

    refused = {**DIGITS_JOB, "student": {"arch": "cnn2d", "params": {}}}
    answer = httpx.post(f"{url}/v1/jobs/estimate", json=refused, timeout=150)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["param"] == "student.arch"

    lonely = {**env, "DISTILLERY_CELERY_ESTIMATE_QUEUE": f"nobody-{secrets.token_hex(4)}"}
    lonely["DISTILLERY_ESTIMATE_TIMEOUT_SECONDS"] = "2"
    port = free_port()
    wait_ready(
        f"http://127.0.0.1:{port}", start(services, "api-2", uvicorn_argv(port), lonely, tmp_path)
    )
    answer = httpx.post(f"http://127.0.0.1:{port}/v1/jobs/estimate", json=DIGITS_JOB, timeout=30)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "estimate_unavailable"


def test_a_job_survives_its_worker_being_killed(
    services: list[Service], tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    """Kill the worker mid-job: the lease expires, the reaper requeues the job, a new worker
    resumes it from its checkpoint, and it succeeds on attempt 2."""
    queue = f"gpu-test-{secrets.token_hex(4)}"
    env = {
        **distributed_env(postgres_url, redis_url, tmp_path, queue),
        "DISTILLERY_LEASE_SECONDS": "3",
        "DISTILLERY_REAPER_INTERVAL_SECONDS": "1",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = start(services, "api", uvicorn_argv(port), env, tmp_path)
    wait_ready(url, api)
    first = start(services, "worker-1", celery_argv(queue), env, tmp_path)

    spec = {
        **DIGITS_JOB,
        "teacher": {**DIGITS_JOB["teacher"], "train": {"epochs": 40, "batch_size": 16}},
    }
    job_id = httpx.post(f"{url}/v1/jobs", json=spec).json()["id"]
    deadline = time.monotonic() + 120
    while not httpx.get(f"{url}/v1/jobs/{job_id}/metrics").json()["data"]:
        assert time.monotonic() < deadline, first.output()
        time.sleep(0.2)
    running = httpx.get(f"{url}/v1/jobs/{job_id}").json()
    assert running["status"] == "running" and running["stage"] == "pretrain_teacher"
    assert running["progress"]["epoch"] >= 1 and running["progress"]["epochs"] == 40
    assert 0 < running["progress"]["fraction"] < 1
    # SIGKILL the whole worker (parent and child): nothing gets to clean up.
    for process in psutil.Process(first.process.pid).children(recursive=True):
        process.send_signal(signal.SIGKILL)
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()

    start(services, "worker-2", celery_argv(queue), env, tmp_path)
    job = wait_for_job(url, job_id, 300, services)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 2
    messages = [e["message"] for e in httpx.get(f"{url}/v1/jobs/{job_id}/events").json()["data"]]
    assert "queued again: the worker stopped renewing its lease" in messages
    teacher_epochs = [
        m["epoch"]
        for m in httpx.get(f"{url}/v1/jobs/{job_id}/metrics").json()["data"]
        if m["stage"] == "pretrain_teacher"
    ]
    assert teacher_epochs == list(range(1, 41))  # resumed: each epoch recorded once
