"""Catalog, health (liveness, readiness) and OpenAPI endpoints."""

import queue
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.dispatch.base import Dispatcher
from app.dispatch.celery import CeleryDispatcher
from app.main import create_app
from app.settings import Settings
from distillery.types import catalog
from tests.conftest import RecordingDispatcher
from tests.e2e.conftest import free_port


def test_catalog_lists_every_name_with_its_schema(client: TestClient) -> None:
    for kind, entries in (
        ("models", catalog.MODELS),
        ("datasets", catalog.DATASETS),
        ("methods", catalog.METHODS),
    ):
        body = client.get(f"/v1/catalog/{kind}").json()
        assert body["object"] == "list"
        assert [e["name"] for e in body["data"]] == list(entries)
        for entry in body["data"]:
            assert entry["params"]["type"] == "object"
    models = {e["name"]: e for e in client.get("/v1/catalog/models").json()["data"]}
    assert models["resnet_cifar"]["params"]["properties"]["depth"]["default"] == 20


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "dispatch": True}


def readiness(settings: Settings, dispatcher: Dispatcher) -> tuple[int, dict]:
    """(status code, body) of GET /readyz on an app with these settings; fails if it takes
    more than 15 s (a prober would give up and see neither ready nor not ready)."""
    answers: queue.Queue[tuple[int, dict]] = queue.Queue()

    def probe() -> None:
        # The app's shutdown may wait on threads stuck on the unavailable service: not timed.
        with TestClient(create_app(settings, dispatcher=dispatcher)) as client:
            response = client.get("/readyz")
            answers.put((response.status_code, response.json()))

    threading.Thread(target=probe, daemon=True).start()
    try:
        return answers.get(timeout=15)
    except queue.Empty:
        raise AssertionError("GET /readyz did not answer within 15 s") from None


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a stopped or wedged server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


@pytest.fixture(params=["down", "hung"])
def unavailable_port(request: pytest.FixtureRequest) -> int:
    """Nothing listens on a port just found free (down), or it never answers (hung)."""
    if request.param == "down":
        return free_port()
    return int(request.getfixturevalue("hung_port"))


def test_ready_with_a_reachable_broker(settings: Settings, redis_url: str) -> None:
    with_broker = settings.model_copy(update={"broker_url": redis_url})
    status, body = readiness(with_broker, CeleryDispatcher(with_broker))
    assert (status, body["checks"]) == (200, {"database": True, "dispatch": True})


def test_not_ready_while_the_broker_is_unavailable(
    settings: Settings, unavailable_port: int
) -> None:
    broker = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{unavailable_port}/0"})
    status, body = readiness(broker, CeleryDispatcher(broker))
    assert status == 503
    assert body == {"status": "unavailable", "checks": {"database": True, "dispatch": False}}


def test_not_ready_while_the_database_is_unavailable(tmp_path: Path, unavailable_port: int) -> None:
    settings = Settings(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{unavailable_port}/distillery",
        artifact_url=str(tmp_path / "artifacts"),
        work_dir=str(tmp_path / "work"),
        auto_migrate=False,
        reaper_interval_seconds=3600,
    )
    status, body = readiness(settings, RecordingDispatcher())
    assert status == 503
    assert body == {"status": "unavailable", "checks": {"database": False, "dispatch": True}}


def test_openapi_describes_the_job_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/jobs" in spec["paths"]
    assert "/v1/jobs/{job_id}/artifacts/{name}" in spec["paths"]
    assert "JobCreate" in spec["components"]["schemas"]
