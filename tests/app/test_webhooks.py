"""Webhooks: a job's status changes reach its URL in order, signed with its secret (checked
with the SDK's verify_signature), retried with backoff and given up on, each recorded as an
event; private addresses are refused; the secret is never shown."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import jobs
from app.db import session_scope
from app.main import create_app
from app.models import DEFAULT_TENANT, JobWebhook
from app.settings import Settings
from app.webhooks import PARKED, deliver_due
from distillery import InvalidSignature, verify_signature
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB, RecordingDispatcher

SECRET = "s3cret-s3cret-s3cret"


class Receiver:
    """A real HTTP server on a free port that records each POST and answers with the next of
    `answers` (200 once they run out)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.got = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.got:
                    receiver.received.append((dict(self.headers), body))
                    code = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.got.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/distillery"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self) -> list[str]:
        return [json.loads(body)["data"]["job"]["status"] for _, body in self.received]

    def wait_for(self, count: int, timeout: float = 30) -> None:
        with self.got:
            assert self.got.wait_for(lambda: len(self.received) >= count, timeout), self.received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def hooked(settings: Settings) -> Settings:
    """Webhooks to this machine allowed, retries without waiting."""
    return settings.model_copy(update={"webhook_allow_private": True, "webhook_backoff_seconds": 0})


# Most tests create and cancel jobs through app.jobs, not the API: an app's maintenance thread
# would deliver too (its first pass runs at startup), racing the deliveries a test makes.


def create(settings: Settings, url: str) -> str:
    body = JobCreate.model_validate({**MINIMAL_JOB, "webhook": {"url": url, "secret": SECRET}})
    with session_scope(settings.database_url) as session:
        return jobs.create_job(session, body, tenant=DEFAULT_TENANT)[0].id


def cancel(settings: Settings, job_id: str) -> None:
    with session_scope(settings.database_url) as session:
        jobs.cancel_job(session, job_id, DEFAULT_TENANT)


def webhook_events(settings: Settings, job_id: str) -> list[str]:
    with session_scope(settings.database_url) as session:
        events = jobs.list_events(session, job_id, None, 1000)
        return [e.message for e in events if e.kind == "webhook"]


def test_status_changes_arrive_in_order_and_signed(hooked: Settings, receiver: Receiver) -> None:
    job_id = create(hooked, receiver.url)
    cancel(hooked, job_id)
    assert deliver_due(hooked) == 1  # one event at a time, in order
    assert deliver_due(hooked) == 1
    assert deliver_due(hooked) == 0  # nothing left
    assert receiver.statuses() == ["queued", "cancelled"]
    for headers, body in receiver.received:
        verify_signature(body, headers["Distillery-Signature"], SECRET)
        assert headers["Distillery-Event-Id"] == str(json.loads(body)["id"])
        assert json.loads(body)["data"]["job"]["id"] == job_id
        with pytest.raises(InvalidSignature):
            verify_signature(body + b" ", headers["Distillery-Signature"], SECRET)
        with pytest.raises(InvalidSignature):
            verify_signature(body, headers["Distillery-Signature"], "another secret, long")
    assert webhook_events(hooked, job_id) == [
        f"delivered 'queued' to {receiver.url} (HTTP 200)",
        f"delivered 'cancelled' to {receiver.url} (HTTP 200)",
    ]


def test_the_secret_is_never_shown(hooked: Settings, receiver: Receiver) -> None:
    with TestClient(create_app(hooked, dispatcher=RecordingDispatcher())) as client:
        webhook = {"url": receiver.url, "secret": SECRET}
        created = client.post("/v1/jobs", json={**MINIMAL_JOB, "webhook": webhook})
        assert created.status_code == 201, created.text
        job = client.get(f"/v1/jobs/{created.json()['id']}")
        assert job.json()["spec"]["webhook"] == {"url": receiver.url}
        for response in (created, job, client.get("/v1/jobs?include=spec")):
            assert SECRET not in response.text


def test_a_failed_delivery_is_retried_then_given_up_and_the_next_status_still_goes(
    hooked: Settings, receiver: Receiver
) -> None:
    job_id = create(hooked, receiver.url)
    receiver.answers = [500, 200]
    assert deliver_due(hooked) == 1
    assert deliver_due(hooked) == 1
    assert receiver.statuses() == ["queued", "queued"]
    assert webhook_events(hooked, job_id) == [
        f"delivering 'queued' to {receiver.url} failed (attempt 1 of 8): HTTP 500; retrying in 0 s",
        f"delivered 'queued' to {receiver.url} (HTTP 200)",
    ]

    cancel(hooked, job_id)
    receiver.answers = [503, 503]
    two_tries = hooked.model_copy(update={"webhook_max_attempts": 2})
    assert deliver_due(two_tries) == 1
    assert deliver_due(two_tries) == 1
    assert deliver_due(two_tries) == 0
    assert webhook_events(hooked, job_id)[-1] == (
        f"gave up delivering 'cancelled' to {receiver.url} after 2 attempts: HTTP 503"
    )


def test_a_retry_waits_its_backoff_and_an_unreachable_receiver_is_an_event(
    hooked: Settings, receiver: Receiver
) -> None:
    receiver.server.shutdown()
    receiver.server.server_close()  # nothing listens: connection refused
    job_id = create(hooked, receiver.url)
    patient = hooked.model_copy(update={"webhook_backoff_seconds": 3600})
    assert deliver_due(patient) == 1
    assert deliver_due(patient) == 0  # not due for 10 minutes (the cap)
    (message,) = webhook_events(hooked, job_id)
    assert (
        "failed (attempt 1 of 8): ConnectError" in message and "retrying in 600 s" in message
    )  # capped


def test_the_maintenance_pass_delivers_without_being_asked(
    hooked: Settings, receiver: Receiver
) -> None:
    fast = hooked.model_copy(update={"reaper_interval_seconds": 0.1})
    with TestClient(create_app(fast, dispatcher=RecordingDispatcher())) as client:
        webhook = {"url": receiver.url, "secret": SECRET}
        assert client.post("/v1/jobs", json={**MINIMAL_JOB, "webhook": webhook}).status_code == 201
        receiver.wait_for(1)
    assert receiver.statuses() == ["queued"]


def test_private_addresses_are_refused_unless_allowed(client: TestClient) -> None:
    for url in (
        "http://127.0.0.1:9/x",
        "http://localhost/x",
        "http://10.0.0.7/x",
        "http://[::1]/x",
    ):
        response = client.post(
            "/v1/jobs", json={**MINIMAL_JOB, "webhook": {"url": url, "secret": SECRET}}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == "webhook.url", response.text
    for webhook, needle in (
        ({"url": "ftp://example.com/x", "secret": SECRET}, "http"),
        ({"url": "https://example.com/x", "secret": "short"}, "secret"),
    ):
        response = client.post("/v1/jobs", json={**MINIMAL_JOB, "webhook": webhook})
        assert response.status_code == 422 and needle in response.text, response.text


def test_a_stale_signature_is_refused() -> None:
    from distillery.types.webhooks import signature

    header = signature(SECRET, 1_000_000, b"{}")
    assert verify_signature(b"{}", header, SECRET, now=1_000_100) == 1_000_000
    with pytest.raises(InvalidSignature, match="beyond the tolerance"):
        verify_signature(b"{}", header, SECRET, now=1_000_000 + 301)
    with pytest.raises(InvalidSignature, match="no Distillery-Signature"):
        verify_signature(b"{}", None, SECRET)


def test_a_finished_jobs_webhook_is_parked_once_its_last_status_went(
    hooked: Settings, receiver: Receiver
) -> None:
    job_id = create(hooked, receiver.url)
    cancel(hooked, job_id)
    while deliver_due(hooked):
        pass
    with session_scope(hooked.database_url) as session:
        hook = session.get(JobWebhook, job_id)
        assert hook is not None and hook.next_attempt_at == PARKED


def test_a_url_with_credentials_is_refused(client: TestClient) -> None:
    """The secret has its own field; a password in the URL would be shown in the job's spec and
    in every webhook event."""
    for url in ("https://user:hunter2@example.com/x", "https://hunter2@example.com/x"):
        webhook = {"url": url, "secret": SECRET}
        response = client.post("/v1/jobs", json={**MINIMAL_JOB, "webhook": webhook})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == "webhook.url", response.text
        assert "hunter2" not in response.text
    assert client.get("/v1/jobs").json()["data"] == []
