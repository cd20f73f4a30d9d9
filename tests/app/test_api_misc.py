"""Catalog, health and OpenAPI endpoints."""

from fastapi.testclient import TestClient

from app import catalog


def test_catalog_lists_every_name_with_its_schema(client: TestClient) -> None:
    for kind, entries in (
        ("models", catalog.MODELS),
        ("datasets", catalog.DATASETS),
        ("methods", catalog.METHODS),
    ):
        body = client.get(f"/v1/catalog/{kind}").json()
        assert body["object"] == "list"
        assert [e["name"] for e in body["data"]] == list(entries)
        for entry in body["data"]:
            assert entry["params"]["type"] == "object"
    models = {e["name"]: e for e in client.get("/v1/catalog/models").json()["data"]}
    assert models["resnet_cifar"]["params"]["properties"]["depth"]["default"] == 20


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "dispatch": True}


def test_openapi_describes_the_job_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/jobs" in spec["paths"]
    assert "/v1/jobs/{job_id}/artifacts/{name}" in spec["paths"]
    assert "JobCreate" in spec["components"]["schemas"]
