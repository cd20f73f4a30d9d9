"""The dashboard's sign-in (POST/DELETE /v1/session): the key comes back as a cookie no script
can read, counts only with the dashboard's header, and stops at once when revoked."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app import auth
from app.api.deps import SESSION_COOKIE, SESSION_HEADER
from app.db import session_scope
from app.main import create_app
from app.settings import Settings
from tests.app.test_auth import make_key
from tests.conftest import MINIMAL_JOB, RecordingDispatcher

DASHBOARD = {SESSION_HEADER: "1"}


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth": "required"})


@pytest.fixture
def browser(auth_settings: Settings) -> Iterator[TestClient]:
    """A client that keeps cookies, as a browser on the service's origin does."""
    app = create_app(auth_settings, dispatcher=RecordingDispatcher())
    with TestClient(app, base_url="https://distillery.example") as client:
        yield client


def test_signing_in_keeps_the_key_in_an_httponly_cookie(
    browser: TestClient, auth_settings: Settings
) -> None:
    key_id, key = make_key(auth_settings, "acme")
    answer = browser.post("/v1/session", json={"key": key})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"object": "session", "tenant": "acme"}
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite", "path"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/v1" in cookie.lower()
    assert key not in answer.text  # the key is not echoed where a script reads the body

    assert browser.get("/v1/jobs", headers=DASHBOARD).status_code == 200
    job = browser.post("/v1/jobs", json=MINIMAL_JOB, headers=DASHBOARD)
    assert job.status_code == 201
    # Without the dashboard's header the cookie counts for nothing (a cross-site form or
    # image cannot add a header; a cross-origin script would need a CORS preflight).
    assert browser.get("/v1/jobs").status_code == 401

    with session_scope(auth_settings.database_url) as session:
        auth.revoke_key(session, key_id)
    assert browser.get("/v1/jobs", headers=DASHBOARD).status_code == 401


def test_signing_out_forgets_the_cookie(browser: TestClient, auth_settings: Settings) -> None:
    _, key = make_key(auth_settings, "acme")
    assert browser.post("/v1/session", json={"key": key}).status_code == 200
    assert browser.delete("/v1/session").status_code == 204
    assert SESSION_COOKIE not in browser.cookies
    assert browser.get("/v1/jobs", headers=DASHBOARD).status_code == 401


def test_an_unknown_or_revoked_key_is_refused(browser: TestClient, auth_settings: Settings) -> None:
    refused = browser.post("/v1/session", json={"key": "dk_not-a-real-key"})
    assert refused.status_code == 401
    assert refused.json()["error"]["param"] == "key"
    assert "set-cookie" not in refused.headers
    key_id, key = make_key(auth_settings, "acme")
    with session_scope(auth_settings.database_url) as session:
        auth.revoke_key(session, key_id)
    assert browser.post("/v1/session", json={"key": key}).status_code == 401
    assert browser.post("/v1/session", json={}).status_code == 422


def test_with_auth_off_signing_in_keeps_nothing(client: TestClient) -> None:
    answer = client.post("/v1/session", json={"key": "anything"})
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers
