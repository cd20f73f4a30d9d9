"""uvicorn's httptools protocol with the limits a public HTTP server needs (`distillery serve`).

- Request headers (request line included) are bounded in size: past max_header_bytes the
  request is answered 431 and the connection closed, before more of it is buffered. Two
  counts enforce it: the bytes received while a request's headers are incomplete (so an
  unfinished header cannot grow without end), and the parsed request line and header fields
  once they are complete (so headers that arrive whole in one read, alone or behind another
  pipelined request, are counted too; a body in the same read is not).
- A client must send its whole request headers within header_timeout_seconds of connecting
  or of starting the request, and must not pause longer than body_idle_timeout_seconds
  between parts of a body; otherwise the connection is closed. A slow client cannot hold a
  connection, and the request it started, open forever.
Waiting for the next request on a kept-alive connection is uvicorn's keep-alive timeout.
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import get_settings

TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_header_bytes = settings.max_header_bytes
        self.header_timeout = settings.header_timeout_seconds
        self.body_idle_timeout = settings.body_idle_timeout_seconds
        self._reading = "headers"  # what the client sends now: headers, body or nothing
        self._header_bytes = 0  # received while this request's headers are incomplete
        self._parsed_header_bytes = 0  # this request's parsed request line and fields
        self._refused = False  # answered 431: everything after is ignored
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._reading == "headers":
            self._header_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            self._disarm()
        elif self._refused or (
            self._reading == "headers" and self._header_bytes > self.max_header_bytes
        ):
            self._refuse_headers()
        elif self._reading == "body":
            self._arm(self.body_idle_timeout)

    # Parser callbacks (super's run first: they set up the request).
    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._parsed_header_bytes = 0
        if self._reading != "headers":  # the next request on a kept-alive connection
            self._reading = "headers"
            self._header_bytes = 0
            self._arm(self.header_timeout)

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        self._parsed_header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._parsed_header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        if self._parsed_header_bytes > self.max_header_bytes:
            # The request never reaches the app; data_received answers 431 once the parser
            # returns (the body and any later request in the same read are ignored).
            self._refused = True
            return
        super().on_headers_complete()
        self._reading = "body"
        self._header_bytes = 0
        self._arm(self.body_idle_timeout)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._reading = "nothing"
        self._disarm()

    def _refuse_headers(self) -> None:
        self._refused = True
        self._disarm()
        body = (
            b'{"error":{"code":"header_too_large","message":"request headers exceed %d bytes",'
            b'"param":null}}' % self.max_header_bytes
        )
        self.transport.write(TOO_LARGE % (len(body), body))
        self.transport.close()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self.flow.read_paused:
            # We stopped reading (the app has not taken what came): not the client's fault.
            self._arm(self.body_idle_timeout)
            return
        if not self.transport.is_closing():
            self.logger.info("closing a connection whose client sent its request too slowly")
            self.transport.close()
