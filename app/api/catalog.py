"""/v1/catalog: what a job can name, with each entry's parameter schema."""

from fastapi import APIRouter

from app import catalog, schemas

router = APIRouter(prefix="/v1/catalog", tags=["catalog"])


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
