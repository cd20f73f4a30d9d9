"""One error shape for every error: {"error": {"code", "message", "param"}}: the handlers that
turn ApiError, SpecError, the job service's errors, validation and database errors into it."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api_error import ApiError
from app.db_async import DatabaseUnavailable
from app.jobs.errors import IdempotencyConflict, JobConflict, JobNotFound, QuotaExceeded
from distillery.types.catalog import SpecError
from distillery.types.job_spec import UNION_TAGS

log = logging.getLogger(__name__)


STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, param: str | None = None, headers: Any = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "param": param}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_param(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    if len(parts) > 1 and parts[1] in UNION_TAGS.get(parts[0], ()):
        del parts[1]
    # A plain union names the member that failed ("function-after[...]", "literal['auto']"):
    # not a field either.
    parts = [p for p in parts if "[" not in p]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.param, exc.headers)

    @app.exception_handler(SpecError)
    async def _spec_error(_: Request, exc: SpecError) -> JSONResponse:
        return error_response(422, "invalid_request", exc.message, exc.param)

    @app.exception_handler(JobNotFound)
    async def _not_found(_: Request, exc: JobNotFound) -> JSONResponse:
        return error_response(404, "not_found", f"no job {exc.args[0]!r}", "id")

    @app.exception_handler(JobConflict)
    async def _conflict(_: Request, exc: JobConflict) -> JSONResponse:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(IdempotencyConflict)
    async def _idempotency(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return error_response(409, "idempotency_conflict", str(exc), "Idempotency-Key")

    @app.exception_handler(QuotaExceeded)
    async def _quota(_: Request, exc: QuotaExceeded) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)}
        return error_response(429, "rate_limited", str(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        missing = [
            _validation_param(tuple(e.get("loc", ())))
            for e in errors
            if e.get("type") == "missing" and tuple(e.get("loc", ()))[:1] == ("body",)
        ]
        if len(missing) > 1:
            names = ", ".join(str(m) for m in missing)
            return error_response(
                422, "invalid_request", f"missing required fields: {names}", missing[0]
            )
        first = errors[0]
        param = _validation_param(tuple(first.get("loc", ())))
        message = first.get("msg", "invalid request")
        if param:
            message = f"{param}: {message}"
        return error_response(422, "invalid_request", message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(DatabaseUnavailable)
    async def _database_down(
        _: Request, exc: DBAPIError | PoolTimeout | DatabaseUnavailable
    ) -> JSONResponse:
        # The database is unreachable (down, restarting, out of connections): the request may
        # succeed later, so 503, not 500. DatabaseUnavailable: the same from the async read path.
        log.warning("database unavailable: %s", getattr(exc, "orig", exc))
        return error_response(
            503,
            "unavailable",
            "the database is unavailable; try again shortly",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal_error", "internal error; see the server log")
