"""Logging for every process (API, embedded runner's child, Celery worker): one stderr handler on
the root logger, text or JSON (DISTILLERY_LOG_FORMAT), and the job a line is about.

A worker marks the job it runs with `job_context(job_id, attempt)` (or `bind_job` for the rest of a
one-job process); every line logged inside it, in that thread or in threads started with a copy
of its context (`contextvars.copy_context().run`), carries `job_id` and `attempt`.
"""

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from app.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(job_tag)s: %(message)s"

_job: contextvars.ContextVar[tuple[str, int | None] | None] = contextvars.ContextVar(
    "distillery_job", default=None
)


def bind_job(job_id: str | None, attempt: int | None = None) -> None:
    """For a process that runs one job (the embedded runner's child, a Celery task): lines
    logged later in this thread carry the job; None forgets it."""
    _job.set(None if job_id is None else (job_id, attempt))


@contextmanager
def job_context(job_id: str, attempt: int | None = None) -> Iterator[None]:
    """Lines logged inside carry this job's id (and attempt, once the job is claimed)."""
    token = _job.set((job_id, attempt))
    try:
        yield
    finally:
        _job.reset(token)


class JobFilter(logging.Filter):
    """Puts the current job on each record (a record given `extra={"job_id": ...}` keeps it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _job.get()
        if current is not None and getattr(record, "job_id", None) is None:
            record.job_id, record.attempt = current
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, process, and
    job_id / attempt when the line is about a job; exception holds a traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        job_id = getattr(record, "job_id", None)
        if job_id is not None:
            line["job_id"] = job_id
            attempt = getattr(record, "attempt", None)
            if attempt is not None:
                line["attempt"] = attempt
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with `[job <id> attempt <n>]` after the logger's name when known."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        job_id = getattr(record, "job_id", None)
        attempt = getattr(record, "attempt", None)
        if job_id is None:
            record.job_tag = ""
        elif attempt is None:
            record.job_tag = f" [job {job_id}]"
        else:
            record.job_tag = f" [job {job_id} attempt {attempt}]"
        return super().format(record)


class RootHandler(logging.StreamHandler):
    """stderr, in the configured format, with the current job on each line."""

    def __init__(self, log_format: str) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
        self.addFilter(JobFilter())


def configure_logging(settings: Settings) -> None:
    """Install the root handler (replacing one installed here before; idempotent) and route
    uvicorn's loggers through it, so every line of a process has the same format.

    uvicorn's access log keeps its on/off state: it logs only while its logger has a handler
    (`distillery serve` leaves it off unless DISTILLERY_ACCESS_LOG is set)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, RootHandler)]:
        root.removeHandler(handler)
    root.addHandler(RootHandler(settings.log_format))
    root.setLevel(settings.log_level.upper())
    # Python's warnings too, rather than as raw lines on stderr.
    logging.captureWarnings(True)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = [], True
    access = logging.getLogger("uvicorn.access")
    if access.handlers:
        access.handlers, access.propagate = [], True
