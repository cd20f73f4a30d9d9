"""Hand queued jobs to something that runs them: Celery by task name, or the embedded runner.

This is the one place that looks at which mode the service runs in (DISTILLERY_BROKER_URL).
A dispatcher also runs the maintenance loop: requeue jobs whose worker died (lease expired),
re-send jobs whose first send failed, and re-send jobs the broker lost (a Redis restarted
without its data) or that no worker claimed for too long, so a job accepted by the API is
never lost. A job sent twice runs once: the second delivery finds it claimed and is skipped.
"""

import logging
import threading
import time
import uuid
from typing import Any, Protocol

from app import jobs
from app.db import session_scope
from app.settings import Settings

log = logging.getLogger(__name__)

# The worker registers its tasks under these names; the API only ever sends them by name.
RUN_JOB_TASK = "distillery.run_job"
ESTIMATE_TASK = "distillery.estimate"


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
    def send(self, job_id: str) -> None: ...
    def estimate(self, spec: dict[str, Any], tenant: str) -> dict[str, Any]:
        """Estimate a resolved spec on a worker (worker/estimate.py), waiting for it."""
        ...

    def ready(self) -> bool: ...
    def broker_restarted(self) -> bool:
        """True once after the broker lost what it held (its queue among it)."""
        ...


# Set in the broker by the first dispatcher that finds it missing: a broker that comes back
# without it has lost its data, queued messages included.
BROKER_MARKER_KEY = "distillery:broker-marker"


class CeleryDispatcher:
    def __init__(self, settings: Settings) -> None:
        from celery import Celery

        assert settings.broker_url is not None
        self.settings = settings
        self.celery = Celery(
            "distillery-api", broker=settings.broker_url, backend=settings.result_backend
        )
        self.celery.conf.update(
            broker_connection_timeout=3,
            broker_connection_retry_on_startup=False,
            # A Redis that accepts connections but never answers must not hang a send or
            # /readyz.
            broker_transport_options={
                "visibility_timeout": settings.celery_visibility_timeout_seconds,
                "socket_connect_timeout": 3,
                "socket_timeout": 3,
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

    def estimate(self, spec: dict[str, Any], tenant: str) -> dict[str, Any]:
        from celery.exceptions import TimeoutError as CeleryTimeout

        timeout = self.settings.estimate_timeout_seconds
        pending = self.celery.send_task(
            ESTIMATE_TASK,
            args=[spec, tenant],
            queue=self.settings.celery_estimate_queue,
            # Not worth running once nobody waits for it.
            expires=timeout,
        )
        try:
            answer = pending.get(timeout=timeout)
        except CeleryTimeout:
            pending.forget()
            raise EstimateUnavailable(
                f"no worker on queue {self.settings.celery_estimate_queue!r} answered within "
                f"{timeout:.0f} s"
            ) from None
        return estimate_answer(answer)

    def ready(self) -> bool:
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            return True
        except Exception:
            return False

    def broker_restarted(self) -> bool:
        """Only a Redis broker can lose its queue this way (RabbitMQ keeps durable queues on
        disk). Of several API processes, the one that sets the new marker answers True."""
        if not self.settings.broker_url or not self.settings.broker_url.startswith("redis"):
            return False
        import redis

        client = redis.Redis.from_url(
            self.settings.broker_url, socket_timeout=3, socket_connect_timeout=3
        )
        try:
            return bool(client.set(BROKER_MARKER_KEY, uuid.uuid4().hex, nx=True))
        finally:
            client.close()


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
    """Requeue jobs of dead workers, send undispatched jobs again (only as many of a tenant's
    as it has free running slots; the rest wait until one of its running jobs ends), and send
    again the jobs sent but never claimed: all of them when the broker lost its data, else
    those waiting longer than resend_unclaimed_after_seconds."""
    try:
        restarted = dispatcher.broker_restarted()
    except Exception as exc:
        log.warning("could not check the broker (will retry): %s", exc)
        restarted = False
    with session_scope(settings.database_url) as session:
        requeued = jobs.reap_expired(session, max_attempts=settings.max_attempts)
        stranded = jobs.undispatched_job_ids(
            session,
            idle_seconds=REDISPATCH_AFTER_SECONDS,
            max_running=settings.tenant_max_running_jobs,
        )
        unclaimed = jobs.unclaimed_job_ids(
            session, sent_seconds_ago=0.0 if restarted else settings.resend_unclaimed_after_seconds
        )
    if restarted and unclaimed:
        log.warning("the broker lost its queue: sending %d jobs again", len(unclaimed))
    for job_id in dict.fromkeys([*requeued, *stranded, *unclaimed]):
        dispatch(settings, dispatcher, job_id)


class MaintenanceLoop:
    """A daemon thread running `maintain_once` and the webhook deliveries
    (app.webhooks.deliver_due) every reaper_interval_seconds, and the disk housekeeping
    (app.housekeeping.collect_garbage) every gc_interval_seconds."""

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
        next_gc = time.monotonic()
        while not self._stop.is_set():
            try:
                maintain_once(self.settings, self.dispatcher)
            except Exception:
                log.exception("maintenance pass failed")
            self._deliver_webhooks()
            if time.monotonic() >= next_gc:
                next_gc = time.monotonic() + self.settings.gc_interval_seconds
                self._collect_garbage()
            self._stop.wait(self.settings.reaper_interval_seconds)

    def _deliver_webhooks(self) -> None:
        from app.webhooks import deliver_due

        try:
            deliver_due(self.settings)
        except Exception:
            log.exception("webhook delivery pass failed")

    def _collect_garbage(self) -> None:
        from app.housekeeping import collect_garbage

        try:
            collect_garbage(self.settings)  # logs what it freed
        except Exception:
            log.exception("housekeeping pass failed")
