"""What every fault test checks at the end, the way a user would through the API: one final
status, every epoch's metrics exactly once, and the artifacts of a succeeded job intact."""

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from tests.e2e.conftest import Service

FINAL_STATUSES = ("succeeded", "failed", "cancelled")
# A status event that ends the job: "succeeded", "failed: ...", "cancelled (worker stopped)".
FINAL_EVENT = re.compile(r"(succeeded|failed|cancelled)\b")
ATTEMPT_EVENT = re.compile(r"running \(attempt (\d+)\)")

T = TypeVar("T")


def logs(services: list[Service]) -> str:
    return "\n".join(f"--- {s.name}\n{s.output()}" for s in services)


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    services: list[Service],
    interval: float = 0.2,
) -> T:
    """Poll `condition` until it returns something truthy; fail with the services' logs."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s\n{logs(services)}")
        time.sleep(interval)


def read(url: str, path: str) -> Any:
    """GET a JSON resource; None while the API cannot answer (it may be down, or its
    database unreachable: that is the fault under test, not a failure of it)."""
    try:
        response = httpx.get(f"{url}{path}", timeout=10)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


def wait_for_final(url: str, job_id: str, timeout: float, services: list[Service]) -> dict:
    def final() -> dict | None:
        job = read(url, f"/v1/jobs/{job_id}")
        return job if job is not None and job["status"] in FINAL_STATUSES else None

    return wait_until(final, timeout, f"job {job_id} to finish", services)


def events(url: str, job_id: str) -> list[dict]:
    response = httpx.get(f"{url}/v1/jobs/{job_id}/events", params={"limit": 1000}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body["has_more"]
    return list(body["data"])


def status_messages(url: str, job_id: str) -> list[str]:
    return [e["message"] for e in events(url, job_id) if e["kind"] == "status"]


def attempts_started(url: str, job_id: str) -> list[int]:
    """The attempt numbers of the job's "running (attempt N)" events, in order."""
    return [
        int(match.group(1))
        for message in status_messages(url, job_id)
        if (match := ATTEMPT_EVENT.fullmatch(message))
    ]


def assert_one_final_status(url: str, job: dict) -> None:
    """The job ended once: one final status event, the last status event, matching the job."""
    messages = status_messages(url, job["id"])
    finals = [m for m in messages if FINAL_EVENT.match(m)]
    assert len(finals) == 1, messages
    assert messages[-1] == finals[0], messages
    final = FINAL_EVENT.match(finals[0])
    assert final is not None and final.group(1) == job["status"], (job["status"], messages)
    assert job["finished_at"] is not None


def assert_metrics_intact(url: str, job: dict) -> None:
    """Each stage's epochs recorded once each, 1, 2, ... with none missing; all of them when
    the job succeeded."""
    response = httpx.get(f"{url}/v1/jobs/{job['id']}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    by_stage: dict[str, list[int]] = {}
    for row in response.json()["data"]:
        by_stage.setdefault(row["stage"], []).append(row["epoch"])
    for stage, epochs in by_stage.items():
        assert epochs == list(range(1, len(epochs) + 1)), (stage, epochs)
    if job["status"] == "succeeded":
        spec = job["spec"]
        expected = {
            "pretrain_teacher": spec["teacher"]["train"]["epochs"],
            "distill": spec["distill"]["epochs"],
        }
        if spec["baseline"]:
            expected["baseline"] = spec["distill"]["epochs"]
        assert {stage: len(epochs) for stage, epochs in by_stage.items()} == expected


def assert_artifacts_intact(url: str, job: dict, names: set[str]) -> None:
    """Every artifact listed once, downloadable, with the listed size and sha256."""
    response = httpx.get(f"{url}/v1/jobs/{job['id']}/artifacts", timeout=10)
    assert response.status_code == 200, response.text
    listing = response.json()["data"]
    assert sorted(a["name"] for a in listing) == sorted(names)
    for artifact in listing:
        download = httpx.get(f"{url}/v1/jobs/{job['id']}/artifacts/{artifact['name']}", timeout=30)
        assert download.status_code == 200, (artifact["name"], download.text)
        assert len(download.content) == artifact["bytes"], artifact
        assert hashlib.sha256(download.content).hexdigest() == artifact["sha256"], artifact


def assert_job_intact(url: str, job: dict, artifacts: set[str]) -> None:
    """One final status and intact metrics; for a succeeded job, its artifacts too."""
    assert_one_final_status(url, job)
    assert_metrics_intact(url, job)
    if job["status"] == "succeeded":
        assert_artifacts_intact(url, job, artifacts)
