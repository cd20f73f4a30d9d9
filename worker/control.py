"""A worker's link to its job row: lease heartbeat, cancel and pause flags, stage, metrics and
events. Imports no torch: a claimed job is held (heartbeat running) before torch loads."""

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from app import jobs
from app.db import is_database_unreachable, session_scope
from app.jobs.errors import LeaseLost
from app.models import JobStatus
from app.settings import Settings

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    pass


class Interrupted(Exception):
    """Raised by the training loop's `check` to stop for now (a pause): the loop first writes a
    checkpoint at the step it reached, and the next run continues from that very step."""


class JobPaused(Interrupted):
    """The user paused the job: the loop checkpoints where it is, and the worker frees itself."""


__all__ = ["Interrupted", "JobCancelled", "JobControl", "JobPaused", "LeaseLost"]

T = TypeVar("T")


class JobControl:
    # Whether the heartbeat renews the lease (the worker holding the job) or only reads the
    # job's status under it (a process working for that worker: a torchrun rank).
    renews_lease = True

    def __init__(self, settings: Settings, job_id: str, owner: str) -> None:
        self.settings = settings
        self.job_id = job_id
        self.owner = owner
        self.cancel_requested = threading.Event()
        self.pause_requested = threading.Event()
        self.lease_lost = threading.Event()
        self._stop = threading.Event()
        # The heartbeat's log lines carry the job's id and attempt (app.logs.job_context).
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._heartbeat,),
            name="heartbeat",
            daemon=True,
        )

    def __enter__(self) -> "JobControl":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _heartbeat(self) -> None:
        """Renew the lease every lease_seconds / 3, and between renewals read the job's status
        every control_poll_seconds: a cancel or pause reaches the training loop within about
        a second, not a third of the lease."""
        settings = self.settings
        renew_every = settings.lease_seconds / 3
        interval = min(settings.control_poll_seconds, renew_every)
        renewed_at = time.monotonic()
        while not self._stop.wait(interval):
            renew = (
                self.renews_lease and time.monotonic() - renewed_at >= renew_every - interval / 2
            )
            try:
                with session_scope(settings.database_url) as session:
                    if renew:
                        status = jobs.renew_lease(
                            session, self.job_id, self.owner, settings.lease_seconds
                        )
                    else:
                        status = jobs.held_status(session, self.job_id, self.owner)
            except Exception:
                log.exception("heartbeat failed; retrying")
                continue
            if renew:
                renewed_at = time.monotonic()
            if status is None:
                self.lease_lost.set()
                return
            if status == JobStatus.CANCELLING:
                self.cancel_requested.set()
            elif status == JobStatus.PAUSING:
                self.pause_requested.set()

    def check(self) -> None:
        """Called by the training loop every few steps: cheap, reads two flags."""
        if self.lease_lost.is_set():
            raise LeaseLost(self.job_id)
        if self.cancel_requested.is_set():
            raise JobCancelled(self.job_id)
        if self.pause_requested.is_set():
            raise JobPaused(self.job_id)

    def ensure_held(self) -> None:
        """Raise LeaseLost unless this worker still holds the job, read now from the database
        (not the heartbeat's last reading): called right before the worker writes to the store,
        so a worker that was frozen (SIGSTOP, a VM paused) past its lease, its job meanwhile
        ended and perhaps deleted, leaves nothing under that job's prefix."""
        status = self.write(lambda session: jobs.held_status(session, self.job_id, self.owner))
        if status is None:
            self.lease_lost.set()
            raise LeaseLost(self.job_id)

    def write(self, change: Callable[[Session], T]) -> T:
        """Run one change of the job's rows in its own transaction, retrying while the database
        is unreachable (up to database_retry_seconds): a blip costs the job a pause, not an
        attempt. Each change is safe to repeat (events may, rarely, be written twice)."""
        deadline = time.monotonic() + self.settings.database_retry_seconds
        delay = 0.5
        while True:
            try:
                with session_scope(self.settings.database_url) as session:
                    return change(session)
            except Exception as exc:
                if not is_database_unreachable(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("database unreachable, retrying in %.1f s: %s", delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        """Add an event while this worker holds the job (LeaseLost once it does not)."""
        self.write(
            lambda session: jobs.add_event(
                session, self.job_id, kind, message, data, owner=self.owner
            )
        )

    def stage(self, stage: str, progress: dict[str, Any]) -> None:
        self.check()
        self.write(
            lambda session: jobs.set_stage(session, self.job_id, self.owner, stage, progress)
        )

    def progress(self, progress: dict[str, Any]) -> None:
        self.write(lambda session: jobs.set_progress(session, self.job_id, self.owner, progress))

    def cost(self, cost: dict[str, Any]) -> None:
        self.write(lambda session: jobs.set_cost(session, self.job_id, self.owner, cost))

    def epoch(self, stage: str, epoch: int, values: dict[str, float], progress: dict) -> None:
        self.write(
            lambda session: jobs.record_epoch(
                session, self.job_id, self.owner, stage, epoch, values, progress
            )
        )

    def artifact(self, *, name: str, fmt: str, size: int, sha256: str, key: str) -> None:
        self.write(
            lambda session: jobs.add_artifact(
                session,
                self.job_id,
                self.owner,
                name=name,
                fmt=fmt,
                size=size,
                sha256=sha256,
                key=key,
            )
        )

    def finish(self, status: str, **fields: Any) -> bool:
        return self.write(
            lambda session: jobs.finish(session, self.job_id, self.owner, status, **fields)
        )

    def paused(self, progress: dict[str, Any]) -> bool:
        return self.write(
            lambda session: jobs.mark_paused(session, self.job_id, self.owner, progress)
        )

    def requeue(self, reason: str) -> str | None:
        """Back to the queue after an infrastructure error (failed on the last attempt)."""
        return self.write(
            lambda session: jobs.requeue(
                session,
                self.job_id,
                self.owner,
                reason=reason,
                max_attempts=self.settings.max_attempts,
            )
        )
