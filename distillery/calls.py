"""Every API call as data: what to send (a Call) and how to read the answer (its parse
function). Both clients build their requests here and parse with the same functions; each only
sends. List calls parse to a Page that knows the call for the next page (cursor `after`)."""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from distillery import types
from distillery.errors import raise_for_status
from distillery.multipart import MultipartUpload

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Statuses a job never leaves (app.models.JobStatus.FINISHED; not imported: SQLAlchemy).
FINISHED = ("succeeded", "failed", "cancelled")
# A file's status while its check runs (then `ready` or `error`).
FILE_PROCESSING = "processing"
# An event stream sends a keepalive comment every 15 s: a read waits for several of them.
EVENT_STREAM_READ_TIMEOUT = 60.0
DEFAULT_PAGE_SIZE = 20
EVENTS_PAGE_SIZE = 100


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request, and the function that turns its (successful) response into T."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    read_timeout: float | None = None

    def request(self, timeout: httpx.Timeout, content: Any = None) -> dict[str, Any]:
        """Keyword arguments for httpx's (Async)Client.request / .stream; `content`: a body
        the client streams (an upload)."""
        if self.read_timeout is not None and (timeout.read or 0) < self.read_timeout:
            timeout = httpx.Timeout(
                connect=timeout.connect,
                read=self.read_timeout,
                write=timeout.write,
                pool=timeout.pool,
            )
        params = {k: v for k, v in self.params.items() if v is not None}
        return {
            "method": self.method,
            "url": self.path,
            "params": params,
            "json": self.json,
            "content": content,
            "headers": self.headers,
            "timeout": timeout,
        }

    def result(self, response: httpx.Response) -> T:
        """The parsed answer, or the API's error raised as its typed exception."""
        raise_for_status(response)
        return self.parse(response)


@dataclass(frozen=True)
class Page(Generic[T]):
    data: list[T]
    next: "Call[Page[T]] | None"


def _segment(value: str) -> str:
    """An id or name as one path segment (a '/' or '?' in it cannot reach another route)."""
    return quote(value, safe="")


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _no_content(response: httpx.Response) -> None:
    return None


def _data(item: type[M]) -> Callable[[httpx.Response], list[M]]:
    """A list body's `data` (a list without pages: metrics, artifacts, catalog entries)."""

    def parse(response: httpx.Response) -> list[M]:
        return [item.model_validate(row) for row in json.loads(response.content)["data"]]

    return parse


def _paged(
    item: type[M], next_call: Callable[[M], "Call[Page[M]]"]
) -> Callable[[httpx.Response], Page[M]]:
    """A page {"data", "has_more"}; next_call(its last item) asks for the page after it."""

    def parse(response: httpx.Response) -> Page[M]:
        body = json.loads(response.content)
        data = [item.model_validate(row) for row in body["data"]]
        more = bool(body["has_more"]) and bool(data)
        return Page(data, next_call(data[-1]) if more else None)

    return parse


# --- jobs ---------------------------------------------------------------------------------------


def _spec_body(spec: dict[str, Any] | types.JobCreate) -> Any:
    """A JobCreate is sent as the fields that were set (the server fills in the defaults); a
    dict is sent as it is, for the server to validate."""
    if isinstance(spec, types.JobCreate):
        return spec.model_dump(mode="json", exclude_unset=True)
    return spec


def create_job(
    spec: dict[str, Any] | types.JobCreate, idempotency_key: str | None = None
) -> Call[types.Job]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", "/v1/jobs", _model(types.Job), json=_spec_body(spec), headers=headers)


# A worker's dry run loads the data and times a few steps; the API waits up to two minutes.
ESTIMATE_READ_TIMEOUT = 180.0


def estimate_job(spec: dict[str, Any] | types.JobCreate) -> Call[types.Estimate]:
    return Call(
        "POST",
        "/v1/jobs/estimate",
        _model(types.Estimate),
        json=_spec_body(spec),
        read_timeout=ESTIMATE_READ_TIMEOUT,
    )


def retrieve_job(job_id: str) -> Call[types.Job]:
    return Call("GET", f"/v1/jobs/{_segment(job_id)}", _model(types.Job))


def list_jobs(
    status: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    include: Iterable[str] = (),
    after: str | None = None,
) -> Call[Page[types.JobListItem]]:
    include = (include,) if isinstance(include, str) else tuple(include)
    params = {"status": status, "limit": limit, "after": after, "include": list(include) or None}
    parse = _paged(types.JobListItem, lambda last: list_jobs(status, limit, include, last.id))
    return Call("GET", "/v1/jobs", parse, params=params)


def job_action(job_id: str, action: str) -> Call[types.Job]:
    """POST /v1/jobs/{id}/{cancel|pause|resume}."""
    return Call("POST", f"/v1/jobs/{_segment(job_id)}/{action}", _model(types.Job))


def delete_job(job_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/jobs/{_segment(job_id)}", _no_content)


def list_events(
    job_id: str, after: int | None = None, limit: int = EVENTS_PAGE_SIZE
) -> Call[Page[types.JobEvent]]:
    parse = _paged(types.JobEvent, lambda last: list_events(job_id, last.id, limit))
    path = f"/v1/jobs/{_segment(job_id)}/events"
    return Call("GET", path, parse, params={"after": after, "limit": limit})


def stream_events(job_id: str, after: int | None = None) -> Call[None]:
    """The job's events as server-sent events (read by distillery.event_stream)."""
    return Call(
        "GET",
        f"/v1/jobs/{_segment(job_id)}/events",
        _no_content,
        params={"stream": "true", "after": after},
        headers={"Accept": "text/event-stream"},
        read_timeout=EVENT_STREAM_READ_TIMEOUT,
    )


def job_metrics(job_id: str) -> Call[list[types.MetricRow]]:
    path = f"/v1/jobs/{_segment(job_id)}/metrics"
    return Call("GET", path, _data(types.MetricRow))


def job_artifacts(job_id: str) -> Call[list[types.Artifact]]:
    path = f"/v1/jobs/{_segment(job_id)}/artifacts"
    return Call("GET", path, _data(types.Artifact))


def download_artifact(job_id: str, name: str) -> Call[None]:
    """Streamed by the client into distillery.downloads.ArtifactFile."""
    path = f"/v1/jobs/{_segment(job_id)}/artifacts/{_segment(name)}"
    return Call("GET", path, _no_content)


# --- files --------------------------------------------------------------------------------------


def retrieve_file(file_id: str) -> Call[types.File]:
    return Call("GET", f"/v1/files/{_segment(file_id)}", _model(types.File))


def list_files(
    purpose: str | None = None, limit: int = DEFAULT_PAGE_SIZE, after: str | None = None
) -> Call[Page[types.File]]:
    parse = _paged(types.File, lambda last: list_files(purpose, limit, last.id))
    return Call(
        "GET", "/v1/files", parse, params={"purpose": purpose, "limit": limit, "after": after}
    )


def delete_file(file_id: str) -> Call[types.FileDeleted]:
    return Call("DELETE", f"/v1/files/{_segment(file_id)}", _model(types.FileDeleted))


def upload_file(upload: MultipartUpload) -> Call[types.File]:
    """POST /v1/files; the client streams the upload's body (iter_body or aiter_body)."""
    return Call("POST", "/v1/files", _model(types.File), headers=upload.headers())


# --- catalog ------------------------------------------------------------------------------------


def catalog(kind: str) -> Call[list[types.CatalogEntry]]:
    """GET /v1/catalog/{kind} (distillery.types.catalog.KINDS)."""
    return Call("GET", f"/v1/catalog/{_segment(kind)}", _data(types.CatalogEntry))
