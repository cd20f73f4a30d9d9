"""Observability of real processes: `distillery serve` with two workers (JSON logs, metrics
added up across workers) and a Celery worker's JSON lines naming the job."""

import json
import secrets
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.dispatch.celery import CeleryDispatcher
from app.main import create_app
from tests.conftest import MINIMAL_JOB, make_settings
from tests.e2e.conftest import Service, free_port, start, wait_ready
from tests.e2e.test_celery import celery_argv, distributed_env


def healthz_count(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_count") and sample.labels.get("route") == "/healthz":
                return sample.value
    return 0.0


def test_serve_with_two_workers_logs_json_and_adds_up_their_metrics(
    services: list[Service], tmp_path: Path
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'distillery.db'}", tmp_path)
    env = {
        "DISTILLERY_DATABASE_URL": settings.database_url,
        "DISTILLERY_ARTIFACT_URL": settings.artifact_url,
        "DISTILLERY_WORK_DIR": settings.work_dir,
        "DISTILLERY_AUTO_MIGRATE": "false",
        "DISTILLERY_LOG_FORMAT": "json",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"]
    api = start(services, "api", argv, env, tmp_path)
    wait_ready(url, api)
    # A new connection each: the two workers share the listening socket.
    for _ in range(20):
        with httpx.Client() as client:
            assert client.get(f"{url}/healthz").status_code == 200
    # No PROMETHEUS_MULTIPROC_DIR given: serve shares a folder of its own between the workers,
    # so whichever worker answers the scrape counts every worker's requests.
    assert [healthz_count(url) for _ in range(4)] == [20.0] * 4
    api.stop()

    lines = [json.loads(line) for line in api.log.read_text().splitlines()]
    messages = [line["message"] for line in lines]
    assert any(m.startswith("Started parent process") for m in messages)  # the supervisor
    assert sum(m == "Application startup complete." for m in messages) == 2
    # No access log: not one line per request.
    assert not any("/healthz" in m for m in messages)


@pytest.mark.services
def test_a_celery_worker_logs_json_with_the_job(
    services: list[Service], tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    queue = f"gpu-test-{secrets.token_hex(4)}"
    env = {
        **distributed_env(postgres_url, redis_url, tmp_path, queue),
        "DISTILLERY_LOG_FORMAT": "json",
    }
    api_settings = make_settings(postgres_url, tmp_path).model_copy(
        update={"broker_url": redis_url, "celery_queue": queue}
    )
    with TestClient(create_app(api_settings, dispatcher=CeleryDispatcher(api_settings))) as api:
        job_id = api.post("/v1/jobs", json=MINIMAL_JOB).json()["id"]
        # Cancelled before any worker runs: the worker's delivery is a skip.
        assert api.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    worker = start(services, "worker", celery_argv(queue), env, tmp_path)
    deadline = time.monotonic() + 60
    skipped: list[dict] = []
    while not skipped and time.monotonic() < deadline:
        # Celery prints a line or two itself (at shutdown): not logged, not JSON.
        lines = [
            json.loads(line) for line in worker.log.read_text().splitlines() if line[:1] == "{"
        ]
        skipped = [line for line in lines if "not claimable" in line["message"]]
        time.sleep(0.2)
    assert skipped, worker.output()
    assert skipped[0]["job_id"] == job_id
