"""The dashboard's page and assets: served at / from the package, with no API key, nothing
loaded from another origin, and kept out of the API's OpenAPI document."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.dashboard import MEDIA_TYPES
from app.main import create_app
from tests.conftest import RecordingDispatcher, make_settings

ASSETS = Path(__file__).resolve().parents[2] / "app" / "dashboard"


@pytest.fixture(params=["off", "required"])
def page_client(
    request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path
) -> Iterator[TestClient]:
    settings = make_settings(sqlite_url, tmp_path).model_copy(update={"auth": request.param})
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as client:
        yield client


def test_the_page_and_its_assets_are_served_without_a_key(page_client: TestClient) -> None:
    page = page_client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.text == (ASSETS / "index.html").read_text()
    linked = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert {"dashboard/dashboard.js", "dashboard/dashboard.css"} <= set(linked)
    for path in linked:
        if path.startswith("dashboard/"):
            asset = page_client.get(f"/{path}")
            assert asset.status_code == 200, path
            assert asset.headers["content-type"] == MEDIA_TYPES[path.split("/")[1]]
            assert asset.content == (ASSETS / path.split("/")[1]).read_bytes()


def test_assets_answer_304_to_their_etag(page_client: TestClient) -> None:
    first = page_client.get("/dashboard/dashboard.js")
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = page_client.get("/dashboard/dashboard.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert page_client.get("/", headers={"If-None-Match": etag}).status_code == 200


@pytest.mark.parametrize("name", ["index.html", "nope.js", "..%2Fapi%2Fdashboard.py", "%2e%2e"])
def test_only_the_named_assets_are_served(page_client: TestClient, name: str) -> None:
    response = page_client.get(f"/dashboard/{name}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_api_still_needs_its_key(page_client: TestClient) -> None:
    expected = 401 if page_client.app.state.settings.auth == "required" else 200  # type: ignore[attr-defined]
    assert page_client.get("/v1/jobs").status_code == expected


def test_the_dashboard_is_not_part_of_the_api_document(page_client: TestClient) -> None:
    paths = page_client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(path.startswith("/dashboard") for path in paths)


def test_nothing_is_loaded_from_elsewhere() -> None:
    """No CDN, web font or other origin: the only absolute URL is the SVG namespace name."""
    for path in ASSETS.iterdir():
        text = path.read_text()
        urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'`)]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (path.name, urls)
        assert "@import" not in text and "url(" not in text, path.name
