"""/v1/files: upload (streamed, checked in the background), list, get, delete."""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from app.api.deps import SessionDep, SettingsDep, StoreDep, TenantDep
from app.api_error import ApiError
from app.db import session_scope
from app.files import formats, service
from app.files.upload import FILE_FIELD, Upload, UploadDropped, receive_upload
from app.jobs.queue import lock_tenant
from app.models import File, FileStatus
from app.settings import Settings
from app.store.base import Store, file_key
from distillery import types as schemas

log = logging.getLogger(__name__)

# The status an upload the client abandoned mid-body is answered (to no one) and counted with:
# nginx's "client closed request", so it is neither a client error it saw nor a server error.
CLIENT_CLOSED_REQUEST = 499


def _error(description: str) -> dict[str, Any]:
    return {"model": schemas.ErrorResponse, "description": description}


router = APIRouter(
    prefix="/v1/files",
    tags=["files"],
    responses={404: _error("No such file"), 422: _error("Invalid request")},
)

# Form fields besides `file` and `purpose`: format options (each format says which it takes).
OPTION_FIELDS = (
    "label_column",
    "text_column",
    "max_length",
    "task",
    "image_size",
    "channels",
    "context",
)
# Room for the multipart framing and the small form fields around the file.
MULTIPART_OVERHEAD = 64 * 1024


def file_out(row: File) -> schemas.File:
    return schemas.File(
        id=row.id,
        purpose=row.purpose,
        filename=row.filename,
        format=row.format,
        bytes=row.bytes,
        sha256=row.sha256,
        status=row.status,
        options=row.options or {},
        info=row.info,
        error=schemas.ErrorBody(**row.error) if row.error else None,
        created_at=row.created_at,
    )


def _not_found(file_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no file {file_id!r}", "id")


def _purpose(fields: dict[str, str]) -> str:
    purpose = fields.get("purpose")
    if purpose is None:
        raise ApiError(
            422, "invalid_request", "purpose: required (dataset, teacher or logits)", "purpose"
        )
    if purpose not in formats.PURPOSES:
        raise ApiError(
            422,
            "invalid_request",
            f"purpose: must be dataset, teacher or logits, not {purpose[:40]!r}",
            "purpose",
        )
    return purpose


def _format_for(purpose: str, filename: str) -> formats.Format:
    fmt = formats.find(purpose, filename)
    if fmt is not None:
        return fmt
    accepted = ", ".join(formats.extensions(purpose))
    message = f"file: {filename!r} is not accepted for purpose {purpose!r}; accepted: {accepted}"
    if filename.lower().endswith(formats.PICKLE_EXTENSIONS) or purpose == "teacher":
        message += (
            ". Pickle-based formats (.pt, .pth, .bin, .pkl, .ckpt) are never loaded: "
            "save weights as safetensors or export the model to ONNX"
        )
    raise ApiError(422, "invalid_request", message, FILE_FIELD)


def _early_filename_check(filename: str, fields: dict[str, str]) -> None:
    """Refuse a file by its name before storing any of it, when the purpose is already known
    (or no purpose accepts its extension)."""
    if "purpose" in fields:
        _format_for(_purpose(fields), filename)
        return
    if not any(formats.find(p, filename) for p in formats.PURPOSES):
        _format_for(
            "teacher" if filename.lower().endswith(formats.PICKLE_EXTENSIONS) else "dataset",
            filename,
        )


def _quota(settings: Settings, tenant: str) -> tuple[int, str]:
    with session_scope(settings.database_url) as session:
        used = service.stored_bytes(session, tenant)
    limit = settings.tenant_max_stored_bytes
    message = (
        f"this upload would take the tenant's stored bytes over its limit of {limit} bytes "
        f"({used} stored now); delete files or jobs' artifacts first"
    )
    return limit - used, message


def _save(
    settings: Settings,
    store: Store,
    tenant: str,
    upload: Upload,
    fmt: formats.Format,
    options: dict[str, Any],
) -> File:
    assert upload.path is not None and upload.filename is not None
    file_id = service.new_file_id()
    key = file_key(file_id, "upload")
    with session_scope(settings.database_url) as session:
        # Two uploads finishing at once must count each other against the quota: the
        # tenant's lock (PostgreSQL; a file lock on SQLite) is held from this count until the row
        # is committed, in every API process.
        lock_tenant(session, tenant)
        used = service.stored_bytes(session, tenant)
        limit = settings.tenant_max_stored_bytes
        if used + upload.bytes > limit:
            raise ApiError(
                413,
                "payload_too_large",
                f"this upload would take the tenant's stored bytes over its limit of {limit} "
                f"bytes ({used} stored now); delete files or jobs' artifacts first",
                FILE_FIELD,
            )
        # Hashed as it streamed in: the store need not read it again.
        size, digest = store.put_file(key, upload.path, move=True, sha256=upload.sha256)
        upload.path = None
        row = File(
            id=file_id,
            tenant=tenant,
            purpose=fmt.purpose,
            filename=upload.filename,
            format=fmt.name,
            options=options,
            bytes=size,
            sha256=digest,
            status=FileStatus.PROCESSING,
            storage_key=key,
        )
        session.add(row)
    return row


@router.post(
    "",
    status_code=201,
    response_model=schemas.File,
    responses={
        413: _error("File over the upload limit, or the tenant's stored bytes over its limit"),
        415: _error("Body is not multipart/form-data"),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "purpose"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "purpose": {"type": "string", "enum": list(formats.PURPOSES)},
                            "label_column": {
                                "type": "string",
                                "description": ".csv: the label column (default 'label')",
                            },
                            "image_size": {
                                "type": "string",
                                "description": ".zip images: N or WxH (default 32)",
                            },
                            "channels": {
                                "type": "integer",
                                "enum": [1, 3],
                                "description": ".zip images: 1 grayscale or 3 RGB (default 3)",
                            },
                            "context": {
                                "type": "integer",
                                "description": ".txt / .jsonl text: bytes per window (default 128)",
                            },
                        },
                    }
                }
            },
        }
    },
)
async def upload_file(
    request: Request, settings: SettingsDep, store: StoreDep, tenant: TenantDep
) -> schemas.File | Response:
    """Upload a dataset (.npz, .csv, .zip of images, .txt / .jsonl text), a teacher
    (.safetensors, .onnx) or teacher logits (.npy, .npz). The file is stored as it streams
    in; its check runs in the background: poll the file until `status` is `ready` (see `info`)
    or `error` (see `error`)."""
    quota_left, quota_message = await run_in_threadpool(_quota, settings, tenant)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        body = int(declared) - MULTIPART_OVERHEAD
        if body > settings.max_upload_bytes:
            raise ApiError(
                413,
                "payload_too_large",
                f"the file exceeds the upload limit of {settings.max_upload_bytes} bytes",
                FILE_FIELD,
            )
        if body > quota_left:
            raise ApiError(413, "payload_too_large", quota_message, FILE_FIELD)
    try:
        upload = await receive_upload(
            request.headers.get("content-type", ""),
            request.stream(),
            staging=store.staging_dir(),
            max_bytes=settings.max_upload_bytes,
            quota_left=quota_left,
            quota_message=quota_message,
            on_filename=_early_filename_check,
        )
    except UploadDropped as exc:
        log.info(
            "upload dropped by the client of tenant %s: %s; its partial data is removed",
            tenant,
            exc,
        )
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    try:
        if upload.path is None or upload.filename is None:
            raise ApiError(422, "invalid_request", "file: required (the upload)", FILE_FIELD)
        purpose = _purpose(upload.fields)
        fmt = _format_for(purpose, upload.filename)
        unknown = [f for f in upload.fields if f not in ("purpose", *OPTION_FIELDS)]
        if unknown:
            raise ApiError(422, "invalid_request", f"{unknown[0]}: unknown form field", unknown[0])
        raw_options = {k: v for k, v in upload.fields.items() if k in OPTION_FIELDS}
        try:
            options = fmt.parse_options(raw_options)
        except formats.OptionError as exc:
            raise ApiError(
                422, "invalid_request", f"{exc.param}: {exc.message}", exc.param
            ) from None
        if upload.bytes == 0:
            raise ApiError(422, "invalid_request", "file: the upload is empty", FILE_FIELD)
        row = await run_in_threadpool(_save, settings, store, tenant, upload, fmt, options)
    finally:
        upload.discard()
    checker = getattr(request.app.state, "file_checker", None)
    if checker is not None:
        checker.wake()
    return file_out(row)


@router.get("", response_model=schemas.FileList)
def list_files(
    session: SessionDep,
    tenant: TenantDep,
    purpose: Annotated[str | None, Query(pattern="^(dataset|teacher|logits)$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=40)] = None,
) -> schemas.FileList:
    try:
        rows, has_more = service.list_files(
            session, tenant, purpose=purpose, limit=limit, after=after
        )
    except service.FileNotFound:
        raise ApiError(422, "invalid_request", f"unknown cursor file {after!r}", "after") from None
    return schemas.FileList(data=[file_out(f) for f in rows], has_more=has_more)


@router.get("/{file_id}", response_model=schemas.File)
def get_file(file_id: str, session: SessionDep, tenant: TenantDep) -> schemas.File:
    try:
        return file_out(service.get_file(session, tenant, file_id))
    except service.FileNotFound:
        raise _not_found(file_id) from None


@router.delete(
    "/{file_id}",
    response_model=schemas.FileDeleted,
    responses={409: _error("A queued, running or cancelling job uses the file")},
)
def delete_file(
    file_id: str, session: SessionDep, tenant: TenantDep, store: StoreDep
) -> schemas.FileDeleted:
    try:
        service.delete_file(session, tenant, file_id)
    except service.FileNotFound:
        raise _not_found(file_id) from None
    except service.FileInUse as exc:
        raise ApiError(409, "conflict", str(exc), "id") from None
    store.delete_prefix(f"files/{file_id}/")
    return schemas.FileDeleted(id=file_id)
