"""Webhook signatures: what the service signs each delivery with and what a receiver checks.

A delivery carries `Distillery-Signature: t=<unix seconds>,v1=<hex>` where the hex is
HMAC-SHA256 under the job's webhook secret of `<t>.<the raw request body>`. A receiver
recomputes it over the bytes it received and refuses a timestamp older than its tolerance, so
a captured delivery cannot be replayed later. (Stdlib only: the service and the SDK share it.)

The body is JSON: {"id": <event id, also the Distillery-Event-Id header>, "type": "job.status",
"created_at", "data": {"job": {"id", "name", "status", "stage", "error", "compression",
"finished_at"}}}, the job as it was at that status change, however late it is delivered:
`status` is the job's status value (`queued`, `running`, `pausing`, `paused`, `cancelling`,
`succeeded`, `failed`, `cancelled`), `stage` the stage it was in (null before the first),
`error` its error ({"code", "message", ...}) once `failed`, `compression` its result's
compression figures ({"param_ratio", "size_ratio", ...}) once `succeeded`, `finished_at` once
finished; else null.
"""

import hashlib
import hmac
import time

HEADER = "Distillery-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(ValueError):
    """The delivery was not signed with this secret, was altered, or is too old."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp`."""
    digest = _digest(secret, timestamp, body)
    return f"t={timestamp},v1={digest}"


def verify(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check a delivery's `Distillery-Signature` header against its raw body; the timestamp
    it was signed at. Raises InvalidSignature."""
    if not header:
        raise InvalidSignature(f"no {HEADER} header")
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature(f"{HEADER} has no timestamp t=") from None
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_seconds:
        raise InvalidSignature(
            f"signed {age:.0f} s ago, beyond the tolerance of {tolerance_seconds:.0f} s"
        )
    expected = _digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, given) for given in fields.get("v1", [])):
        raise InvalidSignature("the signature does not match the body and secret")
    return timestamp


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
