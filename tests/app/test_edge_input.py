"""Input the database cannot store is refused at the edge (422 / 404), never a 500 after a
commit: lone UTF-16 surrogates, NUL characters and absurdly deep JSON (issue 6, item 3)."""

import json

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings
from tests.conftest import MINIMAL_JOB


def post_raw(client: TestClient, fields: str) -> object:
    """POST a job whose JSON text adds `fields` (raw JSON, escapes kept) to the minimal job."""
    required = json.dumps(MINIMAL_JOB)[1:-1]
    body = f"{{{required}, {fields}}}"
    return client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ('"metadata": {"note": "a\\ud800b"}', "metadata"),
        ('"metadata": {"a\\udfffb": 1}', "metadata"),
        ('"name": "x\\u0000y"', "name"),
        ('"metadata": {"note": "x\\u0000y"}', "metadata"),
        ('"student": {"arch": "mlp\\u0000"}', "student.arch"),
    ],
)
def test_text_the_database_cannot_store_is_422_and_creates_nothing(
    client: TestClient, fields: str, param: str
) -> None:
    response = post_raw(client, fields)
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["param"] == param  # type: ignore[attr-defined]
    assert client.get("/v1/jobs").json()["data"] == []


def test_deeply_nested_metadata_is_422(client: TestClient) -> None:
    deep = "[" * 600 + "]" * 600
    response = post_raw(client, f'"metadata": {{"deep": {deep}}}')
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    assert "deep" in response.json()["error"]["message"]  # type: ignore[attr-defined]
    assert client.get("/v1/jobs").json()["data"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/job_%00x",
        "/v1/jobs/job_%00x/events",
        "/v1/jobs/job_%00x/cancel",
        "/v1/files/file_%00x",
    ],
)
def test_a_nul_in_an_id_is_404(client: TestClient, path: str) -> None:
    method = client.post if path.endswith("/cancel") else client.get
    response = method(path)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/v1/jobs?after=job_%00x", "/v1/files?after=file_%00x"])
def test_a_nul_in_a_cursor_is_422(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "after"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_database_down_is_503_with_the_error_shape(settings: Settings) -> None:
    from app.main import create_app
    from tests.conftest import RecordingDispatcher

    # Port 1: nothing listens, so every connection is refused at once.
    down = settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    )
    with TestClient(create_app(down, dispatcher=RecordingDispatcher())) as client:
        for response in (
            client.get("/v1/jobs"),
            client.get("/v1/jobs/job_123"),
            client.post("/v1/jobs", json=MINIMAL_JOB),
            client.get("/v1/files"),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "unavailable"
        assert client.get("/readyz").status_code == 503
