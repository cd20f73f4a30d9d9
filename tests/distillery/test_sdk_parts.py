"""The SDK's shared parts without a server: the SSE reader and the follower's cursor, sha256
checks, error parsing, the multipart body, and a stream that breaks off (httpx.MockTransport)."""

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from python_multipart.multipart import parse_options_header

from distillery import (
    APIConnectionError,
    ChecksumMismatch,
    Client,
    RateLimited,
    ServerError,
    calls,
    downloads,
    event_stream,
)
from distillery import types as schemas
from distillery.errors import error_from_response
from distillery.multipart import MultipartUpload
from tests.app.test_dependency_rule import loaded_after_import
from tests.distillery.conftest import TINY_JOB


def _event(event_id: int, kind: str = "stage", message: str = "distill") -> str:
    body = {
        "id": event_id,
        "object": "job.event",
        "created_at": "2025-01-01T00:00:00Z",
        "kind": kind,
        "message": message,
        "data": None,
    }
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(body)}\n\n"


def _feed(follower: event_stream.EventFollower, text: str) -> list[int]:
    events = [follower.feed(line) for line in text.split("\n")]
    return [e.id for e in events if e is not None]


def test_sse_parser_joins_data_lines_and_skips_comments() -> None:
    parser = event_stream.SSEParser()
    lines = [": keepalive", "", "event: x", "data: a", "data:b", "id: 7", ""]
    messages = [m for m in map(parser.feed, lines) if m is not None]
    assert messages == [event_stream.Message("x", "a\nb", "7")]


def test_follower_resumes_after_reconnect_and_stops_at_end() -> None:
    follower = event_stream.EventFollower("job_1")
    assert follower.call().params["after"] is None
    reconnect = 'event: reconnect\ndata: {"after": 4, "reason": "max_duration"}\n\n'
    assert _feed(follower, _event(3) + _event(4) + reconnect) == [3, 4]
    assert not follower.done and follower.stream_closed() == 0.0
    assert follower.call().params["after"] == 4
    assert _feed(follower, _event(5) + 'event: end\ndata: {"status": "succeeded"}\n\n') == [5]
    assert follower.done and follower.final_status == "succeeded"


def test_follower_backs_off_then_gives_up() -> None:
    follower = event_stream.EventFollower("job_1", after=9)
    follower.call()
    waits = [follower.stream_closed() for _ in range(event_stream.MAX_FAILURES)]
    assert waits == sorted(waits) and waits[0] > 0
    with pytest.raises(APIConnectionError):
        follower.stream_closed()
    assert follower.call().params["after"] == 9
    busy = ServerError("busy", status=503, code="unavailable", retry_after=5)
    assert event_stream.EventFollower("job_1").failed(busy) == 5
    with pytest.raises(RateLimited):
        event_stream.EventFollower("job_1").failed(RateLimited("limit", status=429))


def test_events_reconnect_where_a_stream_broke_off() -> None:
    """The first stream closes after two events with neither `end` nor `reconnect`: the next
    asks for the events after the second."""
    asked: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params.get("after"))
        if len(asked) == 1:
            return httpx.Response(200, text=_event(1) + _event(2))
        end = 'event: end\ndata: {"status": "failed"}\n\n'
        return httpx.Response(200, text=_event(3) + end)

    with Client("http://sdk.test", "dk_x", transport=httpx.MockTransport(answer)) as client:
        assert [e.id for e in client.jobs.events("job_1")] == [1, 2, 3]
    assert asked == [None, "2"]


def test_sha256_checks(tmp_path: Path) -> None:
    downloads.verify_sha256("a", "ab" * 32, "AB" * 32)
    with pytest.raises(ChecksumMismatch) as wrong:
        downloads.verify_sha256("a.onnx", "ab" * 32, "cd" * 32)
    assert wrong.value.code == "checksum_mismatch" and "a.onnx" in str(wrong.value)
    assert downloads.etag_sha256({"etag": f'"{"ef" * 32}"'}) == "ef" * 32
    assert downloads.etag_sha256({"etag": 'W/"123"'}) is None

    body = b"student weights"
    headers = {"etag": f'"{hashlib.sha256(body).hexdigest()}"', "content-length": "15"}
    with downloads.ArtifactFile(tmp_path / "ok.bin", headers) as file:
        file.write(body)
    assert (tmp_path / "ok.bin").read_bytes() == body
    with (
        pytest.raises(ChecksumMismatch),
        downloads.ArtifactFile(tmp_path / "bad.bin", headers) as file,
    ):
        file.write(b"student weighTs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.bin"]
    assert downloads.destination(tmp_path, "a/../b.onnx") == tmp_path / "b.onnx"


def test_error_from_a_response_that_is_not_the_api_shape() -> None:
    error = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(error, ServerError)
    assert (error.status, error.code, error.message) == (502, "error", "<html>bad gateway</html>")
    limited = error_from_response(
        httpx.Response(
            429,
            json={"error": {"code": "rate_limited", "message": "at 4", "param": None}},
            headers={"Retry-After": "3"},
        )
    )
    assert isinstance(limited, RateLimited) and limited.retry_after == 3.0
    assert str(limited) == "429 rate_limited: at 4"


def test_multipart_body_has_the_declared_length(tmp_path: Path) -> None:
    path = tmp_path / 'odd "name".csv'
    path.write_bytes(b"a,label\n1,0\n" * 5000)
    upload = MultipartUpload(path, {"purpose": "dataset", "max_length": 64}, chunk_bytes=4096)
    seen: list[tuple[int, int]] = []
    body = b"".join(upload.iter_body(lambda sent, total: seen.append((sent, total))))
    assert len(body) == upload.length == int(upload.headers()["Content-Length"])
    assert seen[0] == (0, upload.file_bytes) and seen[-1] == (upload.file_bytes,) * 2
    _, options = parse_options_header(upload.headers()["Content-Type"])
    assert options[b"boundary"] == upload.boundary.encode()
    assert body.index(b'name="purpose"') < body.index(b'filename="odd %22name%22.csv"')


def test_call_keeps_a_long_read_timeout_for_event_streams() -> None:
    request = calls.stream_events("job/1", 5).request(httpx.Timeout(5.0))
    assert request["url"] == "/v1/jobs/job%2F1/events"
    assert request["params"] == {"stream": "true", "after": 5}
    assert request["timeout"].read == calls.EVENT_STREAM_READ_TIMEOUT
    assert request["timeout"].connect == 5.0


def test_the_sdk_imports_only_the_api_shapes() -> None:
    """A client machine needs pydantic and httpx: no torch, database or web framework."""
    heavy = ("torch", "worker", "sqlalchemy", "fastapi", "starlette", "numpy")
    assert loaded_after_import("distillery", heavy) == []


def test_a_job_create_model_is_sent_as_the_fields_that_were_set() -> None:
    spec = schemas.JobCreate.model_validate(TINY_JOB)
    call = calls.create_job(spec, idempotency_key="k")
    assert call.json == TINY_JOB and call.headers == {"Idempotency-Key": "k"}
    assert calls.create_job(TINY_JOB).headers == {}
