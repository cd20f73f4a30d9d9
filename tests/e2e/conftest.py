"""Real processes: uvicorn serving the API, Celery workers, each with its own environment."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """A subprocess with its output in a log file (shown when a test fails)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env}
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=full_env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_ready(url: str, service: Service, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(f"{service.name} exited:\n{service.output()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{service.name} not ready in {timeout}s:\n{service.output()}")


@contextmanager
def serving(folder: Path, **env: str) -> Iterator[tuple[int, Service]]:
    """`distillery serve` in a process of its own on SQLite in `folder` (artifacts and work
    files there too), ready: (its port, the service). `env` adds or overrides settings."""
    port = free_port()
    settings = {
        "DISTILLERY_DATABASE_URL": f"sqlite:///{folder}/d.db",
        "DISTILLERY_ARTIFACT_URL": str(folder / "artifacts"),
        "DISTILLERY_WORK_DIR": str(folder / "work"),
        **env,
    }
    argv = [str(BIN / "distillery"), "serve", "--port", str(port)]
    service = Service("serve", argv, settings, folder)
    try:
        wait_ready(f"http://127.0.0.1:{port}", service)
        yield port, service
    finally:
        service.stop()


def wait_for_job(
    url: str,
    job_id: str,
    timeout: float,
    services: list[Service],
    headers: dict[str, str] | None = None,
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10, headers=headers).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.5)
    logs = "\n".join(f"--- {s.name}\n{s.output()}" for s in services)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s:\n{logs}")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[Service]]:
    """Start services with `start(...)`; all are stopped after the test."""
    started: list[Service] = []
    yield started
    for service in reversed(started):
        service.stop()


def start(
    started: list[Service], name: str, argv: list[str], env: dict[str, str], log_dir: Path
) -> Service:
    service = Service(name, argv, env, log_dir)
    started.append(service)
    return service


def uvicorn_argv(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def embedded_service(started: list[Service], folder: Path) -> str:
    """The embedded default (one uvicorn process, SQLite, the in-process runner) on a free
    port, its database, artifacts and work files under `folder`; returns its URL once ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "DISTILLERY_DATABASE_URL": f"sqlite:///{folder / 'distillery.db'}",
        "DISTILLERY_ARTIFACT_URL": str(folder / "artifacts"),
        "DISTILLERY_WORK_DIR": str(folder / "work"),
        "DISTILLERY_BROKER_URL": "",
    }
    wait_ready(url, start(started, "api", uvicorn_argv(port), env, folder))
    return url
