"""Dependencies shared by the routers."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app import auth
from app.api_error import ApiError
from app.db import get_session_factory
from app.db_async import AsyncDatabase
from app.dispatch.base import Dispatcher
from app.models import DEFAULT_TENANT
from app.settings import Settings
from app.store.base import Store


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` one in a worker thread,
# which costs more than the dependency itself on every request.
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> AsyncDatabase:
    """The async database of the read path (opened with the app, see app.main)."""
    database: AsyncDatabase = request.app.state.database
    return database


def get_db(request: Request) -> Iterator[Session]:
    session = get_session_factory(request.app.state.settings.database_url)()
    try:
        yield session
    finally:
        session.close()


async def get_dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_db)]
DatabaseDep = Annotated[AsyncDatabase, Depends(get_database)]

# auto_error=False: a missing key is answered here, in the one error shape. Declaring the
# scheme puts "bearer" in the OpenAPI document, so /docs and clients can send the key.
bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `distillery keys create` (when DISTILLERY_AUTH=required)",
)


# The dashboard's key (app/api/session.py): an HttpOnly cookie no script can read, honoured only
# on requests that also carry SESSION_HEADER. A page on another origin cannot add that header
# without a CORS preflight this API never grants, so it cannot act with the cookie (nor can a
# form or an image: SameSite=Strict, and they cannot set headers either).
SESSION_COOKIE = "distillery_session"
SESSION_HEADER = "X-Distillery-Session"


def key_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The API key a request presents: its Bearer key, else the dashboard's cookie."""
    if credentials is not None:
        return credentials.credentials
    if request.headers.get(SESSION_HEADER) == "1":
        return request.cookies.get(SESSION_COOKIE)
    return None


async def get_tenant(
    request: Request,
    settings: SettingsDep,
    database: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The tenant the request acts for. With DISTILLERY_AUTH=off everything is the default
    tenant's (no database read); with auth required, the tenant of the Bearer key (401 without
    a live one), looked up on every request so a revoked key stops at once."""
    return await tenant_for(settings, database, key_of(request, credentials))


async def tenant_for(settings: Settings, database: AsyncDatabase, key: str | None) -> str:
    """get_tenant's answer, for callers outside dependency injection (app.api.poll)."""
    if settings.auth == "off":
        return DEFAULT_TENANT
    challenge = {"WWW-Authenticate": "Bearer"}
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "this API needs an API key: send 'Authorization: Bearer <key>' "
            "(create one with `distillery keys create --tenant NAME`)",
            "Authorization",
            challenge,
        )
    tenant = await auth.authenticate_async(database, key)
    if tenant is None:
        raise ApiError(
            401,
            "unauthorized",
            "invalid or revoked API key",
            "Authorization",
            challenge,
        )
    return tenant


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
StoreDep = Annotated[Store, Depends(get_store)]
TenantDep = Annotated[str, Depends(get_tenant)]
