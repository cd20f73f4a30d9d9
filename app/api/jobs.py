"""/v1/jobs: create, estimate, list, get, cancel, delete, events, metrics, artifacts."""

import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from app import auth, fleet, housekeeping, jobs, reads, webhooks
from app.api.deps import (
    DispatcherDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    TenantDep,
    bearer,
    key_of,
)
from app.api.event_streams import EventStreamResponse, EventStreams, job_events
from app.api.poll import POLL_OPENAPI, PollRoute, reader
from app.api_error import ApiError
from app.dispatch.base import EstimateRefused, EstimateUnavailable, dispatch
from app.files.usage import check_job_files
from app.models import Job, JobStatus
from app.settings import Settings
from distillery import types as schemas


def _error(description: str) -> dict[str, Any]:
    return {"model": schemas.ErrorResponse, "description": description}


router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    responses={
        401: _error("Missing, invalid or revoked API key (DISTILLERY_AUTH=required)"),
        404: _error("No such job"),
        422: _error("Invalid request"),
    },
)


def job_out(job: Job) -> schemas.Job:
    progress = job.progress or {}
    return schemas.Job(
        id=job.id,
        name=job.name,
        status=job.status,
        stage=job.stage,
        progress=schemas.Progress(**progress),
        attempt=job.attempt,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=schemas.ErrorInfo(**job.error) if job.error else None,
        spec=reads.public_spec(job.spec),
        metadata=job.metadata_ or {},
        result=job.result,
        cost=schemas.JobCost.model_validate(job.cost) if job.cost else None,
    )


@router.post(
    "",
    status_code=201,
    response_model=schemas.Job,
    responses={
        200: {"model": schemas.Job, "description": "Replay of an Idempotency-Key: the first job"},
        400: _error("Body is not UTF-8 JSON"),
        409: _error("Idempotency-Key already used with another body (or its job deleted, 3 times)"),
        413: _error("Body over the size limit"),
        429: _error("The tenant is at its running or queued job limit (see Retry-After)"),
    },
)
def create_job(
    body: schemas.JobCreate,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    tenant: TenantDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> schemas.Job:
    if body.webhook is not None:
        webhooks.check_url(body.webhook.url, settings)
    fleet.check_resources(session, body.resources.model_dump(), settings)
    job, created = jobs.create_job(
        session,
        body,
        idempotency_key,
        tenant=tenant,
        max_running=settings.tenant_max_running_jobs,
        max_queued=settings.tenant_max_queued_jobs,
    )
    if created:
        dispatch(settings, dispatcher, job.id)
    else:
        response.status_code = 200
    return job_out(job)


@router.post(
    "/estimate",
    response_model=schemas.Estimate,
    responses={
        422: _error("The spec is invalid (as POST /v1/jobs would say, or as a worker's validate)"),
        503: _error("No worker answered within DISTILLERY_ESTIMATE_TIMEOUT_SECONDS"),
    },
)
def estimate_job(
    body: schemas.JobCreate,
    session: SessionDep,
    dispatcher: DispatcherDep,
    tenant: TenantDep,
) -> dict[str, Any]:
    """The work the spec implies (teacher passes, student steps, FLOPs per stage, soft-label
    bytes) and its wall time per device kind, from a short dry run on a worker: its data
    loaded, its models built and a few of their training and inference steps timed. Creates
    no job; a job records its own estimate, and its actual figures, in `cost`."""
    spec = jobs.resolve_spec(body)
    check_job_files(session, tenant, spec)
    session.close()  # the wait below holds no connection
    try:
        return dispatcher.estimate(spec, tenant)
    except EstimateRefused as exc:
        error = exc.error
        raise ApiError(422, error["code"], error["message"], error.get("param")) from None
    except EstimateUnavailable as exc:
        raise ApiError(
            503, "estimate_unavailable", str(exc), headers={"Retry-After": "10"}
        ) from None


# The read routes below are the poll path: `async def` on the async database (app.reads), one
# statement each, bodies serialised once and returned as they are (no response-model
# validation; response_model still documents them). They take no FastAPI dependencies, and
# those with only path parameters are PollRoutes (see app.api.poll); the headers they read are
# documented by hand for the same reason.

Endpoint = Callable[..., Coroutine[Any, Any, Response]]
IF_NONE_MATCH = "If-None-Match"
LAST_EVENT_ID = "Last-Event-ID"


def _header(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": description,
    }


CONDITIONAL: dict[str, Any] = {
    **POLL_OPENAPI,
    "parameters": [
        _header(IF_NONE_MATCH, "the ETag of the body you have: 304, no body, while it is current")
    ],
}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: If-None-Match names the current ETag"}
}


def _poll_get(path: str, **kwargs: Any) -> Callable[[Endpoint], Endpoint]:
    """@router.get for an endpoint served by PollRoute."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(
            path, endpoint, methods=["GET"], route_class_override=PollRoute, **kwargs
        )
        return endpoint

    return register


def _json(body: Any, etag: str | None = None) -> Response:
    headers = None if etag is None else {"ETag": etag, "Cache-Control": "no-cache"}
    return Response(reads.dumps(body), media_type="application/json", headers=headers)


def _conditional(request: Request, etag: str, body: Callable[[], Any]) -> Response:
    """304 with no body if the request's If-None-Match names `etag`; else body() as JSON."""
    if reads.etag_matches(request.headers.get(IF_NONE_MATCH), etag):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
    return _json(body(), etag)


@router.get("", response_model=schemas.JobList, responses=NOT_MODIFIED, openapi_extra=CONDITIONAL)
async def list_jobs(
    request: Request,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(JobStatus.ALL) + ")$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=40)] = None,
    include: Annotated[
        list[Literal["spec", "result", "cost"]] | None,
        Query(description="fields to add to each job: include=spec&include=result for both"),
    ] = None,
) -> Response:
    database, tenant = await reader(request)
    included = frozenset(include or ())
    try:
        rows, has_more = await reads.list_jobs(
            database, tenant, status=status, limit=limit, after=after, include=included
        )
    except jobs.JobNotFound:
        raise ApiError(422, "invalid_request", f"unknown cursor job {after!r}", "after") from None
    etag = reads.list_etag(rows, has_more, included)
    return _conditional(request, etag, lambda: reads.list_body(rows, has_more, included))


@_poll_get(
    "/{job_id}", response_model=schemas.Job, responses=NOT_MODIFIED, openapi_extra=CONDITIONAL
)
async def get_job(job_id: str, request: Request) -> Response:
    database, tenant = await reader(request)
    job = await reads.get_job(database, job_id, tenant)
    return _conditional(request, reads.job_etag(job), lambda: reads.job_body(job))


@router.post(
    "/{job_id}/cancel",
    response_model=schemas.Job,
    responses={409: _error("The job already succeeded or failed")},
)
def cancel_job(job_id: str, session: SessionDep, tenant: TenantDep) -> schemas.Job:
    return job_out(jobs.cancel_job(session, job_id, tenant))


@router.post(
    "/{job_id}/pause",
    response_model=schemas.Job,
    responses={409: _error("The job has finished or is being cancelled")},
)
def pause_job(job_id: str, session: SessionDep, tenant: TenantDep) -> schemas.Job:
    """A queued job is `paused` at once; a running one becomes `pausing` until its worker has
    checkpointed and freed itself (then `paused`). Idempotent."""
    return job_out(jobs.pause_job(session, job_id, tenant))


@router.post(
    "/{job_id}/resume",
    response_model=schemas.Job,
    responses={409: _error("The job is still pausing, has finished or is being cancelled")},
)
def resume_job(
    job_id: str,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    tenant: TenantDep,
) -> schemas.Job:
    """A paused job is queued again and continues from where it stopped. Idempotent."""
    before = jobs.get_job(session, job_id, tenant).status
    job = jobs.resume_job(session, job_id, tenant)
    if before == JobStatus.PAUSED and job.status == JobStatus.QUEUED:
        dispatch(settings, dispatcher, job.id)
    return job_out(job)


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "Deleted: its rows, stored artifacts and work files"},
        409: _error("The job has not finished: cancel it first"),
    },
)
def delete_job(
    job_id: str, session: SessionDep, settings: SettingsDep, store: StoreDep, tenant: TenantDep
) -> Response:
    housekeeping.delete_job(settings, store, session, job_id, tenant)
    return Response(status_code=204)


MAX_EVENT_ID = 2**63 - 1


def _event_cursor(after: int | None, last_event_id: str | None) -> int | None:
    """The later of `after` and Last-Event-ID (what EventSource sends when it reconnects)."""
    if last_event_id is None:
        return after
    if not re.fullmatch(r"[0-9]{1,19}", last_event_id) or int(last_event_id) > MAX_EVENT_ID:
        raise ApiError(422, "invalid_request", "Last-Event-ID must be an event id", LAST_EVENT_ID)
    return max(after or 0, int(last_event_id))


@router.get(
    "/{job_id}/events",
    response_model=schemas.JobEventList,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "With ?stream=true: server-sent events (`id`, `event` = the kind, "
            "`data` = the event), then `end` ({status}) once the job has finished, or "
            "`reconnect` ({after, reason}) when the stream reaches its maximum duration or "
            "the server stops (or the key was revoked: reason `unauthorized`): reconnect with "
            "`after` (or Last-Event-ID)",
        },
        503: _error("With ?stream=true: this server streams its maximum (see Retry-After)"),
    },
    openapi_extra={
        **POLL_OPENAPI,
        "parameters": [_header(LAST_EVENT_ID, "the cursor, like `after` (the later wins)")],
    },
)
async def list_events(
    job_id: str,
    request: Request,
    after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    stream: bool = False,
) -> Response:
    database, tenant = await reader(request)
    cursor = _event_cursor(after, request.headers.get(LAST_EVENT_ID))
    if stream:
        await reads.list_events(database, job_id, tenant, cursor, 1)  # 404 before streaming
        settings: Settings = request.app.state.settings
        streams: EventStreams = request.app.state.event_streams
        streams.take_slot()
        key = None if settings.auth == "off" else key_of(request, await bearer(request))

        async def key_still_live() -> bool:  # a revoked key's streams end at their next poll
            return key is None or await auth.authenticate_async(database, key) == tenant

        return EventStreamResponse(
            streams, job_events(database, streams, job_id, tenant, cursor, key_still_live)
        )
    _, events = await reads.list_events(database, job_id, tenant, cursor, limit + 1)
    return _json({"object": "list", "data": events[:limit], "has_more": len(events) > limit})


@_poll_get("/{job_id}/metrics", response_model=schemas.MetricList, openapi_extra=POLL_OPENAPI)
async def list_metrics(job_id: str, request: Request) -> Response:
    database, tenant = await reader(request)
    return _json(await reads.list_metrics(database, job_id, tenant))


@_poll_get("/{job_id}/artifacts", response_model=schemas.ArtifactList, openapi_extra=POLL_OPENAPI)
async def list_artifacts(job_id: str, request: Request) -> Response:
    database, tenant = await reader(request)
    return _json(await reads.list_artifacts(database, job_id, tenant))


@router.get(
    "/{job_id}/artifacts/{name}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file"}},
)
def download_artifact(
    job_id: str, name: str, session: SessionDep, store: StoreDep, tenant: TenantDep
) -> StreamingResponse:
    jobs.get_job(session, job_id, tenant)
    artifact = jobs.get_artifact(session, job_id, name)
    if artifact is None:
        raise ApiError(404, "not_found", f"job {job_id} has no artifact {name!r}", "name")
    return StreamingResponse(
        store.open_chunks(artifact.storage_key),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(artifact.bytes),
            "ETag": f'"{artifact.sha256}"',
            "Content-Disposition": f'attachment; filename="{artifact.name}"',
        },
    )
