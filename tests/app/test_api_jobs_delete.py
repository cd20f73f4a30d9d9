"""DELETE /v1/jobs/{id}: a finished job's rows, stored artifacts and work files go. Each test
runs on SQLite and on PostgreSQL, except the S3 one (SQLite)."""

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app import jobs
from app.db import session_scope
from app.main import create_app
from app.models import Artifact, Job, JobEvent, JobFile, JobStatus, Metric
from app.settings import Settings
from app.store import make_store
from app.store.base import artifact_key, job_work_prefix
from tests.app.test_api_jobs import SPEC, assert_error
from tests.app.test_tenants import make_app, tenant
from tests.conftest import RecordingDispatcher, make_settings


def ran(settings: Settings, client: TestClient, job_id: str, status: str) -> Path:
    """Let `job_id` run to `status` as a worker would: a metric, a stored artifact, a file
    link and a work folder. Returns the work folder."""
    source = settings.work_root.parent / f"{job_id}.onnx"
    source.write_bytes(b"onnx bytes")
    key = artifact_key(job_id, "student.onnx")
    size, digest = client.app.state.store.put_file(key, source)  # type: ignore[attr-defined]
    work = settings.work_root / "jobs" / job_id
    work.mkdir(parents=True)
    (work / "student.ckpt").write_bytes(b"checkpoint")
    with session_scope(settings.database_url) as session:
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
        session.add(JobFile(job_id=job_id, file_id="file_abc", role="dataset"))
        session.commit()
        jobs.record_epoch(session, job_id, "w1", "distill", 1, {"loss": 0.5}, {"fraction": 0.5})
        jobs.add_artifact(
            session,
            job_id,
            "w1",
            name="student.onnx",
            fmt="onnx",
            size=size,
            sha256=digest,
            key=key,
        )
        jobs.finish(session, job_id, "w1", status)
    return work


def rows_of(settings: Settings, job_id: str) -> dict[str, int]:
    with session_scope(settings.database_url) as session:
        return {
            table.__tablename__: session.scalar(
                select(func.count()).select_from(table).where(column == job_id)
            )
            or 0
            for table, column in (
                (Job, Job.id),
                (JobEvent, JobEvent.job_id),
                (Metric, Metric.job_id),
                (Artifact, Artifact.job_id),
                (JobFile, JobFile.job_id),
            )
        }


def test_deleting_a_finished_job_removes_its_rows_artifacts_and_work(
    client: TestClient, settings: Settings
) -> None:
    doomed, kept = (client.post("/v1/jobs", json=SPEC).json()["id"] for _ in range(2))
    work = ran(settings, client, doomed, JobStatus.SUCCEEDED)
    ran(settings, client, kept, JobStatus.FAILED)
    assert all(rows_of(settings, doomed).values())

    response = client.delete(f"/v1/jobs/{doomed}")
    assert response.status_code == 204 and response.content == b""
    assert_error(client.get(f"/v1/jobs/{doomed}"), 404)
    assert rows_of(settings, doomed) == dict.fromkeys(rows_of(settings, doomed), 0)
    assert not (settings.artifact_root / "jobs" / doomed).exists()
    assert not work.exists()
    assert [j["id"] for j in client.get("/v1/jobs").json()["data"]] == [kept]
    # The other job keeps everything.
    assert all(rows_of(settings, kept).values())
    assert client.get(f"/v1/jobs/{kept}/artifacts/student.onnx").content == b"onnx bytes"
    # Gone is gone: deleting again is 404.
    assert_error(client.delete(f"/v1/jobs/{doomed}"), 404, "id")


def test_a_job_that_has_not_finished_is_409_until_it_has(
    client: TestClient, settings: Settings
) -> None:
    job_id = client.post("/v1/jobs", json=SPEC).json()["id"]
    queued = assert_error(client.delete(f"/v1/jobs/{job_id}"), 409)
    assert queued["code"] == "conflict" and "cancel it first" in queued["message"]
    with session_scope(settings.database_url) as session:
        jobs.claim(session, job_id, "w1", lease_seconds=60, max_attempts=3)
    assert "cancel it first" in assert_error(client.delete(f"/v1/jobs/{job_id}"), 409)["message"]
    client.post(f"/v1/jobs/{job_id}/cancel")
    cancelling = assert_error(client.delete(f"/v1/jobs/{job_id}"), 409)
    assert "wait until it is cancelled" in cancelling["message"]
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelling"
    with session_scope(settings.database_url) as session:
        jobs.finish(session, job_id, "w1", JobStatus.CANCELLED)
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204


def test_another_tenants_job_is_404_like_a_missing_one(settings: Settings) -> None:
    with make_app(settings) as client:
        acme, globex = tenant(settings, client, "acme"), tenant(settings, client, "globex")
        job_id = acme.create().json()["id"]
        acme.post(f"/v1/jobs/{job_id}/cancel")
        theirs = client.delete(f"/v1/jobs/{job_id}", headers=globex.headers)
        missing = client.delete("/v1/jobs/job_" + "0" * 24, headers=globex.headers)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
        assert acme.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
        assert client.delete(f"/v1/jobs/{job_id}", headers=acme.headers).status_code == 204


def test_an_idempotency_key_of_a_deleted_job_creates_a_new_job(client: TestClient) -> None:
    key = {"Idempotency-Key": "nightly-42"}
    first = client.post("/v1/jobs", json=SPEC, headers=key).json()["id"]
    client.post(f"/v1/jobs/{first}/cancel")
    assert client.delete(f"/v1/jobs/{first}").status_code == 204

    # The key went with the job: the same request is a new job, with a history of its own.
    again = client.post("/v1/jobs", json=SPEC, headers=key)
    assert again.status_code == 201
    second = again.json()["id"]
    assert second != first and again.json()["status"] == "queued"
    assert [e["message"] for e in client.get(f"/v1/jobs/{second}/events").json()["data"]] == [
        "queued"
    ]
    assert_error(client.get(f"/v1/jobs/{first}"), 404)
    # ... and from then on it replays that new job, as any key does.
    replay = client.post("/v1/jobs", json=SPEC, headers=key)
    assert (replay.status_code, replay.json()["id"]) == (200, second)


def test_deleting_removes_the_jobs_objects_from_s3(
    sqlite_url: str, tmp_path: Path, s3_server: str, s3_bucket_url: str
) -> None:
    settings = make_settings(sqlite_url, tmp_path).model_copy(
        update={"artifact_url": s3_bucket_url, "s3_endpoint_url": s3_server}
    )
    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as client:
        doomed, kept = (client.post("/v1/jobs", json=SPEC).json()["id"] for _ in range(2))
        for job_id in (doomed, kept):
            ran(settings, client, job_id, JobStatus.SUCCEEDED)
            # A work file a job resumed on another host would have left.
            checkpoint = settings.work_root / "jobs" / job_id / "student.ckpt"
            store.put_file(job_work_prefix(job_id) + "student.ckpt", checkpoint)
        assert client.delete(f"/v1/jobs/{doomed}").status_code == 204
    assert store.list_keys(f"jobs/{doomed}/") == []
    # The other job keeps its artifact. (Its left-over work file may be gone too: the API's
    # housekeeping removes a succeeded job's work files, and it runs when the API starts.)
    kept_keys = store.list_keys("jobs/")
    assert f"jobs/{kept}/student.onnx" in kept_keys
    assert all(key.startswith(f"jobs/{kept}/") for key in kept_keys)
