"""The embedded default: one uvicorn process, SQLite, the in-process runner."""

from pathlib import Path

import httpx

from tests.e2e.conftest import Service, embedded_service, wait_for_job
from tests.e2e.jobs import DIGITS_JOB, check_downloaded_student


def test_digits_job_from_submit_to_downloaded_student(
    services: list[Service], tmp_path: Path
) -> None:
    url = embedded_service(services, tmp_path)

    created = httpx.post(f"{url}/v1/jobs", json=DIGITS_JOB, headers={"Idempotency-Key": "e2e-1"})
    assert created.status_code == 201, created.text
    job = wait_for_job(url, created.json()["id"], 240, services)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["fraction"] == 1.0

    events = httpx.get(f"{url}/v1/jobs/{job['id']}/events").json()["data"]
    assert [e["message"] for e in events if e["kind"] == "stage"] == [
        "validate",
        "pretrain_teacher",
        "soft_labels",
        "baseline",
        "distill",
        "evaluate",
        "frontier",
        "export",
    ]
    metrics = httpx.get(f"{url}/v1/jobs/{job['id']}/metrics").json()["data"]
    assert [m["epoch"] for m in metrics if m["stage"] == "distill"] == [1, 2, 3, 4, 5, 6]
    assert all(m["values"]["temperature"] == 3.0 for m in metrics if m["stage"] == "distill")
    check_downloaded_student(url, job, tmp_path)
