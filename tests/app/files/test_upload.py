"""The multipart receiver: part headers are capped, and the parsing, hashing and writing of the
file part happen in a worker thread, never on the event loop."""

import hashlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from app.api_error import ApiError
from app.files.upload import (
    BATCH_BYTES,
    MAX_HEADER_BYTES,
    Upload,
    _Receiver,
    receive_upload,
    sweep_staging,
)
from app.settings import Settings
from tests.app.files.conftest import staging_files
from tests.e2e.conftest import Service, serving

BOUNDARY = "xyzBOUNDARYzyx"


def body(*parts: tuple[str, bytes]) -> bytes:
    """A multipart body from (raw part headers, content) pairs."""
    out = b""
    for headers, content in parts:
        out += f"--{BOUNDARY}\r\n{headers}\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def post(client: TestClient, raw: bytes) -> httpx.Response:
    return client.post(
        "/v1/files",
        content=raw,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )


def test_a_part_header_value_of_1_mib_is_400(client: TestClient, settings: Settings) -> None:
    huge = 'Content-Disposition: form-data; name="purpose"; x="' + "a" * (1024 * 1024) + '"'
    response = post(client, body((huge, b"dataset")))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert error["message"].startswith("malformed multipart body")
    assert staging_files(settings) == []


def test_the_receiver_caps_header_buffers_itself(tmp_path: Path) -> None:
    """What an older python-multipart (no header size limit of its own) would feed it: a 1 MiB
    header value in pieces. The buffer stops at the cap and the upload is a 400."""
    receiver = _Receiver(tmp_path, 10_000, 10_000, "quota", lambda *_: None)
    callbacks = receiver.callbacks()
    callbacks["on_part_begin"]()
    callbacks["on_header_field"](b"Content-Disposition", 0, 19)
    piece = b"a" * (64 * 1024)
    for _ in range(16):
        callbacks["on_header_value"](piece, 0, len(piece))
    assert receiver.error is not None and receiver.error.status == 400
    assert f"longer than {MAX_HEADER_BYTES} bytes" in receiver.error.message
    assert len(receiver._header_value) <= MAX_HEADER_BYTES


def test_a_part_header_name_of_1_mib_is_400(client: TestClient) -> None:
    huge = "X-" + "a" * (1024 * 1024) + ": 1\r\nContent-Disposition: form-data; name=purpose"
    response = post(client, body((huge, b"dataset")))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith("malformed multipart body")


def test_headers_under_the_cap_are_accepted(client: TestClient) -> None:
    long_ok = 'Content-Disposition: form-data; name="purpose"; x="' + "a" * 3000 + '"'
    file_part = 'Content-Disposition: form-data; name="file"; filename="t.onnx"'
    response = post(client, body((long_ok, b"teacher"), (file_part, b"onnx bytes")))
    assert response.status_code == 201, response.text


def test_the_file_part_is_parsed_and_written_off_the_event_loop(tmp_path: Path) -> None:
    content = bytes(range(256)) * (3 * BATCH_BYTES // 256 + 7)  # several batches
    raw = body(
        ('Content-Disposition: form-data; name="purpose"', b"dataset"),
        ('Content-Disposition: form-data; name="file"; filename="d.npz"', content),
    )
    callback_threads: list[int] = []

    def on_filename(filename: str, fields: dict[str, str]) -> None:
        callback_threads.append(threading.get_ident())

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start : start + 64 * 1024]

    async def main() -> tuple[int, Upload]:
        upload = await receive_upload(
            f"multipart/form-data; boundary={BOUNDARY}",
            chunks(),
            staging=tmp_path,
            max_bytes=len(content),
            quota_left=len(content),
            quota_message="quota",
            on_filename=on_filename,
        )
        return threading.get_ident(), upload

    loop_thread, upload = anyio.run(main)
    assert callback_threads and callback_threads[0] != loop_thread
    assert upload.path is not None
    assert upload.path.read_bytes() == content
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    assert upload.bytes == len(content)


def test_past_the_byte_limit_the_partial_file_is_removed(tmp_path: Path) -> None:
    raw = body(('Content-Disposition: form-data; name="file"; filename="d.npz"', b"x" * 5000))

    async def chunks() -> AsyncIterator[bytes]:
        yield raw

    async def main() -> None:
        await receive_upload(
            f"multipart/form-data; boundary={BOUNDARY}",
            chunks(),
            staging=tmp_path,
            max_bytes=4000,
            quota_left=10_000,
            quota_message="quota",
            on_filename=lambda *_: None,
        )

    with pytest.raises(ApiError) as caught:
        anyio.run(main)
    assert caught.value.status == 413
    assert list(tmp_path.iterdir()) == []


def test_staging_files_left_by_a_killed_upload_are_swept(tmp_path: Path) -> None:
    old, live = tmp_path / "upload-old.part", tmp_path / "upload-live.part"
    old.write_bytes(b"half an upload")
    live.write_bytes(b"arriving")
    a_day_ago = time.time() - 25 * 3600
    os.utime(old, (a_day_ago, a_day_ago))
    assert sweep_staging(tmp_path) == 1
    assert not old.exists() and live.exists()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Service]]:
    """`distillery serve` in a process of its own: (port, its artifact folder, the service)."""
    folder = tmp_path_factory.mktemp("served")
    with serving(folder) as (port, service):
        yield port, folder / "artifacts", service


def test_a_client_dropping_an_upload_mid_body_is_one_quiet_log_line(
    served: tuple[int, Path, Service],
) -> None:
    """An ordinary event, not a server error: no ERROR line, no traceback, and the partial
    bytes are removed."""
    port, artifacts, service = served
    purpose = body(('Content-Disposition: form-data; name="purpose"', b"dataset"))
    file_part = 'Content-Disposition: form-data; name="file"; filename="d.npz"\r\n\r\n'
    head = purpose[: -len(f"--{BOUNDARY}--\r\n")] + f"--{BOUNDARY}\r\n{file_part}".encode()
    sent = head + b"\x00" * (3 * BATCH_BYTES)  # written to the staging file as it comes
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/files HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n".encode()
            + f"Content-Length: {len(sent) + 10 * BATCH_BYTES}\r\n\r\n".encode()
            + sent
        )
        staging = artifacts / ".staging"
        deadline = time.monotonic() + 20
        while not any(staging.glob("upload-*.part")):
            assert time.monotonic() < deadline, "the upload never reached its staging file"
            time.sleep(0.02)
    deadline = time.monotonic() + 20
    while "dropped" not in service.output() or any(staging.glob("upload-*.part")):
        assert time.monotonic() < deadline, service.output()
        time.sleep(0.05)
    log = service.output()
    assert "ERROR" not in log and "Traceback" not in log, log
    [line] = [line for line in log.splitlines() if "dropped" in line]
    assert " INFO " in line, line
    # The server still serves, and counts the request as dropped by the client, not failed.
    assert httpx.get(f"http://127.0.0.1:{port}/v1/files").json()["data"] == []
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'method="POST",route="/v1/files",status="499"' in metrics
    assert 'route="/v1/files",status="500"' not in metrics
