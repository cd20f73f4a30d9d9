"""The poll path (app/reads.py through the API): job, list, events, metrics and artifacts
bodies, `include`, ETags. Each test runs on SQLite and on PostgreSQL."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import jobs
from app.api.jobs import job_out
from app.db import session_scope
from app.models import JobStatus
from app.settings import Settings
from distillery import types as schemas
from tests.conftest import MINIMAL_JOB

OWNER = "worker-1"
RESULT = {"student": {"params": 858, "test_accuracy": 0.78}, "compression": {"kd_gain": 0.04}}


def submit(client: TestClient, **fields: Any) -> str:
    response = client.post("/v1/jobs", json={**MINIMAL_JOB, **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def run(settings: Settings, job_id: str, status: str, **finish: Any) -> None:
    """Take the job through a stage with two epochs to `status` (running: not finished)."""
    with session_scope(settings.database_url) as session:
        jobs.claim(session, job_id, OWNER, lease_seconds=600, max_attempts=3)
        jobs.set_stage(session, job_id, OWNER, "distill", {"stage": "distill", "fraction": 0.5})
        for epoch in (1, 2):
            fraction = 0.5 + epoch / 8
            progress = {"stage": "distill", "epoch": epoch, "epochs": 4, "fraction": fraction}
            values = {"loss": 0.5 / epoch, "accuracy": 0.8}
            jobs.record_epoch(session, job_id, OWNER, "distill", epoch, values, progress)
        if status != JobStatus.RUNNING:
            jobs.finish(session, job_id, OWNER, status, **finish)


def pydantic_body(settings: Settings, job_id: str) -> Any:
    """The job as the response model serialises it (what POST /v1/jobs answers)."""
    with session_scope(settings.database_url) as session:
        return json.loads(job_out(jobs.unscoped_job(session, job_id)).model_dump_json())


@pytest.mark.parametrize(
    ("status", "finish"),
    [
        (JobStatus.RUNNING, {}),
        (JobStatus.SUCCEEDED, {"result": RESULT}),
        (JobStatus.FAILED, {"error": {"code": "nan_loss", "message": "the loss became nan"}}),
    ],
)
def test_a_job_reads_as_the_response_model_writes_it(
    client: TestClient, settings: Settings, status: str, finish: dict[str, Any]
) -> None:
    job_id = submit(client, name="tiny", metadata={"team": "vision", "tags": ["a", "b"]})
    run(settings, job_id, status, **finish)
    body = client.get(f"/v1/jobs/{job_id}").json()
    assert body == pydantic_body(settings, job_id)
    schemas.Job.model_validate(body)
    assert body["status"] == status
    assert body["progress"]["epoch"] == 2


def test_spec_does_not_repeat_name_and_metadata(client: TestClient) -> None:
    created = client.post("/v1/jobs", json={**MINIMAL_JOB, "name": "n", "metadata": {"k": "v"}})
    job = client.get(f"/v1/jobs/{created.json()['id']}").json()
    for body in (created.json(), job):
        assert body["name"] == "n"
        assert body["metadata"] == {"k": "v"}
        assert "metadata" not in body["spec"]
        assert "name" not in body["spec"]
        assert body["spec"]["student"]["arch"] == "mlp"


def test_list_items_carry_spec_result_and_cost_only_when_included(
    client: TestClient, settings: Settings
) -> None:
    job_id = submit(client, metadata={"team": "vision"})
    run(settings, job_id, JobStatus.SUCCEEDED, result=RESULT)
    plain = client.get("/v1/jobs").json()["data"][0]
    assert "spec" not in plain
    assert "result" not in plain
    assert "cost" not in plain
    assert plain["metadata"] == {"team": "vision"}
    assert plain["status"] == "succeeded"
    full = client.get(f"/v1/jobs/{job_id}").json()
    assert full["cost"] is None  # the job ran without estimating itself
    assert plain == {k: v for k, v in full.items() if k not in ("spec", "result", "cost")}
    every = client.get("/v1/jobs", params={"include": ["spec", "result", "cost"]}).json()
    assert every["data"][0] == full
    only_result = client.get("/v1/jobs", params={"include": "result"}).json()["data"][0]
    assert only_result["result"] == RESULT
    assert "spec" not in only_result
    response = client.get("/v1/jobs", params={"include": "everything"})
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "include.0"


def test_a_job_is_not_modified_until_it_changes(client: TestClient) -> None:
    job_id = submit(client)
    first = client.get(f"/v1/jobs/{job_id}")
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    again = client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    # Any of a list of tags, strong or weak, matches; "*" matches whatever the job is.
    for header in (f'"other", {etag.removeprefix("W/")}', "*"):
        response = client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": header})
        assert response.status_code == 304
    client.post(f"/v1/jobs/{job_id}/cancel")
    changed = client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["status"] == "cancelled"
    assert changed.headers["etag"] != etag


def test_a_list_is_not_modified_until_a_job_in_it_changes(client: TestClient) -> None:
    job_id = submit(client)
    etag = client.get("/v1/jobs").headers["etag"]
    assert client.get("/v1/jobs", headers={"If-None-Match": etag}).status_code == 304
    # The same jobs with other fields are another body.
    included = client.get("/v1/jobs", params={"include": "spec"}, headers={"If-None-Match": etag})
    assert included.status_code == 200
    client.post(f"/v1/jobs/{job_id}/cancel")
    assert client.get("/v1/jobs", headers={"If-None-Match": etag}).status_code == 200
    etag = client.get("/v1/jobs").headers["etag"]
    submit(client)
    assert client.get("/v1/jobs", headers={"If-None-Match": etag}).status_code == 200


def test_metrics_events_and_artifacts_of_a_run_job(client: TestClient, settings: Settings) -> None:
    job_id = submit(client)
    run(settings, job_id, JobStatus.RUNNING)
    with session_scope(settings.database_url) as session:
        jobs.add_artifact(
            session, job_id, OWNER, name="student.onnx", fmt="onnx", size=3, sha256="ab", key="k"
        )
    metrics = client.get(f"/v1/jobs/{job_id}/metrics").json()
    schemas.MetricList.model_validate(metrics)
    assert [(m["stage"], m["epoch"], m["values"]["loss"]) for m in metrics["data"]] == [
        ("distill", 1, 0.5),
        ("distill", 2, 0.25),
    ]
    artifacts = client.get(f"/v1/jobs/{job_id}/artifacts").json()
    schemas.ArtifactList.model_validate(artifacts)
    assert [(a["name"], a["bytes"], a["sha256"]) for a in artifacts["data"]] == [
        ("student.onnx", 3, "ab")
    ]
    assert artifacts["data"][0]["created_at"].endswith("Z")
    events = client.get(f"/v1/jobs/{job_id}/events").json()
    schemas.JobEventList.model_validate(events)
    assert [e["kind"] for e in events["data"]] == ["status", "status", "stage"]
    assert events["data"][2]["data"] == {"stage": "distill"}
    page = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 2}).json()
    assert [e["id"] for e in page["data"]] == [e["id"] for e in events["data"][:2]]
    assert page["has_more"] is True


def test_last_event_id_is_a_cursor(client: TestClient) -> None:
    job_id = submit(client)
    client.post(f"/v1/jobs/{job_id}/cancel")
    first, last = client.get(f"/v1/jobs/{job_id}/events").json()["data"]
    after_first = client.get(
        f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(first["id"])}
    ).json()["data"]
    assert after_first == [last]
    # With both, the later cursor wins (EventSource resends the URL it was opened with).
    both = client.get(
        f"/v1/jobs/{job_id}/events",
        params={"after": 0},
        headers={"Last-Event-ID": str(last["id"])},
    )
    assert both.json()["data"] == []
    bad = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x1"})
    assert bad.status_code == 422
    assert bad.json()["error"]["param"] == "Last-Event-ID"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_nan_stored_by_the_json_module_reads_as_null(
    client: TestClient, settings: Settings
) -> None:
    # PostgreSQL refuses NaN in a json column; SQLite keeps what Python's json module wrote.
    job_id = submit(client)
    with session_scope(settings.database_url) as session:
        jobs.claim(session, job_id, OWNER, lease_seconds=600, max_attempts=3)
        progress = {"stage": "distill", "fraction": 0.5}
        values = {"loss": float("nan"), "accuracy": 0.5}
        jobs.record_epoch(session, job_id, OWNER, "distill", 1, values, progress)
    response = client.get(f"/v1/jobs/{job_id}/metrics")
    assert json.loads(response.text)["data"][0]["values"] == {"loss": None, "accuracy": 0.5}
