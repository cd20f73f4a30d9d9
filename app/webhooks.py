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
name, status, stage, error, compression, finished_at}}}: the job as it was at that status
change, however late the delivery (the snapshot the status event stored when it was written,
app/jobs/rows.status_event); `status` is the job's status value (`queued`, `running`, ...).
It is signed with the job's secret (distillery/types/webhooks.py: `Distillery-Signature:
t=...,v1=...`).

Where it goes: a URL naming `localhost` or a loopback, private, link-local, reserved or
multicast address (IPv4, or IPv6 standing for or embedding such an IPv4 address) is refused at
creation (check_url); at delivery the host is resolved once, every address it resolves to is
checked, and the POST goes to those checked addresses, with the URL's name as Host, TLS server
name and the name the certificate is verified against (DNS rebinding cannot redirect it).
"""

import ipaddress
import json
import logging
import re
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
    """At job creation: refuse a URL whose host is `localhost` or an address written out
    (in any spelling: `127.1`, `[::ffff:127.0.0.1]`, ...) that webhooks may not reach, unless
    webhook_allow_private. A name that resolves to one is refused at delivery (an event)."""
    if settings.webhook_allow_private:
        return
    host = urlsplit(url).hostname or ""
    bad = host.lower() in ("localhost", "localhost.") or any(
        refused_address(a) for a in _resolve(host, numeric=True)
    )
    if bad:
        raise SpecError(
            "webhook.url",
            f"{host} is a loopback or private address; webhooks go to public addresses "
            "(DISTILLERY_WEBHOOK_ALLOW_PRIVATE=true allows others)",
        )


# IPv6 prefixes whose addresses stand for the IPv4 address in their last 32 bits.
_V4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated, still routed by some stacks
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known NAT64 prefix
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64: never public


def refused_address(address: str) -> bool:
    """Whether webhooks may not go to `address`: an IPv4 address that is not global (loopback,
    private, link-local, shared, reserved, ...) or is multicast; an IPv6 address that stands
    for an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96, 6to4) by the rule
    of that address; any other IPv6 address that embeds a refused IPv4 address (Teredo's server
    or client), is in the local-use NAT64 prefix, is not global or is multicast."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return not ip.is_global or ip.is_multicast
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    standing_for = ip.ipv4_mapped or ip.sixtofour
    if standing_for is None and (ip in _V4_COMPATIBLE or ip in _NAT64):
        standing_for = low32
    if standing_for is not None:
        return refused_address(str(standing_for))
    if ip.teredo and any(refused_address(str(v4)) for v4 in ip.teredo):
        return True
    return ip in _NAT64_LOCAL or not ip.is_global or ip.is_multicast


def _resolve(host: str, *, numeric: bool = False) -> list[str]:
    """The addresses `host` resolves to, each once, in the resolver's order (with `numeric`,
    only a host that is an address written out, in any spelling; [] for a name). Raises
    OSError when a name does not resolve, or is not a valid one."""
    flags = socket.AI_NUMERICHOST if numeric else 0
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=flags)
    except (OSError, ValueError) as exc:  # ValueError: a label the IDNA codec refuses
        if numeric:
            return []
        raise OSError(str(exc)) from exc
    addresses = [str(info[4][0]).split("%")[0] for info in infos]
    return list(dict.fromkeys(addresses))


def payload(session: Session, job: Job, event: JobEvent) -> dict[str, Any]:
    """The body delivering `event`: the job as it was at that status change."""
    return {
        "id": event.id,
        "type": "job.status",
        "created_at": event.created_at.isoformat() + "Z",
        "data": {"job": {"id": job.id, "name": job.name, **described(session, job, event)}},
    }


# What a delivery says of the job besides its id and name.
_DESCRIBED = ("status", "stage", "error", "compression", "finished_at")


def described(session: Session, job: Job, event: JobEvent) -> dict[str, Any]:
    """The job at a status event: the snapshot its event stored (app/jobs/rows.status_event);
    for an event an older version wrote without one, the status read off its message
    ("running (attempt 1)", "queued again: ...", "failed: ..."), the stage of the last stage
    event before it, and the error, compression and finished_at of the job only when that
    status is the job's final one (a finished job changes no more)."""
    snapshot = (event.data or {}).get("job")
    if isinstance(snapshot, dict):
        return {key: snapshot.get(key) for key in _DESCRIBED}
    word = re.match(r"[a-z]+", event.message)
    status = word.group(0) if word and word.group(0) in JobStatus.ALL else event.message
    stage = session.scalar(
        select(JobEvent.message)
        .where(JobEvent.job_id == job.id, JobEvent.kind == "stage", JobEvent.id < event.id)
        .order_by(JobEvent.id.desc())
        .limit(1)
    )
    final = status == job.status and status in JobStatus.FINISHED
    return {
        "status": status,
        "stage": stage,
        "error": job.error if final else None,
        "compression": (job.result or {}).get("compression") if final else None,
        "finished_at": job.finished_at.isoformat() + "Z" if final and job.finished_at else None,
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
    # No connection is kept for the next delivery (each is made to the address its own check
    # allowed, with its own name's TLS verification); no proxy from the environment is used
    # (it would connect to an address that was not checked). SSL_CERT_FILE / SSL_CERT_DIR
    # still choose the certificates trusted.
    http = client or httpx.Client(
        timeout=settings.webhook_timeout_seconds,
        limits=httpx.Limits(max_keepalive_connections=0),
        trust_env=False,
        verify=httpx.create_ssl_context(trust_env=True),
    )
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
    body = payload(session, job, event)
    outcome = _post(settings, http, hook, body)
    attempt = hook.attempts + 1
    status = body["data"]["job"]["status"]
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
    """POST to the URL's host, resolved once: every address it resolves to is checked, and
    the request goes to those addresses (in order, the next when one cannot be connected to),
    never to a name resolved again, which could answer another address by then (DNS
    rebinding). The Host header, the TLS server name (SNI) and the certificate's check are
    the URL's name's."""
    try:
        url = httpx.URL(hook.url)
    except httpx.InvalidURL as exc:
        return Outcome(False, f"not a URL that can be posted to: {exc}"[:300], permanent=True)
    host = url.raw_host.decode("ascii")
    try:
        addresses = _resolve(host)
    except OSError as exc:
        return Outcome(False, f"cannot resolve {host}: {exc}"[:300])
    if not settings.webhook_allow_private:
        bad = next((a for a in addresses if refused_address(a)), None)
        if bad is not None:
            return Outcome(False, f"{host} resolves to {bad}, a private address", permanent=True)
    body = json.dumps(body_json, separators=(",", ":")).encode()
    headers = {
        "Host": url.netloc.decode("ascii"),
        "Content-Type": "application/json",
        "User-Agent": "Distillery-Webhooks/1",
        HEADER: signature(hook.secret, int(time.time()), body),
        EVENT_HEADER: str(body_json["id"]),
    }
    failure = f"{host} resolves to no address"
    for address in addresses:
        try:
            response = http.post(
                url.copy_with(host=address),
                content=body,
                headers=headers,
                timeout=settings.webhook_timeout_seconds,
                follow_redirects=False,
                extensions={"sni_hostname": host},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failure = f"{type(exc).__name__}: {exc}"[:300]
            continue  # nothing was sent: the next address
        except httpx.HTTPError as exc:
            return Outcome(False, f"{type(exc).__name__}: {exc}"[:300])
        return Outcome(200 <= response.status_code < 300, f"HTTP {response.status_code}")
    return Outcome(False, failure)
