"""GET /metrics as an operator reads it: job counts, queue, stage durations, samples/s, HTTP
latency by route template."""

from datetime import datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from app import jobs
from app.db import session_scope
from app.main import create_app
from app.metrics import summed_stage_seconds
from app.models import Job, JobEvent, JobStatus, utcnow
from app.settings import Settings
from tests.conftest import MINIMAL_JOB, RecordingDispatcher
from tests.e2e.conftest import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def submit(client: TestClient) -> str:
    response = client.post("/v1/jobs", json=MINIMAL_JOB)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def claim(settings: Settings, job_id: str, owner: str = "worker-1") -> None:
    with session_scope(settings.database_url) as session:
        assert jobs.claim(session, job_id, owner, lease_seconds=60, max_attempts=3) is not None


def test_jobs_by_status_and_the_queue(client: TestClient, settings: Settings) -> None:
    queued = [submit(client) for _ in range(3)]
    running, cancelled, succeeded = submit(client), submit(client), submit(client)
    claim(settings, running)
    assert client.post(f"/v1/jobs/{cancelled}/cancel").json()["status"] == "cancelled"
    claim(settings, succeeded)
    with session_scope(settings.database_url) as session:
        assert jobs.finish(session, succeeded, "worker-1", JobStatus.SUCCEEDED, result={})
        # The oldest queued job was submitted ten minutes ago.
        session.execute(
            update(Job)
            .where(Job.id == queued[0])
            .values(created_at=utcnow() - timedelta(minutes=10))
        )

    samples = scrape(client)
    assert value(samples, "distillery_database_up") == 1
    counts = {status: value(samples, "distillery_jobs", status=status) for status in JobStatus.ALL}
    expected = {"queued": 3, "running": 1, "succeeded": 1, "cancelled": 1}
    # Every status has a line, 0 when no job has it.
    assert counts == {status: expected.get(status, 0) for status in JobStatus.ALL}
    assert value(samples, "distillery_queue_depth") == 3
    age = value(samples, "distillery_queue_oldest_age_seconds")
    assert age is not None and 600 <= age < 660


def test_an_empty_queue_has_age_zero(client: TestClient) -> None:
    samples = scrape(client)
    assert value(samples, "distillery_queue_depth") == 0
    assert value(samples, "distillery_queue_oldest_age_seconds") == 0


def test_samples_per_second_of_each_running_job(client: TestClient, settings: Settings) -> None:
    job_id, finished = submit(client), submit(client)
    for job in (job_id, finished):
        claim(settings, job)
    with session_scope(settings.database_url) as session:
        for epoch, rate in ((1, 900.0), (2, 1234.5)):
            values = {"loss": 0.5, "samples_per_second": rate}
            jobs.record_epoch(session, job_id, "worker-1", "distill", epoch, values, {})
        jobs.record_epoch(
            session, finished, "worker-1", "distill", 1, {"samples_per_second": 50.0}, {}
        )
        jobs.finish(session, finished, "worker-1", JobStatus.SUCCEEDED, result={})

    samples = scrape(client)
    rates = {
        dict(labels)["job_id"]: v
        for (name, labels), v in samples.items()
        if name == "distillery_training_samples_per_second"
    }
    # The last epoch of the running job; a finished job is no longer shown.
    assert rates == {job_id: 1234.5}
    assert value(samples, "distillery_training_samples_per_second", job_id=job_id, stage="distill")


def test_without_job_labels_no_job_id_is_shown_and_rates_are_summed_per_stage(
    settings: Settings,
) -> None:
    """DISTILLERY_METRICS_JOB_LABELS=false: a scrape names no job (any tenant's), and the
    samples/s gauge is the sum over running jobs, per stage."""
    off = settings.model_copy(update={"metrics_job_labels": False})
    with TestClient(create_app(off, dispatcher=RecordingDispatcher())) as client:
        running = {submit(client): ("distill", 900.0), submit(client): ("distill", 300.0)}
        running[submit(client)] = ("teacher", 100.0)
        for job_id in running:
            claim(settings, job_id)
        with session_scope(settings.database_url) as session:
            for job_id, (stage, rate) in running.items():
                values = {"samples_per_second": rate}
                jobs.record_epoch(session, job_id, "worker-1", stage, 1, values, {})
        text = client.get("/metrics").text
        samples = scrape(client)
    assert not any(job_id in text for job_id in running)
    assert not any("job_id" in dict(labels) for _name, labels in samples)
    name = "distillery_training_samples_per_second"
    assert value(samples, name, stage="distill") == 1200.0
    assert value(samples, name, stage="teacher") == 100.0


def test_stage_durations_over_recently_succeeded_jobs(
    client: TestClient, settings: Settings
) -> None:
    """Two jobs run teacher then distill: 60 s and 100 s of teacher, 30 s and 50 s of distill."""
    start = utcnow() - timedelta(minutes=30)
    for teacher, distill in ((60, 30), (100, 50)):
        job_id = submit(client)
        claim(settings, job_id)
        with session_scope(settings.database_url) as session:
            jobs.set_stage(session, job_id, "worker-1", "teacher", {})
            jobs.set_stage(session, job_id, "worker-1", "distill", {})
            jobs.finish(session, job_id, "worker-1", JobStatus.SUCCEEDED, result={})
            at = {
                "teacher": start,
                "distill": start + timedelta(seconds=teacher),
                "succeeded": start + timedelta(seconds=teacher + distill),
            }
            for message, moment in at.items():
                session.execute(
                    update(JobEvent)
                    .where(JobEvent.job_id == job_id, JobEvent.message == message)
                    .values(created_at=moment)
                )
    # A job still running counts in no duration.
    running = submit(client)
    claim(settings, running)
    with session_scope(settings.database_url) as session:
        jobs.set_stage(session, running, "worker-1", "teacher", {})

    samples = scrape(client)
    assert value(samples, "distillery_stage_duration_jobs", stage="teacher") == 2
    assert (
        value(samples, "distillery_stage_duration_seconds", stage="teacher", quantile="0.5") == 60
    )
    assert value(samples, "distillery_stage_duration_seconds", stage="teacher", quantile="1") == 100
    assert value(samples, "distillery_stage_duration_seconds", stage="distill", quantile="1") == 50


def test_a_stage_retried_sums_its_attempts() -> None:
    t0 = datetime(2026, 1, 1)

    def at(seconds: int) -> datetime:
        return t0 + timedelta(seconds=seconds)

    events = [
        ("job_a", "status", "running", at(0)),
        ("job_a", "stage", "teacher", at(1)),
        ("job_a", "status", "queued again: the worker stopped renewing its lease", at(21)),
        ("job_a", "status", "running", at(30)),
        ("job_a", "stage", "teacher", at(31)),
        ("job_a", "stage", "distill", at(41)),
        ("job_a", "info", "ignored: not a stage or status event", at(45)),
        ("job_a", "status", "succeeded", at(50)),
        ("job_b", "stage", "teacher", at(0)),
        ("job_b", "status", "succeeded", at(5)),
    ]
    rows = [row for row in events if row[1] in ("stage", "status")]
    assert summed_stage_seconds(rows) == {"teacher": [30.0, 5.0], "distill": [9.0]}


def test_latency_histogram_is_by_route_template(client: TestClient) -> None:
    def polls(samples: Samples) -> float:
        labels = {"method": "GET", "route": "/v1/jobs/{job_id}", "status": "200"}
        return value(samples, "distillery_http_request_duration_seconds_count", **labels) or 0

    before = polls(scrape(client))
    job_ids = [submit(client), submit(client)]
    for job_id in job_ids:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    assert client.get("/v1/jobs/job_doesnotexist").status_code == 404
    assert client.get("/no/such/path").status_code == 404

    samples = scrape(client)
    assert polls(samples) == before + 2
    missing = {"method": "GET", "route": "/v1/jobs/{job_id}", "status": "404"}
    assert value(samples, "distillery_http_request_duration_seconds_count", **missing)
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(samples, "distillery_http_request_duration_seconds_count", **unmatched)
    # No series per job id or per raw path.
    routes = {dict(labels).get("route") for (_name, labels) in samples}
    assert not any(job_id in str(route) for route in routes for job_id in job_ids)
    assert "/no/such/path" not in routes


def test_metrics_answer_while_the_database_is_down(tmp_path: Path) -> None:
    # Nothing listens on a port just found free.
    settings = Settings(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
        artifact_url=str(tmp_path / "artifacts"),
        work_dir=str(tmp_path / "work"),
        auto_migrate=False,
    )
    with TestClient(create_app(settings, dispatcher=RecordingDispatcher())) as client:
        samples = scrape(client)
    assert value(samples, "distillery_database_up") == 0
    assert not any(name == "distillery_jobs" for name, _labels in samples)


def test_metrics_can_be_turned_off(settings: Settings) -> None:
    off = settings.model_copy(update={"metrics_enabled": False})
    with TestClient(create_app(off, dispatcher=RecordingDispatcher())) as client:
        response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
