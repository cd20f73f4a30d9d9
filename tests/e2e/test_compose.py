"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the file's shape,
then each Distillery service's own command run here against local PostgreSQL and Redis."""

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from tests.conftest import S3_TEST_ENV
from tests.e2e.conftest import BIN, ROOT, Service, free_port, start, wait_for_job, wait_ready
from tests.e2e.jobs import DIGITS_JOB

pytestmark = pytest.mark.services


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_declares_the_distributed_deployment() -> None:
    services = compose()["services"]
    assert set(services) == {
        "api",
        "worker",
        "estimator",
        "postgres",
        "redis",
        "minio",
        "minio-init",
        "migrate",
    }
    assert services["postgres"]["healthcheck"]["test"]
    assert any("/var/lib/postgresql/data" in v for v in services["postgres"]["volumes"])
    for name in ("worker", "estimator"):  # estimates are measured on the workers' GPU kind
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    images = {services[s].get("image") for s in ("api", "worker", "estimator", "migrate")}
    assert images == {"distillery:latest"}
    assert services["api"]["environment"]["DISTILLERY_AUTH"] == "required"
    for name in ("api", "worker"):
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )
    # Artifacts live in the MinIO bucket that minio-init creates before api and worker start.
    assert services["minio"]["healthcheck"]["test"]
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("api", "worker", "estimator"):
        env = services[name]["environment"]
        assert env["DISTILLERY_ARTIFACT_URL"].startswith("s3://distillery/")
        assert env["DISTILLERY_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
        dependency = services[name]["depends_on"]["minio-init"]
        assert dependency["condition"] == "service_completed_successfully"
    worker_cmd = services["worker"]["command"]
    assert worker_cmd[:5] == ["celery", "-A", "worker.celery_app", "worker", "-Q"]
    assert worker_cmd[worker_cmd.index("-c") + 1] == "1"
    # Estimates have their own queue: a worker busy with a job never holds one up.
    estimator_cmd = services["estimator"]["command"]
    assert estimator_cmd[estimator_cmd.index("-Q") + 1] == "estimate"
    assert worker_cmd[worker_cmd.index("-Q") + 1] == "gpu"


def test_dockerfile_builds_one_slim_non_root_image() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    base = next(line for line in lines if line.startswith("FROM "))
    assert base.endswith("-slim")
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def local_command(service: dict[str, Any], port: int) -> list[str]:
    return [
        str(port) if a == "8000" else "127.0.0.1" if a == "0.0.0.0" else a
        for a in service["command"]
    ]


def test_each_service_command_runs_against_local_services(
    services: list[Service],
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    s3_server: str,
    s3_bucket_url: str,
) -> None:
    spec = compose()["services"]
    broker = redis_url.rsplit("/", 1)[0] + "/10"  # its own Redis database: the queue is "gpu"
    redis.Redis.from_url(broker).flushdb()
    local = {
        "DISTILLERY_DATABASE_URL": postgres_url,
        "DISTILLERY_BROKER_URL": broker,
        # The S3 test server stands in for MinIO.
        "DISTILLERY_ARTIFACT_URL": s3_bucket_url,
        "DISTILLERY_S3_ENDPOINT_URL": s3_server,
        **S3_TEST_ENV,
        "DISTILLERY_WORK_DIR": str(tmp_path / "work"),
    }

    def env(name: str) -> dict[str, str]:
        return {**{k: str(v) for k, v in spec[name].get("environment", {}).items()}, **local}

    migrate = Service("migrate", spec["migrate"]["command"], env("migrate"), tmp_path)
    assert migrate.process.wait(timeout=120) == 0, migrate.output()

    port = free_port()
    api = start(services, "api", local_command(spec["api"], port), env("api"), tmp_path)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, api)
    assert httpx.get(f"{url}/readyz").json()["checks"] == {"database": True, "dispatch": True}

    # The api requires a key: create one the way the README says (`docker compose run --rm api
    # distillery keys create --tenant me`), against the same database.
    assert httpx.get(f"{url}/v1/jobs").status_code == 401
    keys = subprocess.run(
        ["distillery", "keys", "create", "--tenant", "e2e"],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env("api")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert keys.returncode == 0, keys.stderr
    auth = {"Authorization": f"Bearer {keys.stdout.strip().splitlines()[-1]}"}

    start(services, "worker", spec["worker"]["command"], env("worker"), tmp_path)
    created = httpx.post(f"{url}/v1/jobs", json=DIGITS_JOB, headers=auth)
    assert created.status_code == 201, created.text
    job = wait_for_job(url, created.json()["id"], 240, services, auth)
    assert job["status"] == "succeeded", job["error"]

    # The estimator answers POST /v1/jobs/estimate through Redis (its result backend too).
    start(services, "estimator", spec["estimator"]["command"], env("estimator"), tmp_path)
    estimate = httpx.post(f"{url}/v1/jobs/estimate", json=DIGITS_JOB, headers=auth, timeout=120)
    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["wall_seconds"]["cpu"]["total"] > 0
