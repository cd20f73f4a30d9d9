"""Helpers for the files API tests: upload, wait for the check, build small fixtures."""

import io
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.store.cache import DownloadCache
from app.store.local import LocalStore

CHECK_TIMEOUT_SECONDS = 120.0


def upload(client: TestClient, filename: str, content: bytes, purpose: str, **fields: Any) -> Any:
    data = {"purpose": purpose, **{k: str(v) for k, v in fields.items()}}
    return client.post("/v1/files", data=data, files={"file": (filename, content)})


def wait_checked(client: TestClient, file_id: str) -> dict[str, Any]:
    """Poll the file until its check ended (the real FileChecker runs it in a child)."""
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    while True:
        body = client.get(f"/v1/files/{file_id}").json()
        if body["status"] != "processing":
            return dict(body)
        if time.monotonic() > deadline:
            raise AssertionError(f"file {file_id} still processing after {CHECK_TIMEOUT_SECONDS}s")
        time.sleep(0.05)


def upload_checked(
    client: TestClient, filename: str, content: bytes, purpose: str, **fields: Any
) -> dict[str, Any]:
    response = upload(client, filename, content, purpose, **fields)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "processing"
    return wait_checked(client, response.json()["id"])


def refused(body: dict[str, Any], *needles: str) -> str:
    """Assert the check refused the file with a message naming each of `needles`."""
    assert body["status"] == "error", body
    assert body["error"]["code"] == "invalid_file"
    message = str(body["error"]["message"])
    for needle in needles:
        assert needle in message, message
    return message


def npz_bytes(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return buffer.getvalue()


def png_bytes(size: tuple[int, int] = (8, 6), color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def stored_array(settings: Settings, key: str) -> np.ndarray:
    path = LocalStore(settings.artifact_url).local_path(
        key, DownloadCache(Path(settings.work_dir), 0)
    )
    return np.load(path, allow_pickle=False)


def staging_files(settings: Settings) -> list[Path]:
    staging = LocalStore(settings.artifact_url).staging_dir()
    return [p for p in staging.rglob("*") if p.is_file()]


@pytest.fixture
def make_client(settings: Settings, dispatcher: Any) -> Iterator[Callable[..., TestClient]]:
    """A client on a copy of `settings` with some changed (small limits)."""
    clients: list[TestClient] = []

    def make(**changes: Any) -> TestClient:
        client = TestClient(create_app(settings.model_copy(update=changes), dispatcher=dispatcher))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
