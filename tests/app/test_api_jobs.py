"""The /v1/jobs API on SQLite and on PostgreSQL (each test runs on both)."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import jobs
from app.db import session_scope
from app.models import JobStatus
from app.settings import Settings
from tests.conftest import MINIMAL_JOB

SPEC: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "digits"},
    "teacher": {"arch": "mlp", "params": {"hidden": [64]}, "train": {"epochs": 2}},
    "student": {"arch": "mlp", "params": {"hidden": [8]}},
    "distill": {"epochs": 2},
}


def assert_error(response: Any, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "param"}
    assert body["error"]["message"]
    if param is not None:
        assert body["error"]["param"] == param
    return dict(body["error"])


def test_create_returns_queued_job_with_resolved_spec(client: TestClient, dispatcher: Any) -> None:
    response = client.post("/v1/jobs", json=SPEC)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["id"].startswith("job_")
    assert job["object"] == "job"
    assert job["status"] == "queued"
    assert job["attempt"] == 0
    # Defaults are filled in and echoed back.
    assert job["spec"]["distill"]["temperature"] == 4.0
    assert job["spec"]["distill"]["method"] == "kd"
    assert job["spec"]["teacher"]["train"]["batch_size"] == 128
    assert job["spec"]["dataset"]["options"] == {"layout": "flat"}
    assert job["spec"]["export"] == ["safetensors", "onnx", "torchscript"]
    assert dispatcher.sent == [job["id"]]
    assert client.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]


def test_empty_body_names_every_required_field(client: TestClient) -> None:
    error = assert_error(client.post("/v1/jobs", json={}), 422, "dataset")
    assert error["message"] == "missing required fields: dataset, teacher, student"


def test_minimal_body_gets_every_other_default(client: TestClient) -> None:
    minimal = {
        "dataset": {"name": "digits"},
        "teacher": {"arch": "mlp"},
        "student": {"arch": "mlp"},
    }
    response = client.post("/v1/jobs", json=minimal)
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["teacher"]["source"] == "train"
    assert spec["teacher"]["train"]["epochs"] == 30
    assert spec["baseline"] is True


@pytest.mark.parametrize(
    ("teacher", "param"),
    [
        ({"source": "hub", "arch": "mlp"}, "teacher"),
        ({"source": "onnx"}, "teacher.file_id"),
        ({"source": "weights", "file_id": "file_x"}, "teacher.arch"),
        ({"source": "logits", "file_id": "file_x", "arch": "mlp"}, "teacher.arch"),
    ],
)
def test_teacher_sources_are_checked(client: TestClient, teacher: dict, param: str) -> None:
    assert_error(client.post("/v1/jobs", json={**SPEC, "teacher": teacher}), 422, param)


def test_idempotency_key_replays_and_conflicts(client: TestClient, dispatcher: Any) -> None:
    headers = {"Idempotency-Key": "abc-123"}
    first = client.post("/v1/jobs", json=SPEC, headers=headers)
    again = client.post("/v1/jobs", json=SPEC, headers=headers)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert len(dispatcher.sent) == 1
    other = client.post("/v1/jobs", json={**SPEC, "name": "other"}, headers=headers)
    assert_error(other, 409)


def test_list_is_newest_first_with_cursor_pagination(client: TestClient) -> None:
    ids = [client.post("/v1/jobs", json={**SPEC, "name": f"j{i}"}).json()["id"] for i in range(5)]
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert page["object"] == "list"
    assert [j["id"] for j in page["data"]] == ids[::-1][:2]
    assert page["has_more"] is True
    seen = [j["id"] for j in page["data"]]
    while page["has_more"]:
        page = client.get("/v1/jobs", params={"limit": 2, "after": seen[-1]}).json()
        seen += [j["id"] for j in page["data"]]
    assert seen == ids[::-1]
    queued = client.get("/v1/jobs", params={"status": "queued"}).json()["data"]
    assert len(queued) == 5
    assert client.get("/v1/jobs", params={"status": "failed"}).json()["data"] == []


def test_cancel_queued_job_is_immediate_and_idempotent(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", json=SPEC).json()["id"]
    first = client.post(f"/v1/jobs/{job_id}/cancel")
    assert first.status_code == 200
    assert first.json()["status"] == "cancelled"
    assert first.json()["finished_at"] is not None
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    events = client.get(f"/v1/jobs/{job_id}/events").json()["data"]
    assert [e["message"] for e in events] == ["queued", "cancelled"]


def test_cancel_running_job_asks_the_worker(client: TestClient, settings: Settings) -> None:
    job_id = client.post("/v1/jobs", json=SPEC).json()["id"]
    with session_scope(settings.database_url) as session:
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelling"
    # It only becomes cancelled when the worker stops.
    with session_scope(settings.database_url) as session:
        assert jobs.renew_lease(session, job_id, "w1", 60) == JobStatus.CANCELLING
        assert jobs.finish(session, job_id, "w1", JobStatus.CANCELLED)
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


def test_cancel_finished_job_is_409(client: TestClient, settings: Settings) -> None:
    job_id = client.post("/v1/jobs", json=SPEC).json()["id"]
    with session_scope(settings.database_url) as session:
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        jobs.finish(session, job_id, "w1", JobStatus.SUCCEEDED, result={"ok": True})
    assert_error(client.post(f"/v1/jobs/{job_id}/cancel"), 409)
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"


def test_metrics_events_and_artifacts_of_a_new_job(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", json=SPEC).json()["id"]
    assert client.get(f"/v1/jobs/{job_id}/metrics").json() == {"object": "list", "data": []}
    assert client.get(f"/v1/jobs/{job_id}/artifacts").json() == {"object": "list", "data": []}
    events = client.get(f"/v1/jobs/{job_id}/events").json()
    assert [e["kind"] for e in events["data"]] == ["status"]
    assert_error(client.get(f"/v1/jobs/{job_id}/artifacts/student.onnx"), 404, "name")


def test_event_stream_ends_with_the_job(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", json=SPEC).json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel")
    response = client.get(f"/v1/jobs/{job_id}/events", params={"stream": "true"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: status" in response.text
    assert response.text.rstrip().endswith('data: {"status": "cancelled"}')


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/job_missing",
        "/v1/jobs/job_missing/cancel",
        "/v1/jobs/job_missing/events",
        "/v1/jobs/job_missing/metrics",
        "/v1/jobs/job_missing/artifacts",
        "/v1/jobs/job_missing/artifacts/student.onnx",
        "/v1/nothing-here",
    ],
)
def test_unknown_things_are_404_with_the_error_shape(client: TestClient, path: str) -> None:
    method = client.post if path.endswith("/cancel") else client.get
    assert_error(method(path), 404)


def _with(path: str, value: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(SPEC))
    *parents, leaf = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return spec


MALFORMED = [
    ("unknown top-level field", {**SPEC, "colour": "blue"}, "colour"),
    ("unknown nested field", _with("distill.tempreature", 3), "distill.tempreature"),
    ("epochs 0", _with("distill.epochs", 0), "distill.epochs"),
    ("epochs 10001", _with("teacher.train.epochs", 10_001), "teacher.train.epochs"),
    ("batch size 0", _with("distill.batch_size", 0), "distill.batch_size"),
    ("batch size 65537", _with("distill.batch_size", 65_537), "distill.batch_size"),
    ("temperature 0", _with("distill.temperature", 0), "distill.temperature"),
    ("temperature negative", _with("distill.temperature", -1.0), "distill.temperature"),
    ("lr 0", _with("distill.lr", 0), "distill.lr"),
    ("lr negative", _with("teacher.train.lr", -0.1), "teacher.train.lr"),
    ("val_fraction 0", _with("dataset.val_fraction", 0), "dataset.val_fraction"),
    ("val_fraction 1", _with("dataset.val_fraction", 1), "dataset.val_fraction"),
    ("unknown export format", _with("export", ["onnx", "pickle"]), "export.1"),
    ("unknown arch", _with("student.arch", "transformer9000"), "student.arch"),
    ("bad arch params", _with("teacher.params", {"hidden": [0]}), "teacher.params.hidden.0"),
    ("unknown arch param", _with("student.params", {"width": 3}), "student.params.width"),
    ("unknown dataset", _with("dataset.name", "imagenet"), "dataset.name"),
    ("bad dataset option", _with("dataset.options", {"layout": "3d"}), "dataset.options.layout"),
    ("unknown method", _with("distill.method", "magic"), "distill.method"),
    ("unknown schedule", _with("distill.temperature_schedule", {"kind": "zigzag"}), None),
    ("schedule without end", _with("distill.temperature_schedule", {"kind": "linear"}), None),
    ("both loss weights 0", _with("distill.kd_weight", 0) | {}, None),
    ("temperature over 1000", _with("distill.temperature", 1001), "distill.temperature"),
    (
        "plateau min above max",
        _with("distill.temperature_schedule", {"kind": "plateau", "min_temperature": 30.0}),
        "distill.temperature_schedule.plateau",
    ),
    ("wrong type", _with("seed", "zero"), "seed"),
    ("name too long", {**SPEC, "name": "x" * 201}, "name"),
    ("uploaded dataset", _with("dataset.name", "file:file_123"), "dataset.name"),
    (
        "transfer set is the dataset",
        _with("dataset.transfer", {"name": "digits"}),
        "dataset.transfer",
    ),
    ("transfer set unknown", _with("dataset.transfer", {"name": "nope"}), "dataset.transfer.name"),
]


@pytest.mark.parametrize(("case", "body", "param"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_job_is_422_naming_the_field(
    client: TestClient, case: str, body: dict[str, Any], param: str | None
) -> None:
    if case == "both loss weights 0":
        body["distill"]["ce_weight"] = 0
    error = assert_error(client.post("/v1/jobs", json=body), 422, param)
    assert error["code"] == "invalid_request"


@pytest.mark.parametrize("raw", ["Infinity", "-Infinity", "NaN", "1e999"])
@pytest.mark.parametrize("field", ["temperature", "lr"])
def test_non_finite_numbers_are_422(client: TestClient, raw: str, field: str) -> None:
    required = json.dumps(MINIMAL_JOB)[1:-1]
    body = f'{{{required}, "distill": {{"{field}": {raw}}}}}'
    response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 422, f"distill.{field}")


def test_non_finite_metadata_is_422(client: TestClient) -> None:
    required = json.dumps(MINIMAL_JOB)[1:-1]
    body = f'{{{required}, "metadata": {{"scores": [1.0, NaN]}}}}'
    response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 422, "metadata")


def test_timestamps_are_utc_with_a_zone(client: TestClient) -> None:
    job = client.post("/v1/jobs", json=SPEC).json()
    assert job["created_at"].endswith("Z")


def test_event_cursor_out_of_range_is_422(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", json=SPEC).json()["id"]
    response = client.get(f"/v1/jobs/{job_id}/events", params={"after": 2**63})
    assert_error(response, 422, "after")


def test_invalid_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422)


def test_body_over_one_mebibyte_is_413(client: TestClient) -> None:
    body = {**SPEC, "metadata": {"blob": "x" * (1024 * 1024)}}
    assert_error(client.post("/v1/jobs", json=body), 413)


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Any:
        yield b'{"metadata": {"blob": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}'

    response = client.post(
        "/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"status": "weird"}, "status"),
        ({"after": "job_nope"}, "after"),
    ],
)
def test_bad_list_queries_are_422(client: TestClient, params: dict, param: str) -> None:
    assert_error(client.get("/v1/jobs", params=params), 422, param)


def test_wrong_method_is_405_with_the_error_shape(client: TestClient) -> None:
    assert_error(client.delete("/v1/jobs"), 405)
