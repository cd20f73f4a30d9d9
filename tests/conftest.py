"""Shared fixtures: real SQLite and PostgreSQL databases, real Redis, a real S3-protocol server
(moto's, in a subprocess), settings and clients.

Tests that need PostgreSQL, Redis or the S3 server skip with a reason when they are absent, and
fail instead when DISTILLERY_REQUIRE_SERVICES=1 (CI).
"""

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.db import get_engine, upgrade_database
from app.main import create_app
from app.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "DISTILLERY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
# Under pytest-xdist each worker process gets a Redis database of its own (9, 10, ...).
_XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
REDIS_URL = os.environ.get("DISTILLERY_TEST_REDIS", f"redis://127.0.0.1:6379/{9 + _XDIST_WORKER}")
REQUIRE_SERVICES = os.environ.get("DISTILLERY_REQUIRE_SERVICES") == "1"
# A job's own estimate is a dry run of a few seconds: jobs in tests skip it (this process's
# settings and every service process a test starts read this), except where a test is about
# it (tests/worker/test_estimate.py, the end-to-end estimate tests set it back to true).
os.environ.setdefault("DISTILLERY_JOB_ESTIMATES", "false")

# The least a job must say: dataset, teacher and student.
MINIMAL_JOB = {
    "dataset": {"name": "digits"},
    "teacher": {"arch": "mlp"},
    "student": {"arch": "mlp"},
}


def missing_service(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (DISTILLERY_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            pass
    except Exception as exc:
        missing_service(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    import psycopg

    name = f"distillery_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = postgres_server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    yield url
    get_engine(url).dispose()
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'distillery.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        client.flushdb()
    except Exception as exc:
        missing_service(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


# Credentials the S3 test server accepts; passed explicitly to every client and subprocess.
S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-protocol server (moto's) in a subprocess; yields its endpoint URL."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        missing_service(f"S3 test server unavailable: {exc}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **S3_TEST_ENV},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        client = s3_client(endpoint)
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                missing_service(f"S3 test server exited: {log.read_text(errors='replace')}")
            try:
                client.list_buckets()
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    missing_service(f"S3 test server not answering at {endpoint}: {exc}")
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for the test server, with the test credentials."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_TEST_ENV["AWS_DEFAULT_REGION"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture
def s3_bucket_url(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the test server: "s3://<bucket>/some/prefix", with the test
    credentials in the environment (for the stores this test builds)."""
    for name, value in S3_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"distillery-test-{secrets.token_hex(6)}"
    s3_client(s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/some/prefix"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


def make_settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for a test on a migrated database, with its files under tmp_path."""
    upgrade_database(database_url)
    return Settings(
        database_url=database_url,
        artifact_url=str(tmp_path / "artifacts"),
        work_dir=str(tmp_path / "work"),
        broker_url=None,
        auto_migrate=False,
        reaper_interval_seconds=3600,
    )


class RecordingDispatcher:
    """Stands in for the runner in API tests, so no job runs while the API is under test."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.devices: dict[str, str] = {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def send(self, job_id: str, device: str = "any") -> None:
        self.sent.append(job_id)
        self.devices[job_id] = device

    def ready(self) -> bool:
        return True

    def broker_restarted(self) -> bool:
        return False


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def client(settings: Settings, dispatcher: RecordingDispatcher) -> Iterator[TestClient]:
    with TestClient(create_app(settings, dispatcher=dispatcher)) as test_client:
        yield test_client


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`), the tests that start real processes (e2e,
    faults) run one after another on one worker: they time leases and restarts, and would
    only slow each other down; the rest share the other workers."""
    for item in items:
        if {"e2e", "faults"} & set(item.path.parts):
            item.add_marker(pytest.mark.xdist_group("processes"))
