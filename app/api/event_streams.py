"""Server-sent event streams of a job's events (GET /v1/jobs/{id}/events?stream=true).

A stream holds no database connection between its polls; a process serves at most
`max_event_streams` at once (503 past that); each ends after `event_stream_max_seconds`, and all
of them end when the server is told to stop, each with a `reconnect` event naming the cursor to
resume from (`after`, or the Last-Event-ID header that EventSource sends by itself). A stream
re-checks its API key at every poll: once the key is revoked, the stream ends with `reconnect`
(reason `unauthorized`), and reconnecting is answered 401.
"""

import asyncio
import functools
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app import reads
from app.api_error import ApiError
from app.db_async import AsyncDatabase, DatabaseUnavailable
from app.jobs.errors import JobNotFound
from app.models import JobStatus

POLL_SECONDS = 0.5
# A comment line this often on a quiet stream: proxies keep it open, and a client that went
# away is noticed (the write fails) instead of holding a slot until the stream's time is up.
KEEPALIVE_SECONDS = 15.0
BATCH = 500
RETRY_AFTER_SECONDS = 5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class EventStreams:
    """The process's open streams: their count, their limits, and whether the server is
    stopping."""

    def __init__(self, max_open: int, max_seconds: float) -> None:
        self.max_open, self.max_seconds = max_open, max_seconds
        self.open = 0
        self.stopping = False
        self._previous_handlers: dict[int, Any] = {}

    def watch_stop_signals(self) -> None:
        """Learn of SIGTERM / SIGINT when they arrive. uvicorn waits for every open response to
        end before it shuts the application down, and a stream ends only with its job: so the
        streams are told by the signal itself, before uvicorn's own handler runs as usual.
        Only the main thread can set handlers (a test client runs the app in another)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in STOP_SIGNALS:
            previous = signal.getsignal(sig)
            self._previous_handlers[sig] = previous
            signal.signal(sig, functools.partial(self._on_stop_signal, previous))

    def _on_stop_signal(self, previous: Any, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    def close(self) -> None:
        """Ask open streams to end and give the signal handlers back."""
        self.stopping = True
        for sig, previous in self._previous_handlers.items():
            signal.signal(sig, previous)
        self._previous_handlers.clear()

    def take_slot(self) -> None:
        if self.open >= self.max_open:
            raise ApiError(
                503,
                "unavailable",
                f"this server already streams {self.max_open} event streams; retry shortly, "
                "or poll GET /v1/jobs/{id}/events?after=<last event id>",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self.open += 1

    def give_slot_back(self) -> None:
        self.open -= 1


class EventStreamResponse(StreamingResponse):
    """text/event-stream that gives its slot back however the stream ends (job finished,
    client gone, server stopping)."""

    def __init__(self, streams: EventStreams, content: AsyncIterator[str]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            # X-Accel-Buffering: nginx would otherwise hold events back to fill its buffer.
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._streams.give_slot_back()


def _reconnect(cursor: int | None, reason: str) -> str:
    data = json.dumps({"after": cursor, "reason": reason})
    return f"event: reconnect\ndata: {data}\n\n"


async def job_events(
    database: AsyncDatabase,
    streams: EventStreams,
    job_id: str,
    tenant: str,
    after: int | None,
    key_still_live: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """The job's events after `after`, then new ones as they come, until the job reaches a
    final status and every event was sent (`end`), or the stream must stop (`reconnect`)."""
    deadline = time.monotonic() + streams.max_seconds
    last_write = time.monotonic()
    cursor = after
    first = True
    while True:
        try:
            if not first and not await key_still_live():
                yield _reconnect(cursor, "unauthorized")
                return
            first = False  # the request itself was just authenticated
            status, events = await reads.list_events(database, job_id, tenant, cursor, BATCH)
        except JobNotFound:  # deleted meanwhile
            return
        except DatabaseUnavailable:
            yield _reconnect(cursor, "unavailable")
            return
        for event in events:
            cursor = event["id"]
            data = reads.dumps(event).decode()
            yield f"id: {cursor}\nevent: {event['kind']}\ndata: {data}\n\n"
        now = time.monotonic()
        if events:
            last_write = now
            continue
        if status in JobStatus.FINISHED:
            yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
            return
        if streams.stopping:
            yield _reconnect(cursor, "shutdown")
            return
        if now >= deadline:
            yield _reconnect(cursor, "max_duration")
            return
        if now - last_write >= KEEPALIVE_SECONDS:
            yield ": keepalive\n\n"
            last_write = now
        await asyncio.sleep(POLL_SECONDS)
