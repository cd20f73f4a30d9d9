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
    env = distributed_env(postgres_url, redis_url, tmp_path, queue)
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
