"""Dependencies shared by the routers."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app import auth
from app.db import get_session_factory
from app.dispatch import Dispatcher
from app.errors import ApiError
from app.models import DEFAULT_TENANT
from app.settings import Settings
from app.storage import Store


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Iterator[Session]:
    session = get_session_factory(request.app.state.settings.database_url)()
    try:
        yield session
    finally:
        session.close()


def get_dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_db)]

# auto_error=False: a missing key is answered here, in the one error shape. Declaring the
# scheme puts "bearer" in the OpenAPI document, so /docs and clients can send the key.
bearer = HTTPBearer(
    auto_error=False,
    description="An API key from `distillery keys create` (when DISTILLERY_AUTH=required)",
)


def get_tenant(
    settings: SettingsDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The tenant the request acts for. With DISTILLERY_AUTH=off everything is the default
    tenant's; with auth required, the tenant of the Bearer key (401 without a valid one)."""
    if settings.auth == "off":
        return DEFAULT_TENANT
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "this API needs an API key: send 'Authorization: Bearer <key>' "
            "(create one with `distillery keys create --tenant NAME`)",
            "Authorization",
            challenge,
        )
    key = auth.authenticate(session, credentials.credentials)
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "invalid or revoked API key",
            "Authorization",
            challenge,
        )
    return key.tenant


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
StoreDep = Annotated[Store, Depends(get_store)]
TenantDep = Annotated[str, Depends(get_tenant)]
