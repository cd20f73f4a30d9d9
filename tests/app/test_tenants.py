"""Tenants: each sees only its own jobs; idempotency keys and job limits are per tenant.
Each test runs on SQLite and on PostgreSQL."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import auth, jobs
from app.db import session_scope
from app.main import create_app
from app.models import JobStatus
from app.settings import Settings
from app.store.base import artifact_key
from tests.conftest import MINIMAL_JOB, RecordingDispatcher


class Tenant:
    """A client that sends one tenant's key."""

    def __init__(self, client: TestClient, name: str, key: str) -> None:
        self.client, self.name = client, name
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers, **kw)

    def post(self, path: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.post(path, headers={**self.headers, **(headers or {})}, **kw)

    def create(self, headers: dict[str, str] | None = None, **changes: Any) -> Any:
        return self.post("/v1/jobs", json={**MINIMAL_JOB, **changes}, headers=headers)


def make_app(settings: Settings, **changes: Any) -> TestClient:
    updated = settings.model_copy(update={"auth": "required", **changes})
    return TestClient(create_app(updated, dispatcher=RecordingDispatcher()))


def tenant(settings: Settings, client: TestClient, name: str) -> Tenant:
    with session_scope(settings.database_url) as session:
        _, key = auth.create_key(session, name)
    return Tenant(client, name, key)


@pytest.fixture
def auth_client(settings: Settings) -> Iterator[TestClient]:
    with make_app(settings) as client:
        yield client


@pytest.fixture
def acme(settings: Settings, auth_client: TestClient) -> Tenant:
    return tenant(settings, auth_client, "acme")


@pytest.fixture
def globex(settings: Settings, auth_client: TestClient) -> Tenant:
    return tenant(settings, auth_client, "globex")


def finished_job_with_artifact(settings: Settings, owner: Tenant, tmp_path: Path) -> str:
    """A job of `owner` that ran: an epoch of metrics and a stored artifact."""
    job_id = str(owner.create().json()["id"])
    source = tmp_path / "student.onnx"
    source.write_bytes(b"onnx bytes")
    key = artifact_key(job_id, "student.onnx")
    size, digest = owner.client.app.state.store.put_file(key, source)  # type: ignore[attr-defined]
    with session_scope(settings.database_url) as session:
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        jobs.record_epoch(session, job_id, "w1", "distill", 1, {"loss": 0.5}, {"fraction": 0.5})
        jobs.add_artifact(
            session,
            job_id,
            "w1",
            name="student.onnx",
            fmt="onnx",
            size=size,
            sha256=digest,
            key=key,
        )
        jobs.finish(session, job_id, "w1", JobStatus.SUCCEEDED, result={"ok": True})
    return job_id


def test_another_tenants_job_is_404_like_a_missing_one(
    settings: Settings, acme: Tenant, globex: Tenant, tmp_path: Path
) -> None:
    job_id = finished_job_with_artifact(settings, acme, tmp_path)
    suffixes = ["", "/events", "/metrics", "/artifacts", "/artifacts/student.onnx"]
    for suffix in suffixes:
        assert acme.get(f"/v1/jobs/{job_id}{suffix}").status_code == 200, suffix
    assert acme.get(f"/v1/jobs/{job_id}/metrics").json()["data"]
    assert acme.get(f"/v1/jobs/{job_id}/artifacts/student.onnx").content == b"onnx bytes"
    missing = "job_" + "0" * 24
    for suffix in [*suffixes, "/events?stream=true"]:
        theirs = globex.get(f"/v1/jobs/{job_id}{suffix}")
        nobody = globex.get(f"/v1/jobs/{missing}{suffix}")
        assert theirs.status_code == nobody.status_code == 404, suffix
        assert theirs.json() == {
            "error": {**nobody.json()["error"], "message": f"no job {job_id!r}"}
        }, suffix
        assert nobody.json()["error"]["message"] == f"no job {missing!r}"
    assert globex.post(f"/v1/jobs/{job_id}/cancel").status_code == 404


def test_another_tenant_cannot_cancel(acme: Tenant, globex: Tenant) -> None:
    job_id = acme.create().json()["id"]
    refused = globex.post(f"/v1/jobs/{job_id}/cancel")
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    assert acme.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"


def test_lists_hold_only_the_tenants_jobs(acme: Tenant, globex: Tenant) -> None:
    mine = [acme.create(name=f"a{i}").json()["id"] for i in range(3)]
    theirs = [globex.create(name=f"g{i}").json()["id"] for i in range(2)]
    assert [j["id"] for j in acme.get("/v1/jobs").json()["data"]] == mine[::-1]
    assert [j["id"] for j in globex.get("/v1/jobs").json()["data"]] == theirs[::-1]
    page = acme.get("/v1/jobs", params={"limit": 1, "after": mine[2]}).json()
    assert [j["id"] for j in page["data"]] == [mine[1]]
    # The cursor must be the tenant's own job.
    cursor = acme.get("/v1/jobs", params={"after": theirs[0]})
    assert cursor.status_code == 422
    assert cursor.json()["error"]["param"] == "after"


def test_idempotency_keys_are_per_tenant(acme: Tenant, globex: Tenant) -> None:
    key = {"Idempotency-Key": "nightly-1"}
    first = acme.create(headers=key)
    other = globex.create(headers=key)
    assert first.status_code == other.status_code == 201
    assert first.json()["id"] != other.json()["id"]
    replay = acme.create(headers=key)
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    assert [j["id"] for j in globex.get("/v1/jobs").json()["data"]] == [other.json()["id"]]


def test_an_empty_idempotency_key_is_422(client: TestClient) -> None:
    response = client.post("/v1/jobs", json=MINIMAL_JOB, headers={"Idempotency-Key": ""})
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "Idempotency-Key")
    too_long = client.post("/v1/jobs", json=MINIMAL_JOB, headers={"Idempotency-Key": "k" * 256})
    assert too_long.json()["error"]["param"] == "Idempotency-Key"


def assert_rate_limited(response: Any, message: str) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) > 0
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert message in error["message"]


def test_queued_job_limit(settings: Settings) -> None:
    with make_app(settings, tenant_max_queued_jobs=2) as client:
        acme, globex = tenant(settings, client, "acme"), tenant(settings, client, "globex")
        assert acme.create(headers={"Idempotency-Key": "one"}).status_code == 201
        assert acme.create().status_code == 201
        assert_rate_limited(acme.create(), "tenant 'acme' has 2 queued jobs (limit 2)")
        # A replay of an existing job is not a new job.
        assert acme.create(headers={"Idempotency-Key": "one"}).status_code == 200
        # Other tenants have their own limit.
        assert globex.create().status_code == 201
        # A cancelled job leaves the queue.
        job_id = acme.get("/v1/jobs").json()["data"][0]["id"]
        assert acme.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
        assert acme.create().status_code == 201
        assert len(acme.get("/v1/jobs", params={"status": "queued"}).json()["data"]) == 2


def test_running_job_limit_counts_cancelling_jobs(settings: Settings) -> None:
    with make_app(settings, tenant_max_running_jobs=1) as client:
        acme = tenant(settings, client, "acme")
        job_id = acme.create().json()["id"]
        with session_scope(settings.database_url) as session:
            jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        assert_rate_limited(acme.create(), "tenant 'acme' has 1 running jobs (limit 1)")
        assert acme.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelling"
        assert_rate_limited(acme.create(), "(limit 1)")
        with session_scope(settings.database_url) as session:
            assert jobs.finish(session, job_id, "w1", JobStatus.CANCELLED)
        assert acme.create().status_code == 201


def test_limits_apply_with_auth_off_too(settings: Settings) -> None:
    updated = settings.model_copy(update={"tenant_max_queued_jobs": 1})
    with TestClient(create_app(updated, dispatcher=RecordingDispatcher())) as client:
        assert client.post("/v1/jobs", json=MINIMAL_JOB).status_code == 201
        refused = client.post("/v1/jobs", json=MINIMAL_JOB)
        assert_rate_limited(refused, "tenant 'default' has 1 queued jobs (limit 1)")
