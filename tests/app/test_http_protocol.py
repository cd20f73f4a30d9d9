"""`distillery serve` bounds request headers in size and time, and bodies in idle time, so a
slow or hostile client cannot hold connections open or make the server buffer without end
(issue 6). A real server process, raw sockets."""

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import serving

LIMITS = {
    "DISTILLERY_MAX_HEADER_BYTES": "8192",
    "DISTILLERY_HEADER_TIMEOUT_SECONDS": "1",
    "DISTILLERY_BODY_IDLE_TIMEOUT_SECONDS": "1",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    with serving(tmp_path_factory.mktemp("serve"), **LIMITS) as (port, _):
        yield "127.0.0.1", port


def _closed_by_server(sock: socket.socket, within: float) -> bytes:
    """Everything the server sent until it closed the connection (fails after `within` s)."""
    sock.settimeout(within)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_headers_over_the_limit_are_refused_with_431(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
        answer = _closed_by_server(sock, within=10)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"code":"header_too_large"' in answer


@pytest.mark.parametrize("size", [12_000, 100_000, 120_000])
def test_complete_headers_over_the_limit_in_one_write_are_refused(
    server: tuple[str, int], size: int
) -> None:
    """Headers that arrive complete in one read are counted too (they used to pass when the
    read that finished them was parsed before it was counted)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    with socket.create_connection(server) as sock:
        sock.sendall(request)
        answer = _closed_by_server(sock, within=10)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_pipelined_request_with_oversized_headers_is_refused(server: tuple[str, int]) -> None:
    small = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    with socket.create_connection(server) as sock:
        sock.sendall(small + big)
        answer = _closed_by_server(sock, within=10)
    assert answer.count(b"HTTP/1.1 200 ") <= 1
    assert b"HTTP/1.1 431 " in answer


def test_a_body_in_the_same_write_does_not_count_as_headers(server: tuple[str, int]) -> None:
    body = b'{"a": "' + b"x" * 20_000 + b'"}'
    request = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(server) as sock:
        sock.sendall(request)
        answer = _closed_by_server(sock, within=10)
    assert answer.startswith(b"HTTP/1.1 422 ")


def test_headers_that_never_finish_are_cut_off(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        started = time.monotonic()
        assert _closed_by_server(sock, within=10) == b""
    assert time.monotonic() - started < 9


def test_a_connection_that_sends_nothing_is_cut_off(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        assert _closed_by_server(sock, within=10) == b""


def test_a_stalled_body_is_cut_off(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"name": '
        )
        answer = _closed_by_server(sock, within=10)
    assert b" 201 " not in answer.split(b"\r\n", 1)[0]


def test_ordinary_requests_still_work(server: tuple[str, int]) -> None:
    host, port = server
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        for _ in range(3):  # one kept-alive connection
            assert client.get("/healthz", headers={"X-Fine": "a" * 4000}).status_code == 200
        assert client.get("/v1/jobs").status_code == 200
