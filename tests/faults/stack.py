"""One deployment under test: its environment, its API address and the processes started for
it (API, Celery workers), with leases and maintenance short enough for a test to see recovery.
"""

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Service, free_port, start, uvicorn_argv, wait_ready
from tests.e2e.test_celery import celery_argv, distributed_env
from tests.faults import checks
from tests.faults.jobs import ARTIFACTS

# A worker that stops renewing its lease is presumed dead after 10 s; maintenance (reaping,
# re-sending) runs every second. Not shorter: a job process starts renewing its lease only
# once it has imported the pipeline (torch: seconds on a loaded 2-core machine).
FAST_RECOVERY = {
    "DISTILLERY_LEASE_SECONDS": "10",
    "DISTILLERY_REAPER_INTERVAL_SECONDS": "1",
    "DISTILLERY_RUNNER_POLL_SECONDS": "0.5",
    "DISTILLERY_MAX_ATTEMPTS": "3",
    # Tiny models gain nothing from a second thread; on 2 cores it only slows the others.
    "OMP_NUM_THREADS": "1",
}


class Stack:
    def __init__(
        self, services: list[Service], log_dir: Path, env: dict[str, str], queue: str = ""
    ) -> None:
        self.services = services
        self.log_dir = log_dir
        self.env = env
        self.queue = queue
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    @classmethod
    def celery(
        cls,
        services: list[Service],
        tmp_path: Path,
        database_url: str,
        broker_url: str,
        **env: str,
    ) -> "Stack":
        queue = f"faults-{secrets.token_hex(4)}"
        base = distributed_env(database_url, broker_url, tmp_path, queue)
        return cls(services, tmp_path, {**base, **FAST_RECOVERY, **env}, queue)

    @classmethod
    def embedded(cls, services: list[Service], tmp_path: Path, database_url: str) -> "Stack":
        env = {
            "DISTILLERY_DATABASE_URL": database_url,
            "DISTILLERY_ARTIFACT_URL": str(tmp_path / "artifacts"),
            "DISTILLERY_WORK_DIR": str(tmp_path / "work"),
            "DISTILLERY_BROKER_URL": "",
            **FAST_RECOVERY,
        }
        return cls(services, tmp_path, env)

    def start_api(self, name: str = "api") -> Service:
        api = start(self.services, name, uvicorn_argv(self.port), self.env, self.log_dir)
        wait_ready(self.url, api)
        return api

    def start_worker(self, name: str = "worker", wrapper: Sequence[str] = ()) -> Service:
        """A `celery worker` on this stack's queue; `wrapper` goes before it (e.g. prlimit)."""
        argv = [*wrapper, *celery_argv(self.queue)]
        return start(self.services, name, argv, self.env, self.log_dir)

    def submit(self, spec: dict[str, Any]) -> str:
        response = httpx.post(f"{self.url}/v1/jobs", json=spec, timeout=10)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict:
        response = httpx.get(f"{self.url}/v1/jobs/{job_id}", timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_until_running(
        self, job_id: str, stage: str = "", epoch: int = 1, timeout: float = 90
    ) -> dict:
        """Wait until the job is running and has recorded `epoch` epochs (of `stage`, if
        given): the job is in the middle of its work."""

        def running() -> dict | None:
            job = checks.read(self.url, f"/v1/jobs/{job_id}")
            if job is None or job["status"] != "running" or (job["progress"]["epoch"] or 0) < epoch:
                return None
            return job if not stage or job["stage"] == stage else None

        return checks.wait_until(running, timeout, f"job {job_id} running", self.services)

    def wait(self, job_id: str, timeout: float = 120) -> dict:
        return checks.wait_for_final(self.url, job_id, timeout, self.services)

    def check(self, job: dict, artifacts: set[str] = ARTIFACTS) -> None:
        checks.assert_job_intact(self.url, job, artifacts)

    def logs(self) -> str:
        return checks.logs(self.services)
