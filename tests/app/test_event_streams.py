"""Event streams (GET /v1/jobs/{id}/events?stream=true): their maximum duration, the cap per
process, Last-Event-ID; and, on a real uvicorn process on PostgreSQL, that open streams hold no
database connection and end when the server is told to stop."""

import json
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest
from fastapi.testclient import TestClient

from app import auth
from app.db import session_scope
from app.main import create_app
from app.settings import Settings
from tests.conftest import MINIMAL_JOB, RecordingDispatcher
from tests.e2e.conftest import Service, free_port, start, uvicorn_argv, wait_ready


def events_of(text: str) -> list[tuple[str, Any]]:
    """(event name, data) of each server-sent event in a stream's text."""
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def app_client(settings: Settings, **changes: Any) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=changes), RecordingDispatcher()))


def test_a_stream_ends_at_its_maximum_duration_naming_the_cursor(settings: Settings) -> None:
    with app_client(settings, event_stream_max_seconds=0.5) as client:
        job_id = client.post("/v1/jobs", json=MINIMAL_JOB).json()["id"]
        response = client.get(f"/v1/jobs/{job_id}/events", params={"stream": "true"})
    events = events_of(response.text)
    assert [name for name, _ in events] == ["status", "reconnect"]
    assert events[-1][1] == {"after": events[0][1]["id"], "reason": "max_duration"}


def test_a_stream_resumes_after_last_event_id(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", json=MINIMAL_JOB).json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel")
    queued = client.get(f"/v1/jobs/{job_id}/events").json()["data"][0]
    response = client.get(
        f"/v1/jobs/{job_id}/events",
        params={"stream": "true"},
        headers={"Last-Event-ID": str(queued["id"])},
    )
    events = events_of(response.text)
    assert [(name, data.get("message")) for name, data in events] == [
        ("status", "cancelled"),
        ("end", None),
    ]
    assert events[-1][1] == {"status": "cancelled"}


def test_streams_past_the_cap_are_503_and_a_finished_stream_frees_its_slot(
    settings: Settings,
) -> None:
    with app_client(settings, max_event_streams=1) as client:
        job_id = client.post("/v1/jobs", json=MINIMAL_JOB).json()["id"]
        client.post(f"/v1/jobs/{job_id}/cancel")
        for _ in range(3):  # each ends (the job has), giving its slot back
            response = client.get(f"/v1/jobs/{job_id}/events", params={"stream": "true"})
            assert response.status_code == 200
    with app_client(settings, max_event_streams=0) as client:
        refused = client.get(f"/v1/jobs/{job_id}/events", params={"stream": "true"})
        assert refused.status_code == 503
        assert refused.headers["retry-after"].isdigit()
        assert refused.json()["error"]["code"] == "unavailable"
        # Plain polling still answers.
        assert client.get(f"/v1/jobs/{job_id}/events").status_code == 200


def test_a_stream_of_a_missing_job_is_404(client: TestClient) -> None:
    response = client.get("/v1/jobs/job_missing/events", params={"stream": "true"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- a real server ----------------------------------------------------------------------------


class OpenStream(threading.Thread):
    """Reads one event stream in the background; `started` once its first event came."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.headers = headers or {}
        self.started = threading.Event()
        self.status: int | None = None
        self.text = ""

    def run(self) -> None:
        try:
            timeout = httpx.Timeout(30, read=120)
            with httpx.stream("GET", self.url, headers=self.headers, timeout=timeout) as response:
                self.status = response.status_code
                for chunk in response.iter_text():
                    self.text += chunk
                    if "\n\n" in self.text:
                        self.started.set()
        except httpx.HTTPError:
            pass
        finally:
            self.started.set()


def open_streams(
    url: str, job_id: str, count: int, headers: dict[str, str] | None = None
) -> list[OpenStream]:
    address = f"{url}/v1/jobs/{job_id}/events?stream=true"
    streams = [OpenStream(address, headers) for _ in range(count)]
    for stream in streams:
        stream.start()
    for stream in streams:
        assert stream.started.wait(60)
        assert stream.status == 200, stream.text
    return streams


@pytest.fixture
def api(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[str, Service]]:
    """uvicorn serving the API on PostgreSQL; jobs go to a broker queue no worker reads, so
    they stay queued and their streams stay open."""
    yield from serve(postgres_url, redis_url, tmp_path)


@pytest.fixture
def api_with_keys(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[str, Service]]:
    """`api` with DISTILLERY_AUTH=required."""
    yield from serve(postgres_url, redis_url, tmp_path, DISTILLERY_AUTH="required")


def serve(
    postgres_url: str, redis_url: str, tmp_path: Path, **more: str
) -> Iterator[tuple[str, Service]]:
    port = free_port()
    env = {
        **more,
        "DISTILLERY_DATABASE_URL": postgres_url,
        "DISTILLERY_BROKER_URL": redis_url,
        "DISTILLERY_CELERY_QUEUE": f"streams-{secrets.token_hex(4)}",
        "DISTILLERY_ARTIFACT_URL": str(tmp_path / "artifacts"),
        "DISTILLERY_WORK_DIR": str(tmp_path / "work"),
        "DISTILLERY_MAX_EVENT_STREAMS": "45",
    }
    started: list[Service] = []
    service = start(started, "api", uvicorn_argv(port), env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, service)
        yield url, service
    finally:
        service.stop()


@pytest.mark.services
def test_open_streams_leave_the_database_to_other_requests(api: tuple[str, Service]) -> None:
    url, _ = api
    job_id = httpx.post(f"{url}/v1/jobs", json=MINIMAL_JOB).json()["id"]
    # More streams than the read pool (10) and the write pool (30) have connections.
    open_streams(url, job_id, 45)
    with httpx.Client(base_url=url, timeout=20) as client:
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        assert client.get("/v1/jobs").status_code == 200
        assert client.get(f"/v1/jobs/{job_id}/events").status_code == 200
        assert client.post("/v1/jobs", json=MINIMAL_JOB).status_code == 201
        # The 46th stream is past DISTILLERY_MAX_EVENT_STREAMS.
        other = client.post("/v1/jobs", json=MINIMAL_JOB).json()["id"]
        refused = client.get(f"/v1/jobs/{other}/events", params={"stream": "true"})
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert refused.json()["error"]["code"] == "unavailable"
        # Cancelling last: the job's end closes its 45 streams, which frees their places.
        assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"


@pytest.mark.services
def test_revoking_a_key_ends_its_open_streams_at_once(
    api_with_keys: tuple[str, Service], postgres_url: str
) -> None:
    url, _ = api_with_keys
    with session_scope(postgres_url) as session:
        row, key = auth.create_key(session, "streams")
        _, other_key = auth.create_key(session, "streams")
    headers = {"Authorization": f"Bearer {key}"}
    job_id = httpx.post(f"{url}/v1/jobs", json=MINIMAL_JOB, headers=headers).json()["id"]
    revoked = open_streams(url, job_id, 3, headers)
    others = open_streams(url, job_id, 1, {"Authorization": f"Bearer {other_key}"})
    with session_scope(postgres_url) as session:
        auth.revoke_key(session, row.id)
    revoked_at = time.monotonic()
    for stream in revoked:
        stream.join(10)
        assert not stream.is_alive(), "a revoked key's stream stayed open"
        assert events_of(stream.text)[-1] == ("reconnect", {"after": ANY, "reason": "unauthorized"})
    assert time.monotonic() - revoked_at < 5
    again = httpx.get(f"{url}/v1/jobs/{job_id}/events?stream=true", headers=headers)
    assert again.status_code == 401
    assert others[0].is_alive()  # another key of the tenant streams on
    httpx.post(f"{url}/v1/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {other_key}"})
    others[0].join(10)
    assert events_of(others[0].text)[-1] == ("end", {"status": "cancelled"})


@pytest.mark.services
def test_sigterm_ends_open_streams_and_the_server(api: tuple[str, Service]) -> None:
    url, service = api
    job_id = httpx.post(f"{url}/v1/jobs", json=MINIMAL_JOB).json()["id"]
    streams = open_streams(url, job_id, 5)
    service.process.send_signal(signal.SIGTERM)
    service.process.wait(timeout=20)  # uvicorn alone would wait for the streams forever
    for stream in streams:
        stream.join(10)
        assert not stream.is_alive(), "a stream stayed open after the server ended"
        last = events_of(stream.text)[-1]
        assert last[0] == "reconnect"
        assert last[1]["reason"] == "shutdown"
        assert last[1]["after"] is not None
