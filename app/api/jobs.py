"""/v1/jobs: create, list, get, cancel, events, metrics, artifacts."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app import jobs, schemas
from app.api.deps import DispatcherDep, SessionDep, SettingsDep, StoreDep, TenantDep
from app.db import session_scope
from app.dispatch import dispatch
from app.errors import ApiError
from app.models import Job, JobStatus


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
        spec=job.spec,
        metadata=job.metadata_ or {},
        result=job.result,
    )


@router.post(
    "",
    status_code=201,
    response_model=schemas.Job,
    responses={
        200: {"model": schemas.Job, "description": "Replay of an Idempotency-Key: the first job"},
        400: _error("Body is not UTF-8 JSON"),
        409: _error("Idempotency-Key already used with another body"),
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
    job, created = jobs.create_job(
        session,
        body,
        idempotency_key,
        tenant,
        max_running=settings.tenant_max_running_jobs,
        max_queued=settings.tenant_max_queued_jobs,
    )
    if created:
        dispatch(settings, dispatcher, job.id)
    else:
        response.status_code = 200
    return job_out(job)


@router.get("", response_model=schemas.JobList)
def list_jobs(
    session: SessionDep,
    tenant: TenantDep,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(JobStatus.ALL) + ")$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=40)] = None,
) -> schemas.JobList:
    try:
        rows, has_more = jobs.list_jobs(
            session, status=status, limit=limit, after=after, tenant=tenant
        )
    except jobs.JobNotFound:
        raise ApiError(422, "invalid_request", f"unknown cursor job {after!r}", "after") from None
    return schemas.JobList(data=[job_out(j) for j in rows], has_more=has_more)


@router.get("/{job_id}", response_model=schemas.Job)
def get_job(job_id: str, session: SessionDep, tenant: TenantDep) -> schemas.Job:
    return job_out(jobs.get_job(session, job_id, tenant))


@router.post(
    "/{job_id}/cancel",
    response_model=schemas.Job,
    responses={409: _error("The job already succeeded or failed")},
)
def cancel_job(job_id: str, session: SessionDep, tenant: TenantDep) -> schemas.Job:
    return job_out(jobs.cancel_job(session, job_id, tenant))


def _event_out(event: object) -> schemas.JobEvent:
    return schemas.JobEvent.model_validate(event, from_attributes=True)


@router.get(
    "/{job_id}/events",
    response_model=schemas.JobEventList,
    responses={200: {"content": {"text/event-stream": {}}, "description": "With ?stream=true"}},
)
def list_events(
    job_id: str,
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    stream: bool = False,
) -> schemas.JobEventList | StreamingResponse:
    jobs.get_job(session, job_id, tenant)
    if stream:
        return StreamingResponse(
            _event_stream(settings.database_url, job_id, tenant, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    rows = jobs.list_events(session, job_id, after, limit + 1)
    return schemas.JobEventList(
        data=[_event_out(e) for e in rows[:limit]], has_more=len(rows) > limit
    )


async def _event_stream(
    database_url: str, job_id: str, tenant: str, after: int | None
) -> AsyncIterator[str]:
    """Server-sent events until the job reaches a final status and every event was sent."""

    def poll(cursor: int | None) -> tuple[list[schemas.JobEvent], str]:
        with session_scope(database_url) as session:
            # Status first: a job that finishes between the two reads still has its final
            # event sent before the stream ends.
            status = jobs.get_job(session, job_id, tenant).status
            rows = [_event_out(e) for e in jobs.list_events(session, job_id, cursor, 500)]
            return rows, status

    cursor = after
    while True:
        rows, status = await run_in_threadpool(poll, cursor)
        for event in rows:
            cursor = event.id
            yield f"id: {event.id}\nevent: {event.kind}\ndata: {event.model_dump_json()}\n\n"
        if status in JobStatus.FINISHED and not rows:
            yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
            return
        if not rows:
            await asyncio.sleep(0.5)


@router.get("/{job_id}/metrics", response_model=schemas.MetricList)
def list_metrics(job_id: str, session: SessionDep, tenant: TenantDep) -> schemas.MetricList:
    jobs.get_job(session, job_id, tenant)
    rows = jobs.list_metrics(session, job_id)
    return schemas.MetricList(
        data=[schemas.MetricRow(stage=m.stage, epoch=m.epoch, values=m.values) for m in rows]
    )


@router.get("/{job_id}/artifacts", response_model=schemas.ArtifactList)
def list_artifacts(job_id: str, session: SessionDep, tenant: TenantDep) -> schemas.ArtifactList:
    jobs.get_job(session, job_id, tenant)
    rows = jobs.list_artifacts(session, job_id)
    return schemas.ArtifactList(
        data=[schemas.Artifact.model_validate(a, from_attributes=True) for a in rows]
    )


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
