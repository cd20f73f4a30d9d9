"""The poll path: what GET /v1/jobs, /v1/jobs/{id} and its events, metrics and artifacts read,
one statement each on the async database, and their bodies serialised once (orjson).

The bodies have the shapes distillery/types documents. JSON columns the API passes through
untouched (metadata, result, event data, metric values) are embedded as stored, not parsed
and serialised again.
"""

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from app.db_async import AsyncDatabase
from app.jobs.errors import JobNotFound

# Bumped whenever a body's shape changes, so a client's cached ETag never matches a body of
# another shape.
REPRESENTATION = "3"

# Fields a list item carries only when asked (?include=spec, ?include=result, ?include=cost):
# large, and not what a list is read for.
OPTIONAL_FIELDS = ("spec", "result", "cost")

# Top-level fields of a job that the stored spec (the request body) repeats.
NOT_IN_SPEC = ("name", "metadata")

_DUMPS_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def dumps(body: Any) -> bytes:
    """JSON bytes; naive timestamps (stored as UTC) end in "Z", like the schemas' UtcDatetime."""
    return orjson.dumps(body, option=_DUMPS_OPTIONS)


def _has_non_json_numbers(raw: str | bytes) -> bool:
    # Python's json module writes NaN and Infinity, which JSON has not: such a value is parsed
    # and written again (as null) rather than embedded.
    if isinstance(raw, bytes):
        return b"NaN" in raw or b"Infinity" in raw
    return "NaN" in raw or "Infinity" in raw


def _load(raw: str | bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _embed(raw: str | bytes | None) -> Any:
    """A stored JSON value, to be written into a body as it is."""
    if raw is None:
        return None
    if _has_non_json_numbers(raw):
        return json.loads(raw)
    return orjson.Fragment(raw)


def _when(value: datetime | str | None) -> datetime | None:
    """A stored timestamp: PostgreSQL's driver gives a datetime, SQLite the text SQLAlchemy
    wrote ("YYYY-MM-DD HH:MM:SS.ffffff")."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def public_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The resolved spec without the fields the job has at its top level."""
    return {k: v for k, v in (spec or {}).items() if k not in NOT_IN_SPEC}


def _progress(raw: str | bytes | None) -> dict[str, Any]:
    stored = _load(raw) or {}
    fraction = stored.get("fraction")
    eta = stored.get("eta_seconds")
    return {
        "stage": stored.get("stage"),
        "epoch": stored.get("epoch"),
        "epochs": stored.get("epochs"),
        "fraction": 0.0 if fraction is None else float(fraction),
        "eta_seconds": None if eta is None else float(eta),
    }


def _error(raw: str | bytes | None) -> dict[str, Any] | None:
    stored = _load(raw)
    if not stored:
        return None
    return {
        "code": stored.get("code"),
        "message": stored.get("message"),
        "param": stored.get("param"),
        "stage": stored.get("stage"),
    }


def _etag(*parts: object) -> str:
    text = "|".join(map(str, (REPRESENTATION, *parts)))
    return f'W/"{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison, as for GET)."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


def _check_id(job_id: str) -> None:
    if "\x00" in job_id:  # no id has one, and PostgreSQL refuses to compare with it
        raise JobNotFound(job_id)


# --- jobs -------------------------------------------------------------------------------------


class JobRow(NamedTuple):
    id: str
    tenant: str
    name: str | None
    status: str
    stage: str | None
    progress: Any
    attempt: int
    created_at: Any
    started_at: Any
    finished_at: Any
    updated_at: Any
    error: Any
    metadata: Any
    spec: Any
    result: Any
    cost: Any


_JOB_COLUMNS = (
    "id, tenant, name, status, stage, progress, attempt, created_at, started_at, finished_at, "
    "updated_at, error, metadata"
)
_GET_JOB = f"SELECT {_JOB_COLUMNS}, spec, result, cost FROM job WHERE id = :id"


async def get_job(database: AsyncDatabase, job_id: str, tenant: str) -> JobRow:
    """The tenant's job (another tenant's is JobNotFound, like a missing one)."""
    _check_id(job_id)
    rows = await database.fetch(_GET_JOB, {"id": job_id})
    if not rows or rows[0][1] != tenant:
        raise JobNotFound(job_id)
    return JobRow._make(rows[0])


def job_etag(job: JobRow) -> str:
    """Changes whenever the job's body does: every write to a job sets updated_at."""
    return _etag(job.id, job.updated_at, job.status, job.attempt)


def job_body(job: JobRow, include: Iterable[str] = OPTIONAL_FIELDS) -> dict[str, Any]:
    """The job object (schemas.Job); spec, result and cost only if named in `include`."""
    body: dict[str, Any] = {
        "id": job.id,
        "object": "job",
        "name": job.name,
        "status": job.status,
        "stage": job.stage,
        "progress": _progress(job.progress),
        "attempt": job.attempt,
        "created_at": _when(job.created_at),
        "started_at": _when(job.started_at),
        "finished_at": _when(job.finished_at),
        "error": _error(job.error),
    }
    if "spec" in include:
        body["spec"] = public_spec(_load(job.spec))
    body["metadata"] = _embed(job.metadata) or {}
    if "result" in include:
        body["result"] = _embed(job.result)
    if "cost" in include:
        body["cost"] = _embed(job.cost)
    return body


async def list_jobs(
    database: AsyncDatabase,
    tenant: str,
    *,
    status: str | None,
    limit: int,
    after: str | None,
    include: Iterable[str] = (),
) -> tuple[list[JobRow], bool]:
    """The tenant's jobs, newest first, after the job `after` (JobNotFound if it is not one of
    the tenant's); and whether more follow. Spec, result and cost are read only if included."""
    optional = ", ".join(f if f in include else f"NULL AS {f}" for f in OPTIONAL_FIELDS)
    where = ["tenant = :tenant"]
    params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1}
    if status is not None:
        where.append("status = :status")
        params["status"] = status
    if after is not None:
        _check_id(after)
        cursor = await database.fetch(
            "SELECT created_at FROM job WHERE id = :id AND tenant = :tenant",
            {"id": after, "tenant": tenant},
        )
        if not cursor:
            raise JobNotFound(after)
        where.append("(created_at < :at OR (created_at = :at AND id < :after))")
        params.update(at=cursor[0][0], after=after)
    sql = (
        f"SELECT {_JOB_COLUMNS}, {optional} FROM job WHERE {' AND '.join(where)} "
        "ORDER BY created_at DESC, id DESC LIMIT :limit"
    )
    rows = [JobRow._make(r) for r in await database.fetch(sql, params)]
    return rows[:limit], len(rows) > limit


def list_etag(rows: list[JobRow], has_more: bool, include: Iterable[str]) -> str:
    return _etag(sorted(include), has_more, [(r.id, str(r.updated_at)) for r in rows])


def list_body(rows: list[JobRow], has_more: bool, include: Iterable[str]) -> dict[str, Any]:
    return {"object": "list", "data": [job_body(r, include) for r in rows], "has_more": has_more}


# --- a job's events, metrics and artifacts ----------------------------------------------------
# One statement each: the job (its tenant, for the check) left-joined to the rows asked for, so
# a job without any still answers one row, of NULLs.


async def _job_and_rows(
    database: AsyncDatabase, sql: str, job_id: str, tenant: str, **params: Any
) -> tuple[str, list[tuple[Any, ...]]]:
    """(the job's status, its rows) from a `SELECT job.tenant, job.status, <row columns>`."""
    _check_id(job_id)
    rows = await database.fetch(sql, {"job_id": job_id, **params})
    if not rows or rows[0][0] != tenant:
        raise JobNotFound(job_id)
    return rows[0][1], [r[2:] for r in rows if r[2] is not None]


_EVENTS = (
    "SELECT j.tenant, j.status, e.id, e.created_at, e.kind, e.message, e.data FROM job j "
    "LEFT JOIN job_event e ON e.job_id = j.id AND e.id > :after "
    "WHERE j.id = :job_id ORDER BY e.id LIMIT :limit"
)


async def list_events(
    database: AsyncDatabase, job_id: str, tenant: str, after: int | None, limit: int
) -> tuple[str, list[dict[str, Any]]]:
    """(the job's status, up to `limit` of its events after the event `after`, oldest first).
    Both come from one snapshot: a job seen finished has all its events in the list."""
    status, rows = await _job_and_rows(
        database, _EVENTS, job_id, tenant, after=-1 if after is None else after, limit=limit
    )
    events = [
        {
            "id": event_id,
            "object": "job.event",
            "created_at": _when(created_at),
            "kind": kind,
            "message": message,
            "data": _embed(data),
        }
        for event_id, created_at, kind, message, data in rows
    ]
    return status, events


_METRICS = (
    'SELECT j.tenant, j.status, m.stage, m.epoch, m."values" FROM job j '
    "LEFT JOIN metric m ON m.job_id = j.id WHERE j.id = :job_id ORDER BY m.id"
)


async def list_metrics(database: AsyncDatabase, job_id: str, tenant: str) -> dict[str, Any]:
    """The metric list body (schemas.MetricList)."""
    _, rows = await _job_and_rows(database, _METRICS, job_id, tenant)
    data = [
        {"stage": stage, "epoch": epoch, "values": _embed(values)} for stage, epoch, values in rows
    ]
    return {"object": "list", "data": data}


_ARTIFACTS = (
    "SELECT j.tenant, j.status, a.name, a.format, a.bytes, a.sha256, a.created_at FROM job j "
    "LEFT JOIN artifact a ON a.job_id = j.id WHERE j.id = :job_id ORDER BY a.id"
)


async def list_artifacts(database: AsyncDatabase, job_id: str, tenant: str) -> dict[str, Any]:
    """The artifact list body (schemas.ArtifactList)."""
    _, rows = await _job_and_rows(database, _ARTIFACTS, job_id, tenant)
    data = [
        {
            "object": "artifact",
            "name": name,
            "format": fmt,
            "bytes": size,
            "sha256": sha256,
            "created_at": _when(created_at),
        }
        for name, fmt, size, sha256, created_at in rows
    ]
    return {"object": "list", "data": data}
