"""Webhooks: each status change of a job that names a `webhook` is POSTed to its URL, signed,
in order, at least once.

Every status change already writes a `status` event in the same transaction as the change
(app/jobs/), so the events are the outbox: a job's JobWebhook row records the last status
event delivered, and the API's maintenance pass (app/dispatch/maintenance.py) POSTs the next
one. A failed POST (a network error, a timeout, an answer that is not 2xx) is retried with
doubling backoff and given up after `webhook_max_attempts`; every delivery, failure and give-up
is recorded as a `webhook` event of the job. Nothing is lost to a restart: the row and the
events are in the database, and a delivery interrupted mid-way is simply made again (receivers
dedupe on the `Distillery-Event-Id` header). Several API processes share the work through a
lease per row.

The body is JSON: {"id": <event id>, "type": "job.status", "created_at", "data": {"job": {id,
name, status, stage, error, result's compression, finished_at}}}, signed with the job's secret
(distillery/signatures.py: `Distillery-Signature: t=...,v1=...`).
"""

import ipaddress
import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session

from app.db import rows_changed, session_scope
from app.models import Job, JobEvent, JobStatus, JobWebhook, utcnow
from app.settings import Settings
from distillery.types.catalog import SpecError
from distillery.types.webhooks import HEADER, signature

log = logging.getLogger(__name__)

EVENT_HEADER = "Distillery-Event-Id"
# A process holding a row this long without finishing is presumed dead; another may deliver.
LEASE_SECONDS = 120.0
BATCH = 50  # webhooks looked at per pass
PARKED = datetime(9999, 1, 1)  # next_attempt_at of a finished job's delivered webhook


def check_url(url: str, settings: Settings) -> None:
    """At job creation: refuse a URL whose host is a loopback, private, link-local or reserved
    address written out (or `localhost`), unless webhook_allow_private. A name that resolves to
    one is refused at delivery (recorded as an event)."""
    if settings.webhook_allow_private:
        return
    host = urlsplit(url).hostname or ""
    if host.lower() in ("localhost", "localhost.") or _is_private(host):
        raise SpecError(
            "webhook.url",
            f"{host} is a loopback or private address; webhooks go to public addresses "
            "(DISTILLERY_WEBHOOK_ALLOW_PRIVATE=true allows others)",
        )


def _is_private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return not ip.is_global or ip.is_multicast


def _private_address(host: str) -> str | None:
    """An address `host` resolves to that webhooks may not reach, or None."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return None  # the POST reports the resolution failure
    for info in infos:
        address = str(info[4][0])
        if _is_private(address):
            return address
    return None


def payload(job: Job, event: JobEvent) -> dict[str, Any]:
    result = job.result or {}
    return {
        "id": event.id,
        "type": "job.status",
        "created_at": event.created_at.isoformat() + "Z",
        "data": {
            "job": {
                "id": job.id,
                "name": job.name,
                "status": event.message,
                "stage": job.stage,
                "error": job.error,
                "compression": result.get("compression"),
                "finished_at": job.finished_at.isoformat() + "Z" if job.finished_at else None,
            }
        },
    }


@dataclass
class Outcome:
    delivered: bool
    detail: str
    permanent: bool = False  # retrying cannot help (a refused address)


def deliver_due(settings: Settings, client: httpx.Client | None = None) -> int:
    """Deliver the next status event of every webhook that is due; how many were tried."""
    now = utcnow()
    pending = exists().where(
        JobEvent.job_id == JobWebhook.job_id,
        JobEvent.kind == "status",
        JobEvent.id > JobWebhook.delivered_event_id,
    )
    free = or_(JobWebhook.lease_expires_at.is_(None), JobWebhook.lease_expires_at < now)
    with session_scope(settings.database_url) as session:
        due = list(
            session.scalars(
                select(JobWebhook.job_id)
                .where(JobWebhook.next_attempt_at <= now, free, pending)
                .order_by(JobWebhook.next_attempt_at)
                .limit(BATCH)
            )
        )
    if not due:
        return 0
    http = client or httpx.Client(timeout=settings.webhook_timeout_seconds)
    tried = 0
    try:
        for job_id in due:
            with session_scope(settings.database_url) as session:
                if _claim(session, job_id, now):
                    tried += _deliver_next(session, settings, http, job_id)
    finally:
        if client is None:
            http.close()
    return tried


def _claim(session: Session, job_id: str, now: Any) -> bool:
    free = or_(JobWebhook.lease_expires_at.is_(None), JobWebhook.lease_expires_at < now)
    claimed = session.execute(
        update(JobWebhook)
        .where(and_(JobWebhook.job_id == job_id, free))
        .values(lease_expires_at=now + timedelta(seconds=LEASE_SECONDS))
    )
    session.commit()
    return bool(rows_changed(claimed))


def _deliver_next(session: Session, settings: Settings, http: httpx.Client, job_id: str) -> int:
    hook = session.get(JobWebhook, job_id)
    job = session.get(Job, job_id)
    if hook is None or job is None:
        return 0
    event = session.scalar(
        select(JobEvent)
        .where(
            JobEvent.job_id == job_id,
            JobEvent.kind == "status",
            JobEvent.id > hook.delivered_event_id,
        )
        .order_by(JobEvent.id)
        .limit(1)
    )
    if event is None:
        hook.lease_expires_at = None
        session.commit()
        return 0
    outcome = _post(settings, http, hook, payload(job, event))
    attempt = hook.attempts + 1
    status = event.message
    last = status == job.status and job.status in JobStatus.FINISHED
    data = {"event_id": event.id, "status": status, "attempt": attempt, "detail": outcome.detail}
    if outcome.delivered:
        message = f"delivered {status!r} to {hook.url} ({outcome.detail})"
        _advance(hook, event.id, final=last)
    elif outcome.permanent or attempt >= settings.webhook_max_attempts:
        message = (
            f"gave up delivering {status!r} to {hook.url} after {attempt} attempt"
            f"{'s' if attempt > 1 else ''}: {outcome.detail}"
        )
        _advance(hook, event.id, final=last)
    else:
        wait = min(
            settings.webhook_backoff_seconds * 2 ** (attempt - 1),
            settings.webhook_backoff_max_seconds,
        )
        message = (
            f"delivering {status!r} to {hook.url} failed (attempt {attempt} of "
            f"{settings.webhook_max_attempts}): {outcome.detail}; retrying in {wait:.0f} s"
        )
        hook.attempts = attempt
        hook.next_attempt_at = utcnow() + timedelta(seconds=wait)
    hook.lease_expires_at = None
    session.add(JobEvent(job_id=job_id, kind="webhook", message=message, data=data))
    session.commit()
    return 1


def _advance(hook: JobWebhook, event_id: int, *, final: bool) -> None:
    """Move past the event; after a finished job's last status the row is parked (a finished
    job changes no more), so maintenance passes do not look at it again."""
    hook.delivered_event_id = event_id
    hook.attempts = 0
    hook.next_attempt_at = PARKED if final else utcnow()


def _post(
    settings: Settings, http: httpx.Client, hook: JobWebhook, body_json: dict[str, Any]
) -> Outcome:
    host = urlsplit(hook.url).hostname or ""
    if not settings.webhook_allow_private:
        bad = _private_address(host)
        if bad is not None:
            return Outcome(False, f"{host} resolves to {bad}, a private address", permanent=True)
    body = json.dumps(body_json, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Distillery-Webhooks/1",
        HEADER: signature(hook.secret, int(time.time()), body),
        EVENT_HEADER: str(body_json["id"]),
    }
    try:
        response = http.post(
            hook.url,
            content=body,
            headers=headers,
            timeout=settings.webhook_timeout_seconds,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return Outcome(False, f"{type(exc).__name__}: {exc}"[:300])
    detail = f"HTTP {response.status_code}"
    return Outcome(200 <= response.status_code < 300, detail)
