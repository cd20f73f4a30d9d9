"""The SDK's exceptions: one per HTTP status the API answers, each carrying the API's error
shape ({"error": {"code", "message", "param"}}), plus transport failures and bad downloads."""

import contextlib
import json
from collections.abc import Iterator

import httpx


class DistilleryError(Exception):
    """Every error the SDK raises. `status` is the HTTP status (None when no response came);
    `code`, `message` and `param` are the API's error body; `retry_after` is the Retry-After
    header in seconds (429, 503), when sent."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code
        self.param, self.retry_after = param, retry_after

    def __str__(self) -> str:
        where = f" (param: {self.param})" if self.param else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.code}: {self.message}{where}"


class BadRequest(DistilleryError):
    """400: the body is not UTF-8 JSON."""


class AuthenticationError(DistilleryError):
    """401: a missing, unknown or revoked API key."""


class PermissionDenied(DistilleryError):
    """403."""


class NotFound(DistilleryError):
    """404: no such job, file or artifact (or another tenant's)."""


class Conflict(DistilleryError):
    """409: the job or file is in the wrong state, or an Idempotency-Key was reused with
    another body (code `idempotency_conflict`)."""


class PayloadTooLarge(DistilleryError):
    """413: a body or upload over the server's limit, or over the tenant's stored bytes."""


class UnprocessableEntity(DistilleryError):
    """422: an invalid request; `param` names the field (e.g. `dataset.name`)."""


class RateLimited(DistilleryError):
    """429: the tenant is at its job limit; retry after `retry_after` seconds."""


class ServerError(DistilleryError):
    """5xx: the server failed, or is unavailable for now (503, with `retry_after`)."""


class APIConnectionError(DistilleryError):
    """No response: the server could not be reached, or the connection failed or timed out."""


class ChecksumMismatch(DistilleryError):
    """A download's sha256 differs from the one the server announced (nothing is kept)."""


STATUS_ERRORS: dict[int, type[DistilleryError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: UnprocessableEntity,
    429: RateLimited,
}


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: the API sends seconds, a proxy might not
        return None


def error_from_response(response: httpx.Response) -> DistilleryError:
    """The typed exception for an error response (its body read already)."""
    status = response.status_code
    code, message, param = "error", response.text[:500] or response.reason_phrase, None
    try:
        body = json.loads(response.content)["error"]
        code, message, param = str(body["code"]), str(body["message"]), body.get("param")
    except (ValueError, KeyError, TypeError):
        pass  # not the API's shape (a proxy's page): status and text only
    cls = STATUS_ERRORS.get(status, ServerError if status >= 500 else DistilleryError)
    retry_after = _retry_after(response.headers.get("retry-after"))
    return cls(message, status=status, code=code, param=param, retry_after=retry_after)


def raise_for_status(response: httpx.Response) -> None:
    if response.is_error:
        raise error_from_response(response)


@contextlib.contextmanager
def transport_errors() -> Iterator[None]:
    """httpx's transport failures raised as APIConnectionError (works around awaits too)."""
    try:
        yield
    except httpx.TransportError as exc:
        raise APIConnectionError(
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            code="connection_error",
        ) from exc
