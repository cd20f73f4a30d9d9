"""Webhooks: a job's status changes reach its URL in order, signed with its secret (checked
with the SDK's verify_signature), each describing the job as it was at that change; retried
with backoff and given up on, each recorded as an event; private addresses are refused, in
every spelling and whatever a name resolves to later; the secret is never shown, and a URL
may not carry credentials."""

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import jobs
from app.db import session_scope
from app.main import create_app
from app.models import DEFAULT_TENANT, JobEvent, JobWebhook
from app.settings import Settings
from app.webhooks import PARKED, deliver_due
from distillery import InvalidSignature, verify_signature
from distillery.types import JobCreate
from tests.conftest import MINIMAL_JOB, RecordingDispatcher

SECRET = "s3cret-s3cret-s3cret"


class Receiver:
    """A real HTTP server on a free port that records each POST and answers with the next of
    `answers` (200 once they run out)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.server_names: list[str | None] = []  # the TLS SNI of each handshake
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
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/distillery"
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self) -> list[str]:
        return [job["status"] for job in self.jobs()]

    def jobs(self) -> list[dict[str, Any]]:
        return [json.loads(body)["data"]["job"] for _, body in self.received]

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


# Loopback and private IPv4 addresses, written as IPv4 and inside IPv6 (IPv4-mapped,
# IPv4-compatible, NAT64, NAT64 local-use, 6to4, Teredo with the client 127.0.0.1).
PRIVATE_HOSTS = (
    "127.0.0.1",
    "10.0.0.7",
    "127.1",
    "2130706433",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:10.0.0.7]",
    "[::127.0.0.1]",
    "[::10.0.0.7]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b::a00:7]",
    "[64:ff9b:1::7f00:1]",
    "[2002:7f00:1::]",
    "[2002:c0a8:101::1]",
    "[2001:0:808:808::80ff:fffe]",
)
PUBLIC_HOSTS = ("[::ffff:8.8.8.8]", "[64:ff9b::808:808]", "[2002:808:808::1]")


def test_private_addresses_are_refused_unless_allowed(client: TestClient) -> None:
    for url in ("http://localhost/x", *(f"http://{host}:9/x" for host in PRIVATE_HOSTS)):
        response = client.post(
            "/v1/jobs", json={**MINIMAL_JOB, "webhook": {"url": url, "secret": SECRET}}
        )
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["param"] == "webhook.url", response.text
    # Public IPv4 addresses inside IPv6 are public; a name is resolved at delivery, not here
    # (even one no resolver could look up: a label over 63 characters).
    for host in (*PUBLIC_HOSTS, f"{'a' * 70}.example.com"):
        webhook = {"url": f"http://{host}/x", "secret": SECRET}
        response = client.post("/v1/jobs", json={**MINIMAL_JOB, "webhook": webhook})
        assert response.status_code == 201, (host, response.text)
    for webhook, needle in (
        ({"url": "ftp://example.com/x", "secret": SECRET}, "http"),
        ({"url": "https://example.com:99999/x", "secret": SECRET}, "Port out of range"),
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


class Dns:
    """A stub of name resolution (socket.getaddrinfo) for the names in `answers`: each lookup
    of a name answers the next of its lists of addresses, the last one once the others are used;
    every other name is resolved for real."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.asked: list[str] = []
        self.real = socket.getaddrinfo

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.asked.append(host)
        queue = self.answers[host]
        number = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, number, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, number))
            for a in (queue.pop(0) if len(queue) > 1 else queue[0])
        ]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Dns:
    stub = Dns()
    monkeypatch.setattr(socket, "getaddrinfo", stub.getaddrinfo)
    return stub


def test_a_name_resolving_to_a_private_address_in_any_spelling_is_given_up_on(
    settings: Settings, dns: Dns
) -> None:
    for host in PRIVATE_HOSTS[4:]:  # the IPv6 spellings
        address = host.strip("[]")
        dns.answers["sneaky.example.com"] = [[address]]
        job_id = create(settings, "http://sneaky.example.com:9/x")
        assert deliver_due(settings) == 1
        assert webhook_events(settings, job_id) == [
            "gave up delivering 'queued' to http://sneaky.example.com:9/x after 1 attempt: "
            f"sneaky.example.com resolves to {address}, a private address"
        ]


def test_a_name_rebound_to_loopback_after_the_check_is_not_reached(
    settings: Settings, receiver: Receiver, dns: Dns
) -> None:
    """The delivery connects to the address it checked: a name that answers a public address
    to the check and 127.0.0.1 to the connection (DNS rebinding) never reaches loopback."""
    # example.com's address: public, and nothing answers on the receiver's port there.
    dns.answers["rebind.example.com"] = [["93.184.215.14"], ["127.0.0.1"]]
    job_id = create(settings, f"http://rebind.example.com:{receiver.port}/x")
    quick = settings.model_copy(
        update={"webhook_timeout_seconds": 0.5, "webhook_backoff_seconds": 0}
    )
    assert deliver_due(quick) == 1
    assert receiver.received == []
    assert dns.asked == ["rebind.example.com"]  # resolved once, for the check and the POST
    assert deliver_due(quick) == 1  # resolved again: now 127.0.0.1, refused
    assert receiver.received == []
    failed, gave_up = webhook_events(quick, job_id)
    assert "failed (attempt 1 of 8): Connect" in failed
    assert gave_up.endswith("rebind.example.com resolves to 127.0.0.1, a private address")


def test_a_named_host_is_posted_to_with_its_name(
    hooked: Settings, receiver: Receiver, dns: Dns
) -> None:
    dns.answers["hooks.example.com"] = [["127.0.0.1"]]
    job_id = create(hooked, f"http://hooks.example.com:{receiver.port}/x")
    assert deliver_due(hooked) == 1
    ((headers, _),) = receiver.received
    assert headers["Host"] == f"hooks.example.com:{receiver.port}"
    assert webhook_events(hooked, job_id) == [
        f"delivered 'queued' to http://hooks.example.com:{receiver.port}/x (HTTP 200)"
    ]


def certificate(name: str, folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `name` and its key."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.mark.parametrize("served_name", ["hooks.example.com", "other.example.com"])
def test_https_verifies_the_certificate_against_the_urls_name(
    hooked: Settings, dns: Dns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served_name: str
) -> None:
    """The POST goes to the checked address, but TLS asks for (SNI) and verifies the URL's
    name: a server whose certificate is for another name is not delivered to."""
    cert_file, key_file = certificate(served_name, tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # trust the self-signed certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    receiver = Receiver(tls)
    try:
        dns.answers["hooks.example.com"] = [["127.0.0.1"]]
        url = f"https://hooks.example.com:{receiver.port}/x"
        job_id = create(hooked, url)
        assert deliver_due(hooked) == 1
        (message,) = webhook_events(hooked, job_id)
        assert receiver.server_names == ["hooks.example.com"]
        if served_name == "hooks.example.com":
            assert message == f"delivered 'queued' to {url} (HTTP 200)"
            ((headers, _),) = receiver.received
            assert headers["Host"] == f"hooks.example.com:{receiver.port}"
        else:
            assert receiver.received == []
            assert "failed (attempt 1 of 8): ConnectError" in message, message
            assert "certificate verify failed" in message, message
    finally:
        receiver.server.shutdown()


COMPRESSION = {"param_ratio": 4.5, "size_ratio": 4.4}


def test_each_delivery_describes_the_job_at_its_status_change(
    hooked: Settings, receiver: Receiver
) -> None:
    """Deliveries held until the job succeeded: each still carries the status value and the
    stage, error and compression the job had at that change, not its final ones."""
    job_id = create(hooked, receiver.url)
    owner = jobs.lease_owner()
    with session_scope(hooked.database_url) as session:
        assert jobs.claim(session, job_id, owner, lease_seconds=60, max_attempts=3) is not None
        jobs.set_stage(session, job_id, owner, "distill", {})
        jobs.requeue(session, job_id, owner, reason="the node went away", max_attempts=3)
        assert jobs.claim(session, job_id, owner, lease_seconds=60, max_attempts=3) is not None
        jobs.set_stage(session, job_id, owner, "export", {})
        assert jobs.finish(session, job_id, owner, "succeeded", result={"compression": COMPRESSION})
    while deliver_due(hooked):
        pass
    described = [
        (j["status"], j["stage"], j["error"], j["compression"], j["finished_at"] is not None)
        for j in receiver.jobs()
    ]
    assert described == [
        ("queued", None, None, None, False),
        ("running", None, None, None, False),
        ("queued", "distill", None, None, False),
        ("running", "distill", None, None, False),
        ("succeeded", "export", None, COMPRESSION, True),
    ]
    assert webhook_events(hooked, job_id)[1] == (
        f"delivered 'running' to {receiver.url} (HTTP 200)"
    )


def test_a_failed_jobs_delivery_carries_its_error(hooked: Settings, receiver: Receiver) -> None:
    job_id = create(hooked, receiver.url)
    error = {"code": "worker_error", "message": "boom"}
    with session_scope(hooked.database_url) as session:
        assert jobs.fail_unclaimed(session, job_id, error)
    while deliver_due(hooked):
        pass
    assert [(j["status"], j["error"]) for j in receiver.jobs()] == [
        ("queued", None),
        ("failed", error),
    ]
    with session_scope(hooked.database_url) as session:
        hook = session.get(JobWebhook, job_id)
        assert hook is not None and hook.next_attempt_at == PARKED


def test_a_status_event_written_before_the_job_snapshot_still_delivers(
    hooked: Settings, receiver: Receiver
) -> None:
    """Events stored by an older version carry no snapshot of the job: the status is read off
    the message and the stage off the stage events before it."""
    job_id = create(hooked, receiver.url)
    with session_scope(hooked.database_url) as session:
        for kind, message in (
            ("status", "running (attempt 1)"),
            ("stage", "distill"),
            ("status", "queued again: the worker stopped renewing its lease"),
        ):
            session.add(JobEvent(job_id=job_id, kind=kind, message=message))
        session.commit()
    while deliver_due(hooked):
        pass
    assert [(j["status"], j["stage"]) for j in receiver.jobs()] == [
        ("queued", None),
        ("running", None),
        ("queued", "distill"),
    ]
