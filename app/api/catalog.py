"""/v1/catalog: what a job can name, with each entry's parameter schema."""

from typing import Any

from fastapi import APIRouter, Depends

from app import catalog, schemas
from app.api.deps import get_tenant

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "model": schemas.ErrorResponse,
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


def _listing(entries: dict[str, catalog.Entry]) -> schemas.CatalogList:
    return schemas.CatalogList(data=[schemas.CatalogEntry(**e.as_json()) for e in entries.values()])


@router.get("/models", response_model=schemas.CatalogList)
def models() -> schemas.CatalogList:
    return _listing(catalog.MODELS)


@router.get("/datasets", response_model=schemas.CatalogList)
def datasets() -> schemas.CatalogList:
    return _listing(catalog.DATASETS)


@router.get("/methods", response_model=schemas.CatalogList)
def methods() -> schemas.CatalogList:
    return _listing(catalog.METHODS)
