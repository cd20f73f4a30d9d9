"""A real API process for the SDK's tests: uvicorn on the embedded default (SQLite, the
in-process runner), with DISTILLERY_AUTH=required and one API key made in its database."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.auth import create_key
from app.db import get_engine, session_scope, upgrade_database
from tests.e2e.conftest import Service, free_port, uvicorn_argv, wait_ready

# A digits job that runs in seconds: one small teacher epoch, two student epochs.
TINY_JOB: dict[str, Any] = {
    "name": "sdk-digits",
    "dataset": {"name": "digits"},
    "teacher": {"arch": "mlp", "params": {"hidden": [32]}, "train": {"epochs": 1}},
    "student": {"arch": "mlp", "params": {"hidden": [8]}},
    "distill": {"epochs": 2},
    "export": ["safetensors"],
    "metadata": {"suite": "sdk"},
}
STAGES = [
    "validate",
    "pretrain_teacher",
    "soft_labels",
    "baseline",
    "distill",
    "evaluate",
    "frontier",
    "export",
]


@dataclass
class Server:
    """The API's URL, a key of tenant `sdk-tests`, its artifact folder and its process."""

    url: str
    api_key: str
    artifacts: Path
    service: Service


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("sdk_server")
    database_url = f"sqlite:///{folder / 'distillery.db'}"
    upgrade_database(database_url)
    with session_scope(database_url) as session:
        _, api_key = create_key(session, "sdk-tests", name="tests")
    get_engine(database_url).dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "DISTILLERY_DATABASE_URL": database_url,
        "DISTILLERY_ARTIFACT_URL": str(folder / "artifacts"),
        "DISTILLERY_WORK_DIR": str(folder / "work"),
        "DISTILLERY_BROKER_URL": "",
        "DISTILLERY_AUTH": "required",
        # Streams end every 2 s with `reconnect`: following a job's events crosses several.
        "DISTILLERY_EVENT_STREAM_MAX_SECONDS": "2",
        # Jobs estimate themselves and record what they did beside it (`cost`).
        "DISTILLERY_JOB_ESTIMATES": "true",
    }
    service = Service("api", uvicorn_argv(port), env, folder)
    try:
        wait_ready(url, service)
        yield Server(url, api_key, folder / "artifacts", service)
    finally:
        service.stop()
