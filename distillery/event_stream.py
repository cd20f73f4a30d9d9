"""Following a job's events over server-sent events (GET /v1/jobs/{id}/events?stream=true).

The server sends each event as `id: <event id>`, `event: <kind>`, `data: <the event>`, then
`event: end` (data {"status"}) once the job has finished and every event was sent. A stream
can also end early, with `event: reconnect` (data {"after", "reason"}) or by the connection
dropping: EventFollower then asks for a new stream from the last event id it yielded, so no
event is lost or repeated. Both clients feed it the lines they read and sleep when it says."""

import json
from dataclasses import dataclass, field

from distillery import calls, types
from distillery.errors import APIConnectionError, DistilleryError, ServerError

# Consecutive failed streams (no event between them) before the error is raised.
MAX_FAILURES = 5
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 10.0
# After a `reconnect` because the server stops or its database is unavailable.
UNAVAILABLE_PAUSE_SECONDS = 1.0


@dataclass
class Message:
    event: str = "message"
    data: str = ""
    id: str | None = None


@dataclass
class SSEParser:
    """text/event-stream, a line at a time (lines without their line ending)."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> Message | None:
        """The message this blank line completes, else None."""
        if not line:
            if not self._data and not self._event:
                return None
            message = Message(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = "", [], None
            return message
        if line.startswith(":"):  # a comment: the server's keepalive
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


class EventFollower:
    """Where one job's event stream stands: the cursor, whether it has ended, and how long to
    wait before the next stream."""

    def __init__(self, job_id: str, after: int | None = None) -> None:
        self.job_id = job_id
        self.after = after
        self.final_status: str | None = None
        self._parser = SSEParser()
        self._failures = 0
        self._pause, self._reconnect_asked = 0.0, False

    @property
    def done(self) -> bool:
        return self.final_status is not None

    def call(self) -> calls.Call[None]:
        """The request for the next stream (a new parser: a partial message is dropped)."""
        self._parser = SSEParser()
        self._pause, self._reconnect_asked = 0.0, False
        return calls.stream_events(self.job_id, self.after)

    def feed(self, line: str) -> types.JobEvent | None:
        """The event this line completes, if any (`end` and `reconnect` are not events)."""
        message = self._parser.feed(line)
        if message is None:
            return None
        if message.event == "end":
            self.final_status = str(json.loads(message.data)["status"])
            return None
        if message.event == "reconnect":
            info = json.loads(message.data)
            self._reconnect_asked = True
            if info.get("after") is not None:
                self.after = int(info["after"])
            if info.get("reason") != "max_duration":
                self._pause = UNAVAILABLE_PAUSE_SECONDS
            return None
        event = types.JobEvent.model_validate_json(message.data)
        self.after = event.id
        self._failures = 0
        return event

    def stream_closed(self) -> float:
        """Seconds to wait before the next stream, after one ended: none after `end` or
        `reconnect` at the stream's maximum duration, a pause after other reasons, a backoff
        (as for a failure) when the connection ended with neither."""
        if self.done or self._reconnect_asked:
            return self._pause
        return self.failed(
            APIConnectionError("the event stream closed early", code="connection_error")
        )

    def failed(self, error: DistilleryError) -> float:
        """A stream could not be opened or broke off: seconds to wait before the next one, or
        the error raised again (after MAX_FAILURES in a row, or one retrying cannot mend)."""
        retryable = isinstance(error, APIConnectionError) or (
            isinstance(error, ServerError) and error.status in (502, 503, 504)
        )
        self._failures += 1
        if not retryable or self._failures > MAX_FAILURES:
            raise error
        backoff = min(FIRST_BACKOFF_SECONDS * 2 ** (self._failures - 1), MAX_BACKOFF_SECONDS)
        return error.retry_after if error.retry_after is not None else backoff
