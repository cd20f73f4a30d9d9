"""The maintenance loop each API process runs beside its dispatcher: requeue jobs whose worker
died (lease expired; those it ends lose their remote work files), re-send jobs whose first send
failed, and re-send jobs the broker lost (a Redis restarted without its data) or that no worker
claimed for too long, so a job accepted by the API is never lost (a job sent twice runs once:
the second delivery finds it claimed and is skipped). It also delivers webhooks and runs the
disk housekeeping.
"""

import logging
import threading
import time

from app import jobs
from app.db import session_scope
from app.dispatch.base import Dispatcher, dispatch
from app.settings import Settings

log = logging.getLogger(__name__)

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
    ended: list[str] = []
    with session_scope(settings.database_url) as session:
        requeued = jobs.reap_expired(session, max_attempts=settings.max_attempts, ended=ended)
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
    if ended:
        _clear_remote_work(settings, ended)


def _clear_remote_work(settings: Settings, job_ids: list[str]) -> None:
    """The work files in a remote store of jobs the reaper ended: nothing resumes from them
    now. (A failure here is logged; gc removes a finished job's remote work files too.)"""
    from app.housekeeping import remove_remote_work
    from app.store import make_store

    store = make_store(settings.artifact_url, settings.s3_endpoint_url)
    for job_id in job_ids:
        try:
            remove_remote_work(store, job_id)
        except Exception:
            log.warning(
                "could not remove the work files of %s from the store", job_id, exc_info=True
            )


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
