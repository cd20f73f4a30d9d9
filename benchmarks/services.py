"""What the service benchmarks share: a scratch PostgreSQL database, processes with their
output in a log file, and waiting for an HTTP server to answer."""

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from distillery import Client

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# A server the benchmarks may create and drop databases in (never one holding real data).
POSTGRES_ADMIN_URL = os.environ.get(
    "DISTILLERY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DISTILLERY_BENCH_REDIS", "redis://127.0.0.1:6379/14")

# A digits job of one epoch per stage, no baseline, one export (submit.py, celery_gap.py):
# what is measured is the process around a job (start, torch, database), not its training.
TINY_DIGITS_JOB: dict[str, Any] = {
    "dataset": {"name": "digits"},
    "teacher": {"arch": "mlp", "params": {"hidden": [8]}, "train": {"epochs": 1}},
    "student": {"arch": "mlp", "params": {"hidden": [4]}},
    "distill": {"epochs": 1},
    "baseline": False,
    "export": ["safetensors"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the local server (a SQLAlchemy URL), dropped afterwards."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        from app.db import get_engine

        get_engine(f"{base}/{name}").dispose()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Process:
    """A subprocess started in the repository root, its output in `log`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, "PATH": path, **env},
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running(processes: list[Process]) -> Iterator[list[Process]]:
    """Stop every process on the way out, last started first."""
    try:
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()


def wait_answering(url: str, process: Process, timeout: float = 120) -> None:
    """Until GET `url` answers 200 (the process exiting first is an error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise SystemExit(f"{process.name} exited:\n{process.output()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{process.name} did not answer {url} in {timeout:g}s:\n{process.output()}")


@contextmanager
def embedded_service(
    folder: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> Iterator[Client]:
    """`distillery serve` on SQLite with its database, store and work folder in `folder` (its
    in-process runner runs each job; `env` adds settings), and an SDK client of it that waits
    `timeout` seconds for an answer: the service as a user runs it on a laptop."""
    port = free_port()
    env = {
        "DISTILLERY_DATABASE_URL": f"sqlite:///{folder / 'distillery.db'}",
        "DISTILLERY_ARTIFACT_URL": str(folder / "artifacts"),
        "DISTILLERY_WORK_DIR": str(folder / "work"),
        "DISTILLERY_BROKER_URL": "",
        "DISTILLERY_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    api = Process("api", [str(BIN / "distillery"), "serve", "--port", str(port)], env, folder)
    url = f"http://127.0.0.1:{port}"
    with running([api]):
        wait_answering(f"{url}/readyz", api)
        with Client(url, timeout=timeout) as client:
            yield client
