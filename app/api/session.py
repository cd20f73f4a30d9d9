"""The dashboard's sign-in: POST /v1/session checks a key and hands it back as a cookie the
browser keeps and no script can read (HttpOnly), DELETE /v1/session forgets it.

The key is never stored where a script can read it (it used to be in localStorage, where any
script on this origin could). The cookie is sent only to /v1, only on same-site requests
(SameSite=Strict), only over HTTPS when the page was served over it, and counts only on
requests that carry the X-Distillery-Session header (app/api/deps.py). A revoked key's cookie
is refused like the key.
"""

from typing import Any

from fastapi import APIRouter, Request, Response

from app import auth
from app.api.deps import SESSION_COOKIE, DatabaseDep, SettingsDep
from app.api_error import ApiError
from app.models import DEFAULT_TENANT
from distillery import types as schemas

router = APIRouter(prefix="/v1/session", tags=["session"])

MAX_AGE_SECONDS = 30 * 24 * 3600  # the browser forgets it after 30 days unused; revoking is at once


def _error(description: str) -> dict[str, Any]:
    return {"model": schemas.ErrorResponse, "description": description}


@router.post(
    "",
    response_model=schemas.Session,
    responses={401: _error("The key is unknown or revoked")},
)
async def create_session(
    body: schemas.SessionCreate,
    request: Request,
    response: Response,
    settings: SettingsDep,
    database: DatabaseDep,
) -> schemas.Session:
    """Check an API key and keep it in this browser as an HttpOnly cookie (the dashboard's
    sign-in). API clients send `Authorization: Bearer` instead."""
    if settings.auth == "off":
        return schemas.Session(tenant=DEFAULT_TENANT)  # no key needed, none kept
    tenant = await auth.authenticate_async(database, body.key)
    if tenant is None:
        raise ApiError(401, "unauthorized", "invalid or revoked API key", "key")
    response.set_cookie(
        SESSION_COOKIE,
        body.key,
        max_age=MAX_AGE_SECONDS,
        path="/v1",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return schemas.Session(tenant=tenant)


@router.delete("", status_code=204)
async def delete_session() -> Response:
    """Forget the key this browser keeps (the key itself stays valid)."""
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/v1", httponly=True, samesite="strict")
    return response
