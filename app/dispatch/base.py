"""How the API hands jobs over: the Dispatcher protocol (Celery or the embedded runner),
estimate answers, and `dispatch`, which sends one job and records that it was sent. The names
the API and the workers share (task names, the runner's exit codes) are the wire contract's:
distillery.types.protocol.

Which dispatcher runs is chosen by `make_dispatcher` (app/dispatch/__init__.py), the one place
that looks at the mode the service runs in (DISTILLERY_BROKER_URL).
"""

import logging
from typing import Any, Protocol

from app import jobs
from app.db import session_scope
from app.settings import Settings

log = logging.getLogger(__name__)


class EstimateUnavailable(Exception):
    """No worker answered an estimate in time (none consumes the estimate queue, or all are
    busy): the request may be tried again."""


class EstimateRefused(Exception):
    """The worker found the spec cannot run (what validate says of a job's)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.error = error


def estimate_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """A worker's answer: the estimate, or EstimateRefused for its error."""
    if "error" in answer:
        raise EstimateRefused(answer["error"])
    return answer


class Dispatcher(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def send(self, job_id: str, device: str = "any") -> None:
        """Send the job to the workers of its device kind (`resources.device`)."""
        ...

    def estimate(self, spec: dict[str, Any], tenant: str) -> dict[str, Any]:
        """Estimate a resolved spec on a worker (worker/estimate.py), waiting for it."""
        ...

    def ready(self) -> bool: ...
    def broker_restarted(self) -> bool:
        """True once after the broker lost what it held (its queue among it)."""
        ...


def dispatch(settings: Settings, dispatcher: Dispatcher, job_id: str) -> bool:
    """Send one job; on failure it stays queued with dispatched_at NULL and maintenance retries.

    A worker may get the job, find its tenant at the running limit and put it back to wait
    before this marks it sent: then it stays unmarked, and maintenance sends it again."""
    with session_scope(settings.database_url) as session:
        version, device = jobs.sending(session, job_id)
    try:
        dispatcher.send(job_id, device)
    except Exception as exc:
        log.warning("could not dispatch %s (will retry): %s", job_id, exc)
        return False
    with session_scope(settings.database_url) as session:
        jobs.mark_dispatched(session, job_id, version=version)
    return True
