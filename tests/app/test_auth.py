"""API keys and DISTILLERY_AUTH=required, on SQLite and on PostgreSQL."""

import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

import app.main as app_module
from app import auth
from app.api.deps import SESSION_COOKIE, SESSION_HEADER
from app.db import session_scope
from app.main import create_app
from app.models import DEFAULT_TENANT, ApiKey, Job, utcnow
from app.settings import Settings
from tests.conftest import MINIMAL_JOB, RecordingDispatcher


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth": "required"})


@pytest.fixture
def auth_client(auth_settings: Settings, dispatcher: RecordingDispatcher) -> Iterator[TestClient]:
    with TestClient(create_app(auth_settings, dispatcher=dispatcher)) as test_client:
        yield test_client


def make_key(settings: Settings, tenant: str, name: str | None = None) -> tuple[str, str]:
    """(key id, key)"""
    with session_scope(settings.database_url) as session:
        row, key = auth.create_key(session, tenant, name)
        return row.id, key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def session_cookie(key: str) -> dict[str, str]:
    """What the dashboard sends: its cookie and its header."""
    return {"Cookie": f"{SESSION_COOKIE}={key}", SESSION_HEADER: "1"}


def v1_requests() -> list[tuple[str, str]]:
    """(method, path) of every /v1 operation the app documents, path parameters filled in:
    routers added later (files) are covered without naming them here."""
    found = []
    for path, operations in app_module.app.openapi()["paths"].items():
        # /v1/session is the dashboard's sign-in: it takes the key in its body.
        if path.startswith("/v1") and path != "/v1/session":
            filled = re.sub(r"\{[^}]+\}", "x", path)
            found += [(method.upper(), filled) for method in sorted(operations)]
    return found


V1_REQUESTS = v1_requests()


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert error["message"]


def test_every_v1_route_is_covered() -> None:
    paths = {path for _, path in V1_REQUESTS}
    assert {"/v1/jobs", "/v1/jobs/x", "/v1/jobs/x/artifacts/x", "/v1/catalog/models"} <= paths


@pytest.mark.parametrize(("method", "path"), V1_REQUESTS)
def test_v1_needs_a_live_key(
    auth_client: TestClient, auth_settings: Settings, method: str, path: str
) -> None:
    assert_unauthorized(auth_client.request(method, path))
    assert_unauthorized(auth_client.request(method, path, headers={"Authorization": "Bearer"}))
    assert_unauthorized(auth_client.request(method, path, headers={"Authorization": "Basic eA=="}))
    assert_unauthorized(auth_client.request(method, path, headers=bearer("dk_not-a-real-key")))
    key_id, key = make_key(auth_settings, "acme")
    with session_scope(auth_settings.database_url) as session:
        auth.revoke_key(session, key_id)
    assert_unauthorized(auth_client.request(method, path, headers=bearer(key)))
    # The dashboard's cookie: a revoked key's, or a live one without the dashboard's header.
    assert_unauthorized(auth_client.request(method, path, headers=session_cookie(key)))
    _, live = make_key(auth_settings, "acme")
    without_header = {"Cookie": f"{SESSION_COOKIE}={live}"}
    assert_unauthorized(auth_client.request(method, path, headers=without_header))


def test_a_key_acts_for_its_tenant(auth_client: TestClient, auth_settings: Settings) -> None:
    _, key = make_key(auth_settings, "acme")
    assert auth_client.get("/v1/catalog/models", headers=bearer(key)).status_code == 200
    created = auth_client.post("/v1/jobs", json=MINIMAL_JOB, headers=bearer(key))
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert auth_client.get(f"/v1/jobs/{job_id}", headers=bearer(key)).status_code == 200
    with session_scope(auth_settings.database_url) as session:
        assert session.get(Job, job_id).tenant == "acme"  # type: ignore[union-attr]


def test_revoking_a_key_stops_it_at_once(auth_client: TestClient, auth_settings: Settings) -> None:
    key_id, key = make_key(auth_settings, "acme")
    assert auth_client.get("/v1/jobs", headers=bearer(key)).status_code == 200
    with session_scope(auth_settings.database_url) as session:
        auth.revoke_key(session, key_id)
    assert_unauthorized(auth_client.get("/v1/jobs", headers=bearer(key)))


def test_health_and_openapi_stay_open(auth_client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert auth_client.get(path).status_code == 200, path


def test_openapi_declares_the_bearer_scheme(auth_client: TestClient) -> None:
    spec = auth_client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert [s for s in schemes.values() if s == {**s, "type": "http", "scheme": "bearer"}]
    for path, method in (("/v1/jobs", "post"), ("/v1/jobs/{job_id}", "get")):
        operation = spec["paths"][path][method]
        assert operation["security"], (path, method)
        assert "401" in operation["responses"]
    assert spec["paths"]["/v1/catalog/models"]["get"]["security"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_only_the_hash_and_a_prefix_are_stored(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        row, key = auth.create_key(session, "acme", "laptop")
    assert re.fullmatch(r"dk_[A-Za-z0-9_-]{43}", key)
    with session_scope(settings.database_url) as session:
        stored = session.get(ApiKey, row.id)
        assert stored is not None
        assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert stored.prefix == key[:8]
        assert (stored.tenant, stored.name) == ("acme", "laptop")
        columns = [getattr(stored, c.key) for c in ApiKey.__table__.columns]
        assert not any(isinstance(v, str) and key in v for v in columns)


def test_last_used_is_written_at_most_once_a_minute(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        row, key = auth.create_key(session, "acme")
        assert row.last_used_at is None
    with session_scope(settings.database_url) as session:
        assert auth.authenticate(session, key) is not None
        first = session.get(ApiKey, row.id).last_used_at  # type: ignore[union-attr]
        assert first is not None
    # Used 30 seconds ago: not written again.
    recent = utcnow() - timedelta(seconds=30)
    with session_scope(settings.database_url) as session:
        session.get(ApiKey, row.id).last_used_at = recent  # type: ignore[union-attr]
    with session_scope(settings.database_url) as session:
        assert auth.authenticate(session, key) is not None
    with session_scope(settings.database_url) as session:
        assert session.get(ApiKey, row.id).last_used_at == recent  # type: ignore[union-attr]
    # Used two minutes ago: written.
    old = utcnow() - timedelta(minutes=2)
    with session_scope(settings.database_url) as session:
        session.get(ApiKey, row.id).last_used_at = old  # type: ignore[union-attr]
    with session_scope(settings.database_url) as session:
        assert auth.authenticate(session, key) is not None
    with session_scope(settings.database_url) as session:
        assert session.get(ApiKey, row.id).last_used_at > old  # type: ignore[union-attr, operator]


def test_revoke_is_idempotent(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        row, key = auth.create_key(session, "acme")
        first = auth.revoke_key(session, row.id).revoked_at
        assert first is not None
        assert auth.revoke_key(session, row.id).revoked_at == first
        assert auth.authenticate(session, key) is None
        with pytest.raises(auth.KeyNotFound):
            auth.revoke_key(session, "key_missing")


@pytest.mark.parametrize("name", ["", "a b", "x" * 101, "acme/other", "é"])
def test_tenant_names_are_checked(settings: Settings, name: str) -> None:
    with session_scope(settings.database_url) as session, pytest.raises(ValueError):
        auth.create_key(session, name)


def test_with_auth_off_everything_is_the_default_tenant(
    client: TestClient, settings: Settings
) -> None:
    response = client.post("/v1/jobs", json=MINIMAL_JOB, headers=bearer("dk_ignored"))
    assert response.status_code == 201, response.text
    with session_scope(settings.database_url) as session:
        assert session.get(Job, response.json()["id"]).tenant == DEFAULT_TENANT  # type: ignore[union-attr]


def test_the_async_lookup_answers_like_authenticate(settings: Settings) -> None:
    """The API's requests look keys up with authenticate_async, on the async database."""
    import asyncio

    from app.db_async import open_database

    with session_scope(settings.database_url) as session:
        row, key = auth.create_key(session, "acme")

    def tenant_of(candidate: str) -> str | None:
        async def lookup() -> str | None:
            database = open_database(settings.database_url)
            try:
                return await auth.authenticate_async(database, candidate)
            finally:
                await database.close()

        return asyncio.run(lookup())

    def last_used() -> Any:
        with session_scope(settings.database_url) as session:
            return session.get(ApiKey, row.id).last_used_at  # type: ignore[union-attr]

    assert tenant_of(key) == "acme"
    assert last_used() is not None
    recent = utcnow() - timedelta(seconds=30)
    with session_scope(settings.database_url) as session:
        session.get(ApiKey, row.id).last_used_at = recent  # type: ignore[union-attr]
    assert tenant_of(key) == "acme"
    assert last_used() == recent
    old = utcnow() - timedelta(minutes=2)
    with session_scope(settings.database_url) as session:
        session.get(ApiKey, row.id).last_used_at = old  # type: ignore[union-attr]
    assert tenant_of(key) == "acme"
    assert last_used() > old
    assert tenant_of("dk_unknown") is None
    assert tenant_of("not-a-key") is None
    with session_scope(settings.database_url) as session:
        auth.revoke_key(session, row.id)
    assert tenant_of(key) is None
