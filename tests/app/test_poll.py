"""The poll routes' lighter serving (app/api/poll.py): documented as every other route, with
the same tenant check."""

from typing import Any

import pytest
from fastapi import APIRouter, Request, Response
from fastapi.testclient import TestClient

from app.api.poll import PollRoute

POLL_PATHS = [
    "/v1/jobs",
    "/v1/jobs/{job_id}",
    "/v1/jobs/{job_id}/events",
    "/v1/jobs/{job_id}/metrics",
    "/v1/jobs/{job_id}/artifacts",
]


def test_the_openapi_document_describes_the_poll_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in POLL_PATHS:
        operation = spec["paths"][path]["get"]
        assert operation["security"], path
        assert {"401", "404", "422"} <= set(operation["responses"]), path
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema["$ref"].startswith("#/components/schemas/"), path
    job = spec["paths"]["/v1/jobs/{job_id}"]["get"]
    assert [p["name"] for p in job["parameters"]] == ["job_id", "If-None-Match"]
    assert "304" in job["responses"]
    listing = spec["paths"]["/v1/jobs"]["get"]
    names = [p["name"] for p in listing["parameters"]]
    assert {"status", "limit", "after", "include", "If-None-Match"} <= set(names)
    events = spec["paths"]["/v1/jobs/{job_id}/events"]["get"]
    assert "Last-Event-ID" in [p["name"] for p in events["parameters"]]
    item = spec["components"]["schemas"]["JobListItem"]
    assert "spec" not in item.get("required", [])
    assert "result" not in item.get("required", [])


def test_a_poll_route_takes_only_the_request_and_path_parameters() -> None:
    router = APIRouter()

    async def with_query(job_id: str, request: Request, limit: int = 1) -> Response:
        return Response()

    async def fine(job_id: str, request: Request) -> Response:
        return Response(job_id)

    with pytest.raises(TypeError, match="PollRoute"):
        router.add_api_route("/{job_id}", with_query, route_class_override=PollRoute)
    router.add_api_route("/{job_id}", fine, route_class_override=PollRoute)


def test_poll_routes_check_the_key_like_every_route(settings: Any) -> None:
    from app.main import create_app
    from tests.conftest import RecordingDispatcher

    required = settings.model_copy(update={"auth": "required"})
    with TestClient(create_app(required, RecordingDispatcher())) as client:
        for path in POLL_PATHS:
            response = client.get(path.replace("{job_id}", "job_x"))
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
