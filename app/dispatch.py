"""Hand queued jobs to something that runs them: Celery by task name, or the embedded runner.

This is the one place that looks at which mode the service runs in (DISTILLERY_BROKER_URL).
A dispatcher also runs the maintenance loop: requeue jobs whose worker died (lease expired)
and re-send jobs whose first send failed, so a job accepted by the API is never lost.
"""

import logging
import threading
from typing import Protocol

from app import jobs
from app.db import session_scope
from app.settings import Settings

log = logging.getLogger(__name__)

# The worker registers its task under this name; the API only ever sends it by name.
RUN_JOB_TASK = "distillery.run_job"


class Dispatcher(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def send(self, job_id: str) -> None: ...
    def ready(self) -> bool: ...


class CeleryDispatcher:
    def __init__(self, settings: Settings) -> None:
        from celery import Celery

        assert settings.broker_url is not None
        self.settings = settings
        self.celery = Celery("distillery-api", broker=settings.broker_url)
        self.celery.conf.update(
            broker_connection_timeout=3,
            broker_connection_retry_on_startup=False,
            broker_transport_options={
                "visibility_timeout": settings.celery_visibility_timeout_seconds
            },
        )

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def send(self, job_id: str) -> None:
        self.celery.send_task(
            RUN_JOB_TASK,
            args=[job_id],
            queue=self.settings.celery_queue,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )

    def ready(self) -> bool:
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            return True
        except Exception:
            return False


def make_dispatcher(settings: Settings) -> Dispatcher:
    if settings.broker_url:
        return CeleryDispatcher(settings)
    from app.runner import EmbeddedRunner

    return EmbeddedRunner(settings)


def dispatch(settings: Settings, dispatcher: Dispatcher, job_id: str) -> bool:
    """Send one job; on failure it stays queued with dispatched_at NULL and maintenance retries.

    A worker may get the job, find its tenant at the running limit and put it back to wait
    before this marks it sent: then it stays unmarked, and maintenance sends it again."""
    with session_scope(settings.database_url) as session:
        version = jobs.job_version(session, job_id)
    try:
        dispatcher.send(job_id)
    except Exception as exc:
        log.warning("could not dispatch %s (will retry): %s", job_id, exc)
        return False
    with session_scope(settings.database_url) as session:
        jobs.mark_dispatched(session, job_id, version=version)
    return True


# A send that failed, or a job put back to wait for its tenant's running limit, is sent again
# once the job has sat undispatched this long.
REDISPATCH_AFTER_SECONDS = 10.0


def maintain_once(settings: Settings, dispatcher: Dispatcher) -> None:
    """Requeue jobs of dead workers and send undispatched jobs again (only as many of a tenant's
    as it has free running slots; the rest wait until one of its running jobs ends)."""
    with session_scope(settings.database_url) as session:
        requeued = jobs.reap_expired(session, max_attempts=settings.max_attempts)
        stranded = jobs.undispatched_job_ids(
            session,
            idle_seconds=REDISPATCH_AFTER_SECONDS,
            max_running=settings.tenant_max_running_jobs,
        )
    for job_id in [*requeued, *(j for j in stranded if j not in requeued)]:
        dispatch(settings, dispatcher, job_id)


class MaintenanceLoop:
    """A daemon thread running `maintain_once` every reaper_interval_seconds."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="distillery-maintenance", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                maintain_once(self.settings, self.dispatcher)
            except Exception:
                log.exception("maintenance pass failed")
            self._stop.wait(self.settings.reaper_interval_seconds)
