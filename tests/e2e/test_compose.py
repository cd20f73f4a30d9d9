"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the file's shape,
then each Distillery service's own command run here against local PostgreSQL and Redis."""

from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from tests.e2e.conftest import ROOT, Service, free_port, start, wait_for_job, wait_ready
from tests.e2e.jobs import DIGITS_JOB

pytestmark = pytest.mark.services


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_declares_the_distributed_deployment() -> None:
    services = compose()["services"]
    assert set(services) == {"api", "worker", "postgres", "redis", "migrate"}
    assert services["postgres"]["healthcheck"]["test"]
    assert any("/var/lib/postgresql/data" in v for v in services["postgres"]["volumes"])
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    images = {services[s].get("image") for s in ("api", "worker", "migrate")}
    assert images == {"distillery:latest"}
    for name in ("api", "worker"):
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )
    worker_cmd = services["worker"]["command"]
    assert worker_cmd[:5] == ["celery", "-A", "worker.celery_app", "worker", "-Q"]
    assert worker_cmd[worker_cmd.index("-c") + 1] == "1"


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
    services: list[Service], tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    spec = compose()["services"]
    broker = redis_url.rsplit("/", 1)[0] + "/10"  # its own Redis database: the queue is "gpu"
    redis.Redis.from_url(broker).flushdb()
    local = {
        "DISTILLERY_DATABASE_URL": postgres_url,
        "DISTILLERY_BROKER_URL": broker,
        "DISTILLERY_ARTIFACT_URL": str(tmp_path / "artifacts"),
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

    start(services, "worker", spec["worker"]["command"], env("worker"), tmp_path)
    created = httpx.post(f"{url}/v1/jobs", json=DIGITS_JOB)
    assert created.status_code == 201, created.text
    job = wait_for_job(url, created.json()["id"], 240, services)
    assert job["status"] == "succeeded", job["error"]
