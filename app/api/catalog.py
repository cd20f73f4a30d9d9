"""/v1/catalog/<kind>: what a job can name, with each entry's parameter schema, tasks and
capabilities; one route per kind of the catalog (distillery.types.catalog.KINDS)."""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends

from app.api.deps import get_tenant
from distillery.types.catalog import KINDS
from distillery.types.catalog.base import CatalogEntry, CatalogList, Entry
from distillery.types.errors import ErrorResponse

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorResponse,
        "description": "Missing, invalid or revoked API key (DISTILLERY_AUTH=required)",
    }
}

# The catalog is the same for every tenant, but with auth required it still needs a key.
router = APIRouter(
    prefix="/v1/catalog",
    tags=["catalog"],
    dependencies=[Depends(get_tenant)],
    responses=_UNAUTHORIZED,
)


def _listing(entries: dict[str, Entry]) -> Callable[[], CatalogList]:
    listing = CatalogList(data=[CatalogEntry(**e.as_json()) for e in entries.values()])

    def route() -> CatalogList:
        return listing

    return route


for _kind, _entries in KINDS.items():
    router.add_api_route(
        f"/{_kind}",
        _listing(_entries),
        methods=["GET"],
        response_model=CatalogList,
        name=f"catalog_{_kind}",
        summary=f"List {_kind.replace('_', ' ')}",
    )
