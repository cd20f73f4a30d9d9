"""/docs: off by default (no third-party script on the dashboard's origin); turned on, one
pinned Swagger UI release, integrity-checked, under a Content-Security-Policy. Every answer
carries X-Content-Type-Options: nosniff."""

import re

from fastapi.testclient import TestClient

from app.api import docs
from app.main import create_app
from app.settings import Settings
from tests.conftest import RecordingDispatcher


def test_docs_are_off_by_default_and_the_openapi_document_stays(client: TestClient) -> None:
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "Distillery"


def test_docs_turned_on_load_only_pinned_integrity_checked_files(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"api_docs": True}), RecordingDispatcher())
    with TestClient(app) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        html = page.text
        policy = page.headers["content-security-policy"]
        assert client.get("/docs/init.js").status_code == 200
    external = re.findall(r'(?:src|href)="(https://[^"]+)"', html)
    assert len(external) == 2
    for address in external:
        assert "@5.36.0/" in address  # a pinned release, not a floating major version
        tag = re.search(rf'"{re.escape(address)}"\s+integrity="(sha384-[^"]+)"', html)
        assert tag, f"{address} has no integrity hash"
        assert address in policy  # the policy names each file, not the whole CDN
    assert html.count("<script") == 2
    assert "<script>" not in html  # no inline script: the initialiser is a file of this origin
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert docs.SWAGGER_UI.startswith("https://")


def test_json_answers_and_errors_say_nosniff(client: TestClient) -> None:
    for path in ("/v1/jobs", "/v1/jobs/job_missing", "/healthz", "/openapi.json", "/nowhere"):
        answer = client.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
    dashboard = client.get("/")
    assert dashboard.headers.get_list("x-content-type-options") == ["nosniff"]
