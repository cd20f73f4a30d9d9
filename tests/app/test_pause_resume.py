"""POST /v1/jobs/{id}/pause and /resume (issue 6): a queued job pauses at once, a running one
goes through `pausing` until its worker checkpoints; resume queues it again and sends it."""

from fastapi.testclient import TestClient

from app import jobs
from app.db import session_scope
from app.settings import Settings
from tests.conftest import MINIMAL_JOB, RecordingDispatcher


def _submit(client: TestClient) -> str:
    answer = client.post("/v1/jobs", json=MINIMAL_JOB)
    assert answer.status_code == 201
    return str(answer.json()["id"])


def _statuses(client: TestClient, job_id: str) -> list[str]:
    events = client.get(f"/v1/jobs/{job_id}/events").json()["data"]
    return [e["message"] for e in events if e["kind"] == "status"]


def test_a_queued_job_pauses_at_once_and_resumes_to_the_queue(
    client: TestClient, dispatcher: RecordingDispatcher
) -> None:
    job_id = _submit(client)
    paused = client.post(f"/v1/jobs/{job_id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert client.post(f"/v1/jobs/{job_id}/pause").json()["status"] == "paused"  # idempotent
    assert client.get("/v1/jobs", params={"status": "paused"}).json()["data"][0]["id"] == job_id

    dispatcher.sent.clear()
    resumed = client.post(f"/v1/jobs/{job_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
    assert dispatcher.sent == [job_id]  # sent to a worker again at once
    assert client.post(f"/v1/jobs/{job_id}/resume").json()["status"] == "queued"
    assert dispatcher.sent == [job_id]
    assert _statuses(client, job_id) == ["queued", "paused", "queued"]


def test_a_running_job_is_pausing_until_its_worker_stops(
    client: TestClient, settings: Settings
) -> None:
    job_id = _submit(client)
    with session_scope(settings.database_url) as session:
        assert jobs.claim(session, job_id, "w:1", lease_seconds=60, max_attempts=3)
    assert client.post(f"/v1/jobs/{job_id}/pause").json()["status"] == "pausing"
    refused = client.post(f"/v1/jobs/{job_id}/resume")
    assert refused.status_code == 409
    assert "pausing" in refused.json()["error"]["message"]

    with session_scope(settings.database_url) as session:
        assert jobs.mark_paused(session, job_id, "w:1", {"stage": "distill", "fraction": 0.4})
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "paused" and job["attempt"] == 0  # the pause gave the attempt back
    assert client.post(f"/v1/jobs/{job_id}/resume").json()["status"] == "queued"


def test_a_paused_job_can_be_cancelled_and_a_finished_one_not_paused(client: TestClient) -> None:
    job_id = _submit(client)
    client.post(f"/v1/jobs/{job_id}/pause")
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    for action in ("pause", "resume"):
        refused = client.post(f"/v1/jobs/{job_id}/{action}")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "conflict"


def test_an_unknown_job_is_404(client: TestClient) -> None:
    assert client.post("/v1/jobs/job_missing/pause").status_code == 404
    assert client.post("/v1/jobs/job_missing/resume").status_code == 404
