"""Shared fixtures: real SQLite and PostgreSQL databases, real Redis, settings and clients.

Tests that need PostgreSQL or Redis skip with a reason when they are absent, and fail
instead when DISTILLERY_REQUIRE_SERVICES=1 (CI).
"""

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.db import get_engine, upgrade_database
from app.main import create_app
from app.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get(
    "DISTILLERY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("DISTILLERY_TEST_REDIS", "redis://127.0.0.1:6379/9")
REQUIRE_SERVICES = os.environ.get("DISTILLERY_REQUIRE_SERVICES") == "1"

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


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
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

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def send(self, job_id: str) -> None:
        self.sent.append(job_id)

    def ready(self) -> bool:
        return True


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def client(settings: Settings, dispatcher: RecordingDispatcher) -> Iterator[TestClient]:
    with TestClient(create_app(settings, dispatcher=dispatcher)) as test_client:
        yield test_client
