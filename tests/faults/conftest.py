"""Fixtures for the fault tests, on the end-to-end tests' process helpers (imported, not
copied): deployments with short leases, a Redis of the test's own, a proxy in front of
PostgreSQL."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.e2e.conftest import Service, services  # noqa: F401 (the `services` fixture)
from tests.faults.proxy import TcpProxy
from tests.faults.redis_server import RedisServer
from tests.faults.stack import Stack


@pytest.fixture
def celery_stack(
    services: list[Service],  # noqa: F811
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
) -> Stack:
    """API and workers on PostgreSQL and the shared Redis (nothing started yet)."""
    return Stack.celery(services, tmp_path, postgres_url, redis_url)


@pytest.fixture
def embedded_stack(services: list[Service], tmp_path: Path) -> Stack:  # noqa: F811
    """The embedded default: one API process on SQLite, running jobs itself."""
    return Stack.embedded(services, tmp_path, f"sqlite:///{tmp_path / 'distillery.db'}")


@pytest.fixture
def own_redis(services: list[Service], tmp_path: Path) -> RedisServer:  # noqa: F811
    return RedisServer(services, tmp_path)


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[TcpProxy]:
    url = make_url(postgres_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    yield proxy
    proxy.close()
