"""A worker's link to its job row: lease heartbeat, cancel flag, stage, metrics and events."""

import logging
import threading
from typing import Any

from app import jobs
from app.db import session_scope
from app.jobs import LeaseLost
from app.models import JobStatus
from app.settings import Settings

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    pass


__all__ = ["JobCancelled", "JobControl", "LeaseLost"]


class JobControl:
    def __init__(self, settings: Settings, job_id: str, owner: str) -> None:
        self.settings = settings
        self.job_id = job_id
        self.owner = owner
        self.cancel_requested = threading.Event()
        self.lease_lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)

    def __enter__(self) -> "JobControl":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _heartbeat(self) -> None:
        interval = self.settings.lease_seconds / 3
        while not self._stop.wait(interval):
            try:
                with session_scope(self.settings.database_url) as session:
                    status = jobs.renew_lease(
                        session, self.job_id, self.owner, self.settings.lease_seconds
                    )
            except Exception:
                log.exception("heartbeat failed; retrying")
                continue
            if status is None:
                self.lease_lost.set()
                return
            if status == JobStatus.CANCELLING:
                self.cancel_requested.set()

    def check(self) -> None:
        """Called by the training loop every few steps: cheap, reads two flags."""
        if self.lease_lost.is_set():
            raise LeaseLost(self.job_id)
        if self.cancel_requested.is_set():
            raise JobCancelled(self.job_id)

    def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        with session_scope(self.settings.database_url) as session:
            jobs.add_event(session, self.job_id, kind, message, data)

    def stage(self, stage: str, progress: dict[str, Any]) -> None:
        self.check()
        with session_scope(self.settings.database_url) as session:
            jobs.set_stage(session, self.job_id, self.owner, stage, progress)

    def epoch(self, stage: str, epoch: int, values: dict[str, float], progress: dict) -> None:
        with session_scope(self.settings.database_url) as session:
            jobs.record_epoch(session, self.job_id, self.owner, stage, epoch, values, progress)

    def artifact(self, *, name: str, fmt: str, size: int, sha256: str, key: str) -> None:
        with session_scope(self.settings.database_url) as session:
            jobs.add_artifact(
                session,
                self.job_id,
                self.owner,
                name=name,
                fmt=fmt,
                size=size,
                sha256=sha256,
                key=key,
            )

    def finish(self, status: str, **fields: Any) -> bool:
        with session_scope(self.settings.database_url) as session:
            return jobs.finish(session, self.job_id, self.owner, status, **fields)
