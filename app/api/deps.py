"""Dependencies shared by the routers."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.db import get_session_factory
from app.dispatch import Dispatcher
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


def get_tenant(request: Request) -> str:
    """The tenant the request acts for. With DISTILLERY_AUTH=off everything is the default
    tenant's; with auth required, the tenant of the Bearer key (401 without a valid one)."""
    return DEFAULT_TENANT


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_db)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
StoreDep = Annotated[Store, Depends(get_store)]
TenantDep = Annotated[str, Depends(get_tenant)]
